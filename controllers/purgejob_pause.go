package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/window"
)

// Pausing a PurgeJob on purpose (docs/design.md §10): the user's
// spec.suspend, and the DataStore's purge windows. Both are gates of
// executor.Run, asked before every batch, and are also checked before a job
// starts, so a suspended job or one outside its windows does not even count.

// windowRecheck bounds how long a job waiting for a window sleeps before it
// looks again, so a changed window (or a moved clock) is noticed without a
// change to the job.
const windowRecheck = time.Minute

// suspendGate pauses the job at the next batch boundary once the user sets
// spec.suspend. It reads the job from the informer cache, not the copy this
// reconcile started from, so a suspension during a slice stops it at the
// next batch.
func (j *jobRun) suspendGate(ctx context.Context) (*executor.Pause, error) {
	var cur retentionv1.PurgeJob
	if err := j.r.Get(ctx, client.ObjectKeyFromObject(j.job), &cur); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil // deleted: the next reconcile stops it
		}
		return nil, err
	}
	if !cur.Spec.Suspend {
		return nil, nil
	}
	return &executor.Pause{Reason: retentionv1.ReasonSuspended, Message: "Suspended (spec.suspend)"}, nil
}

// windowGate pauses the job while its DataStore's windows are closed (a job
// erasing DeletionRequests' subjects only with windowsApplyTo All). Until
// is when the next window opens; the job looks again at least every
// windowRecheck.
func (j *jobRun) windowGate(context.Context) (*executor.Pause, error) {
	if !keepsToWindows(j.job, j.store) {
		return nil, nil
	}
	now := j.r.now()
	// The state holds until its next change: computed once per slice and at
	// the change, not before every batch (a schedule firing every minute
	// costs thousands of steps).
	if j.window == nil || !now.Before(windowChange(*j.window)) {
		set, err := storeWindows(j.store)
		if err != nil {
			return &executor.Pause{Reason: retentionv1.ReasonOutsideWindow, Retry: windowRecheck, Message: fmt.Sprintf(
				"The purge windows of DataStore %s are invalid (%v); the job waits until they are fixed", j.store.Name, err)}, nil
		}
		st := set.At(now)
		j.window = &st
	}
	st := j.window
	if st.Open {
		return nil, nil
	}
	p := &executor.Pause{Reason: retentionv1.ReasonOutsideWindow, Until: st.Opens, Retry: windowRecheck,
		Message: fmt.Sprintf("Outside the purge windows of DataStore %s; the next opens at %s", j.store.Name, st.Opens.UTC().Format(time.RFC3339))}
	if st.Opens.IsZero() {
		p.Message = fmt.Sprintf("Outside the purge windows of DataStore %s; none opens within five years", j.store.Name)
	}
	return p, nil
}

// windowChange is when a window state stops holding: when the open period
// closes, or the next window opens (zero when none is known, which makes
// the caller compute the state again).
func windowChange(st window.State) time.Time {
	if st.Open {
		return st.Closes
	}
	return st.Opens
}

// keepsToWindows reports whether a job waits for its store's windows:
// RetentionPolicy runs always; erasures of DeletionRequests' subjects (a
// subjects Secret, operations by subject) only with windowsApplyTo All,
// because their legal deadline matters more than the hour.
func keepsToWindows(job *retentionv1.PurgeJob, store *retentionv1.DataStore) bool {
	if store == nil || len(store.Spec.Windows) == 0 {
		return false
	}
	return store.Spec.WindowsApplyTo == retentionv1.WindowsApplyToAll || !isErasure(job)
}

// isErasure reports whether a job erases subjects (a DeletionRequest's
// PurgeJob) rather than records by age.
func isErasure(job *retentionv1.PurgeJob) bool {
	if job.Spec.SubjectsSecretRef != nil {
		return true
	}
	for _, op := range job.Spec.Operations {
		if op.BySubject {
			return true
		}
	}
	return false
}

// storeWindows parses a DataStore's spec.windows.
func storeWindows(store *retentionv1.DataStore) (window.Set, error) {
	specs := make([]window.Spec, len(store.Spec.Windows))
	for i, w := range store.Spec.Windows {
		specs[i] = window.Spec{Schedule: string(w.Schedule), Duration: string(w.Duration), TimeZone: string(w.TimeZone)}
	}
	return window.Parse(specs)
}

// suspended holds a job whose spec.suspend is set, before it touches its
// store: phase Suspended, Ready False (Suspended), no Reconciling, an event
// the first time. The job is looked at again when its spec changes.
func (j *jobRun) suspended(ctx context.Context) (reconcile.Result, error) {
	job := j.job
	first := job.Status.Phase != retentionv1.PurgeJobSuspended
	j.markSuspended()
	if err := j.checkpoint(ctx); err != nil {
		return outcome.Result(err, 0)
	}
	if first {
		j.r.Recorder.Eventf(job, nil, "Normal", retentionv1.ReasonSuspended, "Suspend", "%s", suspendedMessage(job))
	}
	return outcome.Result(nil, 0)
}

// markSuspended writes the Suspended phase and conditions into the job's
// status (the caller writes it).
func (j *jobRun) markSuspended() {
	job := j.job
	job.Status.ObservedGeneration = job.Generation
	job.Status.Phase = retentionv1.PurgeJobSuspended
	job.Status.ResumeAt = nil
	retentionv1.MarkSuspended(job, retentionv1.ReasonSuspended, suspendedMessage(job))
	if c := findCondition(job.Status.Conditions, retentionv1.ConditionThrottled); c != nil && c.Status == metav1.ConditionTrue {
		retentionv1.SetCondition(job, retentionv1.ConditionThrottled, metav1.ConditionFalse, retentionv1.ReasonNotThrottled, "Suspended; the DataStore is asked again on resume")
	}
}

func suspendedMessage(job *retentionv1.PurgeJob) string {
	if job.Status.StartTime == nil {
		return "Suspended (spec.suspend) before it started; nothing was counted or changed. Set spec.suspend to false to start it"
	}
	return fmt.Sprintf("Suspended (spec.suspend) at a batch boundary: %d deleted and %d anonymized of %d matched records so far. Set spec.suspend to false to resume from the last checkpoint",
		job.Status.Deleted, job.Status.Anonymized, job.Status.Matched)
}

// resumed turns a suspended job whose spec.suspend was cleared back to
// where it was (Pending, or Running from its checkpoint), with an event.
func (j *jobRun) resumed() {
	job := j.job
	if job.Status.Phase != retentionv1.PurgeJobSuspended {
		return
	}
	if job.Status.StartTime == nil {
		job.Status.Phase = retentionv1.PurgeJobPending
		retentionv1.MarkReconciling(job, retentionv1.ReasonProgressing, "Resumed (spec.suspend is false); preparing the job")
	} else {
		job.Status.Phase = retentionv1.PurgeJobRunning
		retentionv1.MarkReconciling(job, retentionv1.ReasonRunning, "Resumed (spec.suspend is false); continuing from the last checkpoint")
	}
	j.r.Recorder.Eventf(job, nil, "Normal", retentionv1.ReasonResumed, "Resume", "Resumed: %d deleted and %d anonymized of %d matched records so far", job.Status.Deleted, job.Status.Anonymized, job.Status.Matched)
}

// waitForWindow holds a job, before it is planned, while its store's
// windows are closed. One that has not started does not count: counting
// reads every expired record, the load windows keep out of busy hours. One
// that has started (paused by windowGate in an earlier slice) waits without
// resolving its operations again. The job keeps its phase, with Throttled
// True (OutsideWindow) and status.resumeAt.
func (j *jobRun) waitForWindow(ctx context.Context) (bool, reconcile.Result, error) {
	p, _ := j.windowGate(ctx)
	if p == nil {
		if j.job.Status.StartTime == nil {
			j.unpaused() // the window is open: counting may begin
		}
		return false, reconcile.Result{}, nil
	}
	j.paused(p)
	if err := j.checkpoint(ctx); err != nil {
		res, err := outcome.Result(err, 0)
		return true, res, err
	}
	res, err := outcome.Requeue(p.After(j.r.now()))
	return true, res, err
}
