package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/datastore"
)

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
// before the cutoff, in one transaction: it locks the partition against
// writes, counts its rows, DETACHes it (taking the parent's lock, bounded by
// lock_timeout) and DROPs it. It returns the rows counted and whether a
// partition was dropped (see "Partition fast path" in the package
// documentation).
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
