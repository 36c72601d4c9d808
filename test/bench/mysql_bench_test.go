// Benchmarks of the MySQL/MariaDB driver against pt-archiver, measured in the
// same run on a throwaway MariaDB (internal/testharness).
//
//	go test ./test/bench -run '^$' -bench MySQL -benchtime 1x -timeout 60m
//
// LETHE_BENCH_ROWS sets the table size (default 1,000,000; e.g. 50000 for a
// quick smoke run). pt-archiver comes from the Debian package percona-toolkit
// (apt-get install -y percona-toolkit); without it the benchmark fails.
//
// The table is append-only in shape: the key grows with the timestamp, half
// of the rows are expired, ts and user_id are indexed.
package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/mysql"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// myBench is a fresh database holding the source table src.
type myBench struct {
	my     testharness.MySQL
	db     *sql.DB
	rows   int
	cutoff time.Time // half of the rows are before it
}

var myBenchStart = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// myBenchCache keeps the generated source between the runs the testing
// package makes of one benchmark (b.N = 1 first, then the requested N).
var myBenchCache = map[string]*myBench{}

func newMyBench(b *testing.B) *myBench {
	b.Helper()
	if m, ok := myBenchCache[b.Name()]; ok {
		return m
	}
	rows := 1_000_000
	if v := os.Getenv("LETHE_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			b.Fatalf("LETHE_BENCH_ROWS=%q: want an integer ≥ 2", v)
		}
		rows = n
	}
	m := &myBench{my: testharness.MariaDB(b), rows: rows}
	var err error
	if m.db, err = sql.Open("mysql", m.my.DSN); err != nil {
		b.Fatal(err)
	}
	m.cutoff = myBenchStart.Add(time.Duration(rows/2) * time.Second)
	m.exec(b, `CREATE TABLE src (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, user_id BIGINT NOT NULL, ts DATETIME NOT NULL,
		email VARCHAR(100) NOT NULL, payload VARCHAR(100) NOT NULL, KEY (ts), KEY (user_id))`)
	// MariaDB's sequence engine generates the rows server-side.
	t0 := time.Now()
	m.exec(b, fmt.Sprintf(`INSERT INTO src SELECT seq, seq %% 100000, '2020-01-01' + INTERVAL seq SECOND,
		CONCAT('user', seq, '@example.com'), REPEAT('x', 60) FROM seq_0_to_%d`, rows-1))
	b.Logf("generated %d rows in %v", rows, time.Since(t0).Round(time.Millisecond))
	myBenchCache[b.Name()] = m // the server and its databases go away when the test binary ends
	return m
}

func (m *myBench) exec(b *testing.B, q string) int64 {
	b.Helper()
	res, err := m.db.Exec(q)
	if err != nil {
		b.Fatalf("%s: %v", strings.SplitN(q, "\n", 2)[0], err)
	}
	n, _ := res.RowsAffected()
	return n
}

func (m *myBench) count(b *testing.B, q string) int64 {
	b.Helper()
	var n int64
	if err := m.db.QueryRow(q).Scan(&n); err != nil {
		b.Fatalf("%s: %v", q, err)
	}
	return n
}

// fresh makes name an identical copy of src (same definition and rows),
// analyzed, so both contenders start from the same state.
func (m *myBench) fresh(b *testing.B, name string) {
	b.Helper()
	m.exec(b, "DROP TABLE IF EXISTS "+name)
	m.exec(b, "CREATE TABLE "+name+" LIKE src")
	m.exec(b, "INSERT INTO "+name+" SELECT * FROM src")
	m.exec(b, "ANALYZE TABLE "+name)
}

func (m *myBench) driver(b *testing.B) *mysql.Driver {
	b.Helper()
	d, err := mysql.New(context.Background(), datastore.Config{
		Type: "MySQL", Host: m.my.Host, Port: m.my.Port, Database: m.my.Database,
		Username: m.my.User, Password: m.my.Password, TLS: datastore.TLSDisable,
		MaxConnections: 4, StatementTimeout: 5 * time.Second, LockTimeout: time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	return d
}

// myDrain executes op to the end; it returns rows affected, wall time and
// the duration of every Execute call (one batch transaction each).
func myDrain(b *testing.B, d datastore.Driver, op datastore.Operation) (int64, time.Duration, []time.Duration) {
	b.Helper()
	var total int64
	var lat []time.Duration
	cursor := ""
	start := time.Now()
	for {
		t0 := time.Now()
		bt, err := d.Execute(context.Background(), op, cursor)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatalf("Execute: %v", err)
		}
		total += bt.Affected
		cursor = bt.Cursor
		if bt.Done {
			return total, time.Since(start), lat
		}
	}
}

// myMedians reports the median of each metric over the iterations.
type myMedians struct {
	names []string
	vals  map[string][]float64
}

func (m *myMedians) add(name string, v float64) {
	if m.vals == nil {
		m.vals = map[string][]float64{}
	}
	if _, ok := m.vals[name]; !ok {
		m.names = append(m.names, name)
	}
	m.vals[name] = append(m.vals[name], v)
}

func (m *myMedians) report(b *testing.B) {
	for _, n := range m.names {
		v := slices.Clone(m.vals[n])
		slices.Sort(v)
		b.ReportMetric(v[len(v)/2], n)
	}
}

func myP99(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	i := max(0, min((len(s)*99+99)/100-1, len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}

// BenchmarkMySQLPurgeVsPtArchiver: Lethe's batched purge (batch size 1000)
// against pt-archiver --purge --bulk-delete --limit 1000 --commit-each on
// identical fresh copies of the same table. Reports the rows/s of each, their
// ratio (target ≥ 1.0) and the p99 duration of a Lethe batch. The two take
// turns going first, each on a copy made just before it runs.
func BenchmarkMySQLPurgeVsPtArchiver(b *testing.B) {
	ptArchiver, err := exec.LookPath("pt-archiver")
	if err != nil {
		b.Fatal("pt-archiver not found: install it with apt-get install -y percona-toolkit")
	}
	m := newMyBench(b)
	want := m.count(b, "SELECT COUNT(*) FROM src WHERE ts < '"+m.cutoff.Format(time.DateTime)+"'")
	var med myMedians
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		var letheRate, ptRate float64
		runLethe := func() {
			m.fresh(b, "lethe_events")
			d := m.driver(b)
			op := datastore.Operation{
				Collection: datastore.Collection{Name: "lethe_events", TimestampField: "ts"},
				Delete:     true, Cutoff: &m.cutoff, BatchSize: 1000,
			}
			b.StartTimer()
			n, took, lat := myDrain(b, d, op)
			b.StopTimer()
			_ = d.Close()
			if n != want || m.count(b, "SELECT COUNT(*) FROM lethe_events") != int64(m.rows)-want {
				b.Fatalf("Lethe deleted %d rows, want %d", n, want)
			}
			letheRate = float64(n) / took.Seconds()
			med.add("lethe-p99-batch-ms", myP99(lat))
			m.exec(b, "DROP TABLE lethe_events")
		}
		runPt := func() {
			m.fresh(b, "pt_events")
			source := fmt.Sprintf("h=%s,P=%d,u=%s,p=%s,D=%s,t=pt_events", m.my.Host, m.my.Port, m.my.User, m.my.Password, m.my.Database)
			cmd := exec.Command(ptArchiver, "--source", source, "--purge",
				"--where", "ts < '"+m.cutoff.Format(time.DateTime)+"'",
				"--bulk-delete", "--limit", "1000", "--commit-each", "--no-check-charset")
			b.StartTimer()
			t0 := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(t0)
			b.StopTimer()
			if err != nil {
				b.Fatalf("pt-archiver: %v\n%s", err, out)
			}
			left := m.count(b, "SELECT COUNT(*) FROM pt_events")
			if int64(m.rows)-left != want {
				b.Fatalf("pt-archiver deleted %d rows, want %d", int64(m.rows)-left, want)
			}
			ptRate = float64(want) / took.Seconds()
			m.exec(b, "DROP TABLE pt_events")
		}
		if i%2 == 0 {
			runLethe()
			runPt()
		} else {
			runPt()
			runLethe()
		}
		med.add("lethe-rows/s", letheRate)
		med.add("pt-archiver-rows/s", ptRate)
		med.add("ratio", letheRate/ptRate)
		b.StartTimer()
	}
	med.report(b)
}

// BenchmarkMySQLPartitionDrop: a table RANGE-partitioned by day over the
// same rows; the first Execute of a purge counts and drops every partition
// wholly before the cutoff (half the table). Reports that call's duration
// (target < 1 s whatever the partitions' size) and the rows it removed.
func BenchmarkMySQLPartitionDrop(b *testing.B) {
	m := newMyBench(b)
	// Ten partitions over the range of ts; the cutoff falls in the middle
	// of partition 5, so partitions 0…4 are dropped.
	span := time.Duration(m.rows) * time.Second
	var parts []string
	for i := 1; i < 10; i++ {
		bound := myBenchStart.Add(span * time.Duration(i) / 10).Truncate(time.Second)
		parts = append(parts, fmt.Sprintf("PARTITION p%d VALUES LESS THAN (TO_SECONDS('%s'))", i-1, bound.Format(time.DateTime)))
	}
	parts = append(parts, "PARTITION p9 VALUES LESS THAN MAXVALUE")
	cutoff := myBenchStart.Add(span * 55 / 100).Truncate(time.Second)
	var med myMedians
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		m.exec(b, "DROP TABLE IF EXISTS parted")
		m.exec(b, `CREATE TABLE parted (id BIGINT UNSIGNED NOT NULL, user_id BIGINT NOT NULL, ts DATETIME NOT NULL,
			email VARCHAR(100) NOT NULL, payload VARCHAR(100) NOT NULL, PRIMARY KEY (id, ts), KEY (ts), KEY (user_id))
			PARTITION BY RANGE (TO_SECONDS(ts)) (`+strings.Join(parts, ",\n")+`)`)
		m.exec(b, "INSERT INTO parted SELECT * FROM src")
		d := m.driver(b)
		op := datastore.Operation{
			Collection: datastore.Collection{Name: "parted", TimestampField: "ts"},
			Delete:     true, Cutoff: &cutoff, BatchSize: 1000,
		}
		b.StartTimer()
		t0 := time.Now()
		first, err := d.Execute(context.Background(), op, "")
		took := time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if first.PartitionsDropped != 5 {
			b.Fatalf("first call dropped %d partitions, want 5", first.PartitionsDropped)
		}
		med.add("drop-ms", float64(took.Microseconds())/1000)
		med.add("dropped-rows", float64(first.Affected))
		_ = d.Close()
		b.StartTimer()
	}
	med.report(b)
}
