package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-dev/lethe/internal/datastore"
)

const (
	// DefaultBatchSize is used when an Operation leaves BatchSize at zero.
	DefaultBatchSize = 1000
	// MaxBatchSize caps BatchSize (the API's maximum).
	MaxBatchSize = 100000
)

// mode is how batches walk the collection. It is fixed by the first batch and
// recorded in the cursor, so a resumed job walks the same way even if an index
// appeared or disappeared in between.
type mode string

const (
	// modeUnbounded: delete by subject. Every batch takes the first n
	// matching rows with no lower bound; deleted rows are gone, so nothing is
	// visited twice and nothing, not even a row inserted for the subject
	// while the job runs, is left behind.
	modeUnbounded mode = "s"
	// modeTime: delete by age along an index on the timestamp. The lower
	// bound is inclusive (ts >= last ts): rows of the last timestamp that are
	// still there are simply found again.
	modeTime mode = "t"
	// modeTimeKey: anonymize by age along an index on the timestamp. The
	// bound is strict on (ts, primary key), so no row is masked twice.
	modeTimeKey mode = "tk"
	// modeKey: strict bound on the primary key (anonymize by subject, or no
	// usable index on the timestamp).
	modeKey mode = "k"
)

// cursorState is the JSON behind Batch.Cursor.
type cursorState struct {
	V     int      `json:"v"`
	Table string   `json:"t"`           // tag of table and action, catches a cursor handed to another operation
	Mode  mode     `json:"m,omitempty"` // walk, fixed by the first batch
	Parts bool     `json:"p,omitempty"` // partition phase over (or not applicable)
	Key   []string `json:"k,omitempty"` // text of the last key columns (see mode)
	Done  bool     `json:"d,omitempty"` // nothing left; the key is dropped
	// Width, in microseconds, of the timestamp range the next estimated
	// range delete takes (modeTime only; 0: find the bound exactly).
	// Cursors written before it existed simply lack it.
	Width int64 `json:"w,omitempty"`
}

func (c cursorState) encode() string {
	b, _ := json.Marshal(c)
	return string(b)
}

func decodeCursor(desc, s string) (cursorState, error) {
	var c cursorState
	if s == "" {
		return c, nil
	}
	if err := json.Unmarshal([]byte(s), &c); err != nil || c.V != 1 {
		// The cursor holds key values: never quote it.
		return c, invalid(desc, "cursor is not a cursor of this driver")
	}
	if c.Width < 0 || c.Width > maxWidth || (c.Width > 0 && c.Mode != modeTime) {
		return c, invalid(desc, "cursor carries an invalid range width")
	}
	return c, nil
}

func tableTag(k tableKey, del bool) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(k.schema + "\x00" + k.name + "\x00" + strconv.FormatBool(del)))
	return strconv.FormatUint(uint64(h.Sum32()), 36)
}

// modes lists the walks valid for o, the preferred one first.
func modes(o datastore.Operation, p *plan) []mode {
	switch {
	case o.Delete && p.subject:
		return []mode{modeUnbounded}
	case p.subject:
		return []mode{modeKey}
	case o.Delete && p.t.leading[p.ts.Name]:
		return []mode{modeTime, modeKey}
	case o.Delete:
		return []mode{modeKey, modeTime}
	case p.t.leading[p.ts.Name]:
		return []mode{modeTimeKey, modeKey}
	default:
		return []mode{modeKey, modeTimeKey}
	}
}

// keyCols are the columns a mode orders by and keeps in the cursor.
func (p *plan) keyCols(m mode) []column {
	switch m {
	case modeTime:
		return []column{*p.ts}
	case modeTimeKey:
		cols := []column{*p.ts}
		for _, c := range p.pk {
			if c.Name != p.ts.Name {
				cols = append(cols, c)
			}
		}
		return cols
	case modeKey:
		return p.pk
	}
	return nil
}

// lowerBound is the cursor condition on alias t.
func lowerBound(desc string, a *args, m mode, keys []column, key []string) (string, error) {
	if len(key) == 0 || m == modeUnbounded {
		return "", nil
	}
	if len(key) != len(keys) {
		return "", invalid(desc, "cursor does not match the collection's key")
	}
	phs := make([]string, len(key))
	for i, k := range key {
		phs[i] = a.add(k) + "::text::" + keys[i].castType
	}
	if m == modeTime {
		return fmt.Sprintf("%s >= %s", ref("t", keys[0].Name), phs[0]), nil
	}
	refs := make([]string, len(keys))
	for i, c := range keys {
		refs[i] = ref("t", c.Name)
	}
	cond := fmt.Sprintf("(%s) > (%s)", strings.Join(refs, ", "), strings.Join(phs, ", "))
	if m == modeTimeKey && len(keys) > 1 {
		// Gives an index on the timestamp alone a start key; the row
		// comparison then only breaks ties.
		cond = fmt.Sprintf("%s >= %s AND %s", refs[0], phs[0], cond)
	}
	return cond, nil
}

func orderBy(alias string, keys []column, desc bool) string {
	parts := make([]string, len(keys))
	for i, c := range keys {
		parts[i] = ref(alias, c.Name)
		if desc {
			parts[i] += " DESC"
		}
	}
	return strings.Join(parts, ", ")
}

func batchSize(n int) int {
	switch {
	case n <= 0:
		return DefaultBatchSize
	case n > MaxBatchSize:
		return MaxBatchSize
	}
	return n
}

// Count returns how many records the operation would touch now: the same
// condition Execute uses, without cursor or limit, in a read-only
// transaction. On static data it equals the sum of Execute's Affected.
func (d *Driver) Count(ctx context.Context, o datastore.Operation) (int64, error) {
	p, err := d.plan(ctx, "count", o)
	if err != nil {
		return 0, err
	}
	sql := "SELECT count(*) FROM " + p.t.key.ident() + " AS t\nWHERE " + p.cond
	var n int64
	err = d.oneShot(ctx, p.desc, true, sql, p.a.vals, &n)
	d.forgetOnNotFound(err, p.keys...)
	return n, err
}

// Total returns the exact number of rows of the collection.
func (d *Driver) Total(ctx context.Context, c datastore.Collection) (int64, error) {
	key, err := keyOf("total", c)
	if err != nil {
		return 0, err
	}
	var n int64
	err = d.oneShot(ctx, "total of "+key.ident(), true, "SELECT count(*) FROM "+key.ident(), nil, &n)
	d.forgetOnNotFound(err, key)
	return n, err
}

// Execute runs one batch of o from cursor, in its own transaction. See the
// package documentation for the statements and why resuming is exact.
func (d *Driver) Execute(ctx context.Context, o datastore.Operation, cursor string) (datastore.Batch, error) {
	verb := "anonymize"
	if o.Delete {
		verb = "delete"
	}
	key, err := keyOf(verb, o.Collection)
	if err != nil {
		return datastore.Batch{}, err
	}
	desc := verb + " on " + key.ident()
	cur, err := decodeCursor(desc, cursor)
	if err != nil {
		return datastore.Batch{}, err
	}
	tag := tableTag(key, o.Delete)
	if cursor != "" && cur.Table != tag {
		return datastore.Batch{}, invalid(desc, "cursor belongs to another operation")
	}
	if cur.Done {
		return datastore.Batch{Cursor: cursor, Done: true}, nil
	}

	p, err := d.plan(ctx, verb, o)
	if err != nil {
		return datastore.Batch{}, err
	}
	valid := modes(o, p)
	if cur.Mode == "" {
		cur.Mode = valid[0]
	} else if !slices.Contains(valid, cur.Mode) {
		return datastore.Batch{}, invalid(desc, "cursor belongs to another operation")
	}
	cur.V, cur.Table = 1, tag

	var fields []maskField
	if !o.Delete {
		if fields, err = maskFields(p, o); err != nil {
			return datastore.Batch{}, err
		}
	}

	if !cur.Parts {
		if partitionPath(o, p) {
			n, dropped, err := d.dropExpiredPartition(ctx, p)
			if err != nil {
				d.forgetOnNotFound(err, p.keys...)
				return datastore.Batch{}, err
			}
			if dropped {
				return datastore.Batch{Affected: n, PartitionsDropped: 1, Cursor: cur.encode()}, nil
			}
		}
		cur.Parts = true
	}

	n := batchSize(o.BatchSize)
	var b datastore.Batch
	if o.Delete {
		b, err = d.deleteBatch(ctx, p, &cur, n)
	} else {
		b, err = d.anonymizeBatch(ctx, p, fields, &cur, n)
	}
	if err != nil {
		d.forgetOnNotFound(err, p.keys...)
		return datastore.Batch{}, err
	}
	if cur.Done {
		cur.Key = nil
	}
	b.Done = cur.Done
	b.Cursor = cur.encode()
	return b, nil
}

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

// deleteBatch selects up to n matching rows after the cursor in key order and
// deletes them, in one statement. On a plain table:
//
//	WITH s AS MATERIALIZED (SELECT ARRAY(SELECT t.ctid FROM tbl AS t
//	                        WHERE <cond> AND <after cursor> ORDER BY <key> LIMIT n) AS tids),
//	     d AS (DELETE FROM tbl AS t WHERE t.ctid = ANY((SELECT tids FROM s)::tid[])
//	           AND <cond> RETURNING <key>)
//	SELECT cardinality(tids), count(d), <greatest key of d as text>
//
// On a partitioned table, where a ctid is only unique within one partition,
// the batch is a CTE b of primary key, walk key and partition key columns and
// the DELETE finds rows by primary key, bounding the partition key by the
// batch's range so the executor prunes every other partition:
// WHERE t.part >= (SELECT min(part) FROM b) AND t.part <= (SELECT max(part) FROM b)
// AND (t.pk1, …) IN (SELECT pk1, … FROM b). (SetDeleteShape(DeleteShapeKey) on
// a plain table uses WHERE t.pk1 = ANY(ARRAY(SELECT pk1 FROM b)) instead of
// the partition bounds.)
//
// The condition is repeated in the DELETE so that a row changed by a
// concurrent transaction between the scan and the delete is re-checked on
// its new version (READ COMMITTED re-evaluates the DELETE's own WHERE) and
// left alone if it no longer matches; with ctids, a row updated in between
// has a new ctid and is left alone too. If fewer rows were deleted than
// selected the cursor does not advance, so the next batch looks at the same
// range again; the operation is done only when a batch selected fewer than n
// rows and deleted all of them.
func (d *Driver) deleteBatch(ctx context.Context, p *plan, cur *cursorState, n int) (datastore.Batch, error) {
	a := args{vals: slices.Clone(p.a.vals)}
	keys := p.keyCols(cur.Mode)
	lower, err := lowerBound(p.desc, &a, cur.Mode, keys, cur.Key)
	if err != nil {
		return datastore.Batch{}, err
	}
	where := p.cond
	if lower != "" {
		where += "\n  AND " + lower
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
	advance(cur, selected, deleted, last, n)
	return datastore.Batch{Affected: deleted}, nil
}

// advance moves the cursor after a batch that selected and deleted rows.
func advance(cur *cursorState, selected, deleted int64, last []string, n int) {
	switch {
	case deleted < selected:
		// Some selected rows changed before they could be deleted: look at
		// the same range again.
	case selected < int64(n):
		cur.Done = true
	case cur.Mode != modeUnbounded:
		cur.Key = last
	}
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

// boundSetting is the transaction-local setting through which a range
// delete batch hands its upper bound from the SELECT that finds it to the
// DELETE that follows in the same pipeline.
const boundSetting = "lethe.batch_bound"

// Estimated range deletes (see rangeDeleteBatch).
const (
	// fill is the share of the batch size an estimated range aims at,
	// leaving room for the density to vary from one range to the next.
	fill = 0.9
	// maxGrowth caps how much wider a range is than the one before, so a
	// sparse stretch does not send the next range far into dense rows.
	maxGrowth = 4
	// maxWidth caps a range width (µs, about 3,000 years).
	maxWidth = int64(1e17)
	// estimateAttempts is how many estimated ranges a batch tries (each
	// retry narrower) before it finds its bound exactly.
	estimateAttempts = 2
)

// rangeAttempt is one estimated range DELETE, for the tests' hook.
type rangeAttempt struct {
	Hi        string // upper bound (exclusive), as text
	Deleted   int64  // rows the DELETE affected
	Committed bool   // false: rolled back
	TimedOut  bool   // the DELETE hit the statement timeout (and was rolled back)
}

// nextWidth is the width of the range after one of width µs in which
// deleted rows were deleted: the same density, aiming at fill × n rows,
// growing at most maxGrowth times. 0 (no density known) means: find the
// bound exactly.
func nextWidth(width float64, deleted int64, n int) int64 {
	if width <= 0 || deleted <= 0 {
		return 0
	}
	w := width * min(maxGrowth, fill*float64(n)/float64(deleted))
	return int64(min(w, float64(maxWidth)))
}

// rangeDeleteBatch is a delete batch along an index on the timestamp, with a
// plain range DELETE: DELETE FROM tbl AS t WHERE <cond> AND t.ts >= $cursor
// AND t.ts < <bound>. Per row it costs what the unbounded DELETE costs. The
// bound is found one of two ways.
//
// Estimated (when the cursor carries a width, i.e. after the first batch):
// the bound is the cursor plus the width, which the previous batch derived
// from its own density (rows deleted per unit of timestamp range) to hold
// about 90% of the batch size, at most the cutoff. No index pass is needed;
// but the DELETE's row count is only known after it ran, so the batch takes
// two round trips (BEGIN, SET LOCALs, bound, DELETE; then COMMIT or
// ROLLBACK): when the DELETE affected more than n rows it is rolled back and
// retried once with a range narrowed to the density it found, so no
// committed batch ever touches more than n rows. If the retry overshoots too
// (many rows on one timestamp, a burst), or a DELETE hits the statement
// timeout, the batch finds its bound exactly instead. A range in which
// nothing was deleted (a gap, or only held rows) also leaves the next batch
// to the exact bound.
//
// Exact (the first batch, a cursor without a width, date columns): one
// transaction, pipelined in one round trip. It reads from the index alone the
// timestamp of the (n+1)-th row at or after the cursor (before the cutoff),
// keeps it in a transaction-local setting, and deletes the matching rows
// strictly before it:
//
//	BEGIN; SET LOCAL …;
//	SELECT s.b::text, set_config('lethe.batch_bound', coalesce(s.b::text, 'infinity'), true), <width of [lo, b)>
//	  FROM (SELECT (SELECT t.ts FROM tbl AS t WHERE t.ts < $cutoff AND t.ts >= $cursor
//	                ORDER BY t.ts OFFSET n LIMIT 1) AS b, $cursor AS lo) AS s;
//	DELETE FROM tbl AS t WHERE <cond> AND t.ts >= $cursor
//	  AND t.ts < current_setting('lethe.batch_bound')::timestamptz;
//	COMMIT
//
// (the first batch takes the first expired row's timestamp as lo). The index
// pass costs about a quarter of the DELETE; its range and row count seed the
// width of the next batch.
//
// Either way current_setting is stable, so the bound is an index condition of
// the DELETE like a parameter, and the bound goes out and back as text in the
// same session, so TimeZone and DateStyle cancel out. A batch touches at most
// n rows and needs no separate selection: a concurrently changed row is
// re-checked by the DELETE itself. The next batch starts at the bound. When
// the bound is the cutoff (estimated) or there is none because at most n rows
// are left (exact, 'infinity'), the DELETE took the rest and the operation is
// done: that statement deleted every row that matched at its snapshot. When
// more than n rows share the cursor's timestamp (or every row of the range is
// held) the exact range deletes nothing, so the batch then deletes the first
// n matching rows at or after the cursor by ctid (or key) instead, in a
// second transaction. (One statement with the bound in a CTE costs about 50%
// more server CPU per row, measured: the DELETE then has to go through a CTE
// with RETURNING to report its count.)
func (d *Driver) rangeDeleteBatch(ctx context.Context, p *plan, cur *cursorState, n int, a args, where string) (datastore.Batch, error) {
	ts := ref("t", p.ts.Name)
	del := fmt.Sprintf("DELETE FROM %s AS t\nWHERE %s\n  AND %s < current_setting('%s')::%s",
		p.t.key.ident(), where, ts, boundSetting, p.cutoff.sqlType)
	if cur.Width > 0 && len(cur.Key) == 1 && p.ts.base != "date" && !strings.Contains(cur.Key[0], "infinity") {
		b, ok, err := d.estimatedDeleteBatch(ctx, p, cur, n, a, del)
		if err != nil || ok {
			return b, err
		}
	}
	cur.Width = 0

	var ba args
	bconds := []string{fmt.Sprintf("%s < %s::%s", ts, ba.add(p.cutoff.value), p.cutoff.sqlType)}
	lo := fmt.Sprintf("(SELECT %[1]s FROM %[2]s AS t WHERE %[3]s ORDER BY %[1]s LIMIT 1)", ts, p.t.key.ident(), bconds[0])
	if len(cur.Key) == 1 {
		lo = fmt.Sprintf("%s::text::%s", ba.add(cur.Key[0]), p.ts.castType)
		bconds = append(bconds, fmt.Sprintf("%s >= %s", ts, lo))
	}
	width := "NULL::float8"
	if p.ts.base != "date" {
		width = "CASE WHEN isfinite(s.lo) AND isfinite(s.b) THEN (extract(epoch FROM s.b - s.lo) * 1000000)::float8 END"
	}
	// The text conversion stays outside the scan: rows skipped by OFFSET
	// are projected too.
	boundSQL := fmt.Sprintf(`SELECT s.b::text, set_config('%[5]s', coalesce(s.b::text, 'infinity'), true), %[6]s
FROM (SELECT (SELECT %[1]s FROM %[2]s AS t
  WHERE %[3]s
  ORDER BY %[1]s OFFSET %[4]d LIMIT 1) AS b, %[7]s AS lo) AS s`,
		ts, p.t.key.ident(), strings.Join(bconds, " AND "), n, boundSetting, width, lo)

	bound, w, deleted, err := d.boundedDelete(ctx, p.desc, boundSQL, ba.vals, del, a.vals)
	if err != nil {
		return datastore.Batch{}, err
	}
	switch {
	case bound == nil:
		cur.Done = true
	case deleted > 0:
		cur.Key = []string{*bound}
		if w != nil {
			cur.Width = nextWidth(*w, deleted, n)
		}
	default:
		sql, err := d.batchDeleteSQL(p, where, "\n  ORDER BY "+ts, []column{*p.ts}, n)
		if err != nil {
			return datastore.Batch{}, err
		}
		var selected int64
		var last []string
		if err := d.oneShot(ctx, p.desc, false, sql, a.vals, &selected, &deleted, &last); err != nil {
			return datastore.Batch{}, err
		}
		advance(cur, selected, deleted, last, n)
	}
	return datastore.Batch{Affected: deleted}, nil
}

// estimatedDeleteBatch tries the estimated range of rangeDeleteBatch. ok is
// false when the batch has to find its bound exactly; nothing was changed
// then.
func (d *Driver) estimatedDeleteBatch(ctx context.Context, p *plan, cur *cursorState, n int, a args, del string) (datastore.Batch, bool, error) {
	// The upper bound: the cursor plus the width, or the cutoff if that is
	// nearer. NULL when the cursor is not finite. The CASE keeps the
	// subtraction and the addition from overflowing.
	hiSQL := fmt.Sprintf(`SELECT s.h::text, s.h >= s.c, set_config('%[1]s', coalesce(s.h::text, '-infinity'), true)
FROM (SELECT CASE WHEN NOT isfinite(l.lo) THEN NULL
    WHEN l.lo >= l.c OR extract(epoch FROM l.c - l.lo) * 1000000 <= $3::float8 THEN l.c
    ELSE l.lo + $3::float8 * interval '1 microsecond' END AS h, l.c
  FROM (SELECT $1::text::%[2]s AS lo, $2::%[3]s AS c) AS l) AS s`, boundSetting, p.ts.castType, p.cutoff.sqlType)
	width := float64(cur.Width)
	for range estimateAttempts {
		if width < 1 {
			break
		}
		hi, final, deleted, err := d.tryRange(ctx, p.desc, hiSQL, []any{cur.Key[0], p.cutoff.value, width}, del, a.vals, n)
		switch {
		case errors.Is(err, errRangeTimeout):
			return datastore.Batch{}, false, nil
		case err != nil:
			return datastore.Batch{}, false, err
		case hi == nil:
			return datastore.Batch{}, false, nil
		case deleted <= int64(n):
			cur.Key = []string{*hi}
			cur.Done = final
			cur.Width = nextWidth(width, deleted, n)
			return datastore.Batch{Affected: deleted}, true, nil
		}
		width = min(width/2, width*fill*float64(n)/float64(deleted))
	}
	return datastore.Batch{}, false, nil
}

// errRangeTimeout: an estimated range DELETE hit the statement timeout.
var errRangeTimeout = errors.New("estimated range hit the statement timeout")

// tryRange runs BEGIN, the SET LOCALs, hiSQL and del as one pipeline, then
// COMMIT when hiSQL gave a bound and del affected at most n rows, ROLLBACK
// otherwise. It returns the bound (nil if none), whether it is the cutoff,
// and del's row count. A statement timeout while the caller's context is
// still live is errRangeTimeout (the transaction rolled back).
func (d *Driver) tryRange(ctx context.Context, desc, hiSQL string, hvals []any, del string, dvals []any, n int) (*string, bool, int64, error) {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, false, 0, classify(desc, err)
	}
	defer conn.Release()
	begin := d.begin(false)
	b := &pgx.Batch{}
	for _, s := range begin {
		b.Queue(s)
	}
	b.Queue(hiSQL, hvals...)
	b.Queue(del, dvals...)
	var hi *string
	var final *bool
	var deleted int64
	br := conn.SendBatch(ctx, b)
	err = func() error {
		for range begin {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		var set string
		if err := br.QueryRow().Scan(&hi, &final, &set); err != nil {
			return err
		}
		tag, err := br.Exec()
		deleted = tag.RowsAffected()
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	commit := err == nil && hi != nil && deleted <= int64(n)
	if err == nil {
		end := "ROLLBACK"
		if commit {
			end = "COMMIT"
		}
		_, err = conn.Exec(ctx, end)
	}
	if err != nil {
		rollback(ctx, conn)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == pgerrcode.QueryCanceled && ctx.Err() == nil {
			err = errRangeTimeout
			if d.onRangeAttempt != nil {
				d.onRangeAttempt(rangeAttempt{TimedOut: true})
			}
		} else {
			err = classify(desc, err)
		}
		return nil, false, 0, err
	}
	if d.onRangeAttempt != nil && hi != nil {
		d.onRangeAttempt(rangeAttempt{Hi: *hi, Deleted: deleted, Committed: commit})
	}
	return hi, final != nil && *final, deleted, nil
}

// boundedDelete runs BEGIN, the SET LOCALs, boundSQL, del and COMMIT as one
// pipeline (one round trip). It returns boundSQL's first and third columns
// and del's row count.
func (d *Driver) boundedDelete(ctx context.Context, desc, boundSQL string, bvals []any, del string, dvals []any) (*string, *float64, int64, error) {
	begin := d.begin(false)
	b := &pgx.Batch{}
	for _, s := range begin {
		b.Queue(s)
	}
	b.Queue(boundSQL, bvals...)
	b.Queue(del, dvals...)
	b.Queue("COMMIT")
	var bound *string
	var width *float64
	var deleted int64
	br := d.pool.SendBatch(ctx, b)
	err := func() error {
		for range begin {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		var set string
		if err := br.QueryRow().Scan(&bound, &set, &width); err != nil {
			return err
		}
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		deleted = tag.RowsAffected()
		_, err = br.Exec()
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return bound, width, deleted, classify(desc, err)
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
		// Bounding the partition key by the batch's own range lets the
		// executor prune every other partition (a key = ANY(...) probe
		// would visit each partition's index).
		addr = fmt.Sprintf("%[1]s >= (SELECT min(%[2]s) FROM b) AND %[1]s <= (SELECT max(%[2]s) FROM b)\n    AND %[3]s",
			ref("t", pk), alias[pk], in)
	} else {
		// The leading key column as = ANY(array) makes the planner probe
		// the primary key index once per batch row; a plain join against
		// b lets it hash-join every row matching the condition.
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

// partitionPath says whether o may drop whole partitions: a plain age-based
// delete (no subjects, no holds) on a table range-partitioned on exactly the
// timestamp column.
func partitionPath(o datastore.Operation, p *plan) bool {
	return o.Delete && p.cutoff != nil && len(o.Subjects) == 0 && len(o.Held) == 0 &&
		p.t.rangePartitioned && p.t.partKey != "" && p.t.partKey == p.ts.Name
}

// partitionBound extracts the upper bound literal of a single-column range
// partition from pg_get_expr(relpartbound): FOR VALUES FROM (...) TO ('…').
// MAXVALUE and DEFAULT partitions do not match and are never dropped.
const partitionBound = `^FOR VALUES FROM \(.*\) TO \('([^']*)'\)$`

// dropExpiredPartition drops the first partition whose upper bound is at or
// before the cutoff, in one transaction: lock the partition against writes
// and count its rows for Affected, DETACH it (which takes the parent's lock,
// bounded by lock_timeout), DROP it. Every row of such a partition is
// strictly before its upper bound, hence before the cutoff. The bound literal
// is read and cast back in the same session, so the session's TimeZone and
// DateStyle cancel out. The count runs under the statement timeout like any
// batch statement: a partition too large to count within it fails with
// ErrUnavailable until the timeout is raised.
func (d *Driver) dropExpiredPartition(ctx context.Context, p *plan) (int64, bool, error) {
	var affected int64
	var dropped bool
	keyType := "timestamptz"
	switch p.ts.base {
	case "timestamp":
		keyType = "timestamp"
	case "date":
		keyType = "date"
	}
	find := fmt.Sprintf(`
SELECT n.nspname, c.relname
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (SELECT substring(pg_catalog.pg_get_expr(c.relpartbound, c.oid) FROM $2) AS ub) AS x
WHERE i.inhparent = $1::text::regclass AND x.ub IS NOT NULL AND x.ub::%[1]s <= $3::%[2]s
ORDER BY x.ub::%[1]s
LIMIT 1`, keyType, p.cutoff.sqlType)
	err := d.inTx(ctx, "drop expired partition of "+p.t.key.ident(), false, func(tx querier) error {
		var nsp, rel string
		err := tx.QueryRow(ctx, find, p.t.key.ident(), partitionBound, p.cutoff.value).Scan(&nsp, &rel)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		child := pgx.Identifier{nsp, rel}.Sanitize()
		// Counting under a SHARE lock on the partition alone keeps rows from
		// being added or removed while the application keeps using the
		// parent; the parent is locked exclusively only by DETACH, for the
		// DETACH and the DROP.
		if _, err := tx.Exec(ctx, "LOCK TABLE ONLY "+child+" IN SHARE MODE"); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+child).Scan(&affected); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+p.t.key.ident()+" DETACH PARTITION "+child); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+child); err != nil {
			return err
		}
		dropped = true
		return nil
	})
	return affected, dropped, err
}
