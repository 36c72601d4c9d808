package postgres

import (
	"context"
	"fmt"

	"github.com/lethe-dev/lethe/internal/datastore"
)

var _ datastore.IdentityLookup = (*Driver)(nil)

// Lookup reads the want identity of the records matching from, in one
// read-only statement. The identities are bound and cast like an erasure's
// (identityTerms), so a value that cannot be of a column's type matches
// nothing instead of failing the statement.
func (d *Driver) Lookup(ctx context.Context, c datastore.Collection, from map[string][]string, want string, limit int) ([]string, error) {
	p, err := d.plan(ctx, "lookup", datastore.Operation{Collection: c, Subjects: from})
	if err != nil {
		return nil, err
	}
	field := c.IdentityFields[want]
	if field == "" {
		return nil, invalid(p.desc, "the collection holds no field for identity type %s", want)
	}
	col, err := p.t.col(p.desc, field)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1
	}
	v := ref("t", col.Name)
	sql := fmt.Sprintf("SELECT coalesce(array_agg(v ORDER BY v), '{}') FROM (SELECT DISTINCT %s::text AS v FROM %s AS t\nWHERE %s\n  AND %s IS NOT NULL LIMIT %d) AS x",
		v, p.t.key.ident(), p.cond, v, limit)
	var out []string
	err = d.oneShot(ctx, p.desc, true, sql, p.a.vals, &out)
	d.forgetOnNotFound(err, p.keys...)
	return out, err
}
