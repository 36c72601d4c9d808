package postgres

import (
	"context"
	"slices"

	"github.com/lethe-dev/lethe/internal/datastore"
)

const (
	// DefaultBatchSize is used when an Operation leaves BatchSize at zero.
	DefaultBatchSize = 1000
	// MaxBatchSize caps BatchSize (the API's maximum).
	MaxBatchSize = 100000
)

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
func (d *Driver) Count(ctx context.Context, o datastore.Operation) (_ int64, err error) {
	defer d.lockWait(&err)
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
func (d *Driver) Total(ctx context.Context, c datastore.Collection) (_ int64, err error) {
	defer d.lockWait(&err)
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
func (d *Driver) Execute(ctx context.Context, o datastore.Operation, cursor string) (_ datastore.Batch, err error) {
	defer d.lockWait(&err)
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
