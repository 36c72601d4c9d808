package unittest_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore/fake"
)

// DataStoreAvailable follows the job's calls to the store: False with the
// outage's reason while the store fails, True again after the next call
// that succeeds, when Ready and Reconciling stop telling of the outage.
func TestPurgeJobDataStoreAvailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup programs the outage before the first reconcile.
		setup func(w *world)
		// phase is the job's phase during the outage; recovered the
		// Reconciling reason after the reconcile that recovers.
		phase     retentionv1.PurgeJobPhase
		recovered string
	}{{
		name:      "outage during the count",
		setup:     func(w *world) { w.driver.Fail("Count", 1, fake.ErrUnavailable) },
		phase:     retentionv1.PurgeJobPending,
		recovered: retentionv1.ReasonRunning,
	}, {
		name: "outage in a later slice",
		setup: func(w *world) {
			w.r.MaxBatchesPerSlice = 1
			w.driver.Fail("Execute", 2, fake.ErrUnavailable)
		},
		phase:     retentionv1.PurgeJobRunning,
		recovered: retentionv1.ReasonRunning,
	}, {
		// Batches that succeeded earlier in the slice do not mark the
		// store available in the write that reports the failure.
		name: "outage after batches in the same slice",
		setup: func(w *world) {
			w.r.MaxBatchesPerSlice = 2
			w.driver.Fail("Execute", 2, fake.ErrUnavailable)
		},
		phase:     retentionv1.PurgeJobRunning,
		recovered: retentionv1.ReasonRunning,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			tc.setup(w)
			if _, err := w.settle(); err == nil {
				t.Fatal("the outage returned no error")
			}
			job := w.job()
			if job.Status.Phase != tc.phase ||
				!hasCondition(job, retentionv1.ConditionDataStoreAvailable, metav1.ConditionFalse, retentionv1.ReasonDataStoreUnavailable) ||
				!hasCondition(job, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonDataStoreUnavailable) {
				t.Fatalf("during the outage: phase %s, conditions %+v", job.Status.Phase, job.Status.Conditions)
			}
			outage := meta.FindStatusCondition(job.Status.Conditions, retentionv1.ConditionReady).Message

			// The store is back: one reconcile reaches it.
			if _, err := w.reconcile(); err != nil {
				t.Fatal(err)
			}
			job = w.job()
			if !hasCondition(job, retentionv1.ConditionDataStoreAvailable, metav1.ConditionTrue, retentionv1.ReasonConnected) ||
				!hasCondition(job, retentionv1.ConditionReconciling, metav1.ConditionTrue, tc.recovered) ||
				!hasCondition(job, retentionv1.ConditionReady, metav1.ConditionFalse, tc.recovered) {
				t.Fatalf("after recovery: phase %s, conditions %+v", job.Status.Phase, job.Status.Conditions)
			}
			for _, typ := range []string{retentionv1.ConditionReady, retentionv1.ConditionReconciling} {
				if msg := meta.FindStatusCondition(job.Status.Conditions, typ).Message; msg == outage || strings.Contains(msg, "retrying") {
					t.Errorf("%s still tells of the outage: %q", typ, msg)
				}
			}

			if _, err := w.settle(); err != nil {
				t.Fatal(err)
			}
			job = w.job()
			wantPhase(t, job, retentionv1.PurgeJobSucceeded, retentionv1.ReasonSucceeded)
			if job.Status.Deleted != 437 || !hasCondition(job, retentionv1.ConditionDataStoreAvailable, metav1.ConditionTrue, retentionv1.ReasonConnected) {
				t.Errorf("deleted %d, conditions %+v", job.Status.Deleted, job.Status.Conditions)
			}
		})
	}
}
