package mysql

import (
	"context"
	"database/sql"
	"regexp"
	"strconv"
	"strings"
)

// rangeFunc matches the partition expressions whose RANGE partitions can be
// compared with a cutoff: monotonic functions of one temporal column, as the
// server normalizes them (to_days(`created_at`)).
var rangeFunc = regexp.MustCompile("^(?i)(to_days|to_seconds|unix_timestamp|year)\\((`(?:[^`]|``)+`)\\)$")

// dropExpiredPartitions is the fast path of a purge: on a table partitioned
// by RANGE over the timestamp column, every partition whose whole range lies
// before the cutoff, and which holds no row the batched path would keep (a
// NULL timestamp, a held row), is dropped with one ALTER TABLE … DROP
// PARTITION after its rows are counted. It returns the rows and partitions
// dropped; (0, 0) when the operation or table does not qualify.
//
// Rows written into a dropped partition between the count and the DROP are
// dropped uncounted; they are older than the cutoff, so they would have been
// deleted anyway.
func (d *Driver) dropExpiredPartitions(ctx context.Context, p *plan) (int64, int, error) {
	if p.ts == nil || p.subjects {
		return 0, 0, nil // subject erasures never drop partitions
	}
	parts, err := d.queryPartitions(ctx, p.op, p.t.name)
	if err != nil || len(parts) < 2 {
		return 0, 0, err
	}
	fn := ""
	switch strings.ToUpper(parts[0].method) {
	case "RANGE":
		m := rangeFunc.FindStringSubmatch(parts[0].expression)
		if m == nil || !strings.EqualFold(m[2], quote(p.ts.name)) {
			return 0, 0, nil
		}
		fn = strings.ToUpper(m[1])
	case "RANGE COLUMNS":
		if !strings.EqualFold(strings.TrimSpace(parts[0].expression), quote(p.ts.name)) {
			return 0, 0, nil
		}
	default:
		return 0, 0, nil
	}

	var drop []string
	for _, part := range parts[:len(parts)-1] { // a table keeps at least one partition
		if part.method != parts[0].method || part.expression != parts[0].expression {
			return 0, 0, nil
		}
		before, err := d.partitionBefore(ctx, p, fn, part.description)
		if err != nil {
			return 0, 0, err
		}
		if !before {
			break // bounds ascend: no later partition lies before the cutoff
		}
		keeps, err := d.partitionKeepsRows(ctx, p, part.name)
		if err != nil {
			return 0, 0, err
		}
		if !keeps {
			drop = append(drop, part.name)
		}
	}
	if len(drop) == 0 {
		return 0, 0, nil
	}
	quoted := make([]string, len(drop))
	for i, name := range drop {
		quoted[i] = quote(name)
	}
	var total int64
	// No statement time limit: the count takes as long as the partitions
	// are large, and a limit would make a large partition undroppable.
	q := "SELECT COUNT(*) FROM " + p.qtable + " PARTITION (" + strings.Join(quoted, ", ") + ")"
	if err := d.db.QueryRowContext(ctx, q).Scan(&total); err != nil {
		return 0, 0, classify(p.op, err)
	}
	// DDL: bounded by lock_wait_timeout (metadata lock), not by a statement
	// time limit, which must not interrupt it half-way.
	if _, err := d.db.ExecContext(ctx, "ALTER TABLE "+p.qtable+" DROP PARTITION "+strings.Join(quoted, ", ")); err != nil {
		return 0, 0, classify(p.op, err)
	}
	d.forget(p.t.name)
	return total, len(drop), nil
}

// partitionBefore reports whether every row of a partition bounded by
// "VALUES LESS THAN (bound)" is dated before the cutoff. fn is the partition
// function ("" for RANGE COLUMNS). The server evaluates the function, so its
// semantics (and the session time zone of UNIX_TIMESTAMP) are the table's.
func (d *Driver) partitionBefore(ctx context.Context, p *plan, fn, bound string) (bool, error) {
	bound = strings.TrimSpace(bound)
	if strings.EqualFold(bound, "MAXVALUE") || bound == "" {
		return false, nil
	}
	var q string
	var args []any
	if fn == "" {
		lit, quoted := strings.CutPrefix(bound, "'")
		lit, closed := strings.CutSuffix(lit, "'")
		if !quoted || !closed || strings.ContainsAny(lit, "'\\") {
			return false, nil
		}
		q = "SELECT CAST(? AS DATETIME(6)) <= CAST(? AS DATETIME(6))"
		args = []any{lit, p.cutoffArg}
	} else {
		n, err := strconv.ParseInt(bound, 10, 64)
		if err != nil {
			return false, nil
		}
		q = "SELECT ? <= " + fn + "(?)" // fn is one of rangeFunc's names
		args = []any{n, p.cutoffArg}
	}
	var ok sql.NullBool
	if err := d.db.QueryRowContext(ctx, q, args...).Scan(&ok); err != nil {
		return false, classify(p.op, err)
	}
	return ok.Valid && ok.Bool, nil
}

// partitionKeepsRows reports whether a partition holds a row that the
// batched path would not delete: a timestamp that is NULL or not before the
// cutoff, or a row kept by a legal hold.
func (d *Driver) partitionKeepsRows(ctx context.Context, p *plan, name string) (bool, error) {
	ts := qualified(p.t.name, p.ts.name)
	from := p.qtable + " PARTITION (" + quote(name) + ")"
	checks := []struct {
		cond string
		args []any
	}{{ts + " >= ?", []any{p.cutoffArg}}}
	if p.ts.nullable {
		checks = append(checks, struct {
			cond string
			args []any
		}{ts + " IS NULL", nil})
	}
	if p.held != "" {
		checks = append(checks, struct {
			cond string
			args []any
		}{p.held, p.heldArgs})
	}
	for _, c := range checks {
		var one int
		q := d.stmtPrefix() + "SELECT " + d.selectHint() + "1 FROM " + from + " WHERE " + c.cond + " LIMIT 1"
		err := d.db.QueryRowContext(ctx, q, c.args...).Scan(&one)
		switch err {
		case nil:
			return true, nil
		case sql.ErrNoRows:
		default:
			return false, classify(p.op, err)
		}
	}
	return false, nil
}
