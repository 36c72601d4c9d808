package mysql

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// shop is a small FK schema: users ← orders ← order_items. User u has three
// orders (ids 10u+1…10u+3), each with two items; orders 9001 and 9002 are
// guest orders (user_id NULL). User 0 exists, so a non-integer subject that
// MySQL would compare as 0 shows up.
func shop(t *testing.T) *env {
	e := newEnv(t)
	e.exec(
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(100) NULL UNIQUE, name VARCHAR(50) NOT NULL, created_at DATETIME NOT NULL)`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NULL, total DECIMAL(10,2) NOT NULL, created_at DATETIME NOT NULL,
			KEY (user_id), CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id))`,
		`CREATE TABLE order_items (order_id BIGINT NOT NULL, line INT NOT NULL, sku VARCHAR(20) NOT NULL, created_at DATETIME NOT NULL,
			PRIMARY KEY (order_id, line), CONSTRAINT items_order FOREIGN KEY (order_id) REFERENCES orders (id))`,
		`INSERT INTO users SELECT seq, CONCAT('u', seq, '@example.com'), CONCAT('User ', seq), '2020-01-01' + INTERVAL seq DAY FROM seq_0_to_49`,
		`INSERT INTO orders SELECT u.seq * 10 + o.seq, u.seq, u.seq + o.seq, '2020-06-01' + INTERVAL u.seq DAY FROM seq_0_to_49 u, seq_1_to_3 o`,
		`INSERT INTO orders VALUES (9001, NULL, 1, '2020-06-01'), (9002, NULL, 2, '2020-06-02')`,
		`INSERT INTO order_items SELECT o.id, l.seq, CONCAT('sku', o.id, '-', l.seq), o.created_at FROM orders o, seq_1_to_2 l`,
	)
	return e
}

var (
	usersC  = datastore.Collection{Name: "users", TimestampField: "created_at", IdentityFields: map[string]string{"user_id": "id", "email": "email"}}
	ordersC = datastore.Collection{Name: "orders", TimestampField: "created_at", IdentityFields: map[string]string{"user_id": "user_id"}}
	itemsC  = datastore.Collection{Name: "order_items", TimestampField: "created_at"}
	// order_items → orders (→ users for the email identity).
	itemsToOrders = []datastore.Hop{{Field: "order_id", Parent: ordersC, ParentField: "id"}}
	itemsToUsers  = []datastore.Hop{{Field: "order_id", Parent: ordersC, ParentField: "id"}, {Field: "user_id", Parent: usersC, ParentField: "id"}}
	ordersToUsers = []datastore.Hop{{Field: "user_id", Parent: usersC, ParentField: "id"}}
)

// snapshot reads every row of the shop whose owner is not in skip.
func (e *env) snapshot(skip ...int) []string {
	e.t.Helper()
	var in string
	for _, s := range skip {
		if in != "" {
			in += ","
		}
		in += strconv.Itoa(s)
	}
	if in == "" {
		in = "-1"
	}
	var out []string
	out = append(out, e.strings("SELECT CONCAT_WS('|', 'u', id, email, name, created_at) FROM users WHERE id NOT IN ("+in+") ORDER BY id")...)
	out = append(out, e.strings("SELECT CONCAT_WS('|', 'o', id, COALESCE(user_id, 'guest'), total, created_at) FROM orders WHERE user_id IS NULL OR user_id NOT IN ("+in+") ORDER BY id")...)
	out = append(out, e.strings(`SELECT CONCAT_WS('|', 'i', i.order_id, i.line, i.sku, i.created_at) FROM order_items i JOIN orders o ON o.id = i.order_id
		WHERE o.user_id IS NULL OR o.user_id NOT IN (`+in+`) ORDER BY i.order_id, i.line`)...)
	return out
}

// Erasing two subjects (coalesced into one set-based statement per table,
// children first) leaves none of their rows in users, orders or order_items,
// and every other row exactly as it was; a non-integer identity matches no
// integer id (not user 0), and Count matches what was deleted.
func TestEraseSubjects(t *testing.T) {
	e := shop(t)
	d := e.driver()
	before := e.snapshot(7, 9)
	subjects := map[string][]string{"user_id": {"7", "abc", "7"}, "email": {"u9@example.com", "nobody@example.com"}}

	steps := []struct {
		c    datastore.Collection
		via  []datastore.Hop
		want int64
	}{
		{itemsC, itemsToUsers, 12}, // 2 users × 3 orders × 2 items, user 9 reached by email through users
		{ordersC, ordersToUsers, 6},
		{usersC, nil, 2},
	}
	for _, s := range steps {
		op := datastore.Operation{Collection: s.c, Delete: true, Subjects: subjects, Paths: [][]datastore.Hop{s.via}, BatchSize: 5}
		if n := mustCount(t, d, op); n != s.want {
			t.Fatalf("%s: Count = %d, want %d", s.c.Name, n, s.want)
		}
		if res := runAll(t, d, op, ""); res.affected != s.want {
			t.Fatalf("%s: deleted %d, want %d", s.c.Name, res.affected, s.want)
		}
	}
	if n := e.count("SELECT COUNT(*) FROM users WHERE id IN (7, 9)") +
		e.count("SELECT COUNT(*) FROM orders WHERE user_id IN (7, 9) OR id IN (71,72,73,91,92,93)") +
		e.count("SELECT COUNT(*) FROM order_items WHERE order_id IN (71,72,73,91,92,93)"); n != 0 {
		t.Fatalf("%d rows of the erased subjects are left", n)
	}
	if after := e.snapshot(7, 9); !slices.Equal(before, after) {
		t.Fatalf("other rows changed: %d rows before, %d after", len(before), len(after))
	}
}

// Erasing through a one-hop path by user id only (order_items → orders).
func TestEraseThroughOneHop(t *testing.T) {
	e := shop(t)
	d := e.driver()
	before := e.snapshot(3)
	op := datastore.Operation{Collection: itemsC, Delete: true, Subjects: map[string][]string{"user_id": {"3"}}, Paths: [][]datastore.Hop{itemsToOrders}}
	if res := runAll(t, d, op, ""); res.affected != 6 {
		t.Fatalf("deleted %d items, want 6", res.affected)
	}
	if n := e.count("SELECT COUNT(*) FROM order_items WHERE order_id IN (31,32,33)"); n != 0 {
		t.Fatalf("%d items left", n)
	}
	after := e.snapshot(3)
	// Only user 3's items are gone: user 3's orders and row are still there.
	if !slices.Equal(before, after) {
		t.Fatal("other rows changed")
	}
}

// A purge by age keeps the rows of held subjects: directly (orders.user_id,
// users.id), through one hop (orders → users by email) and two
// (order_items → orders → users); a NULL identity (guest orders) is not held.
// A subject that is both erased and held is kept.
func TestHeldSubjectsSurvive(t *testing.T) {
	e := shop(t)
	d := e.driver()
	cutoff := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // every row is older
	held := map[string][]string{"user_id": {"3"}, "email": {"u5@example.com"}}

	purge := func(c datastore.Collection, via []datastore.Hop, want int64) {
		t.Helper()
		op := datastore.Operation{Collection: c, Delete: true, Cutoff: &cutoff, Held: held, HeldPaths: [][]datastore.Hop{via}, BatchSize: 7}
		if n := mustCount(t, d, op); n != want {
			t.Fatalf("%s: Count = %d, want %d", c.Name, n, want)
		}
		if res := runAll(t, d, op, ""); res.affected != want {
			t.Fatalf("%s: deleted %d, want %d", c.Name, res.affected, want)
		}
	}
	purge(itemsC, itemsToUsers, 304-12) // 152 orders × 2 items, minus users 3 and 5
	purge(ordersC, ordersToUsers, 152-6)
	purge(usersC, nil, 50-2)

	if got := e.strings("SELECT id FROM users ORDER BY id"); !slices.Equal(got, []string{"3", "5"}) {
		t.Fatalf("users left %v, want [3 5]", got)
	}
	if got := e.strings("SELECT id FROM orders ORDER BY id"); !slices.Equal(got, []string{"31", "32", "33", "51", "52", "53"}) {
		t.Fatalf("orders left %v", got)
	}
	if n := e.count("SELECT COUNT(*) FROM order_items WHERE order_id IN (31,32,33,51,52,53)"); n != 12 {
		t.Fatalf("%d held items left, want 12", n)
	}
	if n := e.count("SELECT COUNT(*) FROM order_items"); n != 12 {
		t.Fatalf("%d items left, want 12", n)
	}

	// Erasure of a held subject: user 3 is kept, user 5's rows (not held
	// any more here) go.
	op := datastore.Operation{Collection: ordersC, Delete: true, Subjects: map[string][]string{"user_id": {"3", "5"}},
		Held: map[string][]string{"user_id": {"3"}}}
	e.exec("DELETE FROM order_items WHERE order_id IN (51,52,53)")
	if res := runAll(t, d, op, ""); res.affected != 3 {
		t.Fatalf("erased %d orders, want 3", res.affected)
	}
	if got := e.strings("SELECT id FROM orders ORDER BY id"); !slices.Equal(got, []string{"31", "32", "33"}) {
		t.Fatalf("orders left %v", got)
	}
}

// Hundreds of subjects are coalesced into one statement of several IN lists.
func TestManySubjects(t *testing.T) {
	e := shop(t)
	d := e.driver()
	var ids []string
	for i := 1000; i < 2300; i++ { // 1,300 values, none of them a user…
		ids = append(ids, strconv.Itoa(i))
	}
	ids = append(ids, "11", "12", "13") // …and three that are
	op := datastore.Operation{Collection: ordersC, Delete: true, Subjects: map[string][]string{"user_id": ids}, BatchSize: 4}
	if n := mustCount(t, d, op); n != 9 {
		t.Fatalf("Count = %d, want 9", n)
	}
	e.exec("DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE user_id IN (11,12,13))")
	if res := runAll(t, d, op, ""); res.affected != 9 {
		t.Fatalf("deleted %d, want 9", res.affected)
	}
	if n := e.count("SELECT COUNT(*) FROM orders WHERE user_id IN (11,12,13)"); n != 0 {
		t.Fatalf("%d orders left", n)
	}
}

// Integer identities are bound as integers: 9007199254740993 does not match
// 9007199254740992, which it would if MySQL compared a string with the column
// as floating point.
func TestIntegerIdentityPrecision(t *testing.T) {
	e := newEnv(t)
	e.exec("CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner BIGINT UNSIGNED NOT NULL, KEY (owner))",
		"INSERT INTO accounts VALUES (1, 9007199254740992), (2, 9007199254740993), (3, 18446744073709551615)")
	d := e.driver()
	c := datastore.Collection{Name: "accounts", IdentityFields: map[string]string{"owner": "owner"}}
	for _, tc := range []struct {
		value string
		want  int64
	}{{"9007199254740993", 1}, {"18446744073709551615", 1}, {"-1", 0}, {"1e3", 0}} {
		op := datastore.Operation{Collection: c, Delete: true, Subjects: map[string][]string{"owner": {tc.value}}}
		if n := mustCount(t, d, op); n != tc.want {
			t.Errorf("owner %s: Count = %d, want %d", tc.value, n, tc.want)
		}
	}
	op := datastore.Operation{Collection: c, Delete: true, Subjects: map[string][]string{"owner": {"9007199254740993"}}}
	runAll(t, d, op, "")
	if got := e.strings("SELECT id FROM accounts ORDER BY id"); !slices.Equal(got, []string{"1", "3"}) {
		t.Fatalf("left %v, want [1 3]", got)
	}
}

// Subjects whose identity types the collection does not hold are an error,
// never "match everything".
func TestSubjectsWithoutIdentity(t *testing.T) {
	e := shop(t)
	d := e.driver()
	op := datastore.Operation{Collection: itemsC, Delete: true, Subjects: map[string][]string{"user_id": {"1"}}}
	_, err := d.Count(t.Context(), op)
	wantErr(t, err, datastore.ErrInvalid)
	_, err = d.Execute(t.Context(), op, "")
	wantErr(t, err, datastore.ErrInvalid)
	if n := e.count("SELECT COUNT(*) FROM order_items"); n != 304 {
		t.Fatalf("%d items left, want 304", n)
	}
	// An operation that selects neither by age nor by subject is refused.
	_, err = d.Execute(t.Context(), datastore.Operation{Collection: itemsC, Delete: true}, "")
	wantErr(t, err, datastore.ErrInvalid)
}
