package redis

import (
	"context"
	"fmt"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// chunk is the most keys per UNLINK, EXISTS or script call.
const chunk = 1000

// Execute runs one batch: about op.BatchSize selected keys from cursor on.
func (d *Driver) Execute(ctx context.Context, op datastore.Operation, cursor string) (datastore.Batch, error) {
	pl, err := newPlan(op, false)
	if err != nil {
		return datastore.Batch{Cursor: cursor}, err
	}
	keys, next, done, err := d.collect(ctx, pl, cursor, pl.batch, nil)
	if err != nil {
		return datastore.Batch{Cursor: cursor}, err
	}
	n, err := d.apply(ctx, pl, keys, false)
	if err != nil {
		return datastore.Batch{Affected: n, Cursor: cursor}, err
	}
	b := datastore.Batch{Affected: n, Cursor: next, Done: done}
	if done {
		b.Cursor = ""
	}
	return b, nil
}

// Count returns how many records Execute would affect now, scanning the
// whole collection without changing it.
func (d *Driver) Count(ctx context.Context, op datastore.Operation) (int64, error) {
	pl, err := newPlan(op, false)
	if err != nil {
		return 0, err
	}
	return d.count(ctx, pl, func(ctx context.Context, keys []string) (int64, error) {
		return d.apply(ctx, pl, keys, true)
	})
}

// count runs fn over every selected key, each once, in chunks.
func (d *Driver) count(ctx context.Context, pl *plan, fn func(context.Context, []string) (int64, error)) (int64, error) {
	seen := newKeySet()
	var total int64
	cursor := ""
	for {
		keys, next, done, err := d.collect(ctx, pl, cursor, chunk, seen)
		if err != nil {
			return 0, err
		}
		if len(keys) > 0 {
			n, err := fn(ctx, keys)
			if err != nil {
				return 0, err
			}
			total += n
		}
		if done {
			return total, nil
		}
		cursor = next
	}
}

// collect gathers about budget selected keys from cursor on. seen, when not
// nil, drops keys already returned by an earlier call.
func (d *Driver) collect(ctx context.Context, pl *plan, cursor string, budget int, seen *keySet) (keys []string, next string, done bool, err error) {
	pos, err := pl.parseCursor(cursor)
	if err != nil {
		return nil, "", false, err
	}
	var buf []string
	var ok bool
	if pl.keyMode {
		i := int(pos)
		for ; i < len(pl.keys) && len(keys) < budget; i++ {
			if buf, ok = pl.selects(pl.keys[i], buf); ok {
				keys = append(keys, pl.keys[i])
			}
		}
		return keys, pl.formatCursor(uint64(i)), i == len(pl.keys), nil
	}
	count := int64(min(budget, maxScanCount))
	batch := map[string]struct{}{}
	for calls := 0; calls < maxScanCalls; calls++ {
		page, nextPos, err := d.client.Scan(ctx, pos, pl.match, count).Result()
		if err != nil {
			return nil, "", false, classify("scan", err)
		}
		if int64(len(page)) < count/8 && count < sparseScanCount {
			// The pattern is selective: visit more of the keyspace per call
			// (SCAN's COUNT is buckets visited, not keys returned).
			count = min(count*4, sparseScanCount)
		}
		for _, k := range page {
			if buf, ok = pl.selects(k, buf); !ok {
				continue
			}
			if _, dup := batch[k]; dup {
				continue
			}
			if seen != nil && !seen.add(k) {
				continue
			}
			batch[k] = struct{}{}
			keys = append(keys, k)
		}
		pos = nextPos
		if pos == 0 || len(keys) >= budget {
			break
		}
	}
	return keys, pl.formatCursor(pos), pos == 0, nil
}

// apply deletes, trims or anonymizes the records of keys (or, when dry,
// counts what it would).
func (d *Driver) apply(ctx context.Context, pl *plan, keys []string, dry bool) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	if !pl.del {
		return d.anonymize(ctx, pl, keys, dry)
	}
	switch pl.source {
	case "":
		return d.eraseKeys(ctx, pl, keys, dry)
	case sourceHashField:
		if !dry {
			return d.ageUnlink(ctx, pl, keys)
		}
		cands, _, err := d.hashAged(ctx, pl, keys)
		return int64(len(cands)), err
	case sourceIdleTime:
		if dry {
			cands, err := d.idleAged(ctx, pl, keys)
			return int64(len(cands)), err
		}
		return d.idleUnlink(ctx, pl, keys)
	case sourceSortedSetScore:
		return d.zTrim(ctx, pl, keys, dry)
	case sourceStreamID:
		return d.xTrim(ctx, pl, keys, dry)
	}
	return 0, fmt.Errorf("%w: redis: timestamp source %q", datastore.ErrInvalid, pl.source)
}
