package mysql

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

// Describe reports columns (type, character limit, nullability), the primary
// key, foreign keys with their columns and targets, partitioning and an
// estimate of the rows, from information_schema.
func TestDescribe(t *testing.T) {
	e := shop(t)
	e.exec(
		`CREATE TABLE logs (id BIGINT NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY (id, created_at))
		PARTITION BY RANGE (TO_DAYS(created_at)) (PARTITION p0 VALUES LESS THAN (TO_DAYS('2024-01-01')), PARTITION p1 VALUES LESS THAN MAXVALUE)`,
		`CREATE TABLE shipments (order_id BIGINT NOT NULL, line INT NOT NULL, address TEXT, label TINYTEXT CHARACTER SET latin1, photo MEDIUMBLOB,
			PRIMARY KEY (order_id, line, address(10)),
			CONSTRAINT ship_item FOREIGN KEY (order_id, line) REFERENCES order_items (order_id, line))`,
		`CREATE TABLE nokey (a INT NOT NULL, b VARCHAR(5) NOT NULL, UNIQUE KEY ab (a, b))`,
		"ANALYZE TABLE users, orders, order_items",
	)
	d := e.driver()
	ctx := context.Background()

	info, err := d.Describe(ctx, itemsC)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(info.PrimaryKey, []string{"order_id", "line"}) {
		t.Errorf("primary key %v", info.PrimaryKey)
	}
	wantFK := []datastore.ForeignKey{{Name: "items_order", Columns: []string{"order_id"}, RefSchema: e.my.Database, RefTable: "orders", RefColumns: []string{"id"}}}
	if !reflect.DeepEqual(info.ForeignKeys, wantFK) {
		t.Errorf("foreign keys %+v, want %+v", info.ForeignKeys, wantFK)
	}
	if info.Partitioned || info.EstimatedRows < 200 || info.EstimatedRows > 400 {
		t.Errorf("partitioned %v, estimated rows %d (304 rows)", info.Partitioned, info.EstimatedRows)
	}
	if got := info.Columns["sku"]; got != (datastore.Column{Name: "sku", Type: "varchar", MaxLength: 20, Mask: mask.Column{Type: mask.Text, MaxLength: 20}}) {
		t.Errorf("sku: %+v", got)
	}

	info, err = d.Describe(ctx, usersC)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]datastore.Column{
		"id":         {Name: "id", Type: "bigint", Unique: true, Mask: mask.Column{Type: mask.Other}},
		"email":      {Name: "email", Type: "varchar", MaxLength: 100, Nullable: true, Unique: true, Mask: mask.Column{Type: mask.Text, MaxLength: 100, Nullable: true}},
		"name":       {Name: "name", Type: "varchar", MaxLength: 50, Mask: mask.Column{Type: mask.Text, MaxLength: 50}},
		"created_at": {Name: "created_at", Type: "datetime", Mask: mask.Column{Type: mask.Timestamp}},
	}
	if !reflect.DeepEqual(info.Columns, want) {
		t.Errorf("users columns %+v", info.Columns)
	}

	info, err = d.Describe(ctx, datastore.Collection{Name: "shipments"})
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Columns["address"]; got.Type != "text" || got.MaxLength != 65535/4 || got.Nullable {
		t.Errorf("address (utf8mb4 TEXT, in the key): %+v", got)
	}
	if got := info.Columns["label"]; got.Type != "tinytext" || got.MaxLength != 255 {
		t.Errorf("label (latin1 TINYTEXT): %+v", got)
	}
	if got := info.Columns["photo"]; got.Type != "mediumblob" || got.MaxLength != 16777215 {
		t.Errorf("photo: %+v", got)
	}
	if len(info.ForeignKeys) != 1 || !reflect.DeepEqual(info.ForeignKeys[0].Columns, []string{"order_id", "line"}) ||
		!reflect.DeepEqual(info.ForeignKeys[0].RefColumns, []string{"order_id", "line"}) || info.ForeignKeys[0].RefTable != "order_items" {
		t.Errorf("composite foreign key %+v", info.ForeignKeys)
	}

	info, err = d.Describe(ctx, datastore.Collection{Name: "logs", TimestampField: "created_at"})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Partitioned || !reflect.DeepEqual(info.PrimaryKey, []string{"id", "created_at"}) {
		t.Errorf("logs: partitioned %v, key %v", info.Partitioned, info.PrimaryKey)
	}

	// Without a primary key, the unique NOT NULL key is used.
	info, err = d.Describe(ctx, datastore.Collection{Name: "nokey"})
	if err != nil || !reflect.DeepEqual(info.PrimaryKey, []string{"a", "b"}) {
		t.Errorf("nokey: %v, %v", info.PrimaryKey, err)
	}
}

// Describe fails with ErrNotFound for a missing table or a missing field the
// collection names, and with ErrInvalid for what cannot be batched or erased.
func TestDescribeErrors(t *testing.T) {
	e := shop(t)
	e.exec(
		"CREATE TABLE heap (a INT, b INT)",
		"CREATE TABLE versioned (id INT PRIMARY KEY, v VARCHAR(10)) WITH SYSTEM VERSIONING",
		"CREATE VIEW user_names AS SELECT id, name FROM users",
	)
	d := e.driver()
	ctx := context.Background()
	for _, tc := range []struct {
		c    datastore.Collection
		want error
	}{
		{datastore.Collection{Name: "missing"}, datastore.ErrNotFound},
		{datastore.Collection{Name: "USERS"}, datastore.ErrNotFound}, // lower_case_table_names=0: names are case-sensitive
		{datastore.Collection{Name: "users", TimestampField: "updated_at"}, datastore.ErrNotFound},
		{datastore.Collection{Name: "users", TimestampField: "name"}, datastore.ErrInvalid},
		{datastore.Collection{Name: "users", IdentityFields: map[string]string{"phone": "phone"}}, datastore.ErrNotFound},
		{datastore.Collection{Name: "users", PrimaryKey: []string{"name"}}, datastore.ErrInvalid}, // not unique
		{datastore.Collection{Name: "heap"}, datastore.ErrInvalid},                                // nothing to batch by
		{datastore.Collection{Name: "versioned"}, datastore.ErrInvalid},
		{datastore.Collection{Name: "user_names"}, datastore.ErrInvalid},
		{datastore.Collection{Name: strings.Repeat("x", 65)}, datastore.ErrInvalid},
		{datastore.Collection{Name: "bad\x00name"}, datastore.ErrInvalid},
	} {
		_, err := d.Describe(ctx, tc.c)
		if err == nil {
			t.Errorf("%q: no error", tc.c.Name)
			continue
		}
		wantErr(t, err, tc.want)
	}
	// A declared key that covers a unique key is accepted (columns may be
	// named in any letter case, as MySQL does).
	info, err := d.Describe(ctx, datastore.Collection{Name: "users", PrimaryKey: []string{"EMAIL", "id"}})
	if err != nil || !reflect.DeepEqual(info.PrimaryKey, []string{"email", "id"}) {
		t.Errorf("declared key: %v, %v", info.PrimaryKey, err)
	}
}

// Names that try to break out of their quotes never reach SQL unquoted: a
// collection, timestamp field, identity field, key or Via hop named like an
// injection fails with ErrNotFound or ErrInvalid, and every table survives.
func TestInjection(t *testing.T) {
	e := shop(t)
	d := e.driver()
	ctx := context.Background()
	cutoff := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	evil := "users`; DROP TABLE users; --"
	e.exec("CREATE TABLE `" + strings.ReplaceAll("users`; DROP TABLE orders; --", "`", "``") + "` (id INT PRIMARY KEY, ts DATETIME)")

	ops := []datastore.Operation{
		{Collection: datastore.Collection{Name: evil, TimestampField: "created_at"}, Delete: true, Cutoff: &cutoff},
		{Collection: datastore.Collection{Name: "x", Table: evil, TimestampField: "created_at"}, Delete: true, Cutoff: &cutoff},
		{Collection: datastore.Collection{Name: "users", TimestampField: "created_at` < NOW() OR 1=1 OR `id"}, Delete: true, Cutoff: &cutoff},
		{Collection: datastore.Collection{Name: "users", IdentityFields: map[string]string{"user_id": "id` IN (1) OR 1=1 OR `id"}},
			Delete: true, Subjects: map[string][]string{"user_id": {"1"}}},
		{Collection: datastore.Collection{Name: "users", IdentityFields: map[string]string{"user_id": "id"}},
			Delete: true, Subjects: map[string][]string{"user_id": {"1) OR (1=1"}}}, // a value: bound, matches nothing
		{Collection: datastore.Collection{Name: "users", PrimaryKey: []string{"id`, (SELECT 1)) --"}, IdentityFields: map[string]string{"user_id": "id"}},
			Delete: true, Subjects: map[string][]string{"user_id": {"1"}}},
		{Collection: datastore.Collection{Name: "orders"}, Delete: true, Subjects: map[string][]string{"user_id": {"1"}},
			Paths: [][]datastore.Hop{{{Field: "user_id", Parent: datastore.Collection{Name: evil, IdentityFields: map[string]string{"user_id": "id"}}, ParentField: "id"}}}},
		{Collection: datastore.Collection{Name: "users", IdentityFields: map[string]string{"user_id": "id"}}, Subjects: map[string][]string{"user_id": {"1"}},
			Fields: nil},
	}
	for i, op := range ops {
		if _, err := d.Describe(ctx, op.Collection); i < 3 && err == nil {
			t.Errorf("op %d: Describe succeeded", i)
		}
		_, err := d.Count(ctx, op)
		if i == 4 {
			if err != nil {
				t.Errorf("op %d: Count: %v", i, err)
			}
		} else {
			wantErr(t, err, datastore.ErrNotFound, datastore.ErrInvalid)
		}
		b, err := d.Execute(ctx, op, "")
		if i == 4 {
			if err != nil || b.Affected != 0 {
				t.Errorf("op %d: %+v, %v", i, b, err)
			}
			continue
		}
		wantErr(t, err, datastore.ErrNotFound, datastore.ErrInvalid)
	}
	for _, table := range []string{"users", "orders", "order_items"} {
		if n := e.count("SELECT COUNT(*) FROM " + table); n == 0 {
			t.Errorf("%s is empty", table)
		}
	}
	if n := e.count("SELECT COUNT(*) FROM users"); n != 50 {
		t.Errorf("users has %d rows, want 50", n)
	}

	// A table really named like an injection is just a table: it is
	// purged, and nothing else is touched.
	e.exec("INSERT INTO `users``; DROP TABLE orders; --` VALUES (1, '2020-01-01'), (2, '2031-01-01')")
	op := datastore.Operation{Collection: datastore.Collection{Name: "users`; DROP TABLE orders; --", TimestampField: "ts"}, Delete: true, Cutoff: &cutoff}
	if res := runAll(t, d, op, ""); res.affected != 1 {
		t.Fatalf("deleted %d from the oddly named table, want 1", res.affected)
	}
	if n := e.count("SELECT COUNT(*) FROM orders"); n != 152 {
		t.Fatalf("orders has %d rows, want 152", n)
	}
}

// A malformed cursor, or one made for another table, is refused.
func TestCursorChecks(t *testing.T) {
	e := shop(t)
	d := e.driver()
	ctx := context.Background()
	cutoff := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	items := datastore.Operation{Collection: itemsC, Delete: true, Cutoff: &cutoff, BatchSize: 10,
		Held: map[string][]string{"user_id": {"1"}}, HeldPaths: [][]datastore.Hop{itemsToOrders}}
	b, err := d.Execute(ctx, items, "")
	if err != nil {
		t.Fatal(err)
	}
	users := datastore.Operation{Collection: usersC, Delete: true, Cutoff: &cutoff, BatchSize: 10}
	for _, c := range []string{"garbage", cursorPrefix + "!!!", cursorPrefix + "e30", b.Cursor} {
		_, err := d.Execute(ctx, users, c)
		wantErr(t, err, datastore.ErrInvalid)
	}
	if n := e.count("SELECT COUNT(*) FROM users"); n != 50 {
		t.Fatalf("users has %d rows", n)
	}
}
