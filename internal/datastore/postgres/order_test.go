package postgres_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
)

func fk(refTable string) datastore.ForeignKey {
	return datastore.ForeignKey{Name: "fk_" + refTable, Columns: []string{"x"}, RefSchema: "public", RefTable: refTable, RefColumns: []string{"id"}}
}

// TestOrderForDeletion proves children come before parents (chains,
// diamonds, several keys), input order breaks ties, references outside the
// list and self-references are ignored, and cycles are reported with their
// tables as ErrInvalid.
func TestOrderForDeletion(t *testing.T) {
	r := func(n string) postgres.TableRef { return postgres.TableRef{Table: n} }
	names := func(rs []postgres.TableRef) []string {
		var out []string
		for _, x := range rs {
			out = append(out, x.Table)
		}
		return out
	}
	cases := []struct {
		tables []string
		fks    map[string][]string
		want   []string
	}{
		{[]string{"users", "orders", "items"}, map[string][]string{"orders": {"users"}, "items": {"orders"}}, []string{"items", "orders", "users"}},
		{[]string{"a", "b", "c", "d"}, map[string][]string{"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}, []string{"d", "b", "c", "a"}},
		{[]string{"x", "y", "z"}, nil, []string{"x", "y", "z"}},
		{[]string{"users", "employees"}, map[string][]string{"employees": {"employees", "users", "elsewhere"}}, []string{"employees", "users"}},
		{[]string{"users", "addresses", "orders"}, map[string][]string{"orders": {"users", "addresses"}, "addresses": {"users"}}, []string{"orders", "addresses", "users"}},
	}
	for i, c := range cases {
		var tables []postgres.TableRef
		for _, n := range c.tables {
			tables = append(tables, r(n))
		}
		fks := map[postgres.TableRef][]datastore.ForeignKey{}
		for from, tos := range c.fks {
			for _, to := range tos {
				fks[r(from)] = append(fks[r(from)], fk(to))
			}
		}
		got, err := postgres.OrderForDeletion(tables, fks)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !slices.Equal(names(got), c.want) {
			t.Errorf("case %d: order %v, want %v", i, names(got), c.want)
		}
	}

	// Schemas are told apart; empty means public.
	tables := []postgres.TableRef{{Schema: "billing", Table: "users"}, {Table: "users"}, {Schema: "billing", Table: "invoices"}}
	fks := map[postgres.TableRef][]datastore.ForeignKey{
		{Schema: "billing", Table: "invoices"}: {{RefSchema: "billing", RefTable: "users"}},
		{Schema: "billing", Table: "users"}:    {{RefSchema: "public", RefTable: "users"}},
	}
	got, err := postgres.OrderForDeletion(tables, fks)
	if err != nil {
		t.Fatal(err)
	}
	if want := []postgres.TableRef{{Schema: "billing", Table: "invoices"}, {Schema: "billing", Table: "users"}, {Table: "users"}}; !slices.Equal(got, want) {
		t.Errorf("schemas: %v, want %v", got, want)
	}

	// a → b → c → a, plus d hanging off the cycle.
	tables = []postgres.TableRef{r("a"), r("b"), r("c"), r("d")}
	fks = map[postgres.TableRef][]datastore.ForeignKey{r("a"): {fk("b")}, r("b"): {fk("c")}, r("c"): {fk("a")}, r("d"): {fk("a")}}
	_, err = postgres.OrderForDeletion(tables, fks)
	var ce *postgres.CycleError
	if !errors.Is(err, datastore.ErrInvalid) || !errors.As(err, &ce) {
		t.Fatalf("cycle: want *CycleError wrapping ErrInvalid, got %v", err)
	}
	cyc := names(ce.Tables)
	if len(cyc) != 3 || slices.Contains(cyc, "d") {
		t.Fatalf("cycle tables %v, want a, b, c", cyc)
	}
	// Each refers to the next, the last to the first.
	next := map[string]string{"a": "b", "b": "c", "c": "a"}
	for i, n := range cyc {
		if next[n] != cyc[(i+1)%len(cyc)] {
			t.Fatalf("cycle %v is not in reference order", cyc)
		}
	}
}
