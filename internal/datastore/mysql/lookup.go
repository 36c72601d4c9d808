package mysql

import (
	"context"
	"strconv"

	"github.com/lethe-dev/lethe/internal/datastore"
)

var _ datastore.IdentityLookup = (*Driver)(nil)

// Lookup reads the want identity of the records matching from, in one
// statement, with the identities bound as an erasure binds them.
func (d *Driver) Lookup(ctx context.Context, c datastore.Collection, from map[string][]string, want string, limit int) (_ []string, err error) {
	defer d.lockWait(&err)
	// Delete: a plan for anonymizing would ask for fields; nothing is written.
	p, err := d.plan(ctx, "lookup", datastore.Operation{Collection: c, Subjects: from, Delete: true})
	if err != nil {
		return nil, err
	}
	field := c.IdentityFields[want]
	if field == "" {
		return nil, invalid(p.op, "the collection holds no field for identity type %s", want)
	}
	col, err := lookupColumn(p.op, p.t, field)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1
	}
	v := qualified(p.t.name, col.name)
	// Candidates from the subject's records, kept only where every record
	// holding the value is the subject's.
	q := "SELECT CAST(" + v + " AS CHAR) FROM " + p.qtable +
		" WHERE " + v + " IN (SELECT lethe_c.v FROM (SELECT DISTINCT " + v + " AS v FROM " + p.qtable + " WHERE " + p.match + " AND " + v + " IS NOT NULL LIMIT " + strconv.Itoa(limit) + ") AS lethe_c)" +
		" GROUP BY " + v + " HAVING MIN(COALESCE((" + p.match + "), 0)) = 1"
	args := append(append([]any{}, p.matchArgs...), p.matchArgs...)
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, classify(p.op, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, classify(p.op, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(p.op, err)
	}
	return out, nil
}
