package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

// updateChunk bounds the rows one UPDATE of an anonymize batch writes.
const updateChunk = 500

// Count returns how many rows the operation would delete or anonymize now:
// the rows its predicate selects, which on static data is exactly what the
// Execute calls of the operation affect together (dropped partitions
// included). It has no server-side time limit (only ctx): on a large table
// it may take longer than one batch may.
func (d *Driver) Count(ctx context.Context, op datastore.Operation) (int64, error) {
	p, err := d.plan(ctx, "count", op)
	if err != nil {
		return 0, err
	}
	var n int64
	q := "SELECT COUNT(*) FROM " + p.qtable + " WHERE " + p.match
	if err := d.db.QueryRowContext(ctx, q, p.matchArgs...).Scan(&n); err != nil {
		return 0, classify(p.op, err)
	}
	return n, nil
}

// Total returns the exact number of rows in the collection's table.
func (d *Driver) Total(ctx context.Context, c datastore.Collection) (int64, error) {
	op := "total of " + quote(tableName(c))
	t, err := d.table(ctx, op, tableName(c))
	if err != nil {
		return 0, err
	}
	var n int64
	if err := d.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+quote(t.name)).Scan(&n); err != nil {
		return 0, classify(op, err)
	}
	return n, nil
}

// Execute runs one batch of op from cursor. See the package documentation
// for how batches are written.
func (d *Driver) Execute(ctx context.Context, op datastore.Operation, cursor string) (datastore.Batch, error) {
	verb := "anonymize batch"
	if op.Delete {
		verb = "delete batch"
	}
	p, err := d.plan(ctx, verb, op)
	if err != nil {
		return datastore.Batch{}, err
	}
	st, last, err := decodeCursor(p, cursor)
	if err != nil {
		return datastore.Batch{}, err
	}
	if op.Delete && !st.Partitions {
		// Not under the batch deadline: counting a large partition takes
		// as long as its size (a non-locking read), the DROP itself is
		// bounded by lock_wait_timeout.
		affected, dropped, err := d.dropExpiredPartitions(ctx, p)
		if err != nil {
			return datastore.Batch{}, err
		}
		st.Partitions = true
		if dropped > 0 {
			// The dropped partitions are this call's batch; the straddling
			// partition and the rest of the table follow in batches.
			return datastore.Batch{Affected: affected, Cursor: encodeCursor(st), PartitionsDropped: dropped}, nil
		}
	}

	ctx, cancel := d.batchContext(ctx)
	defer cancel()
	var n int64
	var next []string
	var full bool // the batch found a full page of rows: there may be more
	if op.Delete {
		n, next, full, err = d.deleteBatch(ctx, p, last)
	} else {
		n, next, err = d.anonymizeBatch(ctx, p, last)
		full = n == int64(p.batch)
	}
	if err != nil {
		return datastore.Batch{}, err
	}
	if next != nil {
		st.Key = next
	}
	return datastore.Batch{Affected: n, Cursor: encodeCursor(st), Done: !full}, nil
}

// where is "match AND key > last" with its arguments.
func (p *plan) where(last []any) (string, []any) {
	w := p.match
	args := append([]any(nil), p.matchArgs...)
	if last != nil {
		k, kargs := keyAfter(p.t.name, p.key, last)
		w += " AND " + k
		args = append(args, kargs...)
	}
	return w, args
}

// from is "`table`" with the key index forced when batching a purge.
func (p *plan) from() string {
	if p.keyIndex == "" {
		return p.qtable
	}
	return p.qtable + " FORCE INDEX (" + quote(p.keyIndex) + ")"
}

func (p *plan) keyList() string {
	cols := make([]string, len(p.key))
	for i, c := range p.key {
		cols[i] = qualified(p.t.name, c.name)
	}
	return strings.Join(cols, ", ")
}

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

// anonymizeBatch locks the next rows in key order, masks their fields in Go
// and writes them back by key, in one transaction.
func (d *Driver) anonymizeBatch(ctx context.Context, p *plan, last []any) (int64, []string, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, nil, classify(p.op, err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit: a no-op

	w, args := p.where(last)
	cols := p.keyList()
	for _, f := range p.fields {
		cols += ", " + qualified(p.t.name, f.col.name)
	}
	q := d.stmtPrefix() + "SELECT " + d.selectHint() + cols + " FROM " + p.from() + " WHERE " + w +
		" ORDER BY " + p.keyList() + " LIMIT " + strconv.Itoa(p.batch) + " FOR UPDATE"
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, nil, classify(p.op, err)
	}
	type row struct {
		key    []any
		values []any // new value per field
		change []bool
	}
	var batch []row
	var lastKey []string
	width := len(p.key) + len(p.fields)
	for rows.Next() {
		vals := make([]any, width)
		ptrs := make([]any, width)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return 0, nil, classify(p.op, err)
		}
		strs, bind, err := p.encodeKey(vals[:len(p.key)])
		if err != nil {
			rows.Close()
			return 0, nil, err
		}
		r := row{key: bind, values: make([]any, len(p.fields)), change: make([]bool, len(p.fields))}
		for i, f := range p.fields {
			out, change, err := f.apply(p, vals[len(p.key)+i])
			if err != nil {
				rows.Close()
				return 0, nil, err
			}
			r.values[i], r.change[i] = out, change
		}
		batch = append(batch, r)
		lastKey = strs
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, nil, classify(p.op, err)
	}
	rows.Close()

	for i := 0; i < len(batch); i += updateChunk {
		chunk := batch[i:min(i+updateChunk, len(batch))]
		var set []string
		var sargs []any
		var keys [][]any
		for fi, f := range p.fields {
			var b strings.Builder
			var fargs []any
			for _, r := range chunk {
				if !r.change[fi] {
					continue
				}
				if b.Len() == 0 {
					b.WriteString(qualified(p.t.name, f.col.name) + " = CASE")
					if len(p.key) == 1 {
						b.WriteString(" " + qualified(p.t.name, p.key[0].name))
					}
				}
				if len(p.key) == 1 {
					b.WriteString(" WHEN " + keyPlaceholder(p.key[0]) + " THEN " + valuePlaceholder(f.col, r.values[fi]))
					fargs = append(fargs, r.key[0])
				} else {
					k, kargs := keyEquals(p.t.name, p.key, r.key)
					b.WriteString(" WHEN " + k + " THEN " + valuePlaceholder(f.col, r.values[fi]))
					fargs = append(fargs, kargs...)
				}
				if r.values[fi] != nil {
					fargs = append(fargs, r.values[fi])
				}
			}
			if b.Len() == 0 {
				continue
			}
			b.WriteString(" ELSE " + qualified(p.t.name, f.col.name) + " END")
			set = append(set, b.String())
			sargs = append(sargs, fargs...)
		}
		if len(set) == 0 {
			continue // nothing changes in this chunk (NULLs stay NULL)
		}
		for _, r := range chunk {
			keys = append(keys, r.key)
		}
		cond, cargs := keyIn(p.t.name, p.key, keys)
		upd := d.stmtPrefix() + "UPDATE " + p.qtable + " SET " + strings.Join(set, ", ") + " WHERE " + cond
		if _, err := tx.ExecContext(ctx, upd, append(sargs, cargs...)...); err != nil {
			return 0, nil, classify(p.op, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, nil, classify(p.op, err)
	}
	return int64(len(batch)), lastKey, nil
}

// apply masks one value read from the server and returns what to bind (a
// string, []byte or nil) and whether the column changes.
func (f fieldPlan) apply(p *plan, v any) (any, bool, error) {
	in, skip := f.toMask(p, v)
	if skip {
		return nil, false, nil
	}
	out, err := f.strategy.Apply(in, f.mcol)
	if err != nil {
		return nil, false, &datastore.Error{Driver: library.Name, Op: p.op, Kind: datastore.KindInvalid, Reason: "field " + quote(f.col.name) + ": " + err.Error(), Err: err}
	}
	bind, err := f.toBind(p, out)
	if err != nil {
		return nil, false, err
	}
	return bind, !sameValue(v, bind, f.col), nil
}

// toMask converts a value read from the server into what mask expects for
// the column's type; skip is true for values left alone (zero dates).
func (f fieldPlan) toMask(p *plan, v any) (any, bool) {
	if v == nil {
		return nil, false
	}
	switch f.col.valueKind {
	case kindBytes:
		if s, ok := v.(string); ok {
			return []byte(s), false
		}
		return v, false
	case kindDatetime, kindTimestamp, kindDate:
		t, ok := v.(time.Time)
		if !ok {
			return asText(v), false
		}
		if t.IsZero() {
			return nil, true // '0000-00-00': no date to anonymize
		}
		switch f.col.valueKind {
		case kindDatetime:
			// Wall clock in the collection's zone, so that Generalize
			// truncates to that zone's day.
			return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), p.loc), false
		case kindDate:
			return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), false
		}
		return t.UTC(), false
	}
	return asText(v), false
}

// toBind converts mask's result into the value bound for the column.
func (f fieldPlan) toBind(p *plan, out any) (any, error) {
	switch x := out.(type) {
	case nil:
		return nil, nil
	case []byte:
		if f.col.valueKind == kindBytes {
			return x, nil
		}
		return string(x), nil
	case string:
		if f.col.valueKind == kindBytes {
			return []byte(x), nil
		}
		return x, nil
	case time.Time:
		switch f.col.valueKind {
		case kindDate:
			return x.Format(sqlDate), nil
		case kindTimestamp:
			return x.UTC().Format(sqlDatetime), nil
		case kindDatetime:
			if f.strategy.Kind != mask.Fixed {
				x = x.In(p.loc)
			}
			// A Fixed replacement is written as the wall clock it names.
			return x.Format(sqlDatetime), nil
		}
		return x.UTC().Format(sqlDatetime), nil
	case interface{ String() string }: // netip.Addr, netip.Prefix
		return x.String(), nil
	}
	return nil, invalid(p.op, "field %s: the anonymized value has an unexpected type", quote(f.col.name))
}

// sameValue reports whether the bound value equals what was read.
func sameValue(read, bind any, c *column) bool {
	if read == nil || bind == nil {
		return read == nil && bind == nil
	}
	switch b := bind.(type) {
	case []byte:
		r, ok := read.([]byte)
		return ok && bytes.Equal(r, b)
	case string:
		if t, ok := read.(time.Time); ok {
			if c.valueKind == kindDate {
				return t.Format(sqlDate) == b
			}
			return t.UTC().Format(sqlDatetime) == b
		}
		return asText(read) == b
	}
	return false
}

// asText renders a non-temporal value read from the server as a string.
func asText(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case time.Time:
		return x.UTC().Format(sqlDatetime)
	}
	return v
}

// valuePlaceholder is the placeholder of a value written into c: binary
// columns take their bytes as they are, whatever the connection's
// character set.
func valuePlaceholder(c *column, v any) string {
	if v == nil {
		return "NULL"
	}
	if c.valueKind == kindBytes {
		return "CAST(? AS BINARY)"
	}
	return "?"
}

// keyPlaceholder is the placeholder of a key value compared with c. DECIMAL
// keys are compared as decimals, not as floating point.
func keyPlaceholder(c *column) string {
	if c.valueKind == kindDecimal {
		return "CAST(? AS DECIMAL(65,30))"
	}
	return "?"
}

// keyAfter is "key > last" for a (possibly composite) key, written as
// (a > ?) OR (a = ? AND b > ?) so that the range optimizer uses the index.
func keyAfter(table string, key []*column, last []any) (string, []any) {
	return keyCompare(table, key, last, ">", false)
}

// keyAtLeast is "key >= first".
func keyAtLeast(table string, key []*column, first []any) (string, []any) {
	return keyCompare(table, key, first, ">", true)
}

// keyAtMost is "key <= last".
func keyAtMost(table string, key []*column, last []any) (string, []any) {
	return keyCompare(table, key, last, "<", true)
}

func keyCompare(table string, key []*column, last []any, op string, orEqual bool) (string, []any) {
	var parts []string
	var args []any
	for i := range key {
		var conj []string
		for j := 0; j < i; j++ {
			conj = append(conj, qualified(table, key[j].name)+" = "+keyPlaceholder(key[j]))
			args = append(args, last[j])
		}
		conj = append(conj, qualified(table, key[i].name)+" "+op+" "+keyPlaceholder(key[i]))
		args = append(args, last[i])
		parts = append(parts, strings.Join(conj, " AND "))
	}
	if orEqual {
		k, kargs := keyEquals(table, key, last)
		parts = append(parts, k)
		args = append(args, kargs...)
	}
	return "((" + strings.Join(parts, ") OR (") + "))", args
}

// keyEquals is "key = k".
func keyEquals(table string, key []*column, k []any) (string, []any) {
	conj := make([]string, len(key))
	for i, c := range key {
		conj[i] = qualified(table, c.name) + " = " + keyPlaceholder(c)
	}
	return "(" + strings.Join(conj, " AND ") + ")", append([]any(nil), k...)
}

// keyIn is "key IN (keys)".
func keyIn(table string, key []*column, keys [][]any) (string, []any) {
	var args []any
	if len(key) == 1 {
		ph := make([]string, len(keys))
		for i, k := range keys {
			ph[i] = keyPlaceholder(key[0])
			args = append(args, k[0])
		}
		return qualified(table, key[0].name) + " IN (" + strings.Join(ph, ",") + ")", args
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		var kargs []any
		parts[i], kargs = keyEquals(table, key, k)
		args = append(args, kargs...)
	}
	return "(" + strings.Join(parts, " OR ") + ")", args
}
