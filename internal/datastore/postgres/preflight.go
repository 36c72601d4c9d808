package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Keys returns the primary keys of the records o selects now, as text in key
// order, at most limit of them (more is ErrInvalid). It reads in a read-only
// transaction.
func (d *Driver) Keys(ctx context.Context, o datastore.Operation, limit int) (_ [][]string, err error) {
	defer d.lockWait(&err)
	p, err := d.plan(ctx, "seal", o)
	if err != nil {
		return nil, err
	}
	cols := make([]string, len(p.pk))
	for i, c := range p.pk {
		cols[i] = ref("t", c.Name) + "::text"
	}
	sql := fmt.Sprintf("SELECT %s FROM %s AS t\nWHERE %s\nLIMIT %d", strings.Join(cols, ", "), p.t.key.ident(), p.cond, limit+1)
	var out [][]string
	err = d.inTx(ctx, p.desc, true, func(q querier) error {
		rows, err := q.Query(ctx, sql, p.a.vals...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			vals := make([]*string, len(cols))
			dest := make([]any, len(cols))
			for i := range vals {
				dest[i] = &vals[i]
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			k := make([]string, len(cols))
			for i, v := range vals {
				if v == nil {
					return invalid(p.desc, "primary key column %q holds NULL", p.pk[i].Name)
				}
				k[i] = *v
			}
			out = append(out, k)
		}
		return rows.Err()
	})
	d.forgetOnNotFound(err, p.keys...)
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, invalid(p.desc, "more than %d records to seal", limit)
	}
	return out, nil
}

// referrer is a foreign key of the database that refers to a table.
type referrer struct {
	name     string
	table    tableKey
	cols     []string
	refCols  []string
	onDelete string
}

var onDeleteNames = map[string]string{"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}

// referrers lists every foreign key of the database that refers to t
// (partition clones of a key are left out: the parent key stands for them).
func (d *Driver) referrers(ctx context.Context, desc string, t *table) ([]referrer, error) {
	const sql = `
SELECT c.conname, n.nspname, r.relname, c.confdeltype::text,
  ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(num, i)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.i),
  ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(num, i)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num ORDER BY k.i)
FROM pg_catalog.pg_constraint c
JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
WHERE c.contype = 'f' AND c.confrelid = $1 AND c.conparentid = 0
ORDER BY c.conname`
	var out []referrer
	err := d.inTx(ctx, desc, true, func(q querier) error {
		rows, err := q.Query(ctx, sql, t.oid)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f referrer
			var del string
			if err := rows.Scan(&f.name, &f.table.schema, &f.table.name, &del, &f.cols, &f.refCols); err != nil {
				return err
			}
			f.onDelete = onDeleteNames[del]
			out = append(out, f)
		}
		return rows.Err()
	})
	return out, err
}

// Blockers checks every foreign key that refers to the table of a Delete
// operation: it counts the referencing rows that refer to a row the
// operation deletes and that no Delete operation of ops removes (nor an
// Anonymize operation sets to NULL), in one read-only statement per key.
func (d *Driver) Blockers(ctx context.Context, ops []datastore.Operation) (_ []datastore.Blocker, err error) {
	defer d.lockWait(&err)
	var out []datastore.Blocker
	for _, o := range ops {
		if !o.Delete {
			continue
		}
		parent, err := d.plan(ctx, "preflight", o)
		if err != nil {
			return nil, err
		}
		refs, err := d.referrers(ctx, parent.desc, parent.t)
		if err != nil {
			return nil, err
		}
		for _, f := range refs {
			n, err := d.blocked(ctx, parent, f, ops)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				out = append(out, datastore.Blocker{Collection: o.Collection.Name, Constraint: f.name, Table: f.table.String(),
					Columns: slices.Clone(f.cols), OnDelete: f.onDelete, Rows: n})
			}
		}
	}
	return out, nil
}

// blocked counts the rows of f's table that refer to a row parent selects
// and that remain after ops.
func (d *Driver) blocked(ctx context.Context, parent *plan, f referrer, ops []datastore.Operation) (int64, error) {
	child, err := d.cached(ctx, f.table)
	if err != nil {
		return 0, err
	}
	var lhs, sel []string
	for i := range f.cols {
		lhs = append(lhs, ref("t", f.cols[i]))
		sel = append(sel, ref("t", f.refCols[i]))
	}
	sql := fmt.Sprintf("SELECT count(*) FROM %s AS t\nWHERE (%s) IN (SELECT %s FROM %s AS t WHERE %s)",
		f.table.ident(), strings.Join(lhs, ", "), strings.Join(sel, ", "), parent.t.key.ident(), parent.cond)
	vals := parent.a.vals
	var gone []string
	for _, o := range ops {
		k, err := keyOf("preflight", o.Collection)
		if err != nil || k != child.key || !datastore.LeavesNoReference(o, f.cols, func(a, b string) bool { return a == b }) {
			continue
		}
		p, err := d.planAfter(ctx, "preflight", o, vals)
		if err != nil {
			return 0, err
		}
		vals = p.a.vals
		gone = append(gone, "("+p.cond+")")
	}
	if len(gone) > 0 {
		sql += "\n  AND (" + strings.Join(gone, " OR ") + ") IS NOT TRUE"
	}
	var n int64
	err = d.oneShot(ctx, parent.desc, true, sql, vals, &n)
	return n, err
}
