package mysql

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

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
