package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

// TestResumeDelete proves a delete resumed on a new driver from the last
// persisted cursor deletes exactly the rest, including after a lost
// checkpoint (the last batch committed but its cursor was not saved), for
// both walks (along a timestamp index, and along the primary key without
// one) and a composite primary key.
func TestResumeDelete(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, indexed := range []bool{true, false} {
		name := fmt.Sprintf("r_%v", indexed)
		t.Run(name, func(t *testing.T) {
			e.exec(`CREATE TABLE ` + name + ` (region int, id bigint, ts timestamptz NOT NULL, PRIMARY KEY (region, id))`)
			if indexed {
				e.exec(`CREATE INDEX ON ` + name + ` (ts)`)
			}
			// 1200 rows, timestamps not in key order; 7 rows share each
			// timestamp so batches end in the middle of equal timestamps.
			e.exec(`INSERT INTO ` + name + ` SELECT i % 3, i, '2023-01-01'::timestamptz + ((i * 37) % 1200 / 7) * interval '1 day' FROM generate_series(1, 1200) i`)
			want := e.int(`SELECT count(*) FROM `+name+` WHERE ts < $1`, cut)
			op := datastore.Operation{Collection: datastore.Collection{Name: name, TimestampField: "ts"}, Delete: true, Cutoff: &cut, BatchSize: 50}

			d1 := e.driver()
			if n := count(t, d1, op); n != want {
				t.Fatalf("Count = %d, want %d", n, want)
			}
			var total int64
			cursor := ""
			for i := 0; i < 4; i++ {
				b, err := d1.Execute(ctx, op, cursor)
				if err != nil {
					t.Fatal(err)
				}
				total += b.Affected
				if i < 3 { // the 4th batch commits but its cursor is lost
					cursor = b.Cursor
				}
			}
			d1.Close()
			r := drain(t, e.driver(), op, cursor, 100)
			total += r.affected
			if total != want {
				t.Fatalf("deleted %d rows in total, want %d", total, want)
			}
			if n := e.int(`SELECT count(*) FROM `+name+` WHERE ts < $1`, cut); n != 0 {
				t.Fatalf("%d expired rows missed", n)
			}
			if n := e.int(`SELECT count(*) FROM ` + name); n != 1200-want {
				t.Fatalf("%d rows left, want %d", n, 1200-want)
			}
			var c map[string]any
			if err := json.Unmarshal([]byte(r.cursor), &c); err != nil || c["k"] != nil || c["d"] != true {
				t.Fatalf("final cursor %s should be done and carry no key", r.cursor)
			}
		})
	}
}

// TestResumeAnonymize proves an anonymization resumed on a new driver from
// the last cursor masks every selected row exactly once: HMAC applied twice
// would give a different value, so each row is compared with one
// application of the strategy to its original value. Rows outside the
// selection are untouched, and executing a finished cursor again changes
// nothing. Covers the walk along a timestamp index (timestamp, key), along
// the key, and by subject.
func TestResumeAnonymize(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	strategy := hmacStrategy()
	for _, variant := range []string{"indexed", "plain", "subject"} {
		name := "a_" + variant
		t.Run(variant, func(t *testing.T) {
			e.exec(`CREATE TABLE ` + name + ` (id bigint PRIMARY KEY, ts timestamptz NOT NULL, grp int NOT NULL, email text)`)
			if variant == "indexed" {
				e.exec(`CREATE INDEX ON ` + name + ` (ts)`)
			}
			e.exec(`INSERT INTO ` + name + ` SELECT i, '2023-01-01'::timestamptz + ((i * 7) % 500 / 3) * interval '1 day', i % 4,
				'user' || i || '@example.com' FROM generate_series(1, 500) i`)
			op := datastore.Operation{Collection: datastore.Collection{Name: name, TimestampField: "ts",
				IdentityFields: map[string]string{"group": "grp"}},
				Fields: []datastore.FieldMask{{Field: "email", Strategy: strategy}}, BatchSize: 30}
			selected := `ts < $1`
			if variant == "subject" {
				op.Subjects = map[string][]string{"group": {"1", "3"}}
				selected = `grp IN (1, 3) AND $1::timestamptz IS NOT NULL`
			} else {
				op.Cutoff = &cut
			}
			ids := e.ints(`SELECT id FROM `+name+` WHERE `+selected+` ORDER BY id`, cut)
			want := int64(len(ids))
			d1 := e.driver()
			if n := count(t, d1, op); n != want {
				t.Fatalf("Count = %d, want %d", n, want)
			}
			var total int64
			cursor := ""
			for i := 0; i < 4; i++ {
				b, err := d1.Execute(ctx, op, cursor)
				if err != nil {
					t.Fatal(err)
				}
				total += b.Affected
				cursor = b.Cursor
			}
			d1.Close()
			d2 := e.driver()
			r := drain(t, d2, op, cursor, 100)
			total += r.affected
			if total != want {
				t.Fatalf("anonymized %d rows, want %d", total, want)
			}
			b, err := d2.Execute(ctx, op, r.cursor)
			if err != nil || !b.Done || b.Affected != 0 {
				t.Fatalf("re-executing a finished cursor: %+v, %v", b, err)
			}
			if strings.Contains(r.cursor, "example.com") {
				t.Fatalf("cursor carries field values: %s", r.cursor)
			}

			rows, _ := e.admin.Query(ctx, `SELECT id, email FROM `+name+` ORDER BY id`)
			defer rows.Close()
			for rows.Next() {
				var id int64
				var email string
				if err := rows.Scan(&id, &email); err != nil {
					t.Fatal(err)
				}
				orig := fmt.Sprintf("user%d@example.com", id)
				if slices.Contains(ids, id) {
					once, err := strategy.Apply(orig, mask.Column{Type: mask.Text})
					if err != nil {
						t.Fatal(err)
					}
					if email != once {
						t.Fatalf("row %d: email is not the strategy applied exactly once", id)
					}
				} else if email != orig {
					t.Fatalf("row %d outside the selection was changed", id)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDeleteTimestampTies proves the walk along a timestamp index makes
// progress and keeps every batch within BatchSize when far more rows than
// one batch share a timestamp (a bulk import stamped with one now()), and
// that rows of the tie held by a legal hold survive.
func TestDeleteTimestampTies(t *testing.T) {
	e := setup(t)
	e.exec(`CREATE TABLE ties (id bigint PRIMARY KEY, ts timestamptz NOT NULL, user_id int)`)
	e.exec(`CREATE INDEX ON ties (ts)`)
	e.exec(`INSERT INTO ties SELECT i, '2023-05-01 12:00:00+00', i % 50 FROM generate_series(1, 1000) i`)
	e.exec(`INSERT INTO ties SELECT 1000 + i, '2023-05-01 12:00:00+00'::timestamptz + i * interval '1 ms', i % 50 FROM generate_series(1, 95) i`)
	e.exec(`INSERT INTO ties SELECT 2000 + i, '2023-06-01 00:00:00+00', i % 50 FROM generate_series(1, 40) i`)
	e.exec(`INSERT INTO ties SELECT 3000 + i, '2025-01-01 00:00:00+00', i % 50 FROM generate_series(1, 10) i`)
	d := e.driver()
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	op := datastore.Operation{Collection: datastore.Collection{Name: "ties", TimestampField: "ts", IdentityFields: map[string]string{"user_id": "user_id"}},
		Delete: true, Cutoff: &cut, BatchSize: 30, Held: map[string][]string{"user_id": {"7"}}}
	want := e.int(`SELECT count(*) FROM ties WHERE ts < $1 AND user_id <> 7`, cut)
	if n := count(t, d, op); n != want {
		t.Fatalf("Count = %d, want %d", n, want)
	}
	r := drain(t, d, op, "", 200) // drain fails any batch above BatchSize
	if r.affected != want {
		t.Fatalf("deleted %d, want %d", r.affected, want)
	}
	if n := e.int(`SELECT count(*) FROM ties WHERE ts < $1`, cut); n != e.int(`SELECT count(*) FROM ties WHERE ts < $1 AND user_id = 7`, cut) {
		t.Fatalf("%d expired rows left, want only the held ones", n)
	}
	if n := e.int(`SELECT count(*) FROM ties WHERE ts >= $1`, cut); n != 10 {
		t.Fatalf("%d recent rows left, want 10", n)
	}
}
