package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// scanAll pages through a collection and returns every record read.
func scanAll(t *testing.T, s datastore.IdentityScanner, c datastore.Collection, limit int) ([]map[string]string, int, int) {
	t.Helper()
	var out []map[string]string
	cursor, pages, scanned := "", 0, 0
	for {
		p, err := s.ScanIdentities(context.Background(), c, cursor, limit)
		if err != nil {
			t.Fatalf("ScanIdentities page %d: %v", pages, err)
		}
		pages++
		scanned += p.Scanned
		out = append(out, p.Records...)
		cursor = p.Cursor
		if p.Done {
			return out, pages, scanned
		}
		if pages > 1000 {
			t.Fatal("the scan does not end")
		}
	}
}

// ScanIdentities walks the whole table in key order, a page at a time, with
// a composite text key (personal data in the key itself), values as text
// (bigint, uuid), NULL fields left out and all-NULL records only counted;
// a hostile column name is quoted; a cursor of another table is refused.
func TestScanIdentities(t *testing.T) {
	e := setup(t)
	e.exec(`CREATE TABLE "we""ird" (tenant text, email text, "user id" bigint, ext uuid, PRIMARY KEY (tenant, email))`)
	e.exec(`INSERT INTO "we""ird" SELECT 't'||(g%3), 'u'||g||'@example.com', g, NULL FROM generate_series(1, 10) g`)
	e.exec(`UPDATE "we""ird" SET ext = '6f1c2c1e-0b7e-4c57-9a51-2d6a1b1b1b1b' WHERE "user id" = 4`)
	e.exec(`CREATE TABLE plain (id int PRIMARY KEY, user_id bigint)`)
	e.exec(`INSERT INTO plain VALUES (1, 5), (2, NULL), (3, 6)`)
	d := e.driver()
	c := datastore.Collection{Name: "w", Table: `we"ird`, IdentityFields: map[string]string{"email": "email", "user_id": "user id", "ext": "ext"}}
	recs, pages, scanned := scanAll(t, d, c, 3)
	if len(recs) != 10 || pages != 4 || scanned != 10 {
		t.Fatalf("%d records in %d pages (%d scanned); want 10 in 4", len(recs), pages, scanned)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r["email"]] = true
		if r["email"] != "u"+r["user_id"]+"@example.com" {
			t.Fatalf("record %v mixes up fields", r)
		}
		if _, ok := r["ext"]; ok != (r["user_id"] == "4") {
			t.Fatalf("record %v: NULL must be left out, a value kept", r)
		}
	}
	if len(seen) != 10 {
		t.Fatalf("records repeated or skipped: %v", seen)
	}
	p := datastore.Collection{Name: "plain", Table: "plain", IdentityFields: map[string]string{"user_id": "user_id"}}
	recs, _, scanned = scanAll(t, d, p, 2)
	if fmt.Sprint(recs) != "[map[user_id:5] map[user_id:6]]" || scanned != 3 {
		t.Fatalf("plain: %v (%d scanned)", recs, scanned)
	}
	first, err := d.ScanIdentities(context.Background(), c, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ScanIdentities(context.Background(), p, first.Cursor, 2); !errors.Is(err, datastore.ErrInvalid) {
		t.Fatalf("a cursor of another table: %v; want ErrInvalid", err)
	}
	if _, err := d.ScanIdentities(context.Background(), p, `{"v":1,"t":"x","k":["1'; DROP TABLE plain; --"]}`, 2); !errors.Is(err, datastore.ErrInvalid) {
		t.Fatalf("a forged cursor: %v; want ErrInvalid", err)
	}
	// Another schema, a uuid key the cursor casts back, a declared key
	// that is a unique index rather than the primary key.
	e.exec(`CREATE SCHEMA "My Schema"`)
	e.exec(`CREATE TABLE "My Schema".accounts (id uuid PRIMARY KEY, handle text NOT NULL UNIQUE, email text)`)
	e.exec(`INSERT INTO "My Schema".accounts SELECT gen_random_uuid(), 'h' || g, 'a' || g || '@example.com' FROM generate_series(1, 7) g`)
	for _, pk := range [][]string{nil, {"handle"}} {
		a := datastore.Collection{Name: "accounts", Schema: "My Schema", Table: "accounts", PrimaryKey: pk, IdentityFields: map[string]string{"email": "email"}}
		recs, pages, _ := scanAll(t, d, a, 2)
		if len(recs) != 7 || pages != 4 {
			t.Fatalf("key %v: %d records in %d pages; want 7 in 4", pk, len(recs), pages)
		}
	}
	if _, err := d.ScanIdentities(context.Background(), datastore.Collection{Name: "accounts", Schema: "My Schema", Table: "accounts", PrimaryKey: []string{"email"}, IdentityFields: map[string]string{"email": "email"}}, "", 2); !errors.Is(err, datastore.ErrInvalid) {
		t.Fatalf("a declared key that is not unique: %v; want ErrInvalid", err)
	}
	missing := datastore.Collection{Name: "m", Table: "plain", IdentityFields: map[string]string{"user_id": "nope"}}
	if _, err := d.ScanIdentities(context.Background(), missing, "", 2); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("a missing column: %v; want ErrNotFound", err)
	}
}
