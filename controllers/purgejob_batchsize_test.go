package controllers_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

// A PurgeJob without batchSize runs adaptive batches: a PostgreSQL trigger
// notes the rows of every DELETE statement the purge commits. On an idle
// store they start at 1000 and grow; the DataStore's maxBatchSize bounds
// them, and the next job starts at the size learned before (clamped); a
// job with batchSize keeps that fixed size.
func TestPurgeJobAdaptiveBatches(t *testing.T) {
	ctx := context.Background()
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	conn := seedEvents(t, pg, 20000, 15000)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	mustExec(t, conn, `CREATE TABLE batch_log (seq serial, rows bigint NOT NULL)`)
	mustExec(t, conn, `CREATE FUNCTION log_batch() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO batch_log (rows) SELECT count(*) FROM gone; RETURN NULL; END $$`)
	mustExec(t, conn, `CREATE TRIGGER log_batch AFTER DELETE ON events REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION log_batch()`)
	// batches are the rows of each DELETE since the log was emptied, in order.
	batches := func() []int64 {
		rows, err := conn.Query(ctx, `SELECT rows FROM batch_log ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []int64
		for rows.Next() {
			var n int64
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	run := func(name string, batchSize int32, want int64) []int64 {
		t.Helper()
		mustExec(t, conn, `TRUNCATE batch_log`)
		job := deleteJob(ns, name, retentionv1.ModeEnforce)
		job.Spec.BatchSize = batchSize
		createJob(t, job)
		done := waitPhase(t, ns, name, retentionv1.PurgeJobSucceeded)
		if done.Status.Deleted != want || count(t, conn, `SELECT count(*) FROM events WHERE ts < $1`, base) != 0 {
			t.Fatalf("%s deleted %d, want %d and no expired row left", name, done.Status.Deleted, want)
		}
		b := batches()
		var sum int64
		for _, n := range b {
			sum += n
		}
		if sum != want {
			t.Fatalf("%s: the store saw batches %v (%d rows), status %d batches", name, b, sum, done.Status.Operations[0].Batches)
		}
		t.Logf("%s: batches %v", name, b)
		return b
	}
	// expire adds n expired rows with ids from first on.
	expire := func(first, n int) {
		mustExec(t, conn, `INSERT INTO events SELECT i, '1', 'u@example.com', $1::timestamptz - interval '1 day' FROM generate_series($2::int, $3::int) i`, base, first, first+n-1)
	}

	b := run("adaptive", 0, 15000)
	if b[0] != 1000 {
		t.Errorf("the first adaptive batch deleted %d rows, want 1000", b[0])
	}
	if len(b) >= 15 {
		t.Errorf("%d adaptive batches for 15000 rows on an idle store, want fewer than at a fixed 1000 (they grow)", len(b))
	}

	// A lower maximum bounds every batch, the learned size included.
	var store retentionv1.DataStore
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &store); err != nil {
		t.Fatal(err)
	}
	store.Spec.Limits.MaxBatchSize = 1500
	if err := env.Client.Update(ctx, &store); err != nil {
		t.Fatal(err)
	}
	expire(100001, 6000)
	b = run("capped", 0, 6000)
	for _, n := range b {
		if n > 1500 {
			t.Errorf("capped: a batch deleted %d rows, above maxBatchSize 1500: %v", n, b)
			break
		}
	}
	// The next job starts at the learned size, clamped to the maximum
	// (later batches may shrink if the machine is loaded).
	if b[0] != 1500 {
		t.Errorf("capped: the first batch deleted %d rows, want 1500 (the learned size, clamped to maxBatchSize): %v", b[0], b)
	}

	// A fixed batchSize is used as it is.
	expire(200001, 2100)
	b = run("fixed", 700, 2100)
	if len(b) < 3 || b[0] != 700 || b[1] != 700 || b[2] != 700 {
		t.Errorf("fixed: batches %v, want 700 each", b)
	}
}
