package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"k8s.io/apimachinery/pkg/types"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
	"github.com/lethe-dev/lethe/internal/health"
	"github.com/lethe-dev/lethe/internal/servers"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// BenchmarkPostgresReplicaLag measures a streaming standby's replay lag
// caused by a purge at a fixed batch size of 1,000 (sampled from the first
// batch until the standby has replayed the last), without a lag limit
// (limits.health.maxReplicationLag "0") and with one
// (LETHE_BENCH_LAG_LIMIT_MS, default 2000).
//
// The standby is configured as a production one: wal_receiver_status_interval
// is PostgreSQL's default of 10s (LETHE_BENCH_STANDBY_STATUS_MS), so it
// reports its replay position to the primary at once only while WAL keeps
// arriving, and every 10s when none does. The lag is measured every 20 ms
// as how long ago the primary wrote the oldest WAL the standby has not
// replayed (the primary's WAL position noted with the time, against the
// standby's own pg_last_wal_replay_lsn(): the true lag, to within 20 ms)
// and, for comparison, sampled every 50 ms as the primary sees it (the
// largest replay_lag of pg_stat_replication, as fresh as the standby's
// last report).
//
// A standby on loopback replays as fast as the primary writes, so it is
// made a slower machine: a regulator pauses and resumes its replay
// (pg_wal_replay_pause/resume every LETHE_BENCH_STANDBY_TICK_MS, default
// 20) so that it replays at most LETHE_BENCH_STANDBY_KBPS KiB of WAL per
// second (default 2048) — a standby that cannot keep up, as on weaker
// hardware or under read load. Between two ticks a resumed standby replays
// at full speed, so a coarser tick makes a burstier standby: at 20 ms it
// replays up to 3.5 MB at once and then stands still for up to 1.7 s.
// The purge is gated exactly as a PurgeJob is (internal/health: the same
// limits with their defaults, checkInterval 250ms unless
// LETHE_BENCH_LAG_CHECK_MS sets it, the same shared reading reused for at
// most the check interval or the verdict's Until, the same wait of a second
// when unhealthy).
//
// LETHE_BENCH_LAG_ROWS sets the table size (default 1,000,000; half expire).
// Reported: the largest replay lag with and without the limit (on the
// standby, and as the primary saw it), the limit, the largest lag over the
// limit, the WAL one batch writes and how long the standby takes to replay
// it, both purges' durations, and what one health reading costs.
func BenchmarkPostgresReplicaLag(b *testing.B) {
	rows := envInt(b, "LETHE_BENCH_LAG_ROWS", 1_000_000)
	limit := time.Duration(envInt(b, "LETHE_BENCH_LAG_LIMIT_MS", 2000)) * time.Millisecond
	rate := float64(envInt(b, "LETHE_BENCH_STANDBY_KBPS", 2048)) * 1024
	var check retentionv1.Timeout
	if os.Getenv("LETHE_BENCH_LAG_CHECK_MS") != "" {
		check = retentionv1.Timeout(strconv.Itoa(envInt(b, "LETHE_BENCH_LAG_CHECK_MS", 250)) + "ms")
	}
	status := time.Duration(envInt(b, "LETHE_BENCH_STANDBY_STATUS_MS", 10000)) * time.Millisecond
	tick := time.Duration(envInt(b, "LETHE_BENCH_STANDBY_TICK_MS", 20)) * time.Millisecond
	const batch = 1000
	// LETHE_BENCH_TRACE names a CSV file for the samples of the true lag
	// (table, ms, primary's WAL position, standby's replay position) and
	// the gate's readings (table-gate, ms, lag ms, bytes behind, healthy,
	// message).
	var trace *os.File
	traceStart := time.Now()
	if p := os.Getenv("LETHE_BENCH_TRACE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		trace = f
	}
	pg, sb := testharness.PostgresWithStandby(b, servers.StandbyOptions{Name: "bench", StatusInterval: status})
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, pg.DSN)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	standby, err := pgxpool.New(ctx, sb.Server.URL(pg.Database))
	if err != nil {
		b.Fatal(err)
	}
	defer standby.Close()
	exec := func(sql string, args ...any) {
		if _, err := admin.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	cutoff := benchStart.Add(time.Duration(rows/2) * time.Second)
	exec(`CREATE TABLE src (id bigint NOT NULL, ts timestamptz NOT NULL, email text, payload text)`)
	exec(`INSERT INTO src SELECT i, $1::timestamptz + i * interval '1 second', 'user' || i || '@example.com', repeat('x', 60)
		FROM generate_series(0, $2 - 1) i`, benchStart, rows)
	d, err := postgres.New(ctx, datastore.Config{
		Type: "PostgreSQL", Host: pg.Host, Port: pg.Port, Database: pg.Database,
		Username: pg.User, Password: pg.Password, TLS: "Disable",
		MaxConnections: 4, StatementTimeout: 5 * time.Second, LockTimeout: time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()

	// caughtUp waits until the standby has replayed all the primary wrote
	// (asked of the standby: the primary hears of it only at its next
	// report).
	caughtUp := func() {
		deadline := time.Now().Add(5 * time.Minute)
		for {
			var current string
			if err := admin.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&current); err != nil {
				b.Fatal(err)
			}
			var lag float64
			if err := standby.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn())::float8`, current).Scan(&lag); err != nil {
				b.Fatal(err)
			}
			if lag <= 0 {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("the standby did not catch up (%.0f bytes behind)", lag)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	type result struct {
		dur            time.Duration
		maxLag         time.Duration // on the standby
		maxReported    time.Duration // the primary's replay_lag
		maxBytes       float64
		reads          []time.Duration
		batches, waits int
		walPerBatch    float64
		throttled      time.Duration
		batchLat       []time.Duration
	}
	// run purges a fresh copy of src with the given maxReplicationLag
	// ("0": no limit) while the regulator slows the standby down and the
	// sampler watches the primary.
	run := func(table string, maxLag retentionv1.LagLimit) result {
		exec(`DROP TABLE IF EXISTS ` + table)
		exec(`CREATE TABLE ` + table + ` AS SELECT * FROM src`)
		exec(`ALTER TABLE ` + table + ` SET (autovacuum_enabled = off)`)
		exec(`ALTER TABLE ` + table + ` ADD PRIMARY KEY (id)`)
		exec(`CREATE INDEX ON ` + table + ` (ts)`)
		exec(`VACUUM ANALYZE ` + table)
		exec(`CHECKPOINT`)
		caughtUp()

		spec := retentionv1.DataStoreSpec{Type: retentionv1.DataStorePostgreSQL}
		spec.Limits.Health.MaxReplicationLag = maxLag
		spec.Limits.Health.CheckInterval = check
		limits, err := health.LimitsFor(&spec)
		if err != nil {
			b.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var maxLagNs, maxReportedNs, maxBytes atomic.Int64
		wg.Add(3)
		go func() { defer wg.Done(); regulate(rctx, b, sb.Server, standby, rate, tick) }()
		go func() {
			defer wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				var lag, bytes float64
				err := admin.QueryRow(rctx, `SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8,
					coalesce(max(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), replay_lsn)), 0)::float8 FROM pg_stat_replication`).Scan(&lag, &bytes)
				if err == nil {
					if ns := int64(lag * 1e9); ns > maxReportedNs.Load() {
						maxReportedNs.Store(ns)
					}
					if int64(bytes) > maxBytes.Load() {
						maxBytes.Store(int64(bytes))
					}
				}
				select {
				case <-rctx.Done():
					return
				case <-tick.C:
				}
			}
		}()

		// The true lag: how long ago the primary wrote the oldest WAL the
		// standby has not replayed, from the primary's WAL position noted
		// every 20 ms and the standby's own replay position.
		go func() {
			defer wg.Done()
			type mark struct {
				at  time.Time
				pos float64
			}
			var marks []mark
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				var pos, replayed float64
				err := admin.QueryRow(rctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8`).Scan(&pos)
				if err == nil {
					err = standby.QueryRow(rctx, `SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8`).Scan(&replayed)
				}
				if err == nil {
					now := time.Now()
					if trace != nil {
						fmt.Fprintf(trace, "%s,%d,%.0f,%.0f\n", table, now.Sub(traceStart).Milliseconds(), pos, replayed)
					}
					marks = append(marks, mark{now, pos})
					// The first mark past the replayed position: that WAL
					// was written after the mark before it.
					for i := range marks {
						if marks[i].pos > replayed {
							since := marks[max(i-1, 0)].at
							if ns := int64(now.Sub(since)); ns > maxLagNs.Load() {
								maxLagNs.Store(ns)
							}
							marks = marks[max(i-1, 0):]
							break
						}
					}
				}
				select {
				case <-rctx.Done():
					return
				case <-tick.C:
				}
			}
		}()

		var walStart float64
		if err := admin.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8`).Scan(&walStart); err != nil {
			b.Fatal(err)
		}
		tracker := &health.Tracker{}
		key := types.NamespacedName{Namespace: "bench", Name: table}
		op := datastore.Operation{Collection: datastore.Collection{Name: table, TimestampField: "ts"}, Delete: true, Cutoff: &cutoff, BatchSize: batch}
		var r result
		cursor := ""
		start := time.Now()
		for {
			if !limits.None() {
				v := tracker.Check(ctx, key, limits.CheckInterval, func(ctx context.Context) health.Verdict {
					t0 := time.Now()
					h, err := d.Health(ctx, limits.DriverQuery(nil))
					r.reads = append(r.reads, time.Since(t0))
					v := health.Judge(limits, h, err)
					if trace != nil {
						for _, rh := range h.Replicas {
							fmt.Fprintf(trace, "%s-gate,%d,%d,%d,%v,%q\n", table, time.Since(traceStart).Milliseconds(), rh.Lag.Milliseconds(), rh.LagBytes, v.Healthy, v.Message)
						}
					}
					if os.Getenv("LETHE_BENCH_VERBOSE") != "" {
						b.Logf("%v after %d batches: %+v → %s", time.Since(start).Round(time.Millisecond), r.batches, h.Replicas, v.Message)
					}
					return v
				})
				if !v.Healthy {
					// As the PurgeJob controller: wait one check interval
					// (at least a second) before asking again.
					wait := max(limits.CheckInterval, time.Second)
					r.waits++
					r.throttled += wait
					time.Sleep(wait)
					continue
				}
			}
			t0 := time.Now()
			bt, err := d.Execute(ctx, op, cursor)
			r.batchLat = append(r.batchLat, time.Since(t0))
			if err != nil {
				b.Fatalf("Execute: %v", err)
			}
			r.batches++
			cursor = bt.Cursor
			if bt.Done {
				break
			}
		}
		r.dur = time.Since(start)
		var walEnd float64
		if err := admin.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8`).Scan(&walEnd); err != nil {
			b.Fatal(err)
		}
		r.walPerBatch = (walEnd - walStart) / float64(max(r.batches, 1))
		// The lag the purge caused lasts until the standby has replayed
		// its WAL: keep regulating and sampling until then.
		caughtUp()
		time.Sleep(200 * time.Millisecond) // the samplers' last look
		stop()
		wg.Wait()
		if err := sb.Server.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
			b.Fatal(err)
		}
		r.maxLag, r.maxReported, r.maxBytes = time.Duration(maxLagNs.Load()), time.Duration(maxReportedNs.Load()), float64(maxBytes.Load())
		var left int64
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE ts < $1`, cutoff).Scan(&left); err != nil || left != 0 {
			b.Fatalf("%d expired rows left (%v)", left, err)
		}
		return r
	}

	for i := 0; i < b.N; i++ {
		free := run("lag_free", "0")
		b.Logf("without a limit: %d batches in %v, largest replay lag %v on the standby, %v as the primary saw it (%s of WAL), %s of WAL per batch",
			free.batches, free.dur.Round(time.Millisecond), free.maxLag.Round(time.Millisecond), free.maxReported.Round(time.Millisecond),
			health.Bytes(int64(free.maxBytes)), health.Bytes(int64(free.walPerBatch)))
		held := run("lag_held", retentionv1.LagLimit(limit.String()))
		b.Logf("with maxReplicationLag %v: %d batches in %v, %d waits (%v), %d health readings (p50 %.2f ms, max %.2f ms), largest replay lag %v on the standby, %v as the primary saw it (%s of WAL); load %s",
			limit, held.batches, held.dur.Round(time.Millisecond), held.waits, held.throttled, len(held.reads), percentile(held.reads, 0.5), percentile(held.reads, 1),
			held.maxLag.Round(time.Millisecond), held.maxReported.Round(time.Millisecond), health.Bytes(int64(held.maxBytes)), loadavg())
		oneBatch := time.Duration(held.walPerBatch / rate * float64(time.Second))
		over := held.maxLag - limit
		b.Logf("over the limit by %v; one batch is %s of WAL, %v of replay at %s/s: target (limit + one batch) %v",
			over.Round(time.Millisecond), health.Bytes(int64(held.walPerBatch)), oneBatch.Round(time.Millisecond), health.Bytes(int64(rate)), (limit + oneBatch).Round(time.Millisecond))
		b.ReportMetric(free.maxLag.Seconds(), "lag_max_unlimited_s")
		b.ReportMetric(held.maxLag.Seconds(), "lag_max_limited_s")
		b.ReportMetric(held.maxReported.Seconds(), "lag_max_limited_primary_view_s")
		b.ReportMetric(float64(len(held.reads)), "health_reads")
		b.ReportMetric(percentile(held.reads, 0.5), "health_read_p50_ms")
		b.ReportMetric(status.Seconds(), "standby_status_interval_s")
		b.ReportMetric(limit.Seconds(), "lag_limit_s")
		b.ReportMetric(max(over, 0).Seconds(), "lag_over_limit_s")
		b.ReportMetric(oneBatch.Seconds(), "one_batch_replay_s")
		b.ReportMetric(free.dur.Seconds(), "purge_unlimited_s")
		b.ReportMetric(held.dur.Seconds(), "purge_limited_s")
		b.ReportMetric(rate/1024, "standby_replay_KiB/s")
		b.ReportMetric(float64(held.waits), "waits")
		b.ReportMetric(percentile(held.batchLat, 0.99), "p99_batch_ms")
	}
}

// regulate lets the standby replay at most rate bytes of WAL per second (a
// token bucket holding at most 100 ms of replay), pausing and resuming its
// replay every tick, until ctx ends. Between two ticks a resumed standby
// replays at full speed (on loopback, up to 3.5MB in one 20ms tick), and
// then stands still until the bucket has refilled (1.7s after that one):
// the coarser the tick, the burstier the standby.
func regulate(ctx context.Context, b *testing.B, srv *servers.Postgres, standby *pgxpool.Pool, rate float64, every time.Duration) {
	replayed := func() float64 {
		var n float64
		if err := standby.QueryRow(context.Background(), `SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8`).Scan(&n); err != nil {
			b.Errorf("regulator: %v", err)
		}
		return n
	}
	last, at := replayed(), time.Now()
	tokens := rate * 0.1
	paused := false
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now, pos := time.Now(), replayed()
		tokens = min(tokens+rate*now.Sub(at).Seconds(), rate*0.1) - (pos - last)
		last, at = pos, now
		switch {
		case tokens <= 0 && !paused:
			paused = srv.Exec(context.Background(), `SELECT pg_wal_replay_pause()`) == nil
		case tokens > 0 && paused:
			paused = srv.Exec(context.Background(), `SELECT pg_wal_replay_resume()`) != nil
		}
	}
}
