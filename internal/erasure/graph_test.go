package erasure

import (
	"errors"
	"slices"
	"strings"
	"testing"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func ids(types ...string) []retentionv1.IdentityField {
	var out []retentionv1.IdentityField
	for _, t := range types {
		out = append(out, retentionv1.IdentityField{Type: retentionv1.IdentityType(t), Field: retentionv1.Identifier(t)})
	}
	return out
}

func ref(field, coll, target string, own retentionv1.Ownership) retentionv1.Reference {
	return retentionv1.Reference{Field: retentionv1.Identifier(field), Collection: retentionv1.Identifier(coll), TargetField: retentionv1.Identifier(target), Ownership: own}
}

func fk(child, field, parent, target string) retentionv1.DiscoveredReference {
	return retentionv1.DiscoveredReference{Collection: child, Field: field, TargetCollection: parent, TargetField: target, Ownership: retentionv1.OwnershipPointsTo}
}

func has(types ...string) func(string) bool {
	return func(t string) bool { return slices.Contains(types, t) }
}

func paths(r Reach) []string {
	var out []string
	for _, p := range r.Paths {
		out = append(out, PathString(p))
	}
	slices.Sort(out)
	return out
}

// marketplace: customers(user_id, email); addresses reached from customers,
// orders and cards (three owning paths); quotes owned by a supplier and
// pointed at by other buyers' orders; products a shared catalogue.
func marketplace() *retentionv1.Dataset {
	return &retentionv1.Dataset{Spec: retentionv1.DatasetSpec{Collections: []retentionv1.Collection{
		{Name: "customers", PrimaryKey: []retentionv1.Identifier{"id"}, Identities: ids("user_id", "email")},
		{Name: "orders", PrimaryKey: []retentionv1.Identifier{"id"}, Identities: ids("user_id"), References: []retentionv1.Reference{
			ref("quote_id", "quotes", "id", retentionv1.OwnershipPointsTo),
			ref("product_id", "products", "id", retentionv1.OwnershipPointsTo),
		}},
		{Name: "cards", PrimaryKey: []retentionv1.Identifier{"id"}, References: []retentionv1.Reference{ref("customer_id", "customers", "id", "")}},
		{Name: "addresses", PrimaryKey: []retentionv1.Identifier{"id"}, References: []retentionv1.Reference{
			ref("customer_id", "customers", "id", retentionv1.OwnershipOwned),
			ref("order_id", "orders", "id", retentionv1.OwnershipOwned),
			ref("card_id", "cards", "id", ""),
		}},
		{Name: "quotes", PrimaryKey: []retentionv1.Identifier{"id"}, References: []retentionv1.Reference{ref("supplier_id", "customers", "id", "")}},
		{Name: "products", PrimaryKey: []retentionv1.Identifier{"id"}, TraverseOnly: true},
	}}}
}

func TestOwnedFollowsEveryPath(t *testing.T) {
	ds := marketplace()
	c, _ := Collection(ds, "addresses")
	r, err := NewGraph(ds).Owned(c, has("user_id"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"addresses.card_id → cards.id, cards.customer_id → customers.id",
		"addresses.customer_id → customers.id",
		"addresses.order_id → orders.id",
	}
	if got := paths(r); !slices.Equal(got, want) || r.Direct {
		t.Errorf("paths %q (direct %v), want %q", got, r.Direct, want)
	}
	// Only the email: orders holds no email, so the path through it goes
	// on... nowhere owned: orders → quotes and products only point.
	r, err = NewGraph(ds).Owned(c, has("email"))
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"addresses.card_id → cards.id, cards.customer_id → customers.id",
		"addresses.customer_id → customers.id",
	}
	if got := paths(r); !slices.Equal(got, want) {
		t.Errorf("email paths %q, want %q", got, want)
	}
}

func TestPointsToIsNotFollowed(t *testing.T) {
	ds := marketplace()
	// A buyer's order points at a supplier's quote: erasing the supplier
	// never reaches the order through the quote.
	orders, _ := Collection(ds, "orders")
	r, err := NewGraph(ds).Owned(orders, has("email"))
	if !errors.Is(err, ErrNoPath) {
		t.Fatalf("orders by email: %v, %q; want ErrNoPath", err, paths(r))
	}
}

func TestForeignKeysReadAsPointsToUnlessDeclared(t *testing.T) {
	ds := &retentionv1.Dataset{
		Spec: retentionv1.DatasetSpec{Collections: []retentionv1.Collection{
			{Name: "users", PrimaryKey: []retentionv1.Identifier{"id"}, Identities: ids("user_id")},
			{Name: "orders", PrimaryKey: []retentionv1.Identifier{"id"}},
			{Name: "items", PrimaryKey: []retentionv1.Identifier{"id"}, References: []retentionv1.Reference{ref("order_id", "orders", "", "")}},
		}},
		Status: retentionv1.DatasetStatus{ForeignKeys: []retentionv1.DiscoveredReference{
			fk("orders", "user_id", "users", "id"),
			fk("items", "order_id", "orders", "id"),
			fk("items", "a,b", "users", "x,y"), // composite: orders, never followed
		}},
	}
	orders, _ := Collection(ds, "orders")
	if _, err := NewGraph(ds).Owned(orders, has("user_id")); !errors.Is(err, ErrNoPath) {
		t.Errorf("a foreign key alone must not make orders the subject's: %v", err)
	}
	ds.Status.ForeignKeys[0].Ownership = retentionv1.OwnershipOwned
	items, _ := Collection(ds, "items")
	r, err := NewGraph(ds).Owned(items, has("user_id"))
	if err != nil {
		t.Fatal(err)
	}
	// The declared reference (owned) takes its target from the primary key.
	if got := paths(r); !slices.Equal(got, []string{"items.order_id → orders.id, orders.user_id → users.id (foreign key, owned)"}) {
		t.Errorf("paths %q", got)
	}
	if g := NewGraph(ds).depths(); g["items"] <= g["orders"] || g["orders"] <= g["users"] {
		t.Errorf("depths %v: children first", g)
	}
}

func TestDiamondAndCycle(t *testing.T) {
	// a → b → d, a → c → d, d → a (cycle): both paths, no loop.
	ds := &retentionv1.Dataset{Spec: retentionv1.DatasetSpec{Collections: []retentionv1.Collection{
		{Name: "a", PrimaryKey: []retentionv1.Identifier{"id"}, References: []retentionv1.Reference{ref("b_id", "b", "id", ""), ref("c_id", "c", "id", "")}},
		{Name: "b", PrimaryKey: []retentionv1.Identifier{"id"}, References: []retentionv1.Reference{ref("d_id", "d", "id", "")}},
		{Name: "c", PrimaryKey: []retentionv1.Identifier{"id"}, References: []retentionv1.Reference{ref("d_id", "d", "id", "")}},
		{Name: "d", PrimaryKey: []retentionv1.Identifier{"id"}, Identities: ids("user_id"), References: []retentionv1.Reference{ref("a_id", "a", "id", "")}},
	}}}
	a, _ := Collection(ds, "a")
	r, err := NewGraph(ds).Owned(a, has("user_id"))
	if err != nil {
		t.Fatal(err)
	}
	if got := paths(r); len(got) != 2 || !strings.Contains(got[0], "b_id") || !strings.Contains(got[1], "c_id") {
		t.Errorf("paths %q", got)
	}
	ops := OrderChildrenFirst(ds, []retentionv1.Operation{{Collection: "d"}, {Collection: "b"}, {Collection: "a"}})
	if ops[0].Collection != "a" {
		t.Errorf("order %v", ops)
	}
}

func TestTooManyPathsRefused(t *testing.T) {
	// A ladder of 7 rungs, each with two parallel references: 2^7 paths.
	var cs []retentionv1.Collection
	for i := 0; i < 8; i++ {
		c := retentionv1.Collection{Name: retentionv1.Identifier("t" + string(rune('0'+i))), PrimaryKey: []retentionv1.Identifier{"id"}}
		if i == 7 {
			c.Identities = ids("user_id")
		} else {
			next := "t" + string(rune('1'+i))
			c.References = []retentionv1.Reference{ref("x", next, "id", ""), ref("y", next, "id", "")}
		}
		cs = append(cs, c)
	}
	ds := &retentionv1.Dataset{Spec: retentionv1.DatasetSpec{Collections: cs}}
	if _, err := NewGraph(ds).Owned(&cs[0], has("user_id")); err == nil || errors.Is(err, ErrNoPath) || !strings.Contains(err.Error(), "paths") {
		t.Errorf("err %v, want a refusal naming the paths", err)
	}
}

func TestPlanSkipsTraverseOnlyAndDescribesEveryPath(t *testing.T) {
	ds := marketplace()
	steps, err := Plan([]retentionv1.Dataset{*ds}, Request{Types: map[string]bool{"user_id": true}, DerivedFrom: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 {
		t.Fatalf("steps %d", len(steps))
	}
	var names []string
	for _, p := range steps[0].Plan {
		names = append(names, p.Collection)
		if p.Collection == "addresses" && strings.Count(p.Via, " | ") != 2 {
			t.Errorf("addresses via %q: want three paths", p.Via)
		}
	}
	if slices.Contains(names, "products") {
		t.Errorf("traverse-only products planned: %v", names)
	}
	pos := func(n string) int { return slices.Index(names, n) }
	if pos("addresses") > pos("orders") || pos("addresses") > pos("cards") || pos("cards") > pos("customers") || pos("quotes") > pos("customers") {
		t.Errorf("order %v: children first", names)
	}
}
