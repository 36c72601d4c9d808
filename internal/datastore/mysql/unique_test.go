package mysql

import (
	"context"
	"reflect"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// TestDescribeUniqueKeys: Describe reports the primary key and the unique
// keys whose columns are all NOT NULL (PRIMARY first), which the Dataset
// controller checks a declared primary key against.
func TestDescribeUniqueKeys(t *testing.T) {
	e := newEnv(t)
	e.exec(
		"CREATE TABLE accounts (id BIGINT PRIMARY KEY, email VARCHAR(100) NOT NULL, tenant INT NOT NULL, login VARCHAR(40) NOT NULL, nick VARCHAR(40), UNIQUE KEY u_email (email), UNIQUE KEY u_login (tenant, login), UNIQUE KEY u_nick (nick))",
		"CREATE TABLE nopk (a INT NOT NULL, b INT NOT NULL, UNIQUE KEY ab (a, b))",
	)
	d := e.driver()
	ctx := context.Background()
	for _, tt := range []struct {
		table string
		want  [][]string
	}{
		{"accounts", [][]string{{"id"}, {"email"}, {"tenant", "login"}}},
		{"nopk", [][]string{{"a", "b"}}},
	} {
		info, err := d.Describe(ctx, datastore.Collection{Name: tt.table})
		if err != nil {
			t.Fatal(err)
		}
		if got := info.KeysNotNull(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: unique NOT NULL keys %v (all unique keys %v), want %v", tt.table, got, info.UniqueKeys, tt.want)
		}
		for _, bad := range [][]string{{"tenant"}, {"nick"}, {"a"}} {
			if datastore.CoversUniqueKey(bad, info.KeysNotNull(), true) {
				t.Errorf("%s: %v covers a unique key", tt.table, bad)
			}
		}
		if !datastore.CoversUniqueKey([]string{"LOGIN", "Tenant", "id"}, info.KeysNotNull(), true) && tt.table == "accounts" {
			t.Errorf("accounts: (LOGIN, Tenant, id) does not cover a unique key")
		}
	}
}
