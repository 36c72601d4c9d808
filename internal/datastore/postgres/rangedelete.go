package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-dev/lethe/internal/datastore"
)

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

// rangeDeleteBatch is a delete batch of the timestamp walk: one range
// DELETE from the cursor to a bound, estimated from the cursor's width or
// read from the index (see "Statements" in the package documentation). It
// deletes at most n rows and moves cur to the bound with the width for the
// next batch; when the range deletes nothing it deletes the first n
// matching rows by ctid or key instead.
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
	cur.Width, cur.Size = 0, 0

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
			cur.Width, cur.Size = nextWidth(*w, deleted, n), n
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
		if err := advance(p.desc, cur, selected, deleted, last, n); err != nil {
			return datastore.Batch{Affected: deleted}, err
		}
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
	if cur.Size > 0 && cur.Size != n {
		// The width aims at another batch size (adaptive batches): the
		// same density, this batch's size, growing at most maxGrowth times.
		width = min(width*float64(n)/float64(cur.Size), width*maxGrowth, float64(maxWidth))
	}
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
			cur.Width, cur.Size = nextWidth(width, deleted, n), n
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
