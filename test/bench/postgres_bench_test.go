// Benchmarks of the PostgreSQL driver against plain SQL baselines measured in
// the same run, on a throwaway server (internal/testharness).
//
//	go test ./test/bench -run '^$' -bench Postgres -benchtime 1x -timeout 60m
//
// LETHE_BENCH_ROWS sets the table size (default 1,000,000; e.g. 50000 for a
// quick smoke run). LETHE_BENCH_BATCH sets the purge batch size (default
// 20000), LETHE_BENCH_ANON_BATCH the anonymization batch size (default 5000),
// LETHE_BENCH_DELETE_SHAPE the delete statement shape (auto, key or ctid).
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

// metrics collects one value per iteration of each metric and reports their
// medians, so -benchtime Nx smooths a noisy machine; baseline and Lethe run
// back to back in every iteration, and each ratio is taken within one.
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

func (m *metrics) report(b *testing.B) {
	for _, n := range m.names {
		v := slices.Clone(m.vals[n])
		slices.Sort(v)
		b.ReportMetric(v[len(v)/2], n)
	}
}

// BenchmarkPostgresPurge compares one unbounded DELETE … WHERE ts < cutoff
// with Lethe's batched purge through the driver on an identical fresh copy:
// rows/s of each, their ratio (target ≥ 0.9) and the batch transactions'
// p50/p99/max latency (target p99 ≤ 250 ms).
func BenchmarkPostgresPurge(b *testing.B) {
	p := newPGBench(b)
	batch := envInt(b, "LETHE_BENCH_BATCH", 20000)
	want := int64(p.rows / 2)
	var m metrics
	defer m.report(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p.fresh(b, "base")
		b.StartTimer()
		cpu0, start := p.serverCPU(), time.Now()
		n := p.exec(b, `DELETE FROM base WHERE ts < $1`, p.cutoff)
		baseDur, baseCPU := time.Since(start), p.serverCPU()-cpu0
		if n != want {
			b.Fatalf("baseline deleted %d, want %d", n, want)
		}

		b.StopTimer()
		p.exec(b, `DROP TABLE base`)
		p.fresh(b, "purge")
		d := p.driver(b)
		op := datastore.Operation{Collection: datastore.Collection{Name: "purge", TimestampField: "ts"},
			Delete: true, Cutoff: &p.cutoff, BatchSize: batch}
		// Connect and describe outside the timing, as the Dataset
		// reconciler has long done by the time a PurgeJob runs.
		if _, err := d.Describe(context.Background(), op.Collection); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu0 = p.serverCPU()
		n, dur, lat := runOp(b, d, op)
		cpu := p.serverCPU() - cpu0
		b.StopTimer()
		if n != want {
			b.Fatalf("Lethe deleted %d, want %d", n, want)
		}
		p.exec(b, `DROP TABLE purge`)
		b.StartTimer()

		m.add("baseline_rows/s", rate(want, baseDur))
		m.add("lethe_rows/s", rate(n, dur))
		m.add("ratio", baseDur.Seconds()/dur.Seconds())
		if baseCPU > 0 && cpu > 0 {
			m.add("baseline_cpu_ms", ms(baseCPU))
			m.add("lethe_cpu_ms", ms(cpu))
			m.add("cpu_ratio", baseCPU.Seconds()/cpu.Seconds())
		}
		m.add("p50_ms", percentile(lat, 0.5))
		m.add("p99_ms", percentile(lat, 0.99))
		m.add("max_ms", percentile(lat, 1))
		m.add("batches", float64(len(lat)))
	}
}

// BenchmarkPostgresDropPartitions measures dropping LETHE_BENCH_ROWS expired
// rows held in four monthly partitions (target: under a second whatever
// their size), next to a current partition that is kept.
func BenchmarkPostgresDropPartitions(b *testing.B) {
	p := newPGBench(b)
	per := p.rows / 4
	var m metrics
	defer m.report(b)
	for i := 0; i < b.N; i++ {
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
		m.add("drop_all_ms", ms(dur))
		m.add("slowest_partition_ms", ms(slowest))
		m.add("rows/s", rate(rows, dur))
		b.StartTimer()
	}
}

// BenchmarkPostgresAnonymize compares HMAC anonymization of one column of
// the expired half through the driver (read, mask in Go, write back with
// UPDATE … FROM unnest per batch) with a plain UPDATE … SET email = md5(email)
// on an identical copy.
func BenchmarkPostgresAnonymize(b *testing.B) {
	p := newPGBench(b)
	batch := envInt(b, "LETHE_BENCH_ANON_BATCH", 5000)
	want := int64(p.rows / 2)
	strategy := mask.Strategy{Kind: mask.HMAC, Key: []byte("bench-key-0123456789abcdef")}
	var m metrics
	defer m.report(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p.fresh(b, "base")
		b.StartTimer()
		cpu0, start := p.serverCPU(), time.Now()
		n := p.exec(b, `UPDATE base SET email = md5(email) WHERE ts < $1`, p.cutoff)
		baseDur, baseCPU := time.Since(start), p.serverCPU()-cpu0
		if n != want {
			b.Fatalf("baseline updated %d, want %d", n, want)
		}
		b.StopTimer()
		p.exec(b, `DROP TABLE base`)
		p.fresh(b, "anon")
		d := p.driver(b)
		op := datastore.Operation{Collection: datastore.Collection{Name: "anon", TimestampField: "ts"},
			Cutoff: &p.cutoff, BatchSize: batch, Fields: []datastore.FieldMask{{Field: "email", Strategy: strategy}}}
		if _, err := d.Describe(context.Background(), op.Collection); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu0 = p.serverCPU()
		n, dur, lat := runOp(b, d, op)
		cpu := p.serverCPU() - cpu0
		b.StopTimer()
		if n != want {
			b.Fatalf("Lethe anonymized %d, want %d", n, want)
		}
		p.exec(b, `DROP TABLE anon`)
		b.StartTimer()
		m.add("md5_rows/s", rate(want, baseDur))
		m.add("lethe_hmac_rows/s", rate(n, dur))
		m.add("ratio", baseDur.Seconds()/dur.Seconds())
		if baseCPU > 0 && cpu > 0 {
			m.add("md5_server_cpu_ms", ms(baseCPU))
			m.add("lethe_server_cpu_ms", ms(cpu))
		}
		m.add("p50_ms", percentile(lat, 0.5))
		m.add("p99_ms", percentile(lat, 0.99))
	}
}
