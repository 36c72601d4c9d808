package postgres_test

import (
	"context"
	"slices"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Lookup turns one identity into another through a table holding both;
// values that cannot be of the column's type match nothing; NULLs are not
// returned; the limit bounds the answer.
func TestLookupDerivesIdentities(t *testing.T) {
	e := setup(t)
	e.exec(`CREATE TABLE users (id bigint PRIMARY KEY, email text UNIQUE)`)
	e.exec(`INSERT INTO users SELECT g, 'u'||g||'@example.com' FROM generate_series(1, 20) g`)
	e.exec(`UPDATE users SET email = NULL WHERE id = 11`)
	d := e.driver()
	users := datastore.Collection{Name: "users", Schema: "public", Table: "users", IdentityFields: map[string]string{"user_id": "id", "email": "email"}}
	ctx := context.Background()
	got, err := d.Lookup(ctx, users, map[string][]string{"email": {"u7@example.com", "u9@example.com", "nobody@example.com"}}, "user_id", 10)
	if err != nil || !slices.Equal(got, []string{"7", "9"}) {
		t.Fatalf("Lookup email → user_id = %v, %v", got, err)
	}
	got, err = d.Lookup(ctx, users, map[string][]string{"user_id": {"7", "11", "not-a-number"}}, "email", 10)
	if err != nil || !slices.Equal(got, []string{"u7@example.com"}) {
		t.Fatalf("Lookup user_id → email = %v, %v", got, err)
	}
	got, err = d.Lookup(ctx, users, map[string][]string{"user_id": {"1", "2", "3"}}, "email", 2)
	if err != nil || len(got) != 2 {
		t.Fatalf("Lookup with limit 2 = %v, %v", got, err)
	}
}

// A value found among the subject's records but also beside another
// subject's identity, or beside none (an anonymized record), is shared: it
// is not derived, so erasing by it cannot reach other people's records.
func TestLookupSkipsValuesOthersShare(t *testing.T) {
	e := setup(t)
	e.exec(`CREATE TABLE support_messages (id bigint PRIMARY KEY, user_id bigint, contact_email text)`)
	e.exec(`INSERT INTO support_messages VALUES
		(1, 7, 'ming@example.com'), (2, 7, '****@*******.***'), (3, 8, '****@*******.***'),
		(4, NULL, 'family@example.com'), (5, 7, 'family@example.com'), (6, 9, 'x@example.com')`)
	d := e.driver()
	messages := datastore.Collection{Name: "support_messages", Schema: "public", Table: "support_messages", IdentityFields: map[string]string{"user_id": "user_id", "email": "contact_email"}}
	got, err := d.Lookup(context.Background(), messages, map[string][]string{"user_id": {"7"}}, "email", 10)
	if err != nil || !slices.Equal(got, []string{"ming@example.com"}) {
		t.Fatalf("Lookup user_id → email = %v, %v; want only the subject's own email", got, err)
	}
}
