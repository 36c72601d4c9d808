// Package outcome is the one way Lethe's reconcilers turn what happened into a
// controller-runtime result, in the manner of Flux's runtime/reconcile:
//
//   - nil: done; come back after the periodic interval, if there is one.
//   - Stalled (Stall): needs a human (an invalid spec, a missing Secret, a
//     safety limit). The object's status says so; the result carries no error,
//     so nothing is retried with backoff. A watched change brings the object
//     back, or the interval given to Result, if any.
//   - Waiting (Wait): a gate not yet passed (a review window, a legal hold, a
//     store that is not Ready): come back after the wait, no error.
//   - anything else is transient: it is returned as the error, and
//     controller-runtime retries with backoff.
//
// A result never carries both RequeueAfter and an error: controller-runtime
// ignores RequeueAfter when the error is set.
//
// Domain packages return Stall and Wait errors too, so that a gate deep in
// planning reaches the reconciler with its reason intact.
package outcome

import (
	"errors"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// StallError is an error that needs a human: the object goes Stalled with
// Reason and the error's message.
type StallError struct {
	Reason string
	Msg    string
}

func (e *StallError) Error() string { return e.Msg }

// Stall returns a StallError.
func Stall(reason, msg string) error { return &StallError{Reason: reason, Msg: msg} }

// AsStall returns the StallError in err's chain, or nil.
func AsStall(err error) *StallError {
	var se *StallError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

// WaitError is a gate not yet passed: come back After. Reason and Msg say
// what is awaited, for the status.
type WaitError struct {
	After  time.Duration
	Reason string
	Msg    string
}

func (e *WaitError) Error() string { return e.Msg }

// Wait returns a WaitError.
func Wait(after time.Duration, reason, msg string) error {
	return &WaitError{After: after, Reason: reason, Msg: msg}
}

// AsWait returns the WaitError in err's chain, or nil.
func AsWait(err error) *WaitError {
	var we *WaitError
	if errors.As(err, &we) {
		return we
	}
	return nil
}

// Result turns err into a reconcile result. next is the periodic interval
// (0: none): after success, and after a stall, the object is looked at again
// then.
func Result(err error, next time.Duration) (reconcile.Result, error) {
	switch {
	case err == nil:
		return reconcile.Result{RequeueAfter: next}, nil
	case AsWait(err) != nil:
		w := AsWait(err)
		after := w.After
		if next > 0 && (after <= 0 || next < after) {
			after = next
		}
		return reconcile.Result{RequeueAfter: after}, nil
	case AsStall(err) != nil:
		return reconcile.Result{RequeueAfter: next}, nil
	default:
		return reconcile.Result{}, err
	}
}

// Requeue is a success that comes back after d: the result of a reconcile
// that did part of its work (a time slice of a PurgeJob) or polls.
func Requeue(d time.Duration) (reconcile.Result, error) {
	return reconcile.Result{RequeueAfter: d}, nil
}
