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
func (d *Driver) Lookup(ctx context.Context, c datastore.Collection, from map[string][]string, want string, limit int) (_ []string, err error) {
	defer d.lockWait(&err)
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
	// Candidates from the subject's records, kept only where every record
	// holding the value is the subject's.
	sql := fmt.Sprintf(`SELECT coalesce(array_agg(v ORDER BY v), '{}') FROM (
  SELECT %[1]s::text AS v FROM %[2]s AS t
  WHERE %[1]s IN (SELECT DISTINCT %[1]s FROM %[2]s AS t WHERE %[3]s AND %[1]s IS NOT NULL LIMIT %[4]d)
  GROUP BY %[1]s
  HAVING bool_and(coalesce((%[3]s), false))) AS x`, v, p.t.key.ident(), p.cond, limit)
	var out []string
	err = d.oneShot(ctx, p.desc, true, sql, p.a.vals, &out)
	d.forgetOnNotFound(err, p.keys...)
	return out, err
}
