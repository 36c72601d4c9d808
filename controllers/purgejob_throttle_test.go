package controllers_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

// maxBatchesPerSecond limits the rate the store sees: a PostgreSQL trigger
// notes the time of every DELETE statement the purge commits.
func TestPurgeJobMaxBatchesPerSecond(t *testing.T) {
	const perSecond = 5
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := postgresStoreWith(t, ns, "db", func(s *retentionv1.DataStoreSpec) { s.Limits.MaxBatchesPerSecond = perSecond })
	conn := seedEvents(t, pg, 600, 300)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	mustExec(t, conn, `CREATE TABLE batch_log (at timestamptz NOT NULL)`)
	mustExec(t, conn, `CREATE FUNCTION log_batch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO batch_log VALUES (clock_timestamp()); RETURN NULL; END $$`)
	mustExec(t, conn, `CREATE TRIGGER log_batch AFTER DELETE ON events FOR EACH STATEMENT EXECUTE FUNCTION log_batch()`)

	job := deleteJob(ns, "slow", retentionv1.ModeEnforce)
	job.Spec.BatchSize = 10
	createJob(t, job)
	done := waitPhase(t, ns, "slow", retentionv1.PurgeJobSucceeded)
	if done.Status.Deleted != 300 || count(t, conn, `SELECT count(*) FROM events WHERE ts < $1`, base) != 0 {
		t.Fatalf("deleted %d; the expired rows must all be gone", done.Status.Deleted)
	}

	var n int64
	var first, last time.Time
	var minGap float64
	if err := conn.QueryRow(context.Background(), `SELECT count(*), min(at), max(at),
		(SELECT min(gap) FROM (SELECT extract(epoch FROM at - lag(at) OVER (ORDER BY at))::float8 AS gap FROM batch_log) g)
		FROM batch_log`).Scan(&n, &first, &last, &minGap); err != nil {
		t.Fatal(err)
	}
	rate := float64(n-1) / last.Sub(first).Seconds()
	t.Logf("%d batches committed over %v: %.2f batches/s (limit %d), closest %.0f ms apart; %d in status",
		n, last.Sub(first).Round(time.Millisecond), rate, perSecond, minGap*1000, done.Status.Operations[0].Batches)
	if n < 25 {
		t.Fatalf("%d batches, want at least 25 to measure a rate", n)
	}
	if rate > perSecond*1.1 || rate < perSecond/2.0 {
		t.Errorf("%.2f batches/s, want at most %d and close to it", rate, perSecond)
	}
}
