// Benchmarks of Lethe's default settings on PostgreSQL: adaptive batches
// through the executor (internal/executor: Run.Slice, Run.batch and its
// Sizer), next to baselines measured in the same run.
//
//	go test ./test/bench -run '^$' -bench 'PostgresPurgeDefaults|PostgresForeground' -benchtime 1x -timeout 60m
//
// LETHE_BENCH_ROWS sets the table size as for the other PostgreSQL
// benchmarks (half of it expired for PurgeDefaults; for Foreground, every
// row of its table is expired). BenchmarkPostgresForeground also reads
// LETHE_BENCH_PGBENCH_SCALE (pgbench scale, default 10), _CLIENTS (default
// 4), _RATE (transactions per second of the whole load, default 200; 0 runs
// pgbench as fast as it can), LETHE_BENCH_LIMIT_TARGET (the load-limited
// run's targetBatchDuration, default 10ms) and LETHE_BENCH_LIMIT_RATE (its
// maxBatchesPerSecond, default 1): about 1% of the time in a batch, which
// is what keeps the foreground's p99 near idle when the purge's batches
// take a core of two. LETHE_BENCH_MAX_BATCH overrides
// PurgeDefaults' maxBatchSize (0: the default), to compare bounds.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	xrate "golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/mask"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// batchTimer is a driver noting the duration of every Execute call (one
// batch transaction each) and its size, and the time spent counting (the
// executor's recount of a slice it cannot vouch for and its verification
// after the last batch).
type batchTimer struct {
	datastore.Driver
	mu       sync.Mutex
	lat      []time.Duration
	sizes    []int
	counting time.Duration
}

func (d *batchTimer) Count(ctx context.Context, op datastore.Operation) (int64, error) {
	t0 := time.Now()
	n, err := d.Driver.Count(ctx, op)
	d.mu.Lock()
	d.counting += time.Since(t0)
	d.mu.Unlock()
	return n, err
}

func (d *batchTimer) Execute(ctx context.Context, op datastore.Operation, cursor string) (datastore.Batch, error) {
	t0 := time.Now()
	b, err := d.Driver.Execute(ctx, op, cursor)
	d.mu.Lock()
	d.lat = append(d.lat, time.Since(t0))
	d.sizes = append(d.sizes, op.BatchSize)
	d.mu.Unlock()
	return b, err
}

// letheLimits are the DataStore limits of a run through the executor: the
// adaptive batch bounds and maxBatchesPerSecond (0: none).
type letheLimits struct {
	sizing    executor.BatchSizing
	perSecond int
}

// runLethe executes op to the end as the PurgeJob controller does: slices
// of executor.Run on a started job, batches sized by a fresh adaptive
// sizer (nothing learned before: the first batch is 1000) and spaced by
// the limiter; the checkpoint writes nothing. It returns the rows
// affected, the wall time (of which counting), every batch's duration and
// size.
func runLethe(b *testing.B, d datastore.Driver, op datastore.Operation, limits letheLimits) (int64, time.Duration, time.Duration, []time.Duration, []int) {
	b.Helper()
	action := retentionv1.ActionAnonymize
	if op.Delete {
		action = retentionv1.ActionDelete
	}
	now := metav1.Now()
	job := &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "bench"},
		Spec: retentionv1.PurgeJobSpec{DatasetRef: retentionv1.LocalObjectReference{Name: "bench"}, Mode: retentionv1.ModeEnforce,
			Operations: []retentionv1.Operation{{Collection: retentionv1.Identifier(op.Collection.Name), Action: action, ByAge: true}}},
		Status: retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobRunning, StartTime: &now,
			Operations: []retentionv1.OperationStatus{{Collection: op.Collection.Name, Phase: retentionv1.PurgeJobPending}}},
	}
	timer := &batchTimer{Driver: d}
	sizer := executor.NewBatchSizer(limits.sizing)
	var limiter *xrate.Limiter
	if limits.perSecond > 0 {
		limiter = xrate.NewLimiter(xrate.Limit(limits.perSecond), 1)
	}
	run := func() *executor.Run {
		return &executor.Run{
			Job: job, Steps: []engine.Step{{Op: op}}, Driver: timer, StoreType: retentionv1.DataStorePostgreSQL,
			Checkpoint: func(context.Context) error { return nil },
			CursorKey:  []byte("bench-cursor-key-0123456789abcdef"),
			Limiter:    limiter,
			Sizer:      func(datastore.Operation) *executor.BatchSizer { return sizer },
		}
	}
	start := time.Now()
	for {
		p, err := run().Slice(context.Background())
		if err != nil {
			b.Fatalf("slice: %v", err)
		}
		if p == executor.Completed {
			break
		}
	}
	dur := time.Since(start)
	if os.Getenv("LETHE_BENCH_VERBOSE") != "" {
		b.Logf("batch sizes %v", timer.sizes)
	}
	n := job.Status.Deleted + job.Status.Anonymized
	return n, dur, timer.counting, timer.lat, timer.sizes
}

// timeLethe is timeOp through the executor with limits.
func (p *pgBench) timeLethe(b *testing.B, d datastore.Driver, op datastore.Operation, want int64, limits letheLimits) (timed, []int) {
	b.Helper()
	if _, err := d.Describe(context.Background(), op.Collection); err != nil {
		b.Fatal(err)
	}
	cpu0 := p.serverCPU()
	n, dur, counting, lat, sizes := runLethe(b, d, op, limits)
	t := timed{dur: dur, cpu: p.serverCPU() - cpu0, lat: lat, counting: counting}
	if n != want {
		b.Fatalf("Lethe touched %d rows of %s, want %d", n, op.Collection.Name, want)
	}
	return t, sizes
}

// BenchmarkPostgresPurgeDefaults is BenchmarkPostgresPurge with Lethe at
// its default settings: no batch size (adaptive batches, target 200ms,
// starting at 1000 with nothing learned), through the executor. Targets:
// ratio ≥ 0.9 of one unbounded DELETE, p99 batch ≤ 250 ms.
func BenchmarkPostgresPurgeDefaults(b *testing.B) {
	p := newPGBench(b)
	want := int64(p.rows / 2)
	d := p.driver(b)
	for i := 0; i < b.N; i++ {
		var m metrics
		var lat []time.Duration
		var sizes []int
		p.alternate(b, "purgedef", func(table string) timed {
			t := p.timeSQL(b, want, "DELETE FROM "+table+" WHERE ts < $1", p.cutoff)
			p.readBack(b, table, "true", int64(p.rows)-want)
			return t
		}, func(table string) timed {
			op := datastore.Operation{Collection: datastore.Collection{Name: table, TimestampField: "ts"},
				Delete: true, Cutoff: &p.cutoff}
			t, sz := p.timeLethe(b, d, op, want, letheLimits{sizing: executor.BatchSizing{Max: envIntZero(b, "LETHE_BENCH_MAX_BATCH", 0)}})
			sizes = append(sizes, sz...)
			p.readBack(b, table, "ts < $1", 0, p.cutoff)
			p.readBack(b, table, "true", int64(p.rows)-want)
			return t
		}, func(r int, base, lethe timed) {
			m.add("baseline_rows/s", rate(want, base.dur))
			m.add("lethe_rows/s", rate(want, lethe.dur))
			m.add("baseline_cpu_ms", ms(base.cpu))
			m.add("lethe_cpu_ms", ms(lethe.cpu))
			m.add("batches", float64(len(lethe.lat)))
			m.add("lethe_counting_ms", ms(lethe.counting))
			m.add("batches_only_ratio", base.dur.Seconds()/(lethe.dur-lethe.counting).Seconds())
			lat = append(lat, lethe.lat...)
			b.Logf("round %d: baseline %v, Lethe %v (%.2f×; of which counting %v: batches alone %.2f×), %d batches, p99 %.1f ms, load %s",
				r, base.dur, lethe.dur, base.dur.Seconds()/lethe.dur.Seconds(), lethe.counting.Round(time.Millisecond),
				base.dur.Seconds()/(lethe.dur-lethe.counting).Seconds(), len(lethe.lat), percentile(lethe.lat, 0.99), loadavg())
		})
		m.report(b)
		b.ReportMetric(m.median("lethe_rows/s")/m.median("baseline_rows/s"), "ratio")
		if c := m.median("lethe_cpu_ms"); c > 0 {
			b.ReportMetric(m.median("baseline_cpu_ms")/c, "cpu_ratio")
		}
		b.ReportMetric(percentile(lat, 0.5), "p50_ms")
		b.ReportMetric(percentile(lat, 0.99), "p99_ms")
		b.ReportMetric(percentile(lat, 1), "max_ms")
		b.ReportMetric(float64(slices.Max(sizes)), "largest_batch")
		b.ReportMetric(medianInt(sizes), "median_batch")
	}
}

func medianInt(v []int) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return float64(s[len(s)/2])
}

// pgbench runs pgbench's TPC-B-like script against the benchmark's
// database: initialized once, then run around each scenario with a
// per-transaction log, from which the transactions that ended within the
// scenario are read.
type pgbench struct {
	p       *pgBench
	bin     string
	dir     string
	clients int
	rate    int
	runs    int
}

func newPgbench(b *testing.B, p *pgBench) *pgbench {
	b.Helper()
	bin := os.Getenv("PGBENCH")
	if bin == "" {
		for _, c := range []string{"/usr/lib/postgresql/15/bin/pgbench", "pgbench"} {
			if path, err := exec.LookPath(c); err == nil {
				bin = path
				break
			}
		}
	}
	if bin == "" {
		b.Fatal("pgbench not found: install PostgreSQL's client tools or set PGBENCH")
	}
	g := &pgbench{p: p, bin: bin, dir: b.TempDir(),
		clients: envInt(b, "LETHE_BENCH_PGBENCH_CLIENTS", 4), rate: envIntZero(b, "LETHE_BENCH_PGBENCH_RATE", 200)}
	scale := envInt(b, "LETHE_BENCH_PGBENCH_SCALE", 10)
	if out, err := g.cmd(context.Background(), "-i", "-q", "-s", strconv.Itoa(scale)).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	return g
}

// envIntZero is envInt accepting 0.
func envIntZero(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

func (g *pgbench) cmd(ctx context.Context, args ...string) *exec.Cmd {
	pg := g.p.pg
	c := exec.CommandContext(ctx, g.bin, append([]string{"-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pg.User}, append(args, pg.Database)...)...)
	c.Env = append(os.Environ(), "PGPASSWORD="+pg.Password, "PGSSLMODE=disable")
	c.Dir = g.dir
	return c
}

// load is the foreground's transactions that ended within one scenario.
type load struct {
	tps      float64
	p50, p99 float64 // ms
	n        int
}

// during runs pgbench while work runs (after a second of warm-up) and
// returns the transactions that ended while work ran. A nil work measures
// the idle server for idle.
func (g *pgbench) during(b *testing.B, idle time.Duration, work func()) load {
	b.Helper()
	g.runs++
	prefix := fmt.Sprintf("run%d", g.runs)
	args := []string{"-n", "-c", strconv.Itoa(g.clients), "-j", strconv.Itoa(min(g.clients, 2)), "-T", "3600",
		"--log", "--log-prefix", prefix}
	if g.rate > 0 {
		args = append(args, "-R", strconv.Itoa(g.rate))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := g.cmd(ctx, args...)
	out := &strings.Builder{}
	c.Stdout, c.Stderr = out, out
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	from := time.Now()
	if work == nil {
		time.Sleep(idle)
	} else {
		work()
	}
	to := time.Now()
	// Lines still buffered when pgbench is killed are lost: they ended
	// after the window.
	time.Sleep(2 * time.Second)
	cancel()
	_ = c.Wait()
	l := g.read(b, prefix, from, to)
	if l.n == 0 {
		b.Fatalf("pgbench logged no transaction within %v; its output:\n%s", to.Sub(from), out)
	}
	return l
}

// read parses pgbench's per-transaction logs (client_id transaction_no
// time_us script_no time_epoch time_us [schedule_lag_us]): the latency is
// time_us, which with -R includes the wait behind a late schedule, as a
// user of the service would see it.
func (g *pgbench) read(b *testing.B, prefix string, from, to time.Time) load {
	b.Helper()
	files, _ := filepath.Glob(filepath.Join(g.dir, prefix+".*"))
	var lat []time.Duration
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 6 {
				continue
			}
			us, err1 := strconv.ParseInt(fs[2], 10, 64)
			sec, err2 := strconv.ParseInt(fs[4], 10, 64)
			usec, err3 := strconv.ParseInt(fs[5], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				continue
			}
			end := time.Unix(sec, usec*1000)
			if end.Before(from) || end.After(to) {
				continue
			}
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
		fh.Close()
		_ = os.Remove(f)
	}
	if len(lat) == 0 {
		return load{}
	}
	return load{tps: float64(len(lat)) / to.Sub(from).Seconds(), p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), n: len(lat)}
}

// BenchmarkPostgresForeground measures what a purge does to the service
// that shares its server: pgbench's TPC-B-like load (at a fixed rate, as a
// service that is not saturated, unless LETHE_BENCH_PGBENCH_RATE=0) runs
// while LETHE_BENCH_ROWS expired rows are purged from another table, and
// its TPS and p99 latency are read for the transactions that ended during
// each scenario: idle (no purge, as long as the longest scenario, at most
// a minute), one
// unbounded DELETE, Lethe at default settings, and Lethe with a load limit
// (a shorter targetBatchDuration and maxBatchesPerSecond). Target: Lethe
// with its limit keeps pgbench p99 within 1.5× of idle.
func BenchmarkPostgresForeground(b *testing.B) {
	p := &pgBench{pg: testharness.Postgres(b), rows: envInt(b, "LETHE_BENCH_ROWS", 1_000_000)}
	var err error
	if p.admin, err = pgxpool.New(context.Background(), p.pg.DSN); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.admin.Close)
	p.findPostmaster(b)
	g := newPgbench(b, p)
	limitTarget, err2 := time.ParseDuration(envString("LETHE_BENCH_LIMIT_TARGET", "10ms"))
	if err2 != nil {
		b.Fatal(err2)
	}
	limited := letheLimits{sizing: executor.BatchSizing{Target: limitTarget}, perSecond: envIntZero(b, "LETHE_BENCH_LIMIT_RATE", 1)}
	cutoff := benchStart.Add(time.Duration(p.rows+1) * time.Second)
	want := int64(p.rows)
	// Every row of expired is past the cutoff; each scenario purges a
	// fresh, vacuumed copy.
	p.exec(b, `CREATE TABLE expired (id bigint PRIMARY KEY, ts timestamptz NOT NULL, email text, payload text)`)
	p.exec(b, `INSERT INTO expired SELECT i, $1::timestamptz + i * interval '1 second', 'user' || i || '@example.com', repeat('x', 60)
		FROM generate_series(0, $2 - 1) i`, benchStart, p.rows)
	fresh := func() string {
		p.exec(b, `DROP TABLE IF EXISTS victim`)
		p.exec(b, `CREATE TABLE victim AS SELECT * FROM expired`)
		p.exec(b, `ALTER TABLE victim SET (autovacuum_enabled = off)`)
		p.exec(b, `ALTER TABLE victim ADD PRIMARY KEY (id)`)
		p.exec(b, `CREATE INDEX ON victim (ts)`)
		p.exec(b, `VACUUM ANALYZE victim`)
		p.exec(b, `VACUUM pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history`)
		p.exec(b, `CHECKPOINT`)
		return "victim"
	}
	d := p.driver(b)
	op := func(table string) datastore.Operation {
		return datastore.Operation{Collection: datastore.Collection{Name: table, TimestampField: "ts"}, Delete: true, Cutoff: &cutoff}
	}
	for i := 0; i < b.N; i++ {
		var m metrics
		var lat, limLat []time.Duration
		for r := 0; r < rounds(b); r++ {
			table := fresh()
			var delDur time.Duration
			del := g.during(b, 0, func() {
				delDur = p.timeSQL(b, want, "DELETE FROM "+table+" WHERE ts < $1", cutoff).dur
			})
			table = fresh()
			var def timed
			lethe := g.during(b, 0, func() { def, _ = p.timeLethe(b, d, op(table), want, letheLimits{}) })
			lat = append(lat, def.lat...)
			table = fresh()
			var lim timed
			limit := g.during(b, 0, func() { lim, _ = p.timeLethe(b, d, op(table), want, limited) })
			limLat = append(limLat, lim.lat...)
			// As long as the longest scenario (at most a minute), so the
			// idle p99 sees as much of the machine's other load.
			idle := g.during(b, min(max(delDur, def.dur, lim.dur), time.Minute), nil)
			b.Logf("round %d: idle %.0f tps p99 %.1f ms; DELETE (%v) %.0f tps p99 %.1f ms; Lethe default (%v) %.0f tps p99 %.1f ms; limited (%v) %.0f tps p99 %.1f ms; load %s",
				r, idle.tps, idle.p99, delDur.Round(time.Millisecond), del.tps, del.p99, def.dur.Round(time.Millisecond), lethe.tps, lethe.p99,
				lim.dur.Round(time.Millisecond), limit.tps, limit.p99, loadavg())
			m.add("idle_tps", idle.tps)
			m.add("idle_p99_ms", idle.p99)
			m.add("delete_tps", del.tps)
			m.add("delete_p99_ms", del.p99)
			m.add("lethe_default_tps", lethe.tps)
			m.add("lethe_default_p99_ms", lethe.p99)
			m.add("lethe_limited_tps", limit.tps)
			m.add("lethe_limited_p99_ms", limit.p99)
			m.add("delete_rows/s", rate(want, delDur))
			m.add("lethe_default_rows/s", rate(want, def.dur))
			m.add("lethe_limited_rows/s", rate(want, lim.dur))
			m.add("idle_p50_ms", idle.p50)
			m.add("lethe_limited_p50_ms", limit.p50)
		}
		m.report(b)
		idle := m.median("idle_p99_ms")
		b.ReportMetric(m.median("delete_p99_ms")/idle, "delete_p99_ratio")
		b.ReportMetric(m.median("lethe_default_p99_ms")/idle, "lethe_default_p99_ratio")
		b.ReportMetric(m.median("lethe_limited_p99_ms")/idle, "lethe_limited_p99_ratio")
		b.ReportMetric(percentile(lat, 0.99), "lethe_default_batch_p99_ms")
		b.ReportMetric(percentile(limLat, 0.99), "lethe_limited_batch_p99_ms")
	}
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// BenchmarkPostgresAnonymizeDefaults is BenchmarkPostgresAnonymize with
// Lethe at its default settings (adaptive batches through the executor):
// HMAC of one column of the expired half against UPDATE … SET email =
// md5(email), alternating on identical fresh copies. Target: ratio ≥ 0.5.
func BenchmarkPostgresAnonymizeDefaults(b *testing.B) {
	p := newPGBench(b)
	want := int64(p.rows / 2)
	strategy := mask.Strategy{Kind: mask.HMAC, Key: []byte("bench-key-0123456789abcdef")}
	d := p.driver(b)
	check := func(table string) {
		p.readBack(b, table, "ts < $1 AND email LIKE 'user%@example.com'", 0, p.cutoff)
		p.readBack(b, table, "ts >= $1 AND email LIKE 'user%@example.com'", int64(p.rows)-want, p.cutoff)
	}
	for i := 0; i < b.N; i++ {
		var m metrics
		var lat []time.Duration
		var sizes []int
		p.alternate(b, "anondef", func(table string) timed {
			t := p.timeSQL(b, want, "UPDATE "+table+" SET email = md5(email) WHERE ts < $1", p.cutoff)
			check(table)
			return t
		}, func(table string) timed {
			op := datastore.Operation{Collection: datastore.Collection{Name: table, TimestampField: "ts"},
				Cutoff: &p.cutoff, Fields: []datastore.FieldMask{{Field: "email", Strategy: strategy}}}
			t, sz := p.timeLethe(b, d, op, want, letheLimits{})
			sizes = append(sizes, sz...)
			check(table)
			return t
		}, func(r int, base, lethe timed) {
			m.add("md5_rows/s", rate(want, base.dur))
			m.add("lethe_hmac_rows/s", rate(want, lethe.dur))
			m.add("md5_server_cpu_ms", ms(base.cpu))
			m.add("lethe_server_cpu_ms", ms(lethe.cpu))
			m.add("lethe_counting_ms", ms(lethe.counting))
			lat = append(lat, lethe.lat...)
			b.Logf("round %d: md5 %v, Lethe %v (%.2f×), %d batches, p99 %.1f ms, load %s",
				r, base.dur, lethe.dur, base.dur.Seconds()/lethe.dur.Seconds(), len(lethe.lat), percentile(lethe.lat, 0.99), loadavg())
		})
		m.report(b)
		b.ReportMetric(m.median("lethe_hmac_rows/s")/m.median("md5_rows/s"), "ratio")
		if c := m.median("lethe_server_cpu_ms"); c > 0 {
			b.ReportMetric(m.median("md5_server_cpu_ms")/c, "cpu_ratio")
		}
		b.ReportMetric(percentile(lat, 0.5), "p50_ms")
		b.ReportMetric(percentile(lat, 0.99), "p99_ms")
		b.ReportMetric(medianInt(sizes), "median_batch")
	}
}
