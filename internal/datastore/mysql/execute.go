package mysql

import (
	"context"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// updateChunk bounds the rows one UPDATE of an anonymize batch writes.
const updateChunk = 500

// Count returns how many rows the operation would delete or anonymize now:
// the rows its predicate selects, which on static data is exactly what the
// Execute calls of the operation affect together (dropped partitions
// included). It has no server-side time limit (only ctx): on a large table
// it may take longer than one batch may.
func (d *Driver) Count(ctx context.Context, op datastore.Operation) (_ int64, err error) {
	defer d.lockWait(&err)
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
func (d *Driver) Total(ctx context.Context, c datastore.Collection) (_ int64, err error) {
	defer d.lockWait(&err)
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
func (d *Driver) Execute(ctx context.Context, op datastore.Operation, cursor string) (_ datastore.Batch, err error) {
	defer d.lockWait(&err)
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
