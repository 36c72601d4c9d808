package mysql

import (
	"context"
	"database/sql"
	"strconv"
)

func (d *Driver) deleteBatch(ctx context.Context, p *plan, last []any) (int64, []string, bool, error) {
	mode := d.deleteMode
	if mode == deleteAuto {
		mode = deleteRange
	}
	switch mode {
	case deleteReturning:
		if last == nil && p.keyIndex != "" {
			// The first batch of a purge has no key bound, and a DELETE
			// takes no index hint: the optimizer may then read the whole
			// timestamp range and sort it. The range delete forces the key.
			return d.deleteRange(ctx, p, last)
		}
		n, next, err := d.deleteReturning(ctx, p, last)
		return n, next, n == int64(p.batch), err
	case deleteKeys:
		n, next, err := d.deleteKeys(ctx, p, last)
		return n, next, n == int64(p.batch), err
	default:
		return d.deleteRange(ctx, p, last)
	}
}

// deleteReturning: one statement, which deletes the next rows in key order
// and returns their keys (MariaDB). Single-table DELETE takes no index hint;
// ORDER BY key LIMIT n makes the optimizer walk the key.
func (d *Driver) deleteReturning(ctx context.Context, p *plan, last []any) (int64, []string, error) {
	w, args := p.where(last)
	q := d.stmtPrefix() + "DELETE FROM " + p.qtable + " WHERE " + w +
		" ORDER BY " + p.keyList() + " LIMIT " + strconv.Itoa(p.batch) + " RETURNING " + p.keyList()
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, nil, classify(p.op, err)
	}
	defer rows.Close()
	var n int64
	vals := make([]any, len(p.key))
	ptrs := make([]any, len(p.key))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return 0, nil, classify(p.op, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, nil, classify(p.op, err)
	}
	if n == 0 {
		return 0, nil, nil
	}
	next, _, err := p.encodeKey(vals)
	return n, next, err
}

// deleteRange: read the keys of the next n matching rows in key order
// (without locking, through the key index), then delete the matching rows
// between the first and the last of them, at most n. Both statements are
// bounded on both sides of the key, so neither can wander off into a sort of
// the whole timestamp range. The batch is full when n keys were found, even
// if some of those rows went away in between.
func (d *Driver) deleteRange(ctx context.Context, p *plan, last []any) (int64, []string, bool, error) {
	w, args := p.where(last)
	q := d.stmtPrefix() + "SELECT " + d.selectHint() + p.keyList() + " FROM " + p.from() + " WHERE " + w +
		" ORDER BY " + p.keyList() + " LIMIT " + strconv.Itoa(p.batch)
	keys, next, err := p.readKeys(ctx, d.db, q, args)
	if err != nil || len(keys) == 0 {
		return 0, nil, false, err
	}
	lo, loArgs := keyAtLeast(p.t.name, p.key, keys[0])
	hi, hiArgs := keyAtMost(p.t.name, p.key, keys[len(keys)-1])
	del := d.stmtPrefix() + "DELETE FROM " + p.qtable + " WHERE " + p.match + " AND " + lo + " AND " + hi +
		" ORDER BY " + p.keyList() + " LIMIT " + strconv.Itoa(p.batch)
	dargs := append(append(append([]any(nil), p.matchArgs...), loArgs...), hiArgs...)
	res, err := d.db.ExecContext(ctx, del, dargs...)
	if err != nil {
		return 0, nil, false, classify(p.op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, nil, false, classify(p.op, err)
	}
	return n, next, len(keys) == p.batch, nil
}

// deleteKeys: lock the batch's rows and read their keys, then delete by key.
func (d *Driver) deleteKeys(ctx context.Context, p *plan, last []any) (int64, []string, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, nil, classify(p.op, err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit: a no-op
	w, args := p.where(last)
	q := d.stmtPrefix() + "SELECT " + d.selectHint() + p.keyList() + " FROM " + p.from() + " WHERE " + w +
		" ORDER BY " + p.keyList() + " LIMIT " + strconv.Itoa(p.batch) + " FOR UPDATE"
	keys, next, err := p.readKeys(ctx, tx, q, args)
	if err != nil {
		return 0, nil, err
	}
	if len(keys) == 0 {
		return 0, nil, classify(p.op, tx.Commit())
	}
	var n int64
	for i := 0; i < len(keys); i += updateChunk * 2 {
		chunk := keys[i:min(i+updateChunk*2, len(keys))]
		cond, cargs := keyIn(p.t.name, p.key, chunk)
		res, err := tx.ExecContext(ctx, d.stmtPrefix()+"DELETE FROM "+p.qtable+" WHERE "+cond, cargs...)
		if err != nil {
			return 0, nil, classify(p.op, err)
		}
		m, err := res.RowsAffected()
		if err != nil {
			return 0, nil, classify(p.op, err)
		}
		n += m
	}
	if err := tx.Commit(); err != nil {
		return 0, nil, classify(p.op, err)
	}
	return n, next, nil
}

// readKeys runs a key SELECT and returns the bindable keys and the cursor
// strings of the last one.
func (p *plan) readKeys(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string, args []any) ([][]any, []string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, classify(p.op, err)
	}
	defer rows.Close()
	var keys [][]any
	var last []string
	for rows.Next() {
		vals := make([]any, len(p.key))
		ptrs := make([]any, len(p.key))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, classify(p.op, err)
		}
		strs, bind, err := p.encodeKey(vals)
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, bind)
		last = strs
	}
	if err := rows.Err(); err != nil {
		return nil, nil, classify(p.op, err)
	}
	return keys, last, nil
}

// encodeKey turns a key read from the server into cursor strings and bind
// values.
func (p *plan) encodeKey(vals []any) ([]string, []any, error) {
	strs := make([]string, len(vals))
	binds := make([]any, len(vals))
	for i, c := range p.key {
		s, b, err := keyString(c, vals[i])
		if err != nil {
			return nil, nil, invalid(p.op, "key column %s holds a value the driver cannot resume from", quote(c.name))
		}
		strs[i], binds[i] = s, b
	}
	return strs, binds, nil
}
