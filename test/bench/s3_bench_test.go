// Benchmarks of the S3 driver against a one-request-per-object baseline
// measured in the same run, on a throwaway versitygw (posix backend, started
// by internal/testharness).
//
//	go test ./test/bench -run '^$' -bench S3 -benchtime 3x
//
// The benchmark deletes 5,000 objects; LETHE_BENCH_ROWS lowers that (e.g.
// 1000 for a quick run), LETHE_BENCH_S3_OBJECTS sets it.
// LETHE_BENCH_S3_LATENCY (a Go duration, e.g. 5ms) puts a proxy in front of
// the server that delays every chunk of bytes by that much in each direction,
// so a request/response costs about twice that: loopback has no latency, which
// flatters the one-request-per-object baseline.

package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lethe-dev/lethe/internal/datastore"
	ls3 "github.com/lethe-dev/lethe/internal/datastore/s3"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// BenchmarkS3Delete deletes every object of a prefix (5,000 objects,
// uploads/{user_id}/{n}, 50 per user, all older than the cutoff) and reports
// objects/s:
//
//   - baseline-delete-per-object: list, then one DeleteObject request per
//     key, sequentially (run first; the others report ×baseline);
//   - lethe-batch1000: Driver.Execute with BatchSize 1,000: one listing page
//     and DeleteObjects for 1,000 keys per batch (four requests of 250 in
//     flight);
//   - lethe-batch5000: BatchSize 5,000: DeleteObjects requests of 1,000 keys,
//     four in flight;
//   - lethe-subjects: erasing all users in one operation (one listing per
//     user prefix, BatchSize 1,000).
func BenchmarkS3Delete(b *testing.B) {
	n := kvRows(b, 5_000, "LETHE_BENCH_S3_OBJECTS")
	const perUser = 50
	users := max(n/perUser, 1)
	var subjects []string
	for u := range users {
		subjects = append(subjects, fmt.Sprint(u))
	}
	cutoff := time.Now().Add(24 * time.Hour)
	coll := datastore.Collection{Pattern: "uploads/{user_id}/", TimestampSource: "LastModified"}
	byAge := func(batch int) func(context.Context, *testing.B, *ls3.Driver, *minio.Client, string) int64 {
		return func(ctx context.Context, b *testing.B, d *ls3.Driver, _ *minio.Client, _ string) int64 {
			return kvDrain(ctx, b, d, datastore.Operation{Collection: coll, Delete: true, Cutoff: &cutoff, BatchSize: batch})
		}
	}
	cases := []struct {
		name  string
		erase func(ctx context.Context, b *testing.B, d *ls3.Driver, c *minio.Client, bucket string) int64
	}{
		{"baseline-delete-per-object", func(ctx context.Context, b *testing.B, _ *ls3.Driver, c *minio.Client, bucket string) int64 {
			var keys []string
			for o := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: "uploads/", Recursive: true}) {
				if o.Err != nil {
					b.Fatal(o.Err)
				}
				keys = append(keys, o.Key)
			}
			for _, k := range keys {
				if err := c.RemoveObject(ctx, bucket, k, minio.RemoveObjectOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			return int64(len(keys))
		}},
		{"lethe-batch1000", byAge(1000)},
		{"lethe-batch5000", byAge(5000)},
		{"lethe-subjects", func(ctx context.Context, b *testing.B, d *ls3.Driver, _ *minio.Client, _ string) int64 {
			return kvDrain(ctx, b, d, datastore.Operation{Collection: coll, Delete: true, Subjects: map[string][]string{"user_id": subjects}, BatchSize: 1000})
		}},
	}
	var baseline float64
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			srv := testharness.S3(b)
			ctx := context.Background()
			if lat := os.Getenv("LETHE_BENCH_S3_LATENCY"); lat != "" {
				d, err := time.ParseDuration(lat)
				if err != nil {
					b.Fatalf("LETHE_BENCH_S3_LATENCY: %v", err)
				}
				srv.Endpoint = "http://" + latencyProxy(b, strings.TrimPrefix(srv.Endpoint, "http://"), d)
			}
			client, err := minio.New(strings.TrimPrefix(srv.Endpoint, "http://"), &minio.Options{
				Creds: credentials.NewStaticV4(srv.AccessKeyID, srv.SecretAccessKey, ""), Region: srv.Region, BucketLookup: minio.BucketLookupPath,
			})
			if err != nil {
				b.Fatal(err)
			}
			d, err := ls3.New(ctx, datastore.Config{
				Type: "S3", S3Endpoint: srv.Endpoint, S3Region: srv.Region, S3Bucket: srv.Bucket,
				S3AccessKeyID: srv.AccessKeyID, S3SecretAccessKey: srv.SecretAccessKey, S3ForcePathStyle: true,
				TLS: datastore.TLSDisable,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			var deleted int64
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				s3Fill(ctx, b, client, srv.Bucket, users, perUser)
				b.StartTimer()
				start := time.Now()
				got := c.erase(ctx, b, d, client, srv.Bucket)
				elapsed += time.Since(start)
				b.StopTimer()
				if want := int64(users * perUser); got != want {
					b.Fatalf("deleted %d objects, want %d", got, want)
				}
				for o := range client.ListObjectsIter(ctx, srv.Bucket, minio.ListObjectsOptions{Prefix: "uploads/", Recursive: true}) {
					b.Fatalf("left behind: an object (err %v)", o.Err)
				}
				deleted += got
				b.StartTimer()
			}
			perSec := float64(deleted) / elapsed.Seconds()
			b.ReportMetric(perSec, "objects/s")
			b.ReportMetric(0, "ns/op")
			if strings.HasPrefix(c.name, "baseline") {
				baseline = perSec
			} else if baseline > 0 {
				b.ReportMetric(perSec/baseline, "×baseline")
			}
		})
	}
}

// s3Fill uploads users×perUser small objects, 32 requests at a time.
func s3Fill(ctx context.Context, b *testing.B, c *minio.Client, bucket string, users, perUser int) {
	b.Helper()
	keys := make(chan string)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				body := []byte("scan of an identity document")
				if _, err := c.PutObject(ctx, bucket, k, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for u := range users {
		for i := range perUser {
			keys <- fmt.Sprintf("uploads/%d/%04d.jpg", u, i)
		}
	}
	close(keys)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// latencyProxy forwards connections to upstream, holding each chunk of bytes
// for d before passing it on. It stops when the benchmark ends.
func latencyProxy(b *testing.B, upstream string, d time.Duration) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	pipe := func(dst, src net.Conn) {
		defer dst.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				time.Sleep(d)
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					_ = src.Close()
				}
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	return l.Addr().String()
}
