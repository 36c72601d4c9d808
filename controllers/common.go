// Package controllers holds one reconciler per Lethe kind. Each reads top to
// bottom: get → gates (deletion, suspend, holds, approval) → plan → act →
// status, with conditions as in docs/design.md §5.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/health"
)

// Deps are what every reconciler needs.
type Deps struct {
	client.Client
	// APIReader reads Secrets without caching (no cluster-wide Secret watch).
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	Pool      *connect.Pool
	// Clock returns the current time; nil means time.Now (tests fix it).
	Clock func() time.Time
	// DigestKey keys the HMAC digests that stand for subjects in status,
	// receipts and the erasure ledger.
	DigestKey []byte
	// Health keeps each DataStore's last health reading, shared by the
	// PurgeJob gates (purgejob_health.go) and the DataStore controller,
	// which shows it; Setup makes one when nil.
	Health *health.Tracker
	// Throttles are the per-DataStore batch limiters
	// (spec.limits.maxBatchesPerSecond) shared by PurgeJobs and the scans
	// of ErasureReplays; Setup makes one when nil.
	Throttles *executor.Throttles
}

func (r *Deps) now() time.Time {
	if r.Clock != nil {
		return r.Clock().UTC()
	}
	return time.Now().UTC()
}

// classify maps a connection error to a condition reason and a message that
// carries no credentials, no personal data and nothing a server sent: an
// error of a driver is described by its class in fixed words
// (datastore.ConnectionProblem), never by its text, since a client
// library's error can quote whatever answered at the DataStore's address.
// Only messages Lethe writes itself are shown as they are: a Secret's
// (naming it and its key), the network policy's (naming the host and the
// policy) and invalid settings found before connecting.
func classify(err error) (reason, msg string) {
	switch {
	case errors.Is(err, connect.ErrSecretNotFound):
		return connect.SecretReason(err), err.Error()
	case errors.Is(err, datastore.ErrNotAllowed):
		return retentionv1.ReasonNetworkNotAllowed, notAllowedMessage(err)
	case datastore.TLSVerificationProblem(err) != "":
		return retentionv1.ReasonTLSVerificationFailed, "The server's certificate was refused: " + datastore.TLSVerificationProblem(err)
	case errors.Is(err, datastore.ErrAuthentication):
		return retentionv1.ReasonAuthenticationFailed, "The datastore refused the credentials"
	case errors.Is(err, datastore.ErrSettings):
		return retentionv1.ReasonConnectionFailed, err.Error()
	case errors.Is(err, datastore.ErrUnavailable):
		return retentionv1.ReasonDataStoreUnavailable, "The datastore is unavailable: " + datastore.ConnectionProblem(err)
	case errors.Is(err, datastore.ErrInvalid), errors.Is(err, datastore.ErrNotFound):
		return retentionv1.ReasonConnectionFailed, "The datastore failed: " + datastore.ConnectionProblem(err)
	default:
		// Not a driver's error (drivers classify all of theirs): the
		// Kubernetes API or Lethe itself.
		return retentionv1.ReasonConnectionFailed, err.Error()
	}
}

// notAllowedMessage says which address the network policy refused, and
// what to do, in Lethe's own words (the *datastore.NotAllowedError alone,
// without a client library's wrapping).
func notAllowedMessage(err error) string {
	what := "The DataStore's address"
	if na := datastore.AsNotAllowed(err); na != nil {
		what = na.Error()
	}
	return "Not connecting: " + what + ". Nothing was sent to it. Point the DataStore at an allowed address, or ask the cluster admin to change the manager's --datastore-allowed-networks or --datastore-denied-networks"
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, datastore.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, datastore.ErrAuthentication):
		return "authentication"
	case errors.Is(err, datastore.ErrNotFound):
		return "not_found"
	case errors.Is(err, datastore.ErrInvalid):
		return "invalid"
	default:
		return "other"
	}
}

func findCondition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// specOrMetadataChanged passes creations, spec changes and annotation or
// label changes, but not a controller's own status writes (which would
// otherwise reconcile the object again after every checkpoint).
func specOrMetadataChanged() predicate.Predicate {
	return predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{})
}

// purgeJobFinished passes PurgeJob events that end a job for the requests it
// erases: deletion, or a change into Succeeded, Failed or Stalled; and a
// finished job seen when the manager starts, so that a job whose requests
// were all deleted meanwhile is removed (releaseJobs).
func purgeJobFinished() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool {
			j, ok := e.Object.(*retentionv1.PurgeJob)
			if !ok {
				return false
			}
			switch j.Status.Phase {
			case retentionv1.PurgeJobSucceeded, retentionv1.PurgeJobFailed, retentionv1.PurgeJobStalled:
				return true
			}
			return false
		},
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*retentionv1.PurgeJob)
			n, ok2 := e.ObjectNew.(*retentionv1.PurgeJob)
			if !ok1 || !ok2 {
				return true
			}
			switch n.Status.Phase {
			case retentionv1.PurgeJobSucceeded, retentionv1.PurgeJobFailed, retentionv1.PurgeJobStalled:
				return o.Status.Phase != n.Status.Phase
			}
			return false
		},
	}
}

// purgeJobPhaseChanged passes PurgeJob events that matter to their producers:
// creation, deletion and a change of phase — not every batch checkpoint.
func purgeJobPhaseChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*retentionv1.PurgeJob)
			n, ok2 := e.ObjectNew.(*retentionv1.PurgeJob)
			return !ok1 || !ok2 || o.Status.Phase != n.Status.Phase
		},
	}
}

// listRequests lists objects with the cached client and returns a reconcile
// request for each: the body of every "which objects does this event
// concern" map function. A failed list is logged and enqueues nothing.
func listRequests(ctx context.Context, c client.Reader, list client.ObjectList, opts ...client.ListOption) []reconcile.Request {
	if err := c.List(ctx, list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "listing objects to enqueue", "kind", fmt.Sprintf("%T", list))
		return nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(items))
	for _, it := range items {
		if o, ok := it.(client.Object); ok {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
	}
	return out
}
