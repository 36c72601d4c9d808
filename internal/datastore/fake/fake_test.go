package fake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/fake"
	"github.com/lethe-dev/lethe/internal/mask"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// shop: users u1 (ada) and u2 (bob); orders o1, o2 of u1 and o3 of u2;
// items referring to orders.
func shop() *fake.Driver {
	return fake.New().
		Insert("users",
			fake.Record{Key: "u1", Time: t0, Fields: map[string]string{"email": "ada@example.com"}},
			fake.Record{Key: "u2", Time: t0.Add(48 * time.Hour), Fields: map[string]string{"email": "bob@example.com"}}).
		Insert("orders",
			fake.Record{Key: "o1", Time: t0, Fields: map[string]string{"user_id": "u1", "note": "gift"}},
			fake.Record{Key: "o2", Time: t0.Add(48 * time.Hour), Fields: map[string]string{"user_id": "u1", "note": "x"}},
			fake.Record{Key: "o3", Time: t0, Fields: map[string]string{"user_id": "u2", "note": "y"}}).
		Insert("items",
			fake.Record{Key: "i1", Fields: map[string]string{"order_id": "o1"}},
			fake.Record{Key: "i2", Fields: map[string]string{"order_id": "o3"}})
}

var (
	users  = datastore.Collection{Name: "users", IdentityFields: map[string]string{"email": "email", "user_id": fake.KeyField}}
	orders = datastore.Collection{Name: "orders", IdentityFields: map[string]string{"user_id": "user_id"}}
	items  = datastore.Collection{Name: "items"}
	// itemsToUsers is the path items → orders (which holds user_id).
	itemsToUsers = [][]datastore.Hop{{{Field: "order_id", Parent: orders, ParentField: fake.KeyField}}}
)

func TestCount(t *testing.T) {
	cutoff := t0.Add(time.Hour)
	ada := map[string][]string{"user_id": {"u1"}}
	for _, tc := range []struct {
		name string
		op   datastore.Operation
		want int64
	}{
		{"by age", datastore.Operation{Collection: orders, Cutoff: &cutoff}, 2},
		{"by subject", datastore.Operation{Collection: orders, Subjects: ada}, 2},
		{"by subject and age", datastore.Operation{Collection: orders, Subjects: ada, Cutoff: &cutoff}, 1},
		{"by subject through a path", datastore.Operation{Collection: items, Subjects: ada, Paths: itemsToUsers}, 1},
		{"by subject or sealed key", datastore.Operation{Collection: items, Subjects: ada, Keys: [][]string{{"i2"}}}, 1},
		{"held subject excluded", datastore.Operation{Collection: orders, Cutoff: &cutoff, Held: ada}, 1},
		{"held subject excluded through a path", datastore.Operation{Collection: items, Held: ada, HeldPaths: itemsToUsers}, 1},
		{"identity in the key", datastore.Operation{Collection: users, Subjects: ada}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := shop().Count(context.Background(), tc.op)
			if err != nil || got != tc.want {
				t.Errorf("count %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestExecuteWalksBatchesFromTheCursor(t *testing.T) {
	ctx := context.Background()
	d := fake.New()
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		d.Insert("c", fake.Record{Key: k, Fields: map[string]string{"email": k + "@example.com"}})
	}
	op := datastore.Operation{Collection: datastore.Collection{Name: "c"}, BatchSize: 2,
		Fields: []datastore.FieldMask{{Field: "email", Strategy: mask.Strategy{Kind: mask.Redact}}}}
	var got []datastore.Batch
	for cursor := ""; ; {
		b, err := d.Execute(ctx, op, cursor)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
		if cursor = b.Cursor; b.Done {
			break
		}
	}
	want := []datastore.Batch{{Affected: 2, Cursor: "b"}, {Affected: 2, Cursor: "d"}, {Affected: 1, Cursor: "e", Done: true}}
	if len(got) != len(want) {
		t.Fatalf("batches %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("batch %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if r, _ := d.Record("c", "a"); r.Fields["email"] != "*************" {
		t.Errorf("anonymized to %q", r.Fields["email"])
	}
	// Deleting empties the collection.
	op.Delete, op.BatchSize = true, 10
	if b, err := d.Execute(ctx, op, ""); err != nil || b.Affected != 5 || !b.Done || len(d.Records("c")) != 0 {
		t.Errorf("delete: %+v %v", b, err)
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	d := shop()
	op := datastore.Operation{Collection: orders, Delete: true, BatchSize: 1}
	d.Fail("Execute", 2, fake.ErrLockTimeout)
	d.Program(fake.Fault{Method: "Execute", Call: 3, Before: func() { d.Remove("orders", "o3") }})
	if _, err := d.Execute(ctx, op, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Execute(ctx, op, "o1"); !errors.Is(err, datastore.ErrUnavailable) || len(d.Records("orders")) != 2 {
		t.Fatalf("second call: %v, %d left", err, len(d.Records("orders")))
	}
	if b, err := d.Execute(ctx, op, "o1"); err != nil || b.Affected != 1 || !b.Done || len(d.Records("orders")) != 0 {
		t.Errorf("third call after o3 went: %+v %v", b, err)
	}
	if d.Calls("Execute") != 3 {
		t.Errorf("%d calls", d.Calls("Execute"))
	}
	if _, err := d.Count(ctx, datastore.Operation{Collection: datastore.Collection{Name: "ghost"}}); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("missing collection: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Probe(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestKeysAndBlockers(t *testing.T) {
	ctx := context.Background()
	d := shop().Reference(fake.Reference{Name: "items_order_fk", From: "items", Field: "order_id", To: "orders"})
	ada := map[string][]string{"user_id": {"u1"}}
	keys, err := d.Keys(ctx, datastore.Operation{Collection: orders, Subjects: ada}, 10)
	if err != nil || len(keys) != 2 || keys[0][0] != "o1" || keys[1][0] != "o2" {
		t.Errorf("keys %v %v", keys, err)
	}
	if _, err := d.Keys(ctx, datastore.Operation{Collection: orders, Subjects: ada}, 1); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("over the limit: %v", err)
	}
	delOrders := datastore.Operation{Collection: orders, Delete: true, Subjects: ada}
	b, err := d.Blockers(ctx, []datastore.Operation{delOrders})
	if err != nil || len(b) != 1 || b[0].Constraint != "items_order_fk" || b[0].Rows != 1 || b[0].Table != "items" {
		t.Errorf("blockers %+v %v", b, err)
	}
	// Deleting the referring items too leaves none.
	delItems := datastore.Operation{Collection: items, Delete: true, Subjects: ada, Paths: itemsToUsers}
	if b, err := d.Blockers(ctx, []datastore.Operation{delItems, delOrders}); err != nil || len(b) != 0 {
		t.Errorf("blockers with the items deleted: %+v %v", b, err)
	}
	if _, ok := d.Plain().(datastore.Sealer); ok {
		t.Error("Plain is a Sealer")
	}
	if _, ok := d.Plain().(datastore.Referrers); ok {
		t.Error("Plain is a Referrers")
	}
}
