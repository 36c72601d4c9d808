package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/identity"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// LegalHold condition type and reasons. A hold that has ended is still
// Ready (its status is current); the Active condition says whether it holds.

// maxBlocking bounds status.blocking; the Active condition's message gives
// the full count.
const maxBlocking = 100

// LegalHoldReconciler reports each LegalHold's phase (Active, Expired,
// Released), how many subjects it covers and which runs it holds back.
type LegalHoldReconciler struct {
	Deps
	// RecheckInterval is how often an active hold re-reads its subjects
	// Secret (Secrets are not watched) and derives its subjects' further
	// identities from the stores again, and how soon a hold whose Secret is
	// missing is checked again (default 5m).
	RecheckInterval time.Duration
}

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=legalholds,verbs=get;list;watch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=legalholds/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=purgejobs;datasets;deletionrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the LegalHold controller. Holds of a namespace
// are refreshed when a PurgeJob there starts, finishes or has an operation
// held, when a DeletionRequest there becomes held or stops being held, and
// when a Dataset there changes (its linking collections decide what is
// derived).
func (r *LegalHoldReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("legalhold").
		For(&retentionv1.LegalHold{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&retentionv1.PurgeJob{}, handler.EnqueueRequestsFromMapFunc(r.holdsOfNamespace),
			builder.WithPredicates(purgeJobProgressChanged())).
		Watches(&retentionv1.DeletionRequest{}, handler.EnqueueRequestsFromMapFunc(r.holdsOfNamespace),
			builder.WithPredicates(requestHeldChanged())).
		Watches(&retentionv1.Dataset{}, handler.EnqueueRequestsFromMapFunc(r.holdsOfNamespace),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(concurrency, 1)}).
		Complete(r)
}

func (r *LegalHoldReconciler) holdsOfNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return listRequests(ctx, r, &retentionv1.LegalHoldList{}, client.InNamespace(o.GetNamespace()))
}

// purgeJobProgressChanged passes PurgeJob events that can change what a hold
// blocks: creation, deletion, a phase change or an operation becoming Held.
// Batch checkpoints, which only move counters and cursors, are filtered out.
func purgeJobProgressChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*retentionv1.PurgeJob)
			n, ok2 := e.ObjectNew.(*retentionv1.PurgeJob)
			if !ok1 || !ok2 {
				return true
			}
			return o.Status.Phase != n.Status.Phase || heldOps(o) != heldOps(n) ||
				o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero()
		},
	}
}

// requestHeldChanged passes DeletionRequest events that can change what a
// hold blocks: creation, deletion, and a change of phase or status.heldBy.
func requestHeldChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*retentionv1.DeletionRequest)
			n, ok2 := e.ObjectNew.(*retentionv1.DeletionRequest)
			if !ok1 || !ok2 {
				return true
			}
			return o.Status.Phase != n.Status.Phase || !slices.Equal(o.Status.HeldBy, n.Status.HeldBy) ||
				o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero()
		},
	}
}

func heldOps(job *retentionv1.PurgeJob) int {
	n := 0
	for _, st := range job.Status.Operations {
		if st.Phase == retentionv1.OperationHeld {
			n++
		}
	}
	return n
}

func (r *LegalHoldReconciler) recheckInterval() time.Duration {
	if r.RecheckInterval > 0 {
		return r.RecheckInterval
	}
	return 5 * time.Minute
}

// Reconcile gets the hold, computes its status (reconcile), writes it once,
// records the events of a changed phase or a new stall, and turns what
// happened into the result (internal/outcome).
func (r *LegalHoldReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var h retentionv1.LegalHold
	if err := r.Get(ctx, req.NamespacedName, &h); err != nil {
		return outcome.Result(client.IgnoreNotFound(err), 0)
	}
	if !h.DeletionTimestamp.IsZero() {
		return outcome.Result(nil, 0)
	}
	w := newStatusWriter(r.Client, &h)
	before := w.previous
	next, err := r.reconcile(ctx, &h)
	if werr := w.write(ctx, &h); werr != nil {
		return outcome.Result(fmt.Errorf("saving LegalHold status: %w", werr), 0)
	}
	r.recordChanges(ctx, before, &h)
	return outcome.Result(err, next)
}

// reconcile reads top to bottom: phase → subjects → derived identities →
// blocking → status. It returns when to look again, or a transient error
// (with status saying Reconciling); what needs a human is in the status
// (Stalled), not the error.
func (r *LegalHoldReconciler) reconcile(ctx context.Context, h *retentionv1.LegalHold) (time.Duration, error) {
	now := r.now()
	phase := holds.Phase(h, now)
	active := phase == retentionv1.HoldActive
	h.Status.ObservedGeneration = h.Generation
	h.Status.Phase = phase

	// Subjects: counted, never copied. A missing Secret matters only while
	// the hold is active (the engine then refuses to run jobs in its scope).
	named, err := holds.Named(ctx, r.APIReader, h)
	if errors.Is(err, holds.ErrInvalidSubject) {
		err = outcome.Stall(retentionv1.ReasonInvalidIdentity, strings.TrimPrefix(err.Error(), holds.ErrInvalidSubject.Error()+": "))
	} else if err == nil {
		err = checkHeld(named)
	}
	var missing error
	bad := outcome.AsStall(err)
	switch {
	case err == nil:
		h.Status.Subjects = countDistinct(named)
		// Types no Dataset declares hold nothing: say so (Datasets are not
		// watched; an active hold checks again every recheck interval).
		datasets, err := r.datasetsOf(ctx, h)
		if err != nil {
			retentionv1.MarkNotReady(h, retentionv1.ReasonProgressing, fmt.Sprintf("Listing the Datasets failed: %v; retrying", err))
			return 0, err
		}
		r.markUnknownTypes(h, "hold", identity.Types(named), datasets)
	case bad != nil:
		h.Status.Subjects = 0
	case errors.Is(err, connect.ErrSecretNotFound):
		missing = err
		h.Status.Subjects = int32(len(h.Spec.Subjects))
	default:
		retentionv1.MarkNotReady(h, retentionv1.ReasonProgressing, fmt.Sprintf("Reading the subjects Secret failed: %v; retrying", err))
		return 0, err
	}

	// Derived identities: the held subjects' further identities, kept in
	// the hold's own Secret while it is active, removed when it ends.
	var refresh time.Duration
	var derr error
	switch {
	case active && missing == nil && bad == nil && holds.HasSubjects(h):
		refresh, derr = r.derive(ctx, h, named, now)
	case !active:
		derr = r.forgetDerived(ctx, h)
	}
	derivationStalled := outcome.AsStall(derr)
	if derr != nil && derivationStalled == nil {
		retentionv1.MarkNotReady(h, retentionv1.ReasonProgressing, fmt.Sprintf("Deriving the held subjects' identities failed: %v; retrying", derr))
		return 0, derr
	}

	// What the hold holds back now.
	h.Status.Blocking = nil
	var total int
	if active {
		if h.Status.Blocking, total, err = r.blocking(ctx, h); err != nil {
			retentionv1.MarkNotReady(h, retentionv1.ReasonProgressing, fmt.Sprintf("Listing what the hold holds back failed: %v; retrying", err))
			return 0, err
		}
	}

	var next time.Duration
	switch {
	case active:
		retentionv1.SetCondition(h, retentionv1.ConditionActive, metav1.ConditionTrue, retentionv1.ReasonActive, activeMessage(h, total))
		next = r.recheckInterval()
		if refresh > 0 {
			next = min(next, refresh)
		}
		if h.Spec.ExpiresAt != nil {
			// Wake up when it expires, so the phase flips on time.
			next = min(next, h.Spec.ExpiresAt.Sub(now)+50*time.Millisecond)
		}
	case phase == retentionv1.HoldExpired:
		retentionv1.SetCondition(h, retentionv1.ConditionActive, metav1.ConditionFalse, retentionv1.ReasonExpired,
			fmt.Sprintf("The hold expired at %s", h.Spec.ExpiresAt.UTC().Format(time.RFC3339)))
	default:
		retentionv1.SetCondition(h, retentionv1.ConditionActive, metav1.ConditionFalse, retentionv1.ReasonReleased, "The hold was released")
	}
	switch {
	case bad != nil && active:
		retentionv1.MarkStalled(h, bad.Reason, bad.Msg+"; PurgeJobs in this hold's scope cannot exclude its subjects until it is fixed")
		next = min(next, r.recheckInterval())
	case missing != nil && active:
		retentionv1.MarkStalled(h, connect.SecretReason(missing),
			fmt.Sprintf("%v; PurgeJobs in this hold's scope cannot run until Lethe can read it", missing))
		next = min(next, r.recheckInterval())
	case derr != nil && active:
		// The hold still holds its named identities and those derived
		// before; the stores are read again after the recheck interval.
		msg := derivationStalled.Msg + "; the hold holds the identities it names and those derived before"
		retentionv1.SetCondition(h, retentionv1.ConditionIdentitiesDerived, metav1.ConditionFalse, derivationStalled.Reason, msg)
		retentionv1.MarkStalled(h, derivationStalled.Reason, msg)
		next = min(next, r.recheckInterval())
	default:
		msg := fmt.Sprintf("The hold is %s", strings.ToLower(string(phase)))
		retentionv1.MarkReady(h, string(phase), msg)
	}
	return next, nil
}

// checkHeld checks the identities a hold names: types that are identity
// types, values without control characters (InvalidIdentity).
func checkHeld(subjects map[string][]string) error {
	for t, vs := range subjects {
		for _, v := range vs {
			if err := identity.Check(t, v); err != nil {
				return outcome.Stall(retentionv1.ReasonInvalidIdentity, "subjects: "+err.Error())
			}
		}
	}
	return nil
}

// countDistinct counts distinct identifiers (type and value).
func countDistinct(subjects map[string][]string) int32 {
	seen := map[string]struct{}{}
	for t, vs := range subjects {
		for _, v := range vs {
			seen[t+"\x00"+v] = struct{}{}
		}
	}
	return int32(len(seen))
}

// datasetsOf lists the Datasets a hold applies to.
func (r *LegalHoldReconciler) datasetsOf(ctx context.Context, h *retentionv1.LegalHold) ([]retentionv1.Dataset, error) {
	var list retentionv1.DatasetList
	if err := r.List(ctx, &list, client.InNamespace(h.Namespace)); err != nil {
		return nil, err
	}
	if len(h.Spec.Datasets) > 0 {
		list.Items = slices.DeleteFunc(list.Items, func(d retentionv1.Dataset) bool {
			return !slices.Contains(h.Spec.Datasets, retentionv1.ObjectName(d.Name))
		})
	}
	return list.Items, nil
}

// blocking lists what the hold holds back in its namespace: DeletionRequests
// it stalls (phase Held, naming it in status.heldBy); PurgeJobs with an
// operation Held on a collection the hold covers (for holds without
// subjects, which keep whole collections) or, for holds with subjects, with
// records kept out of an operation on a collection it covers (held > 0);
// and unfinished jobs working on a collection the hold covers. It returns at
// most maxBlocking entries, sorted, and the full count.
func (r *LegalHoldReconciler) blocking(ctx context.Context, h *retentionv1.LegalHold) ([]string, int, error) {
	var out []string
	var requests retentionv1.DeletionRequestList
	if err := r.List(ctx, &requests, client.InNamespace(h.Namespace)); err != nil {
		return nil, 0, fmt.Errorf("listing DeletionRequests: %w", err)
	}
	for _, dr := range requests.Items {
		if dr.Status.Phase == retentionv1.RequestHeld && slices.Contains(dr.Status.HeldBy, h.Name) && dr.DeletionTimestamp.IsZero() {
			out = append(out, "DeletionRequest/"+dr.Name)
		}
	}
	var jobs retentionv1.PurgeJobList
	if err := r.List(ctx, &jobs, client.InNamespace(h.Namespace)); err != nil {
		return nil, 0, fmt.Errorf("listing PurgeJobs: %w", err)
	}
	datasets := map[string]*retentionv1.Dataset{}
	dataset := func(name string) (*retentionv1.Dataset, error) {
		if d, ok := datasets[name]; ok {
			return d, nil
		}
		var d retentionv1.Dataset
		err := r.Get(ctx, types.NamespacedName{Namespace: h.Namespace, Name: name}, &d)
		if apierrors.IsNotFound(err) {
			datasets[name] = nil
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		datasets[name] = &d
		return &d, nil
	}
	for i := range jobs.Items {
		job := &jobs.Items[i]
		if !job.DeletionTimestamp.IsZero() {
			continue
		}
		unfinished := !finished(job)
		name := string(job.Spec.DatasetRef.Name)
		ds, err := dataset(name)
		if err != nil {
			return nil, 0, err
		}
		for k, op := range job.Spec.Operations {
			var st retentionv1.OperationStatus
			if k < len(job.Status.Operations) {
				st = job.Status.Operations[k]
			}
			blocked := st.Phase == retentionv1.OperationHeld && !holds.HasSubjects(h)
			kept := st.Held > 0 && holds.HasSubjects(h)
			if !unfinished && !blocked && !kept {
				continue
			}
			c := &retentionv1.Collection{Name: op.Collection}
			if ds != nil {
				if dc, ok := engine.Collection(ds, op.Collection); ok {
					c = dc
				}
			}
			if holds.Applies(h, name, c) {
				out = append(out, "PurgeJob/"+job.Name)
				break
			}
		}
	}
	slices.Sort(out)
	total := len(out)
	if len(out) > maxBlocking {
		out = out[:maxBlocking]
	}
	return out, total, nil
}

// activeMessage describes an active hold by counts and scope names, never by
// subject values.
func activeMessage(h *retentionv1.LegalHold, blocking int) string {
	var b strings.Builder
	if holds.HasSubjects(h) {
		fmt.Fprintf(&b, "Holding the records of %d subjects", h.Status.Subjects)
	} else {
		b.WriteString("Holding every record")
	}
	var scope []string
	if len(h.Spec.Datasets) > 0 {
		scope = append(scope, "Datasets "+joinNames(h.Spec.Datasets))
	}
	if len(h.Spec.Collections) > 0 {
		scope = append(scope, "collections "+joinNames(h.Spec.Collections))
	}
	if len(h.Spec.Categories) > 0 {
		scope = append(scope, "categories "+joinNames(h.Spec.Categories))
	}
	if len(scope) == 0 {
		b.WriteString(" of every Dataset in the namespace")
	} else {
		b.WriteString(" in " + strings.Join(scope, ", "))
	}
	if h.Spec.ExpiresAt != nil {
		b.WriteString(" until " + h.Spec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if blocking > 0 {
		fmt.Fprintf(&b, "; holding back %d DeletionRequests and PurgeJobs (status.blocking)", blocking)
	}
	return b.String()
}

func joinNames[T ~string](names []T) string {
	const show = 5
	parts := make([]string, 0, show+1)
	for i, n := range names {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(names)-show))
			break
		}
		parts = append(parts, string(n))
	}
	return strings.Join(parts, ", ")
}

// recordChanges records an event when the phase changed, and when the hold
// became Stalled, since before.
func (r *LegalHoldReconciler) recordChanges(ctx context.Context, before, h *retentionv1.LegalHold) {
	if h.Status.Phase != before.Status.Phase {
		msg := "The hold is active"
		if c := findCondition(h.Status.Conditions, retentionv1.ConditionActive); c != nil {
			msg = c.Message
		}
		r.Recorder.Eventf(h, nil, "Normal", string(h.Status.Phase), "Hold", "%s", msg)
		log.FromContext(ctx).Info("LegalHold phase changed", "phase", h.Status.Phase, "subjects", h.Status.Subjects)
	}
	if was, now := findCondition(before.Status.Conditions, retentionv1.ConditionStalled), findCondition(h.Status.Conditions, retentionv1.ConditionStalled); now != nil && was == nil {
		r.Recorder.Eventf(h, nil, "Warning", now.Reason, "Hold", "%s", now.Message)
	}
}
