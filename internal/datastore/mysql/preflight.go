package mysql

import (
	"context"
	"database/sql"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Keys returns the batch keys (primary key) of the rows op selects now, as
// text in key order, at most limit of them (more is ErrInvalid).
func (d *Driver) Keys(ctx context.Context, op datastore.Operation, limit int) (_ [][]string, err error) {
	defer d.lockWait(&err)
	p, err := d.plan(ctx, "seal", op)
	if err != nil {
		return nil, err
	}
	cols := make([]string, len(p.key))
	for i, c := range p.key {
		cols[i] = "CAST(" + qualified(p.t.name, c.name) + " AS CHAR)"
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + p.qtable + " WHERE " + p.match + " LIMIT ?"
	rows, err := d.db.QueryContext(ctx, q, append(slices.Clone(p.matchArgs), limit+1)...)
	if err != nil {
		return nil, classify(p.op, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, classify(p.op, err)
		}
		k := make([]string, len(cols))
		for i, v := range vals {
			if !v.Valid {
				return nil, invalid(p.op, "key column %s holds NULL", quote(p.key[i].name))
			}
			k[i] = v.String
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(p.op, err)
	}
	if len(out) > limit {
		return nil, invalid(p.op, "more than %d records to seal", limit)
	}
	return out, nil
}

// referrer is a foreign key that refers to a table.
type referrer struct {
	name, schema, table, onDelete string
	cols, refCols                 []string
}

// referrers lists the foreign keys of the server that refer to table (in
// the connection's database), from any database.
func (d *Driver) referrers(ctx context.Context, op, table string) ([]referrer, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT k.CONSTRAINT_NAME, k.TABLE_SCHEMA, k.TABLE_NAME, r.DELETE_RULE,
			k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME
		FROM information_schema.KEY_COLUMN_USAGE k
		JOIN information_schema.REFERENTIAL_CONSTRAINTS r
		  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
		 AND r.TABLE_NAME = k.TABLE_NAME
		WHERE k.REFERENCED_TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME = ?
		ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`, table)
	if err != nil {
		return nil, classify(op, err)
	}
	defer rows.Close()
	var out []referrer
	for rows.Next() {
		var f referrer
		var col, refCol string
		if err := rows.Scan(&f.name, &f.schema, &f.table, &f.onDelete, &col, &refCol); err != nil {
			return nil, classify(op, err)
		}
		if n := len(out); n > 0 && out[n-1].name == f.name && out[n-1].schema == f.schema && out[n-1].table == f.table {
			out[n-1].cols = append(out[n-1].cols, col)
			out[n-1].refCols = append(out[n-1].refCols, refCol)
			continue
		}
		f.cols, f.refCols = []string{col}, []string{refCol}
		out = append(out, f)
	}
	return out, classify(op, rows.Err())
}

// Blockers checks every foreign key that refers to the table of a Delete
// operation: it counts the referencing rows that refer to a row the
// operation deletes and that no Delete operation of ops removes (nor an
// Anonymize operation sets to NULL).
func (d *Driver) Blockers(ctx context.Context, ops []datastore.Operation) (_ []datastore.Blocker, err error) {
	defer d.lockWait(&err)
	var current string
	if err := d.db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&current); err != nil {
		return nil, classify("preflight", err)
	}
	var out []datastore.Blocker
	for _, o := range ops {
		if !o.Delete {
			continue
		}
		parent, err := d.plan(ctx, "preflight", o)
		if err != nil {
			return nil, err
		}
		refs, err := d.referrers(ctx, parent.op, parent.t.name)
		if err != nil {
			return nil, err
		}
		for _, f := range refs {
			n, err := d.blocked(ctx, parent, f, f.schema == current, ops)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				out = append(out, datastore.Blocker{Collection: o.Collection.Name, Constraint: f.name, Table: f.schema + "." + f.table,
					Columns: slices.Clone(f.cols), OnDelete: f.onDelete, Rows: n})
			}
		}
	}
	return out, nil
}

// blocked counts the rows of f's table that refer to a row parent selects
// and that remain after ops.
func (d *Driver) blocked(ctx context.Context, parent *plan, f referrer, local bool, ops []datastore.Operation) (int64, error) {
	from := quote(f.schema) + "." + quote(f.table)
	var lhs, sel []string
	for i := range f.cols {
		lhs = append(lhs, quote(f.table)+"."+quote(f.cols[i]))
		sel = append(sel, qualified(parent.t.name, f.refCols[i]))
	}
	q := "SELECT COUNT(*) FROM " + from + " AS " + quote(f.table) + " WHERE (" + strings.Join(lhs, ", ") + ") IN (SELECT " +
		strings.Join(sel, ", ") + " FROM " + parent.qtable + " WHERE " + parent.match + ")"
	args := slices.Clone(parent.matchArgs)
	var gone []string
	for _, o := range ops {
		if !local || tableName(o.Collection) != f.table || !datastore.LeavesNoReference(o, f.cols, strings.EqualFold) {
			continue
		}
		p, err := d.plan(ctx, "preflight", o)
		if err != nil {
			return 0, err
		}
		gone = append(gone, "("+p.match+")")
		args = append(args, p.matchArgs...)
	}
	if len(gone) > 0 {
		q += " AND (" + strings.Join(gone, " OR ") + ") IS NOT TRUE"
	}
	var n int64
	if err := d.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, classify(parent.op, err)
	}
	return n, nil
}
