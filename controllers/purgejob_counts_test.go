package controllers_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

// The manager's connection to the API server is cut right after batches
// committed and before their checkpoint: the checkpoint fails, the progress
// in memory is lost, and the job — once the API server is back — recounts
// what those batches deleted. The totals are exact and verified.
func TestPurgeJobAPIConnectionCutAfterCommittedBatches(t *testing.T) {
	u, err := url.Parse(managerConfig.Host)
	if err != nil {
		t.Fatal(err)
	}
	api := startCutProxy(t, u.Host)
	cfg := rest.CopyConfig(managerConfig)
	cfg.Host = fmt.Sprintf("https://127.0.0.1:%d", api.port)
	if cfg.TLSClientConfig.ServerName == "" {
		cfg.TLSClientConfig.ServerName = u.Hostname()
	}
	const interval = 2 * time.Second
	startManagerWithConfig(t, controllers.Options{PurgeJobCheckpointInterval: interval}, nil, cfg)

	ns := namespace(t)
	pg := postgresStoreWith(t, ns, "db", func(s *retentionv1.DataStoreSpec) { s.Limits.MaxBatchesPerSecond = 20 })
	const rows, expired, batch = 6000, 5000, 20
	conn := seedEvents(t, pg, rows, expired)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	job := deleteJob(ns, "cut", retentionv1.ModeEnforce)
	job.Spec.BatchSize = batch
	createJob(t, job)
	key := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cut"}}

	// Wait for a checkpoint, then for batches committed after it: rows gone
	// from the store (read first) beyond what the status counts.
	deadline := time.Now().Add(60 * time.Second)
	for {
		gone := rows - count(t, conn, `SELECT count(*) FROM events`)
		st := waitFor(t, key, time.Second, "the job", func(*retentionv1.PurgeJob) bool { return true })
		if st.Status.Deleted > 0 && gone >= st.Status.Deleted+2*batch {
			t.Logf("cutting the API connection: %d rows deleted, %d checkpointed", gone, st.Status.Deleted)
			break
		}
		if st.Status.Phase == retentionv1.PurgeJobSucceeded || time.Now().After(deadline) {
			t.Fatalf("no uncheckpointed batch seen (phase %s, %d checkpointed, %d deleted)", st.Status.Phase, st.Status.Deleted, gone)
		}
		time.Sleep(20 * time.Millisecond)
	}
	api.cut()
	// Longer than the checkpoint interval: the next checkpoint fails.
	time.Sleep(2 * interval)
	api.restore()

	done := waitFor(t, key, 120*time.Second, "phase Succeeded", func(j *retentionv1.PurgeJob) bool { return j.Status.Phase == retentionv1.PurgeJobSucceeded })
	truly := rows - count(t, conn, `SELECT count(*) FROM events`)
	if left := count(t, conn, `SELECT count(*) FROM events WHERE ts < $1`, base); left != 0 || truly != expired {
		t.Errorf("%d expired rows left, %d rows deleted (want %d): rows at or after the cutoff were touched", left, truly, expired)
	}
	if done.Status.Deleted != truly || done.Status.Operations[0].Deleted != truly {
		t.Errorf("status says %d deleted (operation %d), truly %d", done.Status.Deleted, done.Status.Operations[0].Deleted, truly)
	}
	if done.Status.Recounted <= 0 {
		t.Errorf("no recount after the lost checkpoint (recounted %d)", done.Status.Recounted)
	}
	if !hasCondition(done, retentionv1.ConditionCountsVerified, metav1.ConditionTrue, retentionv1.ReasonVerified) {
		t.Errorf("conditions %+v", done.Status.Conditions)
	}
	t.Logf("%d deleted, %d of them recounted", done.Status.Deleted, done.Status.Recounted)
}
