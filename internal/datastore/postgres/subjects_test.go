package postgres_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
)

// shop is a small schema with real foreign keys: users ← orders ← order_items,
// and sessions (guest sessions have no user).
type shop struct {
	users, orders, items, sessions datastore.Collection
}

func newShop(e *env) shop {
	e.exec(`CREATE TABLE users (id bigint PRIMARY KEY, email text UNIQUE, created timestamptz NOT NULL)`)
	e.exec(`CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users, created timestamptz NOT NULL)`)
	e.exec(`CREATE TABLE order_items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, sku text)`)
	e.exec(`CREATE TABLE sessions (id bigint PRIMARY KEY, user_id bigint REFERENCES users, ts timestamptz NOT NULL, ip inet)`)
	e.exec(`CREATE INDEX ON orders (user_id)`)
	e.exec(`CREATE INDEX ON order_items (order_id)`)
	// Users 1..6 (u<n>@example.com); each has orders n*10+1..n*10+3 with
	// items order*10+1..+2, and sessions n*100+1..+4; plus guest order 900
	// (two items) and guest sessions 901..904.
	e.exec(`INSERT INTO users SELECT u, 'u' || u || '@example.com', '2020-01-01' FROM generate_series(1, 6) u`)
	e.exec(`INSERT INTO orders SELECT u * 10 + k, u, '2020-01-01' FROM generate_series(1, 6) u, generate_series(1, 3) k`)
	e.exec(`INSERT INTO orders VALUES (900, NULL, '2020-01-01')`)
	e.exec(`INSERT INTO order_items SELECT o.id * 10 + k, o.id, 'sku' FROM orders o, generate_series(1, 2) k`)
	e.exec(`INSERT INTO sessions SELECT u * 100 + k, u, '2020-01-01', ('10.0.0.' || u)::inet FROM generate_series(1, 6) u, generate_series(1, 4) k`)
	e.exec(`INSERT INTO sessions SELECT 900 + k, NULL, '2020-01-01', '10.9.9.9' FROM generate_series(1, 4) k`)
	users := datastore.Collection{Name: "users", TimestampField: "created",
		IdentityFields: map[string]string{"user_id": "id", "email": "email"}}
	orders := datastore.Collection{Name: "orders", TimestampField: "created",
		IdentityFields: map[string]string{"user_id": "user_id"}}
	return shop{
		users:    users,
		orders:   orders,
		items:    datastore.Collection{Name: "order_items"},
		sessions: datastore.Collection{Name: "sessions", TimestampField: "ts", IdentityFields: map[string]string{"user_id": "user_id"}},
	}
}

func (s shop) viaOrders() []datastore.Hop {
	return []datastore.Hop{{Field: "order_id", Parent: s.orders, ParentField: "id"}}
}

func (s shop) viaOrdersUsers() []datastore.Hop {
	return []datastore.Hop{
		{Field: "order_id", Parent: s.orders, ParentField: "id"},
		{Field: "user_id", Parent: s.users, ParentField: "id"},
	}
}

// TestEraseSubjectsThroughReferences proves subject selection directly and
// through one and two Via hops (nested IN subqueries), with several identity
// types and several subjects coalesced into one statement, erased children
// first in the order DeletionOrder derives from the live foreign keys.
func TestEraseSubjectsThroughReferences(t *testing.T) {
	e := setup(t)
	s := newShop(e)
	d := e.driver()
	ctx := context.Background()

	order, err := d.DeletionOrder(ctx, []datastore.Collection{s.users, s.orders, s.items, s.sessions})
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{order[0].Name, order[1].Name, order[2].Name, order[3].Name}; !slices.Equal(got, []string{"order_items", "orders", "sessions", "users"}) {
		t.Fatalf("DeletionOrder = %v", got)
	}

	// User 1 by id, user 2 by email: one operation per collection.
	subjects := map[string][]string{"user_id": {"1"}, "email": {"u2@example.com"}}
	ops := []datastore.Operation{
		{Collection: s.items, Paths: [][]datastore.Hop{s.viaOrdersUsers()}, Delete: true, Subjects: subjects, BatchSize: 5},
		{Collection: s.orders, Paths: [][]datastore.Hop{{{Field: "user_id", Parent: s.users, ParentField: "id"}}}, Delete: true, Subjects: subjects, BatchSize: 5},
		// sessions hold user_id only: user 2 (known by email) is reached
		// through users.
		{Collection: s.sessions, Paths: [][]datastore.Hop{{{Field: "user_id", Parent: s.users, ParentField: "id"}}}, Delete: true, Subjects: subjects, BatchSize: 5},
		{Collection: s.users, Delete: true, Subjects: subjects, BatchSize: 5},
	}
	want := []int64{12, 6, 8, 2}
	for i, op := range ops {
		if n := count(t, d, op); n != want[i] {
			t.Fatalf("%s: Count = %d, want %d", op.Collection.Name, n, want[i])
		}
		if r := drain(t, d, op, "", 10); r.affected != want[i] {
			t.Fatalf("%s: deleted %d, want %d", op.Collection.Name, r.affected, want[i])
		}
		if n := count(t, d, op); n != 0 {
			t.Fatalf("%s: %d rows still match after erasure", op.Collection.Name, n)
		}
	}
	if n := e.int(`SELECT count(*) FROM users WHERE id IN (1, 2)`); n != 0 {
		t.Fatalf("%d erased users left", n)
	}
	if n := e.int(`SELECT count(*) FROM order_items`); n != (4*3+1)*2 {
		t.Fatalf("order_items has %d rows, want %d", n, (4*3+1)*2)
	}

	// One hop, identity matched at orders (user_id held there directly);
	// many subjects in one statement.
	var many []string
	for i := 3; i <= 2000; i++ {
		many = append(many, strconv.Itoa(i))
	}
	op := datastore.Operation{Collection: s.items, Paths: [][]datastore.Hop{s.viaOrders()}, Delete: true, Subjects: map[string][]string{"user_id": many}, BatchSize: 1000}
	r := drain(t, d, op, "", 3)
	if r.affected != 4*3*2 || r.batches != 1 {
		t.Fatalf("coalesced erasure: %d rows in %d batches, want 24 in 1", r.affected, r.batches)
	}
	if got := e.ints(`SELECT id FROM order_items ORDER BY id`); !slices.Equal(got, []int64{9001, 9002}) {
		t.Fatalf("left %v, want the guest order's items", got)
	}
}

// TestLegalHoldsAreExcluded proves held subjects' records survive, whether
// the hold matches the record's own identity field or a record it refers to
// through Via, for subject erasure, age-based deletion and anonymization;
// and that a record with a NULL identity is not held (it is deleted).
func TestLegalHoldsAreExcluded(t *testing.T) {
	e := setup(t)
	s := newShop(e)
	d := e.driver()
	// User 3 is held by user_id, user 4 by email only (visible at users).
	held := map[string][]string{"user_id": {"3"}, "email": {"u4@example.com"}}
	subjects := map[string][]string{"user_id": {"3", "4", "5"}}

	// Age-based retention with holds: direct (sessions.user_id) and through
	// sessions.user_id → users (email). Guest sessions (NULL user) go.
	cut := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	via := []datastore.Hop{{Field: "user_id", Parent: s.users, ParentField: "id"}}
	anon := datastore.Operation{Collection: s.sessions, HeldPaths: [][]datastore.Hop{via}, Cutoff: &cut, Held: held, BatchSize: 3,
		Fields: []datastore.FieldMask{{Field: "ip", Strategy: generalize()}}}
	if n := count(t, d, anon); n != 4*4+4 {
		t.Fatalf("sessions anonymize Count = %d, want 20", n)
	}
	if r := drain(t, d, anon, "", 20); r.affected != 20 {
		t.Fatalf("sessions anonymized %d, want 20", r.affected)
	}
	if n := e.int(`SELECT count(*) FROM sessions WHERE ip = ('10.0.0.' || coalesce(user_id, 0))::inet`); n != 8 {
		t.Fatalf("%d sessions keep their address, want the 8 held ones", n)
	}
	del := datastore.Operation{Collection: s.sessions, HeldPaths: [][]datastore.Hop{via}, Delete: true, Cutoff: &cut, Held: held, BatchSize: 3}
	if n := count(t, d, del); n != 20 {
		t.Fatalf("sessions delete Count = %d, want 20", n)
	}
	if r := drain(t, d, del, "", 20); r.affected != 20 {
		t.Fatalf("sessions deleted %d, want 20", r.affected)
	}
	if got := e.ints(`SELECT DISTINCT coalesce(user_id, 0) FROM sessions ORDER BY 1`); !slices.Equal(got, []int64{3, 4}) {
		t.Fatalf("sessions left for users %v, want [3 4] (guests are not held)", got)
	}

	items := datastore.Operation{Collection: s.items, Paths: [][]datastore.Hop{s.viaOrdersUsers()}, HeldPaths: [][]datastore.Hop{s.viaOrdersUsers()}, Delete: true, Subjects: subjects, Held: held, BatchSize: 2}
	if n := count(t, d, items); n != 6 {
		t.Fatalf("items Count = %d, want 6 (user 5 only)", n)
	}
	if r := drain(t, d, items, "", 10); r.affected != 6 {
		t.Fatalf("items deleted %d, want 6", r.affected)
	}
	if got := e.ints(`SELECT DISTINCT o.user_id FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.user_id IN (3, 4, 5) ORDER BY 1`); !slices.Equal(got, []int64{3, 4}) {
		t.Fatalf("users with items left among 3,4,5: %v, want [3 4]", got)
	}

	orders := datastore.Operation{Collection: s.orders, Paths: [][]datastore.Hop{{{Field: "user_id", Parent: s.users}}}, HeldPaths: [][]datastore.Hop{{{Field: "user_id", Parent: s.users}}}, Delete: true, Subjects: subjects, Held: held, BatchSize: 2}
	if r := drain(t, d, orders, "", 10); r.affected != 3 {
		t.Fatalf("orders deleted %d, want 3", r.affected)
	}
	users := datastore.Operation{Collection: s.users, Delete: true, Subjects: subjects, Held: held, BatchSize: 2}
	if r := drain(t, d, users, "", 10); r.affected != 1 {
		t.Fatalf("users deleted %d, want 1", r.affected)
	}
	if got := e.ints(`SELECT id FROM users ORDER BY id`); !slices.Equal(got, []int64{1, 2, 3, 4, 6}) {
		t.Fatalf("users left %v", got)
	}
}

// TestDeleteRechecksConcurrentlyChangedRows proves a row that a concurrent
// transaction changes so that it no longer matches, while the batch waits for
// its lock, is left alone: the DELETE re-reads the row's new version. For the
// statements that select a batch first (no timestamp index: by ctid or by
// key), the batch then neither claims Done nor advances the cursor; the range
// delete along a timestamp index re-checks in the DELETE itself and may.
func TestDeleteRechecksConcurrentlyChangedRows(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	for _, variant := range []string{"range", "ctid", "key"} {
		t.Run(variant, func(t *testing.T) {
			name := "rc_" + variant
			e.exec(`CREATE TABLE ` + name + ` (id int PRIMARY KEY, ts timestamptz NOT NULL)`)
			if variant == "range" {
				e.exec(`CREATE INDEX ON ` + name + ` (ts)`)
			}
			e.exec(`INSERT INTO ` + name + ` SELECT i, '2020-01-01'::timestamptz + i * interval '1 minute' FROM generate_series(1, 10) i`)
			cfg := e.cfg()
			cfg.LockTimeout = 10 * time.Second
			d := e.driverWith(cfg)
			if variant != "range" {
				d.SetDeleteShape(postgres.DeleteShape(variant))
			}
			op := datastore.Operation{Collection: datastore.Collection{Name: name, TimestampField: "ts"}, Delete: true,
				Cutoff: ptr.To(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)), BatchSize: 100}

			tx, err := e.admin.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `UPDATE `+name+` SET ts = ts WHERE id = 5`); err != nil { // holds the row lock
				t.Fatal(err)
			}
			done := make(chan struct{})
			var b datastore.Batch
			var berr error
			go func() {
				b, berr = d.Execute(ctx, op, "")
				close(done)
			}()
			// Wait until the batch is blocked on the row, then move the row
			// out of the selection and commit.
			for i := 0; ; i++ {
				if e.int(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lethe' AND wait_event_type = 'Lock'`) > 0 {
					break
				}
				if i > 200 {
					t.Fatal("batch never waited for the locked row")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, err := tx.Exec(ctx, `UPDATE `+name+` SET ts = '2030-01-01' WHERE id = 5`); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			<-done
			if berr != nil {
				t.Fatal(berr)
			}
			if b.Affected != 9 {
				t.Fatalf("batch deleted %d, want 9", b.Affected)
			}
			if variant != "range" && b.Done {
				t.Fatal("batch that lost a selected row to a concurrent change claims Done")
			}
			if !b.Done {
				if r := drain(t, d, op, b.Cursor, 5); r.affected != 0 {
					t.Fatalf("follow-up deleted %d, want 0", r.affected)
				}
			}
			if got := e.ints(`SELECT id FROM ` + name); !slices.Equal(got, []int64{5}) {
				t.Fatalf("left %v, want [5] (the refreshed row)", got)
			}
		})
	}
}
