package unittest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore/fake"
)

// The PurgeJob reconciler's gates and failure paths, each from a fresh
// world (1000 events, 437 expired, 100 a batch).
func TestPurgeJobReconciler(t *testing.T) {
	for _, tc := range []struct {
		name string
		// job changes the job before it is signed.
		job func(*retentionv1.PurgeJob)
		// setup changes the world before the first reconcile.
		setup func(w *world)
		// check runs after the reconciles settled on res, err.
		check func(t *testing.T, w *world, res reconcile.Result, err error)
	}{{
		name:  "succeeds over several slices",
		setup: func(w *world) { w.r.MaxBatchesPerSlice = 1 },
		check: func(t *testing.T, w *world, res reconcile.Result, err error) {
			if err != nil || res != (reconcile.Result{}) {
				t.Fatalf("result %+v, %v", res, err)
			}
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobSucceeded, retentionv1.ReasonSucceeded)
			if job.Status.Deleted != 437 || job.Status.Operations[0].Batches != 5 || w.left() != 563 {
				t.Errorf("deleted %d in %d batches, %d left", job.Status.Deleted, job.Status.Operations[0].Batches, w.left())
			}
			if meta.FindStatusCondition(job.Status.Conditions, retentionv1.ConditionReconciling) != nil || job.Status.CompletionTime == nil {
				t.Errorf("finished job: %+v", job.Status)
			}
			ev := w.events()
			wantEvent(t, ev, "Normal Started")
			wantEvent(t, ev, "Normal "+retentionv1.ReasonSucceeded)
			if w.opened != 1 {
				t.Errorf("driver opened %d times, want once (pooled)", w.opened)
			}
		},
	}, {
		name: "dry run counts and changes nothing",
		job:  func(j *retentionv1.PurgeJob) { j.Spec.Mode = retentionv1.ModeDryRun },
		check: func(t *testing.T, w *world, _ reconcile.Result, err error) {
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobSucceeded, retentionv1.ReasonDryRunCompleted)
			if err != nil || job.Status.Matched != 437 || w.left() != 1000 || w.driver.Calls("Execute") != 0 {
				t.Errorf("matched %d, %d left, %d batches, %v", job.Status.Matched, w.left(), w.driver.Calls("Execute"), err)
			}
		},
	}, {
		name: "safety limit stalls before any change; the release lets it proceed",
		job: func(j *retentionv1.PurgeJob) {
			j.Spec.Safety = &retentionv1.SafetyLimits{MaxRows: new(int64(50))}
		},
		check: func(t *testing.T, w *world, res reconcile.Result, err error) {
			if err != nil || res != (reconcile.Result{}) {
				t.Fatalf("a stall is not retried: %+v, %v", res, err)
			}
			wantPhase(t, w.job(), retentionv1.PurgeJobStalled, retentionv1.ReasonSafetyLimitExceeded)
			wantEvent(t, w.events(), "Warning "+retentionv1.ReasonSafetyLimitExceeded)
			if w.left() != 1000 || w.job().Status.StartTime != nil {
				t.Fatalf("a stalled job started: %d left", w.left())
			}
			w.update(func(j *retentionv1.PurgeJob) { j.Annotations[retentionv1.AnnotationReleaseSafetyLimit] = "true" })
			if _, err := w.settle(); err != nil {
				t.Fatal(err)
			}
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobSucceeded, retentionv1.ReasonSucceeded)
			if meta.FindStatusCondition(job.Status.Conditions, retentionv1.ConditionStalled) != nil || w.left() != 563 {
				t.Errorf("released: %d left, conditions %+v", w.left(), job.Status.Conditions)
			}
		},
	}, {
		name:  "interrupted after changing records, then resumed from the checkpoint",
		setup: func(w *world) { w.driver.Fail("Execute", 3, fake.ErrConstraint) },
		check: func(t *testing.T, w *world, res reconcile.Result, err error) {
			if err != nil || res.RequeueAfter != 30*time.Second {
				t.Fatalf("result %+v, %v; want a retry after 30s without an error", res, err)
			}
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobStalled, retentionv1.ReasonInterrupted)
			if job.Status.Deleted != 200 || w.left() != 800 || !strings.Contains(meta.FindStatusCondition(job.Status.Conditions, retentionv1.ConditionStalled).Message, "events (200 deleted, 0 anonymized so far)") {
				t.Fatalf("deleted %d, %d left, conditions %+v", job.Status.Deleted, w.left(), job.Status.Conditions)
			}
			if _, err := w.settle(); err != nil {
				t.Fatal(err)
			}
			job = w.job()
			wantPhase(t, job, retentionv1.PurgeJobSucceeded, retentionv1.ReasonSucceeded)
			if job.Status.Deleted != 437 || w.left() != 563 {
				t.Errorf("after the resume: deleted %d, %d left", job.Status.Deleted, w.left())
			}
		},
	}, {
		name:  "invalid operation before any change fails the job",
		setup: func(w *world) { w.driver.Fail("Execute", 1, fake.ErrConstraint) },
		check: func(t *testing.T, w *world, _ reconcile.Result, err error) {
			if !errors.Is(err, reconcile.TerminalError(nil)) {
				t.Fatalf("error %v, want a terminal error", err)
			}
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobFailed, retentionv1.ReasonInvalidOperation)
			if job.Status.Operations[0].Phase != retentionv1.PurgeJobFailed || job.Status.CompletionTime == nil || w.left() != 1000 {
				t.Errorf("status %+v, %d left", job.Status, w.left())
			}
			wantEvent(t, w.events(), "Warning Failed")
			// A failed job is finished: nothing runs again.
			calls := w.driver.Calls("Execute")
			if res, err := w.reconcile(); err != nil || res != (reconcile.Result{}) || w.driver.Calls("Execute") != calls {
				t.Errorf("a failed job ran again: %+v %v", res, err)
			}
		},
	}, {
		name:  "datastore unavailable is retried with backoff, then the job completes",
		setup: func(w *world) { w.driver.Fail("Execute", 2, fake.ErrUnavailable) },
		check: func(t *testing.T, w *world, res reconcile.Result, err error) {
			if err == nil || res != (reconcile.Result{}) {
				t.Fatalf("result %+v, %v; want the error alone", res, err)
			}
			job := w.job()
			if job.Status.Phase != retentionv1.PurgeJobRunning || job.Status.Deleted != 100 ||
				!hasCondition(job, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonDataStoreUnavailable) ||
				!hasCondition(job, retentionv1.ConditionReconciling, metav1.ConditionTrue, retentionv1.ReasonDataStoreUnavailable) {
				t.Fatalf("phase %s, conditions %+v", job.Status.Phase, job.Status.Conditions)
			}
			if _, err := w.settle(); err != nil {
				t.Fatal(err)
			}
			job = w.job()
			wantPhase(t, job, retentionv1.PurgeJobSucceeded, retentionv1.ReasonSucceeded)
			if !hasCondition(job, retentionv1.ConditionDataStoreAvailable, metav1.ConditionTrue, retentionv1.ReasonConnected) || job.Status.Deleted != 437 {
				t.Errorf("deleted %d, conditions %+v", job.Status.Deleted, job.Status.Conditions)
			}
		},
	}, {
		name:  "credentials refused stall the job",
		setup: func(w *world) { w.driver.Fail("Count", 1, fake.ErrAuthentication) },
		check: func(t *testing.T, w *world, res reconcile.Result, err error) {
			if err != nil || res != (reconcile.Result{}) {
				t.Fatalf("result %+v, %v", res, err)
			}
			wantPhase(t, w.job(), retentionv1.PurgeJobStalled, retentionv1.ReasonAuthenticationFailed)
		},
	}, {
		name:  "a checkpoint that cannot be written is retried from the one before, and what it lost recounted",
		setup: func(w *world) { w.r.MaxBatchesPerSlice, w.failPatch = 2, 3 },
		check: func(t *testing.T, w *world, res reconcile.Result, err error) {
			if err == nil || res != (reconcile.Result{}) {
				t.Fatalf("result %+v, %v; want the error alone", res, err)
			}
			if _, err := w.settle(); err != nil {
				t.Fatal(err)
			}
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobSucceeded, retentionv1.ReasonSucceeded)
			// The two batches whose checkpoint (the second slice's) failed
			// committed and are not redone: every expired record is gone,
			// and those 200 are recounted.
			if w.left() != 563 || job.Status.Deleted != 437 || job.Status.Recounted != 200 {
				t.Errorf("%d left (want 563), %d counted (want 437), %d recounted (want 200)", w.left(), job.Status.Deleted, job.Status.Recounted)
			}
			if !hasCondition(job, retentionv1.ConditionCountsVerified, metav1.ConditionTrue, retentionv1.ReasonVerified) {
				t.Errorf("conditions %+v", job.Status.Conditions)
			}
			wantEvent(t, w.events(), "Normal Recounted Recounted: 200 records deleted by batches whose checkpoint was not written")
		},
	}, {
		name: "an annotation added during a slice does not lose its checkpoints",
		setup: func(w *world) {
			w.beforePatch = func(n int) {
				if n == 3 {
					w.update(func(j *retentionv1.PurgeJob) { j.Annotations["example.com/note"] = "seen" })
				}
			}
		},
		check: func(t *testing.T, w *world, _ reconcile.Result, err error) {
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobSucceeded, retentionv1.ReasonSucceeded)
			if err != nil || job.Status.Deleted != 437 || job.Annotations["example.com/note"] != "seen" || w.statusUpdates != 1 {
				t.Errorf("deleted %d, annotations %v, %d retries after a conflict, %v", job.Status.Deleted, job.Annotations, w.statusUpdates, err)
			}
		},
	}, {
		name: "collection under a legal hold is skipped",
		setup: func(w *world) {
			create(t, w.c, &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit"},
				Spec: retentionv1.LegalHoldSpec{Reason: "audit", Collections: []retentionv1.Identifier{"events"}}})
		},
		check: func(t *testing.T, w *world, _ reconcile.Result, err error) {
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobSucceeded, retentionv1.ReasonSucceeded)
			if err != nil || job.Status.Operations[0].Phase != retentionv1.OperationHeld || w.left() != 1000 || w.driver.Calls("Count") != 0 {
				t.Errorf("operation %+v, %d left, %d counts, %v", job.Status.Operations[0], w.left(), w.driver.Calls("Count"), err)
			}
		},
	}, {
		name: "a hold on subjects not derived yet makes the job wait",
		setup: func(w *world) {
			create(t, w.c, &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-7"},
				Spec: retentionv1.LegalHoldSpec{Reason: "case 7", Subjects: []retentionv1.SubjectIdentity{{Type: "user_id", Value: "7"}}}})
		},
		check: func(t *testing.T, w *world, res reconcile.Result, err error) {
			if err != nil || res.RequeueAfter != 500*time.Millisecond {
				t.Fatalf("result %+v, %v", res, err)
			}
			job := w.job()
			if !hasCondition(job, retentionv1.ConditionReconciling, metav1.ConditionTrue, retentionv1.ReasonWaitingForLegalHold) || w.driver.Calls("Count") != 0 {
				t.Errorf("conditions %+v, %d counts", job.Status.Conditions, w.driver.Calls("Count"))
			}
		},
	}, {
		name: "a job Lethe did not sign is refused without opening the store",
		setup: func(w *world) {
			w.update(func(j *retentionv1.PurgeJob) { delete(j.Annotations, retentionv1.AnnotationSignature) })
		},
		check: func(t *testing.T, w *world, res reconcile.Result, err error) {
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobFailed, retentionv1.ReasonUnsignedPurgeJob)
			if err != nil || res != (reconcile.Result{}) || w.opened != 0 || job.Status.StartTime != nil {
				t.Errorf("result %+v %v, driver opened %d times", res, err, w.opened)
			}
			wantEvent(t, w.events(), "Warning "+retentionv1.ReasonUnsignedPurgeJob)
		},
	}, {
		name: "a job whose spec changed after signing is refused",
		setup: func(w *world) {
			w.update(func(j *retentionv1.PurgeJob) { j.Spec.BatchSize = 5000 })
		},
		check: func(t *testing.T, w *world, _ reconcile.Result, _ error) {
			wantPhase(t, w.job(), retentionv1.PurgeJobFailed, retentionv1.ReasonUnsignedPurgeJob)
		},
	}, {
		name:  "missing Dataset stalls the job",
		setup: func(w *world) { remove(t, w.c, dataset()) },
		check: func(t *testing.T, w *world, res reconcile.Result, err error) {
			if err != nil || res != (reconcile.Result{}) {
				t.Fatalf("result %+v, %v", res, err)
			}
			wantPhase(t, w.job(), retentionv1.PurgeJobStalled, retentionv1.ReasonDatasetNotFound)
		},
	}, {
		name:  "missing DataStore stalls the job",
		setup: func(w *world) { remove(t, w.c, store()) },
		check: func(t *testing.T, w *world, _ reconcile.Result, _ error) {
			wantPhase(t, w.job(), retentionv1.PurgeJobStalled, retentionv1.ReasonDataStoreNotReady)
		},
	}, {
		name: "credentials Secret not marked for Lethe stalls the job",
		setup: func(w *world) {
			s := credentials()
			s.Labels = nil
			if err := w.c.Update(context.Background(), s); err != nil {
				t.Fatal(err)
			}
		},
		check: func(t *testing.T, w *world, _ reconcile.Result, _ error) {
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobStalled, retentionv1.ReasonSecretNotMarked)
			if w.opened != 0 {
				t.Errorf("driver opened %d times", w.opened)
			}
		},
	}, {
		name: "subject keys are sealed before the first change and removed at the end",
		job: func(j *retentionv1.PurgeJob) {
			j.Spec.Cutoff = nil
			j.Spec.SubjectsSecretRef = &retentionv1.SecretReference{Name: "subjects"}
			j.Spec.Operations[0] = retentionv1.Operation{Collection: "events", Action: retentionv1.ActionDelete, BySubject: true}
		},
		setup: func(w *world) {
			subjects := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "subjects", Labels: map[string]string{retentionv1.LabelSecretConsent: "true"}},
				Data: map[string][]byte{"user_id": []byte("3")}}
			create(t, w.c, subjects)
			// Signed again with its subjects' digest.
			w.update(func(j *retentionv1.PurgeJob) {
				if err := controllersSign(j, subjects.Data); err != nil {
					t.Fatal(err)
				}
			})
			w.r.MaxBatchesPerSlice = 1
		},
		check: func(t *testing.T, w *world, _ reconcile.Result, err error) {
			// settle ran it to the end: 100 records of user 3, sealed first.
			job := w.job()
			wantPhase(t, job, retentionv1.PurgeJobSucceeded, retentionv1.ReasonSucceeded)
			if err != nil || job.Status.SealedKeys != 100 || job.Status.Deleted != 100 {
				t.Fatalf("sealed %d, deleted %d, %v", job.Status.SealedKeys, job.Status.Deleted, err)
			}
			var s corev1.Secret
			if err := w.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "purge-sealed"}, &s); err == nil {
				t.Error("the sealed keys outlived the job")
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.job)
			if tc.setup != nil {
				tc.setup(w)
			}
			res, err := w.settle()
			tc.check(t, w, res, err)
		})
	}
}

// A job interrupted after sealing whose sealed keys are then removed
// cannot resume exactly: it stalls rather than run without them.
func TestPurgeJobSealedKeysGone(t *testing.T) {
	w := newWorld(t, func(j *retentionv1.PurgeJob) {
		j.Spec.Cutoff = nil
		j.Spec.SubjectsSecretRef = &retentionv1.SecretReference{Name: "subjects"}
		j.Spec.Operations[0] = retentionv1.Operation{Collection: "events", Action: retentionv1.ActionDelete, BySubject: true}
		j.Spec.BatchSize = 10
	})
	subjects := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "subjects", Labels: map[string]string{retentionv1.LabelSecretConsent: "true"}},
		Data: map[string][]byte{"user_id": []byte("3")}}
	create(t, w.c, subjects)
	w.update(func(j *retentionv1.PurgeJob) {
		if err := controllersSign(j, subjects.Data); err != nil {
			t.Fatal(err)
		}
	})
	w.r.MaxBatchesPerSlice = 1
	for range 2 { // start (count, seal), one batch
		if _, err := w.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	if job := w.job(); job.Status.SealedKeys != 100 || job.Status.Deleted != 10 {
		t.Fatalf("sealed %d, deleted %d", job.Status.SealedKeys, job.Status.Deleted)
	}
	remove(t, w.c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "purge-sealed"}})
	if res, err := w.reconcile(); err != nil || res != (reconcile.Result{}) {
		t.Fatalf("result %+v, %v", res, err)
	}
	wantPhase(t, w.job(), retentionv1.PurgeJobStalled, retentionv1.ReasonSecretNotFound)
}
