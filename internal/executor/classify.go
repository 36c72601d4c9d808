package executor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// InterruptedRetry is how long a job stalled Interrupted waits before it
// retries (and resumes from its checkpoint).
const InterruptedRetry = 30 * time.Second

// holdWait is how long a job waits for the derived identities of a hold
// just placed or changed.
const holdWait = 500 * time.Millisecond

// AbortError stopped a slice without a verdict on the job: the reconcile
// was cancelled, or a checkpoint (or a cursor) could not be written. The
// job's status in memory may be ahead of what was written; the caller
// returns the error, to be retried with backoff, and writes nothing.
type AbortError struct{ Err error }

func (e *AbortError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *AbortError) Unwrap() error { return e.Err }

// FailedError fails the job: it cannot run as specified (engine.ErrInvalid,
// datastore.ErrInvalid, datastore.ErrNotFound) and has changed no record.
// Retrying cannot help.
type FailedError struct{ Err error }

func (e *FailedError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *FailedError) Unwrap() error { return e.Err }

// InterruptedError stops a job that already changed records on an error
// that would otherwise fail it. It is a stall (outcome.AsStall finds one
// with reason Interrupted and a message saying what was and was not done)
// that also keeps its Cause. The job retries every InterruptedRetry and
// resumes exactly (fixed cutoff, sealed keys, checkpointed cursor) once the
// cause is fixed.
type InterruptedError struct {
	Cause error
	stall *outcome.StallError
}

func (e *InterruptedError) Error() string { return e.stall.Msg }

// Unwrap returns the stall and the cause.
func (e *InterruptedError) Unwrap() []error { return []error{e.stall, e.Cause} }

// Classify sorts an error of a PurgeJob's reconcile (planning or
// execution) by what the job should do; status is the job's status now.
// In order:
//
//   - an *AbortError, *FailedError or *outcome.StallError (an
//     *InterruptedError among them) is returned as it is;
//   - an invalid job (engine.ErrInvalid, datastore.ErrInvalid,
//     datastore.ErrNotFound) that already changed records: *InterruptedError;
//   - a legal hold whose derived identities are not known yet
//     (holds.ErrNotDerived): an *outcome.WaitError with reason
//     WaitingForLegalHold;
//   - an invalid job that changed nothing: *FailedError;
//   - anything else is returned as it is: transient (the caller says which
//     connection problems need a human).
func Classify(status *retentionv1.PurgeJobStatus, err error) error {
	var abort *AbortError
	var failed *FailedError
	switch {
	case err == nil, errors.As(err, &abort), errors.As(err, &failed), outcome.AsStall(err) != nil:
		return err
	case invalid(err) && changed(status):
		return &InterruptedError{Cause: err, stall: &outcome.StallError{Reason: retentionv1.ReasonInterrupted, Msg: fmt.Sprintf(
			"Stopped after changing records: %v; %s. Fix the cause: the job retries every %s and resumes where it stopped", err, progressString(status), InterruptedRetry)}}
	case errors.Is(err, holds.ErrNotDerived):
		return outcome.Wait(holdWait, retentionv1.ReasonWaitingForLegalHold, err.Error()+"; waiting")
	case invalid(err):
		return &FailedError{Err: err}
	}
	return err
}

// invalid reports whether err says the job cannot run as specified.
func invalid(err error) bool {
	return errors.Is(err, engine.ErrInvalid) || errors.Is(err, datastore.ErrInvalid) || errors.Is(err, datastore.ErrNotFound)
}

// changed reports whether the job has changed any record.
func changed(status *retentionv1.PurgeJobStatus) bool {
	return status.Deleted > 0 || status.Anonymized > 0 || slices.ContainsFunc(status.Operations, func(o retentionv1.OperationStatus) bool {
		return o.Batches > 0 && (o.Deleted > 0 || o.Anonymized > 0 || o.PartitionsDropped > 0)
	})
}

// progressString says which operations are done and which are not, with
// counts only.
func progressString(status *retentionv1.PurgeJobStatus) string {
	var done, open []string
	for _, o := range status.Operations {
		switch o.Phase {
		case retentionv1.PurgeJobSucceeded, retentionv1.OperationHeld:
			done = append(done, fmt.Sprintf("%s (%d deleted, %d anonymized)", o.Collection, o.Deleted, o.Anonymized))
		default:
			open = append(open, fmt.Sprintf("%s (%d deleted, %d anonymized so far)", o.Collection, o.Deleted, o.Anonymized))
		}
	}
	if len(done) == 0 {
		done = []string{"none"}
	}
	return "done: " + strings.Join(done, ", ") + "; not done: " + strings.Join(open, ", ")
}
