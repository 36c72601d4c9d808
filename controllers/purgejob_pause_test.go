package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

// pauseFixture is a PostgreSQL store limited to 5 batches a second (so a
// 300-row purge in batches of 10 takes about 6 s and can be caught in the
// middle), with 600 events of which 300 expired.
func pauseFixture(t *testing.T, edit func(*retentionv1.DataStoreSpec)) (string, func() int64) {
	t.Helper()
	ns := namespace(t)
	pg := postgresStoreWith(t, ns, "db", func(s *retentionv1.DataStoreSpec) {
		s.Limits.MaxBatchesPerSecond = 5
		if edit != nil {
			edit(s)
		}
	})
	conn := seedEvents(t, pg, 600, 300)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac", Labels: marked()}, StringData: map[string]string{"key": hmacKey}})
	create(t, eventsDataset(ns))
	left := func() int64 { return count(t, conn, `SELECT count(*) FROM events WHERE ts < $1`, base) }
	return ns, left
}

// slowJob deletes the 300 expired events in batches of 10.
func slowJob(ns, name string) *retentionv1.PurgeJob {
	job := deleteJob(ns, name, retentionv1.ModeEnforce)
	job.Spec.BatchSize = 10
	return job
}

// setSuspend patches spec.suspend as a user would (kubectl patch --type merge).
func setSuspend(t *testing.T, ns, name string, suspend bool) {
	t.Helper()
	job := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := env.Client.Patch(context.Background(), job, client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"suspend":%t}}`, suspend))); err != nil {
		t.Fatal(err)
	}
}

// stillFor checks that the store and the job's totals do not move for d, and
// that the totals are exact: what the store lost is what the job reports.
func stillFor(t *testing.T, ns, name string, left func() int64, d time.Duration) int64 {
	t.Helper()
	before := left()
	time.Sleep(d)
	after := left()
	if after != before {
		t.Fatalf("%d rows were deleted while the job was paused", before-after)
	}
	var job retentionv1.PurgeJob
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &job); err != nil {
		t.Fatal(err)
	}
	if job.Status.Deleted != 300-after {
		t.Fatalf("paused: status says %d deleted, the store lost %d", job.Status.Deleted, 300-after)
	}
	return after
}

// A window that closes mid-run pauses the job at a batch boundary, showing
// when it resumes; the next window resumes it from its checkpoint and the
// totals are exact. A job that has not started waits for the window before
// counting. The manager's clock is moved, not the test's.
func TestPurgeJobPausesOutsideItsWindow(t *testing.T) {
	clock := &shiftableClock{}
	// Slices longer than the clock's jumps: the job is paused by the gate
	// before its next batch, not at the end of a slice.
	startManagerWithClock(t, controllers.Options{PurgeJobSlice: 2 * time.Hour}, clock.now)
	// A daily one-hour window that opened at the start of this minute (UTC).
	opened := clock.now().UTC().Truncate(time.Minute)
	ns, left := pauseFixture(t, func(s *retentionv1.DataStoreSpec) {
		s.Windows = []retentionv1.PurgeWindow{{Schedule: retentionv1.CronSchedule(fmt.Sprintf("%d %d * * *", opened.Minute(), opened.Hour())), Duration: "1h"}}
	})
	store := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}}, 30*time.Second, "window Open",
		func(s *retentionv1.DataStore) bool { return s.Status.Window == retentionv1.WindowOpen })
	if want := opened.Add(time.Hour); store.Status.WindowClosesAt == nil || !store.Status.WindowClosesAt.Time.Equal(want) {
		t.Errorf("windowClosesAt %v, want %v", store.Status.WindowClosesAt, want)
	}

	createJob(t, slowJob(ns, "nightly"))
	waitFor(t, &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"}}, 60*time.Second, "some batches",
		func(j *retentionv1.PurgeJob) bool { return j.Status.Deleted >= 50 })
	clock.shift(time.Hour) // the window closes
	next := opened.Add(24 * time.Hour)
	job := waitFor(t, &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"}}, 30*time.Second, "Throttled OutsideWindow",
		func(j *retentionv1.PurgeJob) bool {
			return hasCondition(j, retentionv1.ConditionThrottled, metav1.ConditionTrue, retentionv1.ReasonOutsideWindow)
		})
	if job.Status.Phase != retentionv1.PurgeJobRunning || job.Status.ResumeAt == nil || !job.Status.ResumeAt.Time.Equal(next) {
		t.Fatalf("paused outside the window: phase %s, resumeAt %v; want Running and %v", job.Status.Phase, job.Status.ResumeAt, next)
	}
	if c := condition(job, retentionv1.ConditionThrottled); c.Message != "Outside the purge windows of DataStore db; the next opens at "+next.Format(time.RFC3339) {
		t.Errorf("Throttled message %q", c.Message)
	}
	paused := stillFor(t, ns, "nightly", left, 2*time.Second)
	if paused == 0 || paused == 300 {
		t.Fatalf("%d expired rows left: the window closed before or after the run, not in the middle", paused)
	}
	t.Logf("paused with %d of 300 expired rows left", paused)

	// A job that has not started does not count outside the window.
	dry := deleteJob(ns, "preview", retentionv1.ModeDryRun)
	createJob(t, dry)
	pending := waitFor(t, dry, 30*time.Second, "Throttled OutsideWindow before starting",
		func(j *retentionv1.PurgeJob) bool {
			return hasCondition(j, retentionv1.ConditionThrottled, metav1.ConditionTrue, retentionv1.ReasonOutsideWindow)
		})
	if pending.Status.Phase != retentionv1.PurgeJobPending || pending.Status.StartTime != nil || pending.Status.Matched != 0 {
		t.Errorf("a job outside its window started: phase %s, matched %d", pending.Status.Phase, pending.Status.Matched)
	}
	touch(t, store) // the DataStore shows the closed window
	waitFor(t, store, 30*time.Second, "window Closed with nextWindow", func(s *retentionv1.DataStore) bool {
		return s.Status.Window == retentionv1.WindowClosed && s.Status.NextWindow != nil && s.Status.NextWindow.Time.Equal(next)
	})

	clock.shift(23 * time.Hour) // the next window opens
	touch(t, job)               // rather than waiting for the minute's recheck
	touch(t, dry)
	done := waitPhase(t, ns, "nightly", retentionv1.PurgeJobSucceeded)
	if done.Status.Deleted != 300 || left() != 0 {
		t.Errorf("after the next window: status %d deleted, %d expired rows left; want 300 and 0", done.Status.Deleted, left())
	}
	if done.Status.ResumeAt != nil || !hasCondition(done, retentionv1.ConditionThrottled, metav1.ConditionFalse, retentionv1.ReasonNotThrottled) {
		t.Errorf("resumed job still shows the pause: resumeAt %v, %+v", done.Status.ResumeAt, condition(done, retentionv1.ConditionThrottled))
	}
	waitPhase(t, ns, "preview", retentionv1.PurgeJobSucceeded)
}

// A user suspends a running job: it stops at the next batch boundary (no
// batch runs while suspended), shows Suspended, and resumes from its
// checkpoint with exact totals. A job created suspended does not start.
func TestPurgeJobSuspendAndResume(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, left := pauseFixture(t, nil)

	createJob(t, slowJob(ns, "run"))
	waitFor(t, &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "run"}}, 60*time.Second, "some batches",
		func(j *retentionv1.PurgeJob) bool { return j.Status.Deleted >= 30 })
	setSuspend(t, ns, "run", true)
	job := waitPhase(t, ns, "run", retentionv1.PurgeJobSuspended)
	// The gate can stop a slice that started before the spec changed: its
	// status is then of the previous generation until the next reconcile.
	job = waitFor(t, job, 10*time.Second, "observedGeneration", func(j *retentionv1.PurgeJob) bool { return j.Status.ObservedGeneration == j.Generation })
	if !hasCondition(job, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonSuspended) ||
		condition(job, retentionv1.ConditionReconciling) != nil || condition(job, retentionv1.ConditionStalled) != nil {
		t.Errorf("suspended job's conditions: %+v", job.Status.Conditions)
	}
	assertEvent(t, ns, "run", retentionv1.ReasonSuspended)
	paused := stillFor(t, ns, "run", left, 2*time.Second)
	if paused == 0 {
		t.Fatal("the job finished before it was suspended")
	}
	t.Logf("suspended with %d of 300 expired rows left", paused)
	if job.Status.ObservedGeneration != job.Generation {
		// The suspension is a spec change: the status catches up.
		waitFor(t, job, 10*time.Second, "observedGeneration", func(j *retentionv1.PurgeJob) bool { return j.Status.ObservedGeneration == j.Generation })
	}

	// Created suspended: nothing is counted.
	held := deleteJob(ns, "held", retentionv1.ModeDryRun)
	held.Spec.Suspend = true
	createJob(t, held)
	h := waitPhase(t, ns, "held", retentionv1.PurgeJobSuspended)
	if h.Status.StartTime != nil || h.Status.Matched != 0 {
		t.Errorf("a job created suspended started: %+v", h.Status)
	}

	setSuspend(t, ns, "run", false)
	done := waitPhase(t, ns, "run", retentionv1.PurgeJobSucceeded)
	if done.Status.Deleted != 300 || left() != 0 || done.Status.Operations[0].Deleted != 300 {
		t.Errorf("after resuming: status %d deleted, %d expired rows left; want 300 and 0", done.Status.Deleted, left())
	}
	assertEvent(t, ns, "run", retentionv1.ReasonResumed)

	setSuspend(t, ns, "held", false)
	h = waitPhase(t, ns, "held", retentionv1.PurgeJobSucceeded)
	if h.Status.Matched != 0 {
		t.Errorf("the dry run counted %d after the purge; want 0", h.Status.Matched)
	}
}
