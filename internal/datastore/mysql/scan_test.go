package mysql

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
)

func scanAll(t *testing.T, d *Driver, c datastore.Collection, limit int) ([]map[string]string, int, int) {
	t.Helper()
	var out []map[string]string
	cursor, pages, scanned := "", 0, 0
	for {
		p, err := d.ScanIdentities(context.Background(), c, cursor, limit)
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
// a composite key holding text and binary (personal data in the key
// itself), values as text, NULL fields left out and all-NULL rows only
// counted; a hostile column name is quoted; a purge cursor or a cursor of
// another table is refused.
func TestScanIdentities(t *testing.T) {
	e := newEnv(t)
	e.exec("CREATE TABLE `we``ird` (tenant VARBINARY(8) NOT NULL, email VARCHAR(100) NOT NULL, `user id` BIGINT NULL, ext CHAR(36) NULL, PRIMARY KEY (tenant, email))",
		"CREATE TABLE plain (id INT PRIMARY KEY, user_id BIGINT NULL)",
		"INSERT INTO plain VALUES (1, 5), (2, NULL), (3, 6)")
	for g := 1; g <= 10; g++ {
		e.exec(fmt.Sprintf("INSERT INTO `we``ird` VALUES ('t%d', 'u%d@example.com', %d, NULL)", g%3, g, g))
	}
	e.exec("UPDATE `we``ird` SET ext = 'x-4' WHERE `user id` = 4")
	d := e.driver()
	c := datastore.Collection{Name: "w", Table: "we`ird", IdentityFields: map[string]string{"email": "email", "user_id": "user id", "ext": "ext"}}
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
	purge, err := d.Execute(context.Background(), datastore.Operation{Collection: p, Subjects: map[string][]string{"user_id": {"404"}}, Delete: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ScanIdentities(context.Background(), p, purge.Cursor, 2); !errors.Is(err, datastore.ErrInvalid) {
		t.Fatalf("a purge cursor: %v; want ErrInvalid", err)
	}
	missing := datastore.Collection{Name: "m", Table: "plain", IdentityFields: map[string]string{"user_id": "nope"}}
	if _, err := d.ScanIdentities(context.Background(), missing, "", 2); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("a missing column: %v; want ErrNotFound", err)
	}
}
