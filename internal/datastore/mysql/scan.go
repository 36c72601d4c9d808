package mysql

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

var _ datastore.IdentityScanner = (*Driver)(nil)

// ScanIdentities reads the identity fields of the next limit rows in
// batching-key order (the key purges walk, through its index), in one
// SELECT: every value CAST AS CHAR (as Lookup reads them), the key as a
// cursor like a purge's, tagged with "scan" so a purge cursor is refused.
func (d *Driver) ScanIdentities(ctx context.Context, c datastore.Collection, cursor string, limit int) (_ datastore.IdentityPage, err error) {
	defer d.lockWait(&err)
	name := tableName(c)
	op := "scan of " + quote(name)
	if limit <= 0 || limit > datastore.MaxScanLimit {
		return datastore.IdentityPage{}, invalid(op, "scan limit %d is not between 1 and %d", limit, datastore.MaxScanLimit)
	}
	t, err := d.table(ctx, op, name)
	if err != nil {
		return datastore.IdentityPage{}, err
	}
	keyNames, keyIndex, err := d.batchKey(op, t, c)
	if err != nil {
		return datastore.IdentityPage{}, err
	}
	p := &plan{op: op, t: t, qtable: quote(t.name), keyIndex: keyIndex}
	for _, k := range keyNames {
		col, _ := t.col(k)
		p.key = append(p.key, col)
	}
	p.tag = "scan-" + cursorTag(t, p.key)
	types := slices.Sorted(func(yield func(string) bool) {
		for typ := range c.IdentityFields {
			if !yield(typ) {
				return
			}
		}
	})
	if len(types) == 0 {
		return datastore.IdentityPage{}, invalid(op, "the collection has no identity field")
	}
	sel := []string{p.keyList()}
	for _, typ := range types {
		col, err := lookupColumn(op, t, c.IdentityFields[typ])
		if err != nil {
			return datastore.IdentityPage{}, err
		}
		sel = append(sel, "CAST("+qualified(t.name, col.name)+" AS CHAR)")
	}
	st, last, err := decodeCursor(p, cursor)
	if err != nil {
		return datastore.IdentityPage{}, err
	}
	where, args := "TRUE", []any(nil)
	if last != nil {
		where, args = keyAfter(t.name, p.key, last)
	}
	q := d.stmtPrefix() + "SELECT " + d.selectHint() + strings.Join(sel, ", ") + " FROM " + p.from() +
		" WHERE " + where + " ORDER BY " + p.keyList() + " LIMIT " + strconv.Itoa(limit)
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return datastore.IdentityPage{}, classify(op, err)
	}
	defer rows.Close()
	page := datastore.IdentityPage{}
	keyVals := make([]any, len(p.key))
	idVals := make([]sql.NullString, len(types))
	ptrs := make([]any, 0, len(keyVals)+len(idVals))
	for i := range keyVals {
		ptrs = append(ptrs, &keyVals[i])
	}
	for i := range idVals {
		ptrs = append(ptrs, &idVals[i])
	}
	var lastKey []any
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return datastore.IdentityPage{}, classify(op, err)
		}
		page.Scanned++
		rec := map[string]string{}
		for i, typ := range types {
			if idVals[i].Valid {
				rec[typ] = idVals[i].String
			}
		}
		if len(rec) > 0 {
			page.Records = append(page.Records, rec)
		}
		lastKey = slices.Clone(keyVals)
		for i, v := range lastKey {
			if b, ok := v.([]byte); ok {
				lastKey[i] = slices.Clone(b) // the driver reuses its buffers
			}
		}
	}
	if err := rows.Err(); err != nil {
		return datastore.IdentityPage{}, classify(op, err)
	}
	if lastKey != nil {
		if st.Key, _, err = p.encodeKey(lastKey); err != nil {
			return datastore.IdentityPage{}, err
		}
	}
	page.Done = page.Scanned < limit
	page.Cursor = encodeCursor(st)
	return page, nil
}
