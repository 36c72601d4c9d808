package engine

import (
	"errors"
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

func refTo(field, coll, target string) retentionv1.Reference {
	return retentionv1.Reference{Field: retentionv1.Identifier(field), Collection: retentionv1.Identifier(coll), TargetField: retentionv1.Identifier(target)}
}

func fk(child, field, parent, target string) retentionv1.DiscoveredReference {
	return retentionv1.DiscoveredReference{Collection: child, Field: field, TargetCollection: parent, TargetField: target}
}

// shop: users(user_id, email) ← orders.user_id ← order_items.order_id (a
// foreign key only); sessions by user_id; audit with no link at all.
func shop() *retentionv1.Dataset {
	return &retentionv1.Dataset{
		Spec: retentionv1.DatasetSpec{Collections: []retentionv1.Collection{
			{Name: "users", PrimaryKey: []retentionv1.Identifier{"id"}, Identities: ids("user_id", "email")},
			{Name: "orders", PrimaryKey: []retentionv1.Identifier{"id"}, Identities: ids("user_id")},
			{Name: "order_items"},
			{Name: "audit"},
		}},
		Status: retentionv1.DatasetStatus{ForeignKeys: []retentionv1.DiscoveredReference{
			fk("order_items", "order_id", "orders", "id"),
			fk("orders", "user_id", "users", "id"),
		}},
	}
}

func pathString(p []Edge) string {
	var parts []string
	for _, e := range p {
		parts = append(parts, e.String())
	}
	return strings.Join(parts, ", ")
}

func has(types ...string) func(string) bool {
	return func(t string) bool {
		for _, x := range types {
			if x == t {
				return true
			}
		}
		return false
	}
}

func TestGraphFollowsForeignKeys(t *testing.T) {
	ds := shop()
	c, _ := Collection(ds, "order_items")
	p, err := NewGraph(ds).Path(c, has("user_id"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pathString(p), "order_items.order_id → orders.id (foreign key)"; got != want {
		t.Errorf("path %q, want %q", got, want)
	}
	// Only the email: through orders (which has no email) on to users.
	p, err = NewGraph(ds).Path(c, has("email"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pathString(p), "order_items.order_id → orders.id (foreign key), orders.user_id → users.id (foreign key)"; got != want {
		t.Errorf("path %q, want %q", got, want)
	}
	hops, err := PathToIdentities(ds, retentionv1.DataStorePostgreSQL, c, map[string][]string{"email": {"x"}})
	if err != nil || len(hops) != 2 || hops[0].Field != "order_id" || hops[0].Parent.Table != "orders" || hops[1].ParentField != "id" || hops[1].Parent.Schema != "public" {
		t.Errorf("hops %+v, %v", hops, err)
	}
}

func TestGraphDeclaredReferenceWins(t *testing.T) {
	ds := shop()
	// A declared reference of order_items leads to users directly through a
	// denormalized buyer column; the foreign key path would be shorter for
	// user_id via orders, but declared references are searched first.
	ds.Spec.Collections = append(ds.Spec.Collections, retentionv1.Collection{Name: "buyers", PrimaryKey: []retentionv1.Identifier{"id"}})
	ds.Spec.Collections[2].References = []retentionv1.Reference{refTo("buyer_id", "buyers", ""), refTo("buyer_id", "users", "id")}
	c, _ := Collection(ds, "order_items")
	p, err := NewGraph(ds).Path(c, has("user_id"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pathString(p), "order_items.buyer_id → users.id"; got != want {
		t.Errorf("path %q, want %q", got, want)
	}
	// A foreign key on a field a declared reference covers is dropped: the
	// declared target field is used.
	ds = shop()
	ds.Spec.Collections[2].References = []retentionv1.Reference{refTo("order_id", "orders", "legacy_id")}
	p, err = NewGraph(ds).Path(c, has("user_id"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pathString(p), "order_items.order_id → orders.legacy_id"; got != want {
		t.Errorf("path %q, want %q", got, want)
	}
	// A declared reference without a target field takes the foreign key's
	// target when the parent declares no single-column primary key.
	ds = shop()
	ds.Spec.Collections[1].PrimaryKey = nil
	ds.Spec.Collections[2].References = []retentionv1.Reference{refTo("order_id", "orders", "")}
	p, err = NewGraph(ds).Path(c, has("user_id"))
	if err != nil || pathString(p) != "order_items.order_id → orders.id" {
		t.Errorf("path %q, %v", pathString(p), err)
	}
}

func TestGraphCyclesAndNoPath(t *testing.T) {
	ds := shop()
	// users.last_order_id → orders.id closes a cycle with orders.user_id →
	// users.id; a self-reference (orders.parent_id → orders.id) is ignored.
	ds.Status.ForeignKeys = append(ds.Status.ForeignKeys, fk("users", "last_order_id", "orders", "id"), fk("orders", "parent_id", "orders", "id"))
	c, _ := Collection(ds, "order_items")
	if p, err := NewGraph(ds).Path(c, has("email")); err != nil || len(p) != 2 {
		t.Errorf("path %q, %v", pathString(p), err)
	}
	// Nothing the subject has is reachable: ErrNoPath, not a loop.
	if _, err := NewGraph(ds).Path(c, has("phone")); !errors.Is(err, ErrNoPath) {
		t.Errorf("err %v, want ErrNoPath", err)
	}
	audit, _ := Collection(ds, "audit")
	if _, err := NewGraph(ds).Path(audit, has("user_id")); !errors.Is(err, ErrNoPath) {
		t.Errorf("audit: err %v, want ErrNoPath", err)
	}
	// Children first along foreign keys, whatever the cycle.
	ops := []retentionv1.Operation{{Collection: "users"}, {Collection: "orders"}, {Collection: "order_items"}}
	got := OrderChildrenFirst(shop(), ops)
	if got[0].Collection != "order_items" || got[1].Collection != "orders" || got[2].Collection != "users" {
		t.Errorf("order %v", got)
	}
	// In a cycle one edge is cut, but order_items still precedes orders.
	got = OrderChildrenFirst(ds, ops)
	pos := map[retentionv1.Identifier]int{}
	for i, op := range got {
		pos[op.Collection] = i
	}
	if pos["order_items"] > pos["orders"] {
		t.Errorf("order with a cycle %v", got)
	}
}

func TestGraphIgnoresStaleForeignKeys(t *testing.T) {
	ds := shop()
	// A foreign key to a collection the spec no longer declares is skipped;
	// a declared reference to an unknown collection is an error when
	// followed.
	ds.Status.ForeignKeys = []retentionv1.DiscoveredReference{fk("order_items", "order_id", "gone", "id")}
	c, _ := Collection(ds, "order_items")
	if _, err := NewGraph(ds).Path(c, has("user_id")); !errors.Is(err, ErrNoPath) {
		t.Errorf("err %v, want ErrNoPath", err)
	}
	ds.Spec.Collections[2].References = []retentionv1.Reference{refTo("order_id", "gone", "id")}
	if _, err := NewGraph(ds).Path(c, has("user_id")); err == nil || errors.Is(err, ErrNoPath) || !errors.Is(err, ErrInvalid) {
		t.Errorf("err %v, want ErrInvalid", err)
	}
}
