package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// What a PurgeJob's reconcile writes when a slice ends: phase, conditions,
// events and job metrics (the batch metrics are the executor's).

// checkpoint writes the job's status with an optimistic lock, so a writer
// holding an outdated view can never overwrite newer progress (see
// statusWriter). It is the executor's Checkpoint too.
// A write that succeeded is vouched for in the reconciler's ledger, so the
// next slice needs no recount.
func (j *jobRun) checkpoint(ctx context.Context) error {
	if j.reached {
		j.available()
	}
	if err := j.status.write(ctx, j.job); err != nil {
		return err
	}
	j.r.ledger.Vouch(j.job)
	return nil
}

// recounted tells of a recount that found records deleted by batches whose
// checkpoint was never written (executor.Run.OnRecount): an event; the
// count is in status.recounted, written by the checkpoint that follows.
func (j *jobRun) recounted(n int64) {
	j.r.Recorder.Eventf(j.job, nil, "Normal", retentionv1.ReasonRecounted, "Execute",
		"Recounted: %d records deleted by batches whose checkpoint was not written (the manager stopped or lost the API server in between) were added to the totals", n)
}

// verified records what the count after the last batch found
// (executor.Verification): the CountsVerified condition, and a Warning
// event when the totals cannot be proven exact.
func (j *jobRun) verified(v *executor.Verification) {
	if v == nil {
		return
	}
	if v.Exact {
		reason := retentionv1.ReasonVerified
		if !v.ReadBack {
			reason = retentionv1.ReasonCountedByBatches
		}
		retentionv1.SetCondition(j.job, retentionv1.ConditionCountsVerified, metav1.ConditionTrue, reason, v.Message)
		return
	}
	retentionv1.SetCondition(j.job, retentionv1.ConditionCountsVerified, metav1.ConditionFalse, retentionv1.ReasonCountsNotExact, v.Message)
	j.r.Recorder.Eventf(j.job, nil, "Warning", retentionv1.ReasonCountsNotExact, "Execute", "%s", v.Message)
}

// available records that a call to the store succeeded in this reconcile:
// DataStoreAvailable turns True, and Ready and Reconciling, if they still
// tell of the outage, say what the job does again.
func (j *jobRun) available() {
	job := j.job
	c := findCondition(job.Status.Conditions, retentionv1.ConditionDataStoreAvailable)
	if c != nil && c.Status == metav1.ConditionTrue {
		return
	}
	if c != nil {
		if ready := findCondition(job.Status.Conditions, retentionv1.ConditionReady); ready != nil && ready.Status != metav1.ConditionTrue && ready.Reason == c.Reason {
			switch job.Status.Phase {
			case retentionv1.PurgeJobRunning:
				retentionv1.MarkReconciling(job, retentionv1.ReasonRunning, "Executing; the DataStore is reachable again")
			case retentionv1.PurgeJobPending:
				retentionv1.MarkReconciling(job, retentionv1.ReasonProgressing, "Preparing the job; the DataStore is reachable again")
			}
		}
	}
	retentionv1.SetCondition(job, retentionv1.ConditionDataStoreAvailable, metav1.ConditionTrue, retentionv1.ReasonConnected, "The DataStore is reachable")
}

// paused records why a running job waits at a batch boundary (a gate of
// executor.Run): the Throttled condition, with the measured value and the
// limit. The executor checkpoints right after.
func (j *jobRun) paused(p *executor.Pause) {
	if p.Reason == retentionv1.ReasonSuspended {
		j.markSuspended() // the user's pause: purgejob_pause.go
		return
	}
	retentionv1.SetCondition(j.job, retentionv1.ConditionThrottled, metav1.ConditionTrue, p.Reason, p.Message)
	j.job.Status.ResumeAt = nil
	if !p.Until.IsZero() {
		at := metav1.NewTime(p.Until)
		j.job.Status.ResumeAt = &at
	}
}

// unpaused records that a batch ran: a pause, if the job was paused, is over.
func (j *jobRun) unpaused() {
	j.job.Status.ResumeAt = nil
	if c := findCondition(j.job.Status.Conditions, retentionv1.ConditionThrottled); c != nil && c.Status == metav1.ConditionTrue {
		retentionv1.SetCondition(j.job, retentionv1.ConditionThrottled, metav1.ConditionFalse, retentionv1.ReasonNotThrottled, "Running: the last batch ran")
	}
}

// started marks a counted, checked and sealed job Running.
func (j *jobRun) started(ctx context.Context) (reconcile.Result, error) {
	job := j.job
	job.Status.Phase = retentionv1.PurgeJobRunning
	retentionv1.MarkReconciling(job, retentionv1.ReasonRunning, fmt.Sprintf("Executing %d operations, %d records matched", len(j.steps), job.Status.Matched))
	j.r.Recorder.Eventf(job, nil, "Normal", "Started", "Execute", "Started: %d operations, %d records matched, %s", len(j.steps), job.Status.Matched, scopeString(job))
	if err := j.checkpoint(ctx); err != nil {
		return outcome.Result(err, 0)
	}
	return outcome.Requeue(time.Millisecond)
}

func (j *jobRun) succeed(ctx context.Context, reason, msg string) (reconcile.Result, error) {
	job := j.job
	if err := j.seals.dropIfUnused(ctx); err != nil {
		return outcome.Result(err, 0)
	}
	now := metav1.NewTime(j.r.now())
	job.Status.CompletionTime = &now
	job.Status.Phase = retentionv1.PurgeJobSucceeded
	retentionv1.MarkReady(job, reason, msg)
	if err := j.checkpoint(ctx); err != nil {
		return outcome.Result(err, 0)
	}
	j.r.ledger.Forget(job.UID)
	metrics.PurgeJobs.WithLabelValues(job.Namespace, string(retentionv1.PurgeJobSucceeded)).Inc()
	j.r.Recorder.Eventf(job, nil, "Normal", reason, "Execute", "%s (%s)", msg, j.elapsed())
	log.FromContext(ctx).Info("PurgeJob finished", "phase", job.Status.Phase, "deleted", job.Status.Deleted, "anonymized", job.Status.Anonymized)
	return outcome.Result(nil, 0)
}

// refuse fails a PurgeJob this manager did not create, before anything runs.
func (j *jobRun) refuse(ctx context.Context, msg string) (reconcile.Result, error) {
	job := j.job
	now := metav1.NewTime(j.r.now())
	job.Status.ObservedGeneration = job.Generation
	job.Status.Phase = retentionv1.PurgeJobFailed
	job.Status.CompletionTime = &now
	retentionv1.MarkStalled(job, retentionv1.ReasonUnsignedPurgeJob, msg)
	if err := j.checkpoint(ctx); err != nil {
		return outcome.Result(err, 0)
	}
	metrics.PurgeJobs.WithLabelValues(job.Namespace, string(retentionv1.PurgeJobFailed)).Inc()
	j.r.Recorder.Eventf(job, nil, "Warning", retentionv1.ReasonUnsignedPurgeJob, "Execute", "%s", msg)
	log.FromContext(ctx).Info("Refused a PurgeJob Lethe did not create")
	return outcome.Result(nil, 0)
}

// stall stops the job until a human acts (safety limit, missing objects, an
// interrupted job); it looks at the job again after retry (0: only when it
// changes).
func (j *jobRun) stall(ctx context.Context, st *outcome.StallError, retry time.Duration) (reconcile.Result, error) {
	job := j.job
	first := job.Status.Phase != retentionv1.PurgeJobStalled
	job.Status.Phase = retentionv1.PurgeJobStalled
	retentionv1.MarkStalled(job, st.Reason, st.Msg)
	if err := j.checkpoint(ctx); err != nil {
		return outcome.Result(err, 0)
	}
	if first {
		metrics.PurgeJobs.WithLabelValues(job.Namespace, string(retentionv1.PurgeJobStalled)).Inc()
		j.r.Recorder.Eventf(job, nil, "Warning", st.Reason, "Execute", "%s", st.Msg)
	}
	return outcome.Result(st, retry)
}

// fail writes what an error means for the job, as executor.Classify sorts
// it: an aborted slice writes nothing, a stall stalls it (an interrupted
// job retries after executor.InterruptedRetry), a wait for a legal hold
// says so, an invalid job fails, and anything else is transient and
// retried with backoff.
func (j *jobRun) fail(ctx context.Context, err error) (reconcile.Result, error) {
	job := j.job
	err = executor.Classify(&job.Status, err)
	var abort *executor.AbortError
	var interrupted *executor.InterruptedError
	var failed *executor.FailedError
	switch {
	case errors.As(err, &abort):
		return outcome.Result(err, 0)
	case errors.As(err, &interrupted):
		j.countError(interrupted.Cause)
		return j.stall(ctx, outcome.AsStall(err), executor.InterruptedRetry)
	case outcome.AsStall(err) != nil:
		return j.stall(ctx, outcome.AsStall(err), 0)
	case outcome.AsWait(err) != nil:
		// A hold just placed or changed: wait until its derived identities
		// are known, or the job would hold only the ones it names.
		w := outcome.AsWait(err)
		retentionv1.MarkReconciling(job, w.Reason, w.Msg)
		if serr := j.checkpoint(ctx); serr != nil {
			return outcome.Result(serr, 0)
		}
		return outcome.Result(err, 0)
	case errors.As(err, &failed):
		return j.failed(ctx, failed.Err)
	}
	reason, msg := classify(err)
	// Not available: whatever succeeded earlier in this reconcile, the last
	// call failed.
	j.reached = false
	if j.store != nil {
		j.countError(err)
	}
	retentionv1.SetCondition(job, retentionv1.ConditionDataStoreAvailable, metav1.ConditionFalse, reason, msg)
	retentionv1.MarkNotReady(job, reason, msg+"; retrying with backoff")
	if connect.SecretReason(err) != "" || reason == retentionv1.ReasonAuthenticationFailed ||
		reason == retentionv1.ReasonNetworkNotAllowed || reason == retentionv1.ReasonTLSVerificationFailed {
		return j.stall(ctx, &outcome.StallError{Reason: reason, Msg: msg}, 0)
	}
	if serr := j.checkpoint(ctx); serr != nil {
		return outcome.Result(serr, 0)
	}
	return outcome.Result(err, 0)
}

// failed fails a job that cannot run as specified and changed nothing.
func (j *jobRun) failed(ctx context.Context, err error) (reconcile.Result, error) {
	job := j.job
	j.countError(err)
	now := metav1.NewTime(j.r.now())
	job.Status.Phase = retentionv1.PurgeJobFailed
	job.Status.CompletionTime = &now
	for i := range job.Status.Operations {
		if job.Status.Operations[i].Phase == retentionv1.PurgeJobRunning {
			job.Status.Operations[i].Phase = retentionv1.PurgeJobFailed
		}
	}
	if derr := j.seals.dropIfUnused(ctx); derr != nil {
		return outcome.Result(derr, 0)
	}
	retentionv1.MarkStalled(job, retentionv1.ReasonInvalidOperation, err.Error())
	if serr := j.checkpoint(ctx); serr != nil {
		return outcome.Result(serr, 0)
	}
	j.r.ledger.Forget(job.UID)
	metrics.PurgeJobs.WithLabelValues(job.Namespace, string(retentionv1.PurgeJobFailed)).Inc()
	j.r.Recorder.Eventf(job, nil, "Warning", "Failed", "Execute", "Failed: %v; deleted %d and anonymized %d records before stopping", err, job.Status.Deleted, job.Status.Anonymized)
	return outcome.Result(reconcile.TerminalError(err), 0)
}

func (j *jobRun) countError(err error) {
	store := "unknown"
	if j.store != nil {
		store = string(j.store.Spec.Type)
	}
	metrics.Errors.WithLabelValues(store, errorKind(err)).Inc()
}

// summary is the message of a job that succeeded.
func (j *jobRun) summary() string {
	job := j.job
	held := 0
	for _, st := range job.Status.Operations {
		if st.Phase == retentionv1.OperationHeld {
			held++
		}
	}
	msg := fmt.Sprintf("Deleted %d and anonymized %d records in %d operations", job.Status.Deleted, job.Status.Anonymized, len(job.Status.Operations)-held)
	if held > 0 {
		msg += fmt.Sprintf("; %d operations skipped under legal hold", held)
	}
	if n := job.Status.Recounted; n > 0 {
		msg += fmt.Sprintf("; %d of the deleted records found by a recount after a lost checkpoint", n)
	}
	return msg + keptByHolds(job.Status.Held)
}

// keptByHolds is the summary's note of records legal holds kept.
func keptByHolds(n int64) string {
	switch n {
	case 0:
		return ""
	case 1:
		return "; 1 record kept by legal holds"
	default:
		return fmt.Sprintf("; %d records kept by legal holds", n)
	}
}

func (j *jobRun) elapsed() string {
	if j.job.Status.StartTime == nil || j.job.Status.CompletionTime == nil {
		return "0s"
	}
	return j.job.Status.CompletionTime.Sub(j.job.Status.StartTime.Time).Round(time.Millisecond).String()
}

// scopeString describes what the job selects, for its Started event: its
// cutoffs, or how many DeletionRequests' subjects it erases together.
func scopeString(job *retentionv1.PurgeJob) string {
	if n := len(jobRequests(job)); n > 0 {
		return fmt.Sprintf("the subjects of %d DeletionRequests", n)
	}
	return cutoffString(job)
}

// cutoffString describes the job's cutoffs.
func cutoffString(job *retentionv1.PurgeJob) string {
	if job.Spec.Cutoff != nil {
		return "cutoff " + job.Spec.Cutoff.UTC().Format(time.RFC3339)
	}
	var cutoffs []string
	for _, op := range job.Spec.Operations {
		if op.Cutoff != nil {
			c := op.Cutoff.UTC().Format(time.RFC3339)
			if !slices.Contains(cutoffs, c) {
				cutoffs = append(cutoffs, c)
			}
		}
	}
	if len(cutoffs) == 0 {
		return "no cutoff (by subject)"
	}
	return "cutoffs " + strings.Join(cutoffs, ", ")
}
