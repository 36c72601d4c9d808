package mysql

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

// benchRows is LETHE_BENCH_ROWS, or n.
func benchRows(b *testing.B, n int) int {
	if s := os.Getenv("LETHE_BENCH_ROWS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 {
			b.Fatalf("LETHE_BENCH_ROWS=%q: want a number ≥ 1000", s)
		}
		return v
	}
	return n
}

// BenchmarkDeleteModes compares the ways a delete batch can be written, on
// copies of the same table (three quarters of it expired, interleaved with
// newer rows in key order, indexes on ts and user_id), batch size 1000:
//
//	returning: DELETE … ORDER BY key LIMIT n RETURNING key (MariaDB)
//	range:     SELECT key … LIMIT 1 OFFSET n-1, DELETE … key <= that ORDER BY key LIMIT n
//	keys:      SELECT key … FOR UPDATE, DELETE … WHERE key IN (…)
//
// The modes take turns (LETHE_BENCH_ROUNDS rounds, default 3, each mode on a
// fresh copy) so that load from elsewhere on the machine hits them alike;
// the metrics are medians.
//
//	go test ./internal/datastore/mysql -run '^$' -bench DeleteModes -benchtime 1x
func BenchmarkDeleteModes(b *testing.B) {
	rows := benchRows(b, 300_000)
	rounds := 3
	if s := os.Getenv("LETHE_BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	e := newEnv(b)
	e.exec(
		"CREATE TABLE src (id BIGINT NOT NULL PRIMARY KEY, user_id BIGINT NOT NULL, ts DATETIME NOT NULL, payload VARCHAR(100) NOT NULL, KEY (ts), KEY (user_id))",
		fmt.Sprintf(`INSERT INTO src SELECT seq, seq %% 50000,
			IF(seq %% 4 = 0, '2030-01-01', '2020-01-01') + INTERVAL seq SECOND, REPEAT('x', 80) FROM seq_1_to_%d`, rows),
	)
	want := e.count("SELECT COUNT(*) FROM src WHERE ts < '2025-01-01'")
	modes := []deleteMode{deleteReturning, deleteRange, deleteKeys}
	rates := map[deleteMode][]float64{}
	p99s := map[deleteMode][]float64{}
	b.ResetTimer()
	for range b.N {
		for r := range rounds {
			for i := range modes {
				mode := modes[(i+r)%len(modes)]
				b.StopTimer()
				e.exec("DROP TABLE IF EXISTS t", "CREATE TABLE t LIKE src", "INSERT INTO t SELECT * FROM src")
				d := e.driver()
				d.deleteMode = mode
				cutoff := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
				op := datastore.Operation{Collection: datastore.Collection{Name: "t", TimestampField: "ts"}, Delete: true, Cutoff: &cutoff, BatchSize: 1000}
				b.StartTimer()
				start := time.Now()
				var total int64
				cursor := ""
				var batchTimes []float64
				for {
					t0 := time.Now()
					res, err := d.Execute(context.Background(), op, cursor)
					if err != nil {
						b.Fatal(err)
					}
					batchTimes = append(batchTimes, float64(time.Since(t0).Microseconds())/1000)
					total += res.Affected
					cursor = res.Cursor
					if res.Done {
						break
					}
				}
				took := time.Since(start)
				b.StopTimer()
				d.Close()
				if total != want {
					b.Fatalf("%s: deleted %d, want %d", mode, total, want)
				}
				rates[mode] = append(rates[mode], float64(total)/took.Seconds())
				p99s[mode] = append(p99s[mode], percentile(batchTimes, 99))
			}
		}
	}
	for _, mode := range modes {
		b.ReportMetric(percentile(rates[mode], 50), mode.String()+"-rows/s")
		b.ReportMetric(percentile(p99s[mode], 50), mode.String()+"-p99-batch-ms")
	}
}

// percentile returns the p-th percentile (nearest rank) of xs.
func percentile(xs []float64, p int) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (len(s)*p+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

// BenchmarkAnonymize: HMAC of an email, PartialMask of a phone and
// Generalize of a DATETIME over the expired half of a table, batch size 1000
// (SELECT … FOR UPDATE, mask in Go, UPDATE … CASE per 500 rows).
//
//	go test ./internal/datastore/mysql -run '^$' -bench Anonymize -benchtime 1x
func BenchmarkAnonymize(b *testing.B) {
	rows := benchRows(b, 200_000)
	e := newEnv(b)
	e.exec(
		"CREATE TABLE src (id BIGINT NOT NULL PRIMARY KEY, email VARCHAR(100) NOT NULL, phone VARCHAR(20), login DATETIME, ts DATETIME NOT NULL, KEY (ts))",
		fmt.Sprintf(`INSERT INTO src SELECT seq, CONCAT('user', seq, '@example.com'), CONCAT('+4915', LPAD(seq, 9, '0')),
			'2024-01-01' + INTERVAL seq MINUTE, '2020-01-01' + INTERVAL seq SECOND FROM seq_1_to_%d`, rows),
	)
	cutoff := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rows/2) * time.Second)
	want := e.count("SELECT COUNT(*) FROM src WHERE ts < ?", cutoff.Format(sqlDatetime))
	var rates, p99s []float64
	for range b.N {
		b.StopTimer()
		e.exec("DROP TABLE IF EXISTS t", "CREATE TABLE t LIKE src", "INSERT INTO t SELECT * FROM src")
		d := e.driver()
		op := datastore.Operation{
			Collection: datastore.Collection{Name: "t", TimestampField: "ts"}, Cutoff: &cutoff, BatchSize: 1000,
			Fields: []datastore.FieldMask{
				{Field: "email", Strategy: mask.Strategy{Kind: mask.HMAC, Key: []byte("0123456789abcdef0123456789abcdef")}},
				{Field: "phone", Strategy: mask.Strategy{Kind: mask.PartialMask, KeepFirst: 3, KeepLast: 2}},
				{Field: "login", Strategy: mask.Strategy{Kind: mask.Generalize}},
			},
		}
		b.StartTimer()
		start := time.Now()
		var total int64
		var lat []float64
		cursor := ""
		for {
			t0 := time.Now()
			res, err := d.Execute(context.Background(), op, cursor)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
			total += res.Affected
			cursor = res.Cursor
			if res.Done {
				break
			}
		}
		took := time.Since(start)
		b.StopTimer()
		d.Close()
		if total != want {
			b.Fatalf("anonymized %d, want %d", total, want)
		}
		rates = append(rates, float64(total)/took.Seconds())
		p99s = append(p99s, percentile(lat, 99))
	}
	b.ReportMetric(percentile(rates, 50), "rows/s")
	b.ReportMetric(percentile(p99s, 50), "p99-batch-ms")
}
