// Benchmarks of the Redis driver against a naive baseline measured in the
// same run, on a throwaway redis-server (internal/testharness).
//
//	go test ./test/bench -run '^$' -bench Redis -benchtime 3x
//
// The benchmark erases 200,000 keys; LETHE_BENCH_ROWS lowers that (e.g.
// 20000 for a quick run), LETHE_BENCH_REDIS_KEYS sets it.
package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-dev/lethe/internal/datastore"
	lredis "github.com/lethe-dev/lethe/internal/datastore/redis"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// TestMain runs the package through the harness, which starts and stops the
// throwaway servers. It is the package's only TestMain, for every benchmark
// file of the package.
func TestMain(m *testing.M) { testharness.Main(m) }

// kvRows returns def, or LETHE_BENCH_ROWS when that is smaller: the
// variable shrinks every benchmark of the package for a quick run (its
// PostgreSQL default is 1,000,000, which would be a long S3 run). override,
// when set, names a variable that sets this benchmark's size exactly.
func kvRows(b *testing.B, def int, override string) int {
	n := def
	if s := os.Getenv("LETHE_BENCH_ROWS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("LETHE_BENCH_ROWS=%q is not a positive number", s)
		}
		n = min(n, v)
	}
	if s := os.Getenv(override); override != "" && s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("%s=%q is not a positive number", override, s)
		}
		n = v
	}
	return n
}

// BenchmarkRedisErase erases every key of a collection (200,000 keys,
// session:{user_id}:{n}, 100 per user) and reports keys/s:
//
//   - baseline-unlink-per-roundtrip: SCAN, then one UNLINK per key, each
//     waiting for its reply, as a naive script would (run first; the others
//     report their ratio to it as ×baseline);
//   - lethe-subjects: Driver.Execute erasing all users in one operation
//     (coalesced: one SCAN pass, values parsed back, UNLINK up to 1,000 keys
//     per command, batches of 1,000);
//   - lethe-hashfield-age: Driver.Execute deleting hashes whose ts field
//     (Unix seconds) is older than the cutoff (one script per 1,000 keys
//     reads, compares and unlinks).
func BenchmarkRedisErase(b *testing.B) {
	n := kvRows(b, 200_000, "LETHE_BENCH_REDIS_KEYS")
	const perUser = 100
	users := max(n/perUser, 1)
	subjects := make([]string, users)
	for u := range users {
		subjects[u] = strconv.Itoa(u)
	}
	cutoff := time.Unix(1_700_000_000, 0)
	coll := datastore.Collection{Pattern: "session:{user_id}:*", TimestampField: "ts", TimestampSource: "HashField"}

	cases := []struct {
		name  string
		hash  bool
		erase func(ctx context.Context, b *testing.B, d *lredis.Driver, rdb *goredis.Client) int64
	}{
		{"baseline-unlink-per-roundtrip", false, func(ctx context.Context, b *testing.B, _ *lredis.Driver, rdb *goredis.Client) int64 {
			var total int64
			var cursor uint64
			for {
				keys, next, err := rdb.Scan(ctx, cursor, "session:*", 1000).Result()
				if err != nil {
					b.Fatal(err)
				}
				for _, k := range keys {
					m, err := rdb.Unlink(ctx, k).Result()
					if err != nil {
						b.Fatal(err)
					}
					total += m
				}
				if cursor = next; cursor == 0 {
					return total
				}
			}
		}},
		{"lethe-subjects", false, func(ctx context.Context, b *testing.B, d *lredis.Driver, _ *goredis.Client) int64 {
			return kvDrain(ctx, b, d, datastore.Operation{Collection: coll, Delete: true, Subjects: map[string][]string{"user_id": subjects}, BatchSize: 1000})
		}},
		{"lethe-hashfield-age", true, func(ctx context.Context, b *testing.B, d *lredis.Driver, _ *goredis.Client) int64 {
			return kvDrain(ctx, b, d, datastore.Operation{Collection: coll, Delete: true, Cutoff: &cutoff, BatchSize: 1000})
		}},
	}
	var baseline float64 // keys/s of the latest baseline run
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			srv := testharness.Redis(b)
			ctx := context.Background()
			rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr, Password: srv.Password, DB: srv.DB})
			defer rdb.Close()
			d, err := lredis.New(ctx, datastore.Config{Type: "Redis", Host: srv.Host, Port: srv.Port, Password: srv.Password, RedisDB: srv.DB, TLS: datastore.TLSDisable})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			var erased int64
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				redisFill(ctx, b, rdb, users, perUser, c.hash, cutoff)
				b.StartTimer()
				start := time.Now()
				got := c.erase(ctx, b, d, rdb)
				elapsed += time.Since(start)
				b.StopTimer()
				if want := int64(users * perUser); got != want {
					b.Fatalf("erased %d keys, want %d", got, want)
				}
				if left := rdb.DBSize(ctx).Val(); left != 0 {
					b.Fatalf("%d keys left", left)
				}
				erased += got
				b.StartTimer()
			}
			perSec := float64(erased) / elapsed.Seconds()
			b.ReportMetric(perSec, "keys/s")
			b.ReportMetric(0, "ns/op")
			if strings.HasPrefix(c.name, "baseline") {
				baseline = perSec
			} else if baseline > 0 {
				b.ReportMetric(perSec/baseline, "×baseline")
			}
		})
	}
}

// redisFill writes users×perUser keys with pipelines of 10,000 commands:
// strings, or hashes with a ts field a day before the cutoff.
func redisFill(ctx context.Context, b *testing.B, rdb *goredis.Client, users, perUser int, hash bool, cutoff time.Time) {
	b.Helper()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	ts := strconv.FormatInt(cutoff.Add(-24*time.Hour).Unix(), 10)
	pipe := rdb.Pipeline()
	queued := 0
	for u := range users {
		for i := range perUser {
			k := fmt.Sprintf("session:%d:%d", u, i)
			if hash {
				pipe.HSet(ctx, k, "ts", ts, "ip", "192.0.2.1")
			} else {
				pipe.Set(ctx, k, "token", 0)
			}
			if queued++; queued == 10_000 {
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
				queued = 0
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
}

// kvDrain runs op to the end.
func kvDrain(ctx context.Context, b *testing.B, d datastore.Driver, op datastore.Operation) int64 {
	var total int64
	cursor := ""
	for {
		batch, err := d.Execute(ctx, op, cursor)
		if err != nil {
			b.Fatal(err)
		}
		total += batch.Affected
		if batch.Done {
			return total
		}
		cursor = batch.Cursor
	}
}
