// Benchmarks of the PostgreSQL driver against plain SQL baselines measured in
// the same run, on a throwaway server (internal/testharness).
//
//	go test ./test/bench -run '^$' -bench Postgres -benchtime 1x -timeout 60m
//
// LETHE_BENCH_ROWS sets the table size (default 1,000,000; e.g. 50000 for a
// quick smoke run). LETHE_BENCH_BATCH sets the purge batch size (default
// 20000), LETHE_BENCH_ANON_BATCH the anonymization batch size (default 5000),
// LETHE_BENCH_DELETE_SHAPE the delete statement shape (auto, key or ctid),
// LETHE_BENCH_ROUNDS the number of timed rounds (default 3).
//
// Baseline and Lethe alternate (ABAB…) on freshly reloaded identical tables,
// after one untimed warm-up pair; the benchmarks report medians over the
// rounds and ratios of the medians, and read every table back.
//
// Half of the rows are expired. Timestamps grow with the primary key, as in an
// append-only table, and are indexed.
package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
	"github.com/lethe-dev/lethe/internal/mask"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// The package's TestMain (testharness.Main) is declared once for all
// benchmark files of this package; see redis_bench_test.go.

var benchStart = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

type pgBench struct {
	pg         testharness.PG
	admin      *pgxpool.Pool
	rows       int
	cutoff     time.Time // half of the rows are before it
	postmaster int       // pid, for CPU accounting; 0 when unknown
}

// serverCPU is the CPU time (user + system) used so far by the server's
// processes that are alive: the postmaster's children. On a shared machine
// wall time swings with other load; CPU time much less, so the benchmarks
// report both. It is 0 where /proc is not available or the server is not
// local.
func (p *pgBench) serverCPU() time.Duration {
	if p.postmaster == 0 {
		return 0
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime(14) stime(15)
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 13 {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		ppid, _ := strconv.Atoi(fields[1])
		if pid != p.postmaster && ppid != p.postmaster {
			continue
		}
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ is 100 on Linux
}

func (p *pgBench) findPostmaster(b *testing.B) {
	var pid int
	if err := p.admin.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return // not a local server
	}
	s := string(st)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 1 {
			p.postmaster, _ = strconv.Atoi(f[1])
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// newPGBench creates the source table src on a fresh database: id, ts (one
// second apart), email, payload.
func newPGBench(b *testing.B) *pgBench {
	b.Helper()
	p := &pgBench{pg: testharness.Postgres(b), rows: envInt(b, "LETHE_BENCH_ROWS", 1_000_000)}
	var err error
	p.admin, err = pgxpool.New(context.Background(), p.pg.DSN)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.admin.Close)
	p.findPostmaster(b)
	p.cutoff = benchStart.Add(time.Duration(p.rows/2) * time.Second)
	p.exec(b, `CREATE TABLE src (id bigint NOT NULL, ts timestamptz NOT NULL, email text, payload text)`)
	p.exec(b, `INSERT INTO src SELECT i, $1::timestamptz + i * interval '1 second', 'user' || i || '@example.com', repeat('x', 60)
		FROM generate_series(0, $2 - 1) i`, benchStart, p.rows)
	return p
}

func (p *pgBench) exec(b *testing.B, sql string, args ...any) int64 {
	b.Helper()
	tag, err := p.admin.Exec(context.Background(), sql, args...)
	if err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
	return tag.RowsAffected()
}

// fresh creates name as an identical, vacuumed, analyzed copy of src with
// its primary key and timestamp index, and checkpoints, so every timed run
// starts from the same state.
func (p *pgBench) fresh(b *testing.B, name string) {
	b.Helper()
	p.exec(b, `DROP TABLE IF EXISTS `+name)
	p.exec(b, `CREATE TABLE `+name+` AS SELECT * FROM src`)
	// Autovacuum would start on the dead rows in the middle of the batched
	// run (but after the single DELETE) and compete with it.
	p.exec(b, `ALTER TABLE `+name+` SET (autovacuum_enabled = off)`)
	p.exec(b, `ALTER TABLE `+name+` ADD PRIMARY KEY (id)`)
	p.exec(b, `CREATE INDEX ON `+name+` (ts)`)
	p.exec(b, `VACUUM ANALYZE `+name)
	p.exec(b, `CHECKPOINT`)
}

func (p *pgBench) driver(b *testing.B) *postgres.Driver {
	b.Helper()
	d, err := postgres.New(context.Background(), datastore.Config{
		Type: "PostgreSQL", Host: p.pg.Host, Port: p.pg.Port, Database: p.pg.Database,
		Username: p.pg.User, Password: p.pg.Password, TLS: "Disable",
		MaxConnections: 4, StatementTimeout: 5 * time.Second, LockTimeout: time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	if s := os.Getenv("LETHE_BENCH_DELETE_SHAPE"); s != "" {
		d.SetDeleteShape(postgres.DeleteShape(s))
	}
	b.Cleanup(func() { _ = d.Close() })
	return d
}

// runOp executes op to the end and returns rows affected, wall time and the
// duration of every Execute call (one batch transaction each).
func runOp(b *testing.B, d datastore.Driver, op datastore.Operation) (int64, time.Duration, []time.Duration) {
	b.Helper()
	ctx := context.Background()
	var total int64
	var lat []time.Duration
	cursor := ""
	start := time.Now()
	for {
		t0 := time.Now()
		bt, err := d.Execute(ctx, op, cursor)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatalf("Execute: %v", err)
		}
		total += bt.Affected
		cursor = bt.Cursor
		if os.Getenv("LETHE_BENCH_VERBOSE") != "" {
			b.Logf("batch %d: %d rows in %v", len(lat), bt.Affected, lat[len(lat)-1])
		}
		if bt.Done {
			return total, time.Since(start), lat
		}
	}
}

func percentile(d []time.Duration, p float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}

func rate(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() }

// metrics collects one value per round of each metric and reports their
// medians: on a shared machine one round says little, and the median of
// three alternating rounds much more.
type metrics struct {
	names []string
	vals  map[string][]float64
}

func (m *metrics) add(name string, v float64) {
	if m.vals == nil {
		m.vals = map[string][]float64{}
	}
	if _, ok := m.vals[name]; !ok {
		m.names = append(m.names, name)
	}
	m.vals[name] = append(m.vals[name], v)
}

func (m *metrics) median(name string) float64 {
	v := slices.Clone(m.vals[name])
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func (m *metrics) report(b *testing.B) {
	for _, n := range m.names {
		b.ReportMetric(m.median(n), n)
	}
}

// timed is one timed run: wall time, server CPU time and, for Lethe, the
// duration of every batch transaction.
type timed struct {
	dur, cpu time.Duration
	lat      []time.Duration
	// counting is the part of dur Lethe spent counting (see batchTimer).
	counting time.Duration
}

// timeSQL runs one statement on the admin pool and checks it touched want rows.
func (p *pgBench) timeSQL(b *testing.B, want int64, sql string, args ...any) timed {
	b.Helper()
	cpu0, start := p.serverCPU(), time.Now()
	n := p.exec(b, sql, args...)
	t := timed{dur: time.Since(start), cpu: p.serverCPU() - cpu0}
	if n != want {
		b.Fatalf("%s: touched %d rows, want %d", sql, n, want)
	}
	return t
}

// timeOp runs op to the end through d and checks it touched want rows.
func (p *pgBench) timeOp(b *testing.B, d *postgres.Driver, op datastore.Operation, want int64) timed {
	b.Helper()
	// Describe outside the timing, as the Dataset reconciler has long done
	// by the time a PurgeJob runs.
	if _, err := d.Describe(context.Background(), op.Collection); err != nil {
		b.Fatal(err)
	}
	cpu0 := p.serverCPU()
	n, dur, lat := runOp(b, d, op)
	t := timed{dur: dur, cpu: p.serverCPU() - cpu0, lat: lat}
	if n != want {
		b.Fatalf("Lethe touched %d rows of %s, want %d", n, op.Collection.Name, want)
	}
	return t
}

// readBack fails unless table holds exactly want rows matching cond (on the
// table as it is now, not on what the statements reported).
func (p *pgBench) readBack(b *testing.B, table, cond string, want int64, args ...any) {
	b.Helper()
	var n int64
	if err := p.admin.QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE "+cond, args...).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n != want {
		b.Fatalf("%s: %d rows WHERE %s, want %d", table, n, cond, want)
	}
}

// rounds is how many timed baseline/Lethe pairs a benchmark runs
// (LETHE_BENCH_ROUNDS, default 3), after one untimed warm-up pair.
func rounds(b *testing.B) int { return envInt(b, "LETHE_BENCH_ROUNDS", 3) }

// alternate runs the warm-up pair and then the timed pairs, baseline first in
// each (ABAB…), on freshly reloaded identical tables. base and lethe run one
// side on the table they are given and read it back. The warm-up gives both
// sides' connections the state a long-running server's have (a backend's
// first large statement is much slower than its later ones).
func (p *pgBench) alternate(b *testing.B, name string, base, lethe func(table string) timed, record func(r int, base, lethe timed)) {
	b.Helper()
	for r := 0; r <= rounds(b); r++ {
		bt := fmt.Sprintf("%s_base_%d", name, r)
		p.fresh(b, bt)
		tb := base(bt)
		p.exec(b, "DROP TABLE "+bt)
		lt := fmt.Sprintf("%s_lethe_%d", name, r)
		p.fresh(b, lt)
		tl := lethe(lt)
		p.exec(b, "DROP TABLE "+lt)
		if r > 0 {
			record(r, tb, tl)
		}
	}
}

// BenchmarkPostgresPurge compares one unbounded DELETE … WHERE ts < cutoff
// with Lethe's batched purge through the driver, alternating on identical
// fresh copies: median rows/s of each, the ratio of the medians (target
// ≥ 0.9) and the p50/p99/max latency of the batch transactions of all timed
// rounds together (target p99 ≤ 250 ms).
func BenchmarkPostgresPurge(b *testing.B) {
	p := newPGBench(b)
	batch := envInt(b, "LETHE_BENCH_BATCH", 20000)
	want := int64(p.rows / 2)
	// One driver for every round, as one manager serves every PurgeJob.
	d := p.driver(b)
	for i := 0; i < b.N; i++ {
		var m metrics
		var lat []time.Duration
		p.alternate(b, "purge", func(table string) timed {
			t := p.timeSQL(b, want, "DELETE FROM "+table+" WHERE ts < $1", p.cutoff)
			p.readBack(b, table, "true", int64(p.rows)-want)
			return t
		}, func(table string) timed {
			op := datastore.Operation{Collection: datastore.Collection{Name: table, TimestampField: "ts"},
				Delete: true, Cutoff: &p.cutoff, BatchSize: batch}
			t := p.timeOp(b, d, op, want)
			p.readBack(b, table, "ts < $1", 0, p.cutoff)
			p.readBack(b, table, "true", int64(p.rows)-want)
			return t
		}, func(r int, base, lethe timed) {
			m.add("baseline_rows/s", rate(want, base.dur))
			m.add("lethe_rows/s", rate(want, lethe.dur))
			m.add("baseline_cpu_ms", ms(base.cpu))
			m.add("lethe_cpu_ms", ms(lethe.cpu))
			m.add("batches", float64(len(lethe.lat)))
			lat = append(lat, lethe.lat...)
			b.Logf("round %d: baseline %v, Lethe %v (%.2f×), %d batches, p99 %.1f ms, load %s",
				r, base.dur, lethe.dur, base.dur.Seconds()/lethe.dur.Seconds(), len(lethe.lat), percentile(lethe.lat, 0.99), loadavg())
		})
		m.report(b)
		b.ReportMetric(m.median("lethe_rows/s")/m.median("baseline_rows/s"), "ratio")
		if c := m.median("lethe_cpu_ms"); c > 0 {
			b.ReportMetric(m.median("baseline_cpu_ms")/c, "cpu_ratio")
		}
		b.ReportMetric(percentile(lat, 0.5), "p50_ms")
		b.ReportMetric(percentile(lat, 0.99), "p99_ms")
		b.ReportMetric(percentile(lat, 1), "max_ms")
	}
}

// loadavg is the machine's 1-minute load average, for the log.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// BenchmarkPostgresDropPartitions measures dropping LETHE_BENCH_ROWS expired
// rows held in four monthly partitions (target: under a second whatever
// their size), next to a current partition that is kept; medians of
// LETHE_BENCH_ROUNDS runs.
func BenchmarkPostgresDropPartitions(b *testing.B) {
	p := newPGBench(b)
	per := p.rows / 4
	var m metrics
	defer m.report(b)
	for i := 0; i < b.N*rounds(b); i++ {
		b.StopTimer()
		p.exec(b, `DROP TABLE IF EXISTS parts`)
		p.exec(b, `CREATE TABLE parts (id bigint NOT NULL, ts timestamptz NOT NULL, email text, payload text, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)`)
		p.exec(b, `CREATE INDEX ON parts (ts)`)
		for m := 0; m < 5; m++ {
			from := time.Date(2020, time.Month(1+m), 1, 0, 0, 0, 0, time.UTC)
			p.exec(b, fmt.Sprintf(`CREATE TABLE parts_%d PARTITION OF parts FOR VALUES FROM ('%s') TO ('%s')`,
				m, from.Format(time.RFC3339), from.AddDate(0, 1, 0).Format(time.RFC3339)))
			rows := per
			if m == 4 {
				rows = 1000 // current month, kept
			}
			// Spread each month's rows over its first 27 days.
			p.exec(b, `INSERT INTO parts SELECT i, $1::timestamptz + (i % 2332800) * interval '1 second', 'user' || i || '@example.com', repeat('x', 60)
				FROM generate_series(0, $2 - 1) i`, from, rows)
		}
		p.exec(b, `VACUUM ANALYZE parts`)
		p.exec(b, `CHECKPOINT`)
		d := p.driver(b)
		cut := time.Date(2020, 5, 1, 0, 0, 0, 0, time.UTC)
		op := datastore.Operation{Collection: datastore.Collection{Name: "parts", TimestampField: "ts"},
			Delete: true, Cutoff: &cut, BatchSize: 10000}
		ctx := context.Background()
		if _, err := d.Describe(ctx, op.Collection); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		var dropped int
		var rows int64
		var slowest time.Duration
		cursor := ""
		for {
			t0 := time.Now()
			bt, err := d.Execute(ctx, op, cursor)
			if err != nil {
				b.Fatal(err)
			}
			cursor = bt.Cursor
			if bt.PartitionsDropped == 0 {
				break
			}
			slowest = max(slowest, time.Since(t0))
			dropped += bt.PartitionsDropped
			rows += bt.Affected
		}
		dur := time.Since(start)
		b.StopTimer()
		if dropped != 4 || rows != int64(4*per) {
			b.Fatalf("dropped %d partitions holding %d rows, want 4 and %d", dropped, rows, 4*per)
		}
		p.readBack(b, "parts", "ts < $1", 0, cut)
		p.readBack(b, "parts", "true", 1000)
		m.add("drop_all_ms", ms(dur))
		m.add("slowest_partition_ms", ms(slowest))
		m.add("rows/s", rate(rows, dur))
		b.StartTimer()
	}
}

// BenchmarkPostgresAnonymize compares HMAC anonymization of one column of
// the expired half through the driver (read, mask in Go, write back with
// UPDATE … FROM unnest per batch) with a plain UPDATE … SET email = md5(email),
// alternating on identical fresh copies; the ratio is of the medians.
func BenchmarkPostgresAnonymize(b *testing.B) {
	p := newPGBench(b)
	batch := envInt(b, "LETHE_BENCH_ANON_BATCH", 5000)
	want := int64(p.rows / 2)
	strategy := mask.Strategy{Kind: mask.HMAC, Key: []byte("bench-key-0123456789abcdef")}
	d := p.driver(b)
	// Every expired row is masked, no other row is.
	check := func(table string) {
		p.readBack(b, table, "ts < $1 AND email LIKE 'user%@example.com'", 0, p.cutoff)
		p.readBack(b, table, "ts >= $1 AND email LIKE 'user%@example.com'", int64(p.rows)-want, p.cutoff)
	}
	for i := 0; i < b.N; i++ {
		var m metrics
		var lat []time.Duration
		p.alternate(b, "anon", func(table string) timed {
			t := p.timeSQL(b, want, "UPDATE "+table+" SET email = md5(email) WHERE ts < $1", p.cutoff)
			check(table)
			return t
		}, func(table string) timed {
			op := datastore.Operation{Collection: datastore.Collection{Name: table, TimestampField: "ts"},
				Cutoff: &p.cutoff, BatchSize: batch, Fields: []datastore.FieldMask{{Field: "email", Strategy: strategy}}}
			t := p.timeOp(b, d, op, want)
			check(table)
			return t
		}, func(r int, base, lethe timed) {
			m.add("md5_rows/s", rate(want, base.dur))
			m.add("lethe_hmac_rows/s", rate(want, lethe.dur))
			m.add("md5_server_cpu_ms", ms(base.cpu))
			m.add("lethe_server_cpu_ms", ms(lethe.cpu))
			lat = append(lat, lethe.lat...)
		})
		m.report(b)
		b.ReportMetric(m.median("lethe_hmac_rows/s")/m.median("md5_rows/s"), "ratio")
		b.ReportMetric(percentile(lat, 0.5), "p50_ms")
		b.ReportMetric(percentile(lat, 0.99), "p99_ms")
	}
}
