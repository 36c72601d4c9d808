package postgres_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// TestDescribeUniqueKeys: Describe reports the keys that make a record
// unique — the primary key first, then unique indexes that are not partial,
// not on expressions and whose columns are all NOT NULL, narrowest first —
// and a declared primary key that none of them backs is refused.
func TestDescribeUniqueKeys(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.exec(`CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, tenant int NOT NULL, login text NOT NULL,
		nick text UNIQUE, code text NOT NULL, lower_email text NOT NULL, UNIQUE (tenant, login))`)
	e.exec(`CREATE UNIQUE INDEX accounts_code_live ON accounts (code) WHERE id > 0`)
	e.exec(`CREATE UNIQUE INDEX accounts_lower ON accounts (lower(lower_email))`)
	e.exec(`CREATE TABLE events (id bigint NOT NULL, ts timestamptz NOT NULL)`)
	e.exec(`CREATE TABLE nopk (a int NOT NULL, b int NOT NULL, UNIQUE (a, b))`)
	d := e.driver()

	for _, tt := range []struct {
		table string
		want  [][]string
	}{
		{"accounts", [][]string{{"id"}, {"email"}, {"tenant", "login"}}},
		{"events", nil},
		{"nopk", [][]string{{"a", "b"}}},
	} {
		info, err := d.Describe(ctx, coll(tt.table))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.KeysNotNull(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: unique NOT NULL keys %v (all unique keys %v), want %v", tt.table, got, info.UniqueKeys, tt.want)
		}
	}

	// A declared key must include every column of one unique key.
	for _, tt := range []struct {
		table string
		key   []string
		ok    bool
	}{
		{"accounts", []string{"id"}, true},
		{"accounts", []string{"login", "tenant"}, true}, // the columns of (tenant, login), in another order
		{"accounts", []string{"email", "code"}, true},   // wider than email
		{"accounts", []string{"tenant"}, false},         // part of (tenant, login)
		{"accounts", []string{"nick"}, false},           // unique, but NULLs repeat
		{"accounts", []string{"code"}, false},           // unique only where id > 0
		{"accounts", []string{"lower_email"}, false},    // unique only as lower(lower_email)
		{"events", []string{"id"}, false},
	} {
		c := coll(tt.table)
		c.PrimaryKey = tt.key
		_, err := d.Describe(ctx, c)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s %v: %v", tt.table, tt.key, err)
		case !tt.ok:
			wantErr(t, err, datastore.ErrInvalid, tt.table+" declared key "+tt.key[0])
		}
		if got := datastore.CoversUniqueKey(tt.key, mustDescribe(t, d, tt.table).KeysNotNull(), false); got != tt.ok {
			t.Errorf("CoversUniqueKey(%v) on %s = %v, want %v", tt.key, tt.table, got, tt.ok)
		}
	}
}

func mustDescribe(t *testing.T, d datastore.Driver, table string) datastore.CollectionInfo {
	t.Helper()
	info, err := d.Describe(context.Background(), coll(table))
	if err != nil {
		t.Fatal(err)
	}
	return info
}
