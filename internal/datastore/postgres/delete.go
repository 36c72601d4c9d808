package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// deleteShape is how the DELETE addresses the rows its batch selected.
type deleteShape int

const (
	// shapeAuto picks shapeCtid for plain tables and shapeKey for
	// partitioned ones (ctid is only unique within one partition).
	shapeAuto deleteShape = iota
	shapeKey
	shapeCtid
)

// DeleteShape names a delete statement shape, for benchmarks comparing them.
type DeleteShape string

const (
	// DeleteShapeAuto is the default (see the package documentation).
	DeleteShapeAuto DeleteShape = "auto"
	// DeleteShapeKey addresses the batch's rows by primary key.
	DeleteShapeKey DeleteShape = "key"
	// DeleteShapeCtid addresses the batch's rows by ctid (plain tables only;
	// partitioned tables always use the key).
	DeleteShapeCtid DeleteShape = "ctid"
)

// SetDeleteShape overrides how delete batches that select rows first (by
// subject, without a timestamp index, or within a run of equal timestamps)
// address them. It exists for benchmarks and tests comparing the shapes;
// call it before the driver is used.
func (d *Driver) SetDeleteShape(s DeleteShape) {
	d.deleteShape = map[DeleteShape]deleteShape{DeleteShapeKey: shapeKey, DeleteShapeCtid: shapeCtid}[s]
}

func (d *Driver) shapeFor(p *plan) deleteShape {
	if p.t.rangePartitioned || p.t.partKey != "" {
		return shapeKey
	}
	if d.deleteShape == shapeAuto {
		return shapeCtid
	}
	return d.deleteShape
}

// deleteBatch deletes up to n matching rows after the cursor, in walk
// order, in one statement (see "Statements" in the package documentation),
// and moves cur on (advance); the timestamp walk goes to rangeDeleteBatch.
func (d *Driver) deleteBatch(ctx context.Context, p *plan, cur *cursorState, n int) (datastore.Batch, error) {
	where, a, keys, err := p.batchWhere(cur)
	if err != nil {
		return datastore.Batch{}, err
	}

	if cur.Mode == modeTime {
		return d.rangeDeleteBatch(ctx, p, cur, n, a, where)
	}
	order := ""
	if cur.Mode != modeUnbounded {
		order = "\n  ORDER BY " + orderBy("t", keys, false)
	}
	sql, err := d.batchDeleteSQL(p, where, order, keys, n)
	if err != nil {
		return datastore.Batch{}, err
	}
	var selected, deleted int64
	var last []string
	if err := d.oneShot(ctx, p.desc, false, sql, a.vals, &selected, &deleted, &last); err != nil {
		return datastore.Batch{}, err
	}
	if err := advance(p.desc, cur, selected, deleted, last, n); err != nil {
		return datastore.Batch{Affected: deleted}, err
	}
	return datastore.Batch{Affected: deleted}, nil
}

// advance moves the cursor after a batch that selected and deleted rows.
// It fails when rows that matched were selected twice in a row and none
// could be deleted: a trigger or rule on the table skips them (a BEFORE
// DELETE trigger returning NULL, a DO INSTEAD NOTHING rule), and looking
// again would never end.
func advance(desc string, cur *cursorState, selected, deleted int64, last []string, n int) error {
	again := cur.Again
	cur.Again = false
	switch {
	case deleted < selected:
		if again && deleted == 0 {
			return fmt.Errorf("%w: %s: %d matching rows were selected twice and not deleted: a trigger or rule on the table skips them; they are left in place",
				datastore.ErrInvalid, desc, selected)
		}
		// Some selected rows changed before they could be deleted: look at
		// the same range again.
		cur.Again = true
	case selected < int64(n):
		cur.Done = true
	case cur.Mode != modeUnbounded:
		cur.Key = last
	}
	return nil
}

// batchDeleteSQL is the statement deleting the first n matching rows in key
// order: by ctid on plain tables, by primary key on partitioned ones.
func (d *Driver) batchDeleteSQL(p *plan, where, order string, keys []column, n int) (string, error) {
	tbl := p.t.key.ident()
	if d.shapeFor(p) == shapeCtid {
		return ctidDelete(tbl, where, order, p.cond, keys, n), nil
	}
	return keyDelete(p, tbl, where, order, keys, n)
}

// lastKey is an expression giving the text of the greatest key among the
// rows of CTE src (whose key columns are named by cols), NULL when src is
// empty. Only that one row's key is converted to text.
func lastKey(src string, cols []string) string {
	if len(cols) == 0 {
		return "NULL::text[]"
	}
	if len(cols) == 1 {
		return fmt.Sprintf("(SELECT ARRAY[max(%s)::text] FROM %s HAVING count(*) > 0)", cols[0], src)
	}
	texts, ord := make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		texts[i] = "l." + c + "::text"
		ord[i] = c + " DESC"
	}
	return fmt.Sprintf("(SELECT ARRAY[%s] FROM (SELECT %s FROM %s ORDER BY %s LIMIT 1) AS l)",
		strings.Join(texts, ", "), strings.Join(cols, ", "), src, strings.Join(ord, ", "))
}

// ctidDelete is the statement for plain tables: the batch is one array of
// ctids, the DELETE a TID scan. The cursor comes from the deleted rows; it is
// only used when every selected row was deleted, and then they are the same
// rows.
func ctidDelete(tbl, where, order, cond string, keys []column, n int) string {
	ret := "1"
	cols := make([]string, len(keys))
	if len(keys) > 0 {
		r := make([]string, len(keys))
		for i, c := range keys {
			cols[i] = "k" + strconv.Itoa(i)
			r[i] = ref("t", c.Name) + " AS " + cols[i]
		}
		ret = strings.Join(r, ", ")
	}
	return fmt.Sprintf(`WITH s AS MATERIALIZED (
  SELECT ARRAY(SELECT t.ctid FROM %[1]s AS t
  WHERE %[2]s%[3]s
  LIMIT %[4]d) AS tids
), d AS (
  DELETE FROM %[1]s AS t
  WHERE t.ctid = ANY((SELECT s.tids FROM s)::tid[])
    AND %[5]s
  RETURNING %[6]s
)
SELECT (SELECT cardinality(s.tids) FROM s), (SELECT count(*) FROM d), %[7]s`,
		tbl, where, order, n, cond, ret, lastKey("d", cols))
}

// keyDelete is the statement for partitioned tables (and the key shape):
// the batch carries primary key, walk key and partition key columns, and the
// DELETE finds its rows by primary key.
func keyDelete(p *plan, tbl, where, order string, keys []column, n int) (string, error) {
	var carry []column
	alias := map[string]string{}
	want := append(slices.Clone(p.pk), keys...)
	if p.t.partKey != "" {
		pc, err := p.t.col(p.desc, p.t.partKey)
		if err != nil {
			return "", err
		}
		want = append(want, pc)
	}
	for _, c := range want {
		if _, ok := alias[c.Name]; !ok {
			alias[c.Name] = "c" + strconv.Itoa(len(carry))
			carry = append(carry, c)
		}
	}
	sel := make([]string, len(carry))
	for i, c := range carry {
		sel[i] = ref("t", c.Name) + " AS " + alias[c.Name]
	}
	l, r := make([]string, len(p.pk)), make([]string, len(p.pk))
	for i, c := range p.pk {
		l[i], r[i] = ref("t", c.Name), alias[c.Name]
	}
	in := fmt.Sprintf("(%s) IN (SELECT %s FROM b)", strings.Join(l, ", "), strings.Join(r, ", "))
	var addr string
	if pk := p.t.partKey; pk != "" {
		addr = fmt.Sprintf("%[1]s >= (SELECT min(%[2]s) FROM b) AND %[1]s <= (SELECT max(%[2]s) FROM b)\n    AND %[3]s",
			ref("t", pk), alias[pk], in)
	} else {
		first := p.pk[0]
		addr = fmt.Sprintf("%s = ANY(ARRAY(SELECT b.%s FROM b))", ref("t", first.Name), alias[first.Name])
		if len(p.pk) > 1 {
			addr += "\n    AND " + in
		}
	}
	cols := make([]string, len(keys))
	for i, c := range keys {
		cols[i] = alias[c.Name]
	}
	return fmt.Sprintf(`WITH b AS MATERIALIZED (
  SELECT %[1]s
  FROM %[2]s AS t
  WHERE %[3]s%[4]s
  LIMIT %[5]d
), d AS (
  DELETE FROM %[2]s AS t
  WHERE %[6]s
    AND %[7]s
  RETURNING 1
)
SELECT (SELECT count(*) FROM b), (SELECT count(*) FROM d), %[8]s`,
		strings.Join(sel, ", "), tbl, where, order, n, addr, p.cond, lastKey("b", cols)), nil
}
