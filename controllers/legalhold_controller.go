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
)

// LegalHold condition type and reasons. A hold that has ended is still
// Ready (its status is current); the Active condition says whether it holds.
const (
	ConditionActive = "Active"
	ReasonActive    = holds.PhaseActive
	ReasonExpired   = holds.PhaseExpired
	ReasonReleased  = holds.PhaseReleased
)

// maxBlocking bounds status.blocking; the Active condition's message gives
// the full count.
const maxBlocking = 100

// LegalHoldReconciler reports each LegalHold's phase (Active, Expired,
// Released), how many subjects it covers and which runs it holds back.
type LegalHoldReconciler struct {
	Deps
	// RecheckInterval is how often an active hold re-reads its subjects
	// Secret (Secrets are not watched) and how soon a hold whose Secret is
	// missing is checked again (default 5m).
	RecheckInterval time.Duration
}

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=legalholds,verbs=get;list;watch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=legalholds/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=purgejobs;datasets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the LegalHold controller. Holds of a namespace
// are refreshed when a PurgeJob there starts, finishes or has an operation
// held.
func (r *LegalHoldReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("legalhold").
		For(&retentionv1.LegalHold{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&retentionv1.PurgeJob{}, handler.EnqueueRequestsFromMapFunc(r.holdsOfNamespace),
			builder.WithPredicates(purgeJobProgressChanged())).
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

func heldOps(job *retentionv1.PurgeJob) int {
	n := 0
	for _, st := range job.Status.Operations {
		if st.Phase == PhaseHeld {
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

// Reconcile reads top to bottom: get → phase → subjects → blocking → status.
func (r *LegalHoldReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var h retentionv1.LegalHold
	if err := r.Get(ctx, req.NamespacedName, &h); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !h.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	before := h.DeepCopy()
	now := r.now()
	phase := holds.Phase(&h, now)
	active := phase == holds.PhaseActive
	h.Status.ObservedGeneration = h.Generation
	h.Status.Phase = phase

	// Subjects: counted, never copied. A missing Secret matters only while
	// the hold is active (the engine then refuses to run jobs in its scope).
	n, err := r.countSubjects(ctx, &h)
	var missing error
	var bad stallError
	switch {
	case err == nil:
		h.Status.Subjects = n
	case errors.As(err, &bad):
		missing = err
		h.Status.Subjects = 0
	case errors.Is(err, connect.ErrSecretNotFound):
		missing = err
		h.Status.Subjects = int32(len(h.Spec.Subjects))
	default:
		retentionv1.MarkNotReady(&h, retentionv1.ReasonProgressing, fmt.Sprintf("Reading the subjects Secret failed: %v; retrying", err))
		if _, serr := r.save(ctx, before, &h, reconcile.Result{}); serr != nil {
			return reconcile.Result{}, serr
		}
		return reconcile.Result{}, err
	}

	// What the hold holds back now.
	h.Status.Blocking = nil
	var total int
	if active {
		if h.Status.Blocking, total, err = r.blocking(ctx, &h); err != nil {
			return reconcile.Result{}, err
		}
	}

	var result reconcile.Result
	switch {
	case active:
		retentionv1.SetCondition(&h, ConditionActive, metav1.ConditionTrue, ReasonActive, activeMessage(&h, total))
		result.RequeueAfter = r.recheckInterval()
		if h.Spec.ExpiresAt != nil {
			// Wake up when it expires, so the phase flips on time.
			result.RequeueAfter = min(result.RequeueAfter, h.Spec.ExpiresAt.Sub(now)+50*time.Millisecond)
		}
	case phase == holds.PhaseExpired:
		retentionv1.SetCondition(&h, ConditionActive, metav1.ConditionFalse, ReasonExpired,
			fmt.Sprintf("The hold expired at %s", h.Spec.ExpiresAt.UTC().Format(time.RFC3339)))
	default:
		retentionv1.SetCondition(&h, ConditionActive, metav1.ConditionFalse, ReasonReleased, "The hold was released")
	}
	if bad.reason != "" && active {
		retentionv1.MarkStalled(&h, bad.reason, bad.msg+"; PurgeJobs in this hold's scope cannot exclude its subjects until it is fixed")
		result.RequeueAfter = min(result.RequeueAfter, r.recheckInterval())
	} else if missing != nil && active {
		retentionv1.MarkStalled(&h, retentionv1.ReasonSecretNotFound,
			fmt.Sprintf("%v; PurgeJobs in this hold's scope cannot run until it exists", missing))
		result.RequeueAfter = min(result.RequeueAfter, r.recheckInterval())
	} else {
		msg := fmt.Sprintf("The hold is %s", strings.ToLower(phase))
		retentionv1.MarkReady(&h, phase, msg)
	}
	return r.save(ctx, before, &h, result)
}

// countSubjects counts the distinct subject identifiers of the hold, inline
// and in its Secret.
func (r *LegalHoldReconciler) countSubjects(ctx context.Context, h *retentionv1.LegalHold) (int32, error) {
	subjects, err := holds.Subjects(ctx, r.APIReader, h)
	if errors.Is(err, holds.ErrInvalidSubject) {
		return 0, stalled(ReasonInvalidIdentity, strings.TrimPrefix(err.Error(), holds.ErrInvalidSubject.Error()+": "))
	}
	if err != nil {
		return 0, err
	}
	seen := map[string]struct{}{}
	for t, vs := range subjects {
		for _, v := range vs {
			if err := checkIdentity(t, v); err != nil {
				return 0, stalled(ReasonInvalidIdentity, "subjects: "+err.Error())
			}
			seen[t+"\x00"+v] = struct{}{}
		}
	}
	return int32(len(seen)), nil
}

// blocking lists the PurgeJobs of the namespace the hold holds back: jobs
// with an operation Held on a collection the hold covers (for holds without
// subjects, which keep whole collections), and unfinished jobs working on a
// collection the hold covers. It returns at most maxBlocking entries, sorted,
// and the full count.
func (r *LegalHoldReconciler) blocking(ctx context.Context, h *retentionv1.LegalHold) ([]string, int, error) {
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
	var out []string
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
			held := k < len(job.Status.Operations) && job.Status.Operations[k].Phase == PhaseHeld
			if !unfinished && !(held && !holds.HasSubjects(h)) {
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
		fmt.Fprintf(&b, "; holding back %d PurgeJobs", blocking)
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

// save patches status and records an event when the phase changes.
func (r *LegalHoldReconciler) save(ctx context.Context, before, h *retentionv1.LegalHold, res reconcile.Result) (reconcile.Result, error) {
	if err := r.Status().Patch(ctx, h, client.MergeFrom(before)); err != nil {
		return reconcile.Result{}, fmt.Errorf("saving LegalHold status: %w", err)
	}
	if h.Status.Phase != before.Status.Phase {
		msg := "The hold is active"
		if c := findCondition(h.Status.Conditions, ConditionActive); c != nil {
			msg = c.Message
		}
		r.Recorder.Eventf(h, nil, "Normal", h.Status.Phase, "Hold", "%s", msg)
		log.FromContext(ctx).Info("LegalHold phase changed", "phase", h.Status.Phase, "subjects", h.Status.Subjects)
	}
	if was, now := findCondition(before.Status.Conditions, retentionv1.ConditionStalled), findCondition(h.Status.Conditions, retentionv1.ConditionStalled); now != nil && was == nil {
		r.Recorder.Eventf(h, nil, "Warning", now.Reason, "Hold", "%s", now.Message)
	}
	return res, nil
}
