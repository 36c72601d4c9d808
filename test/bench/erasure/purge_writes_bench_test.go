package erasure

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/signature"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// BenchmarkPurgeJobAPIWrites purges LETHE_BENCH_ROWS expired rows (default
// 1,000,000) from one PostgreSQL table with a PurgeJob at default settings
// (batch size, slice, checkpoint interval, no batch limit) and counts the
// manager's writes to the API server through apiProxy: the PurgeJob's status
// writes (checkpoints) and all writes, per million rows deleted. Before the
// checkpoints were bounded in time every batch wrote its status: 1,122
// writes per million rows.
//
//	go test ./test/bench/erasure -run '^$' -bench PurgeJobAPIWrites -benchtime 1x
func BenchmarkPurgeJobAPIWrites(b *testing.B) {
	rows := envInt("LETHE_BENCH_ROWS", 1_000_000)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-writes-"}}
	must(b, env.Client.Create(ctx, ns))
	pg := testharness.Postgres(b)
	conn, err := pgx.Connect(ctx, pg.DSN)
	must(b, err)
	defer conn.Close(ctx)
	cutoff := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []string{
		`CREATE TABLE events (id bigint PRIMARY KEY, user_id text NOT NULL, ts timestamptz NOT NULL)`,
		`INSERT INTO events SELECT i, (i % 1000)::text, $1::timestamptz - interval '1 day' + i * interval '1 ms' FROM generate_series(1, $2) i`,
		`INSERT INTO events SELECT $2 + i, 'new', $1::timestamptz + i * interval '1 ms' FROM generate_series(1, 1000) i`,
		`CREATE INDEX ON events (ts)`,
		`VACUUM ANALYZE events`,
	} {
		if strings.Contains(q, "$2") {
			_, err = conn.Exec(ctx, q, cutoff, rows)
		} else {
			_, err = conn.Exec(ctx, q)
		}
		must(b, err)
	}
	consent := map[string]string{retentionv1.LabelSecretConsent: "true"}
	for _, obj := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "db-credentials", Labels: consent},
			StringData: map[string]string{"username": pg.User, "password": pg.Password}},
		&retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "db"}, Spec: retentionv1.DataStoreSpec{
			Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr.To(int32(pg.Port)), Database: retentionv1.Identifier(pg.Database),
			TLS: retentionv1.TLSDisable, CredentialsSecretRef: &retentionv1.SecretReference{Name: "db-credentials"},
		}},
		&retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "app"}, Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{{Name: "events", TimestampField: "ts",
				Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}}},
		}},
	} {
		must(b, env.Client.Create(ctx, obj))
	}

	stop := startManager(b, true)
	defer stop()
	apiCalls.take()
	job := &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "purge"},
		Spec: retentionv1.PurgeJobSpec{
			DatasetRef: retentionv1.LocalObjectReference{Name: "app"}, Mode: retentionv1.ModeEnforce,
			Cutoff:     &metav1.Time{Time: cutoff},
			Operations: []retentionv1.Operation{{Collection: "events", Action: retentionv1.ActionDelete, ByAge: true}},
		},
	}
	must(b, signature.Sign([]byte("bench-digest-key-0123456789abcdef0123"), job, nil))
	b.ResetTimer()
	start := time.Now()
	must(b, env.Client.Create(ctx, job))
	for deadline := start.Add(30 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		must(b, env.Client.Get(ctx, client.ObjectKeyFromObject(job), job))
		if job.Status.Phase == retentionv1.PurgeJobSucceeded {
			break
		}
		if job.Status.Phase == retentionv1.PurgeJobFailed || job.Status.Phase == retentionv1.PurgeJobStalled || time.Now().After(deadline) {
			b.Fatalf("phase %s: %+v", job.Status.Phase, job.Status.Conditions)
		}
	}
	took := time.Since(start)
	b.StopTimer()
	calls := apiCalls.take()
	var left int64
	must(b, conn.QueryRow(ctx, `SELECT count(*) FROM events WHERE ts < $1`, cutoff).Scan(&left))
	if left != 0 || job.Status.Deleted != int64(rows) {
		b.Fatalf("%d expired rows left, %d deleted of %d", left, job.Status.Deleted, rows)
	}
	status, writes := 0, 0
	var lines []string
	for k, v := range calls {
		if strings.HasPrefix(k, "GET ") {
			continue
		}
		writes += v
		if strings.HasSuffix(k, " purgejobs/status") {
			status += v
		}
		lines = append(lines, fmt.Sprintf("%s=%d", k, v))
	}
	perM := func(n int) float64 { return float64(n) * 1e6 / float64(rows) }
	b.Logf("%d rows purged in %s (%.0f rows/s); manager API writes: %s", rows, took.Round(time.Millisecond), float64(rows)/took.Seconds(), strings.Join(lines, " "))
	b.ReportMetric(perM(status), "api-writes/1M-rows")
	b.ReportMetric(perM(writes), "all-api-writes/1M-rows")
	b.ReportMetric(float64(status)/took.Seconds(), "status-writes/s")
}
