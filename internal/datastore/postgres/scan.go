package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

var _ datastore.IdentityScanner = (*Driver)(nil)

// scanCursor is the JSON behind a ScanIdentities cursor: the tag of table
// and key (a cursor handed to another collection is refused) and the text
// of the last key read.
type scanCursor struct {
	V   int      `json:"v"`
	Tag string   `json:"t"`
	Key []string `json:"k,omitempty"`
}

// scanTag identifies a table and the key a scan walks.
func scanTag(k tableKey, pk []column) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte("scan\x00" + k.schema + "\x00" + k.name))
	for _, c := range pk {
		_, _ = h.Write([]byte("\x00" + c.Name))
	}
	return strconv.FormatUint(uint64(h.Sum32()), 36)
}

// ScanIdentities reads the identity fields of the next limit records in
// primary-key order, in one read-only statement: every value as ::text (as
// Lookup reads them), the page aggregated into one JSON array.
func (d *Driver) ScanIdentities(ctx context.Context, c datastore.Collection, cursor string, limit int) (_ datastore.IdentityPage, err error) {
	defer d.lockWait(&err)
	key, err := keyOf("scan", c)
	if err != nil {
		return datastore.IdentityPage{}, err
	}
	desc := "scan of " + key.ident()
	if limit <= 0 || limit > datastore.MaxScanLimit {
		return datastore.IdentityPage{}, invalid(desc, "scan limit %d is not between 1 and %d", limit, datastore.MaxScanLimit)
	}
	t, err := d.cached(ctx, key)
	if err != nil {
		d.forgetOnNotFound(err, key)
		return datastore.IdentityPage{}, err
	}
	pkNames, err := t.keyColumns(desc, c)
	if err != nil {
		return datastore.IdentityPage{}, err
	}
	pk := make([]column, len(pkNames))
	for i, n := range pkNames {
		if pk[i], err = t.col(desc, n); err != nil {
			return datastore.IdentityPage{}, err
		}
	}
	types := slices.Sorted(func(yield func(string) bool) {
		for typ := range c.IdentityFields {
			if !yield(typ) {
				return
			}
		}
	})
	if len(types) == 0 {
		return datastore.IdentityPage{}, invalid(desc, "the collection has no identity field")
	}
	ids := make([]column, len(types))
	for i, typ := range types {
		if ids[i], err = t.col(desc, c.IdentityFields[typ]); err != nil {
			return datastore.IdentityPage{}, err
		}
	}

	tag := scanTag(key, pk)
	cur := scanCursor{V: 1, Tag: tag}
	if cursor != "" {
		// The cursor holds key values: never quote it.
		if err := json.Unmarshal([]byte(cursor), &cur); err != nil || cur.V != 1 {
			return datastore.IdentityPage{}, invalid(desc, "cursor is not a scan cursor of this driver")
		}
		if cur.Tag != tag {
			return datastore.IdentityPage{}, invalid(desc, "the cursor was made for another table or key")
		}
	}
	var a args
	lower, err := lowerBound(desc, &a, modeKey, pk, cur.Key)
	if err != nil {
		return datastore.IdentityPage{}, err
	}
	where := "true"
	if lower != "" {
		where = lower
	}
	elems := make([]string, 0, len(pk)+len(ids))
	for _, col := range pk {
		elems = append(elems, ref("t", col.Name)+"::text")
	}
	for _, col := range ids {
		elems = append(elems, ref("t", col.Name)+"::text")
	}
	order := orderBy("t", pk, false)
	sql := fmt.Sprintf(`SELECT coalesce(json_agg(x.r ORDER BY x.o), '[]')::text FROM (
  SELECT json_build_array(%s) AS r, row_number() OVER (ORDER BY %s) AS o
  FROM %s AS t WHERE %s ORDER BY %s LIMIT %d) AS x`,
		strings.Join(elems, ", "), order, t.key.ident(), where, order, limit)
	var raw string
	err = d.oneShot(ctx, desc, true, sql, a.vals, &raw)
	d.forgetOnNotFound(err, key)
	if err != nil {
		return datastore.IdentityPage{}, err
	}
	var rows [][]*string
	if err := json.Unmarshal([]byte(raw), &rows); err != nil {
		return datastore.IdentityPage{}, invalid(desc, "the server's page could not be read")
	}
	page := datastore.IdentityPage{Scanned: len(rows), Done: len(rows) < limit}
	for _, row := range rows {
		if len(row) != len(pk)+len(ids) {
			return datastore.IdentityPage{}, invalid(desc, "the server's page could not be read")
		}
		rec := map[string]string{}
		for i, typ := range types {
			if v := row[len(pk)+i]; v != nil {
				rec[typ] = *v
			}
		}
		if len(rec) > 0 {
			page.Records = append(page.Records, rec)
		}
	}
	if len(rows) > 0 {
		last := rows[len(rows)-1]
		cur.Key = make([]string, len(pk))
		for i := range pk {
			if last[i] == nil {
				return datastore.IdentityPage{}, invalid(desc, "a key column holds NULL")
			}
			cur.Key[i] = *last[i]
		}
	}
	b, _ := json.Marshal(cur)
	page.Cursor = string(b)
	return page, nil
}
