package controllers

import (
	"context"
	"errors"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/coalesce"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/derive"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/identity"
	"github.com/lethe-dev/lethe/internal/ledger"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/notify"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/request"
)

// DeletionRequestReconciler erases one subject across the Datasets in scope:
// plan → review window → approval → legal holds → PurgeJobs → verification
// → receipt and ledger. Planning is internal/request's; the erasure runs in
// PurgeJobs that internal/coalesce starts for many requests at once.
type DeletionRequestReconciler struct {
	Deps
	Coalescer *coalesce.Coalescer
	Ledger    *ledger.Writer
	// Notifier sends the erasure notices to Recipients, on the schedule of
	// NotifyBackoff (deletionrequest_notify.go).
	Notifier      *notify.Client
	NotifyBackoff notify.Backoff
}

// jobRequestIndex indexes PurgeJobs by the DeletionRequests they erase.
const jobRequestIndex = "metadata.annotations.deletionRequests"

func jobRequests(job client.Object) []string {
	v := job.GetAnnotations()[retentionv1.AnnotationDeletionRequests]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=deletionrequests,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=deletionrequests/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;delete
// The erasure ledger: list (names only) finds the day's last shard after a restart.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;create;update

// SetupWithManager registers the controller; it owns its PurgeJobs and
// re-checks held requests when LegalHolds change.
func (r *DeletionRequestReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	if err := mgr.Add(r.Coalescer); err != nil {
		return err
	}
	if err := mgr.Add(r.Ledger); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &retentionv1.PurgeJob{}, jobRequestIndex, jobRequests); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("deletionrequest").
		For(&retentionv1.DeletionRequest{}, builder.WithPredicates(specOrMetadataChanged())).
		Watches(&retentionv1.PurgeJob{}, handler.EnqueueRequestsFromMapFunc(r.requestsOfJob), builder.WithPredicates(purgeJobFinished())).
		Watches(&retentionv1.LegalHold{}, handler.EnqueueRequestsFromMapFunc(r.heldRequests)).
		Watches(&retentionv1.Dataset{}, handler.EnqueueRequestsFromMapFunc(r.stalledRequests), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&retentionv1.DataStore{}, handler.EnqueueRequestsFromMapFunc(r.completedRequests), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(concurrency, 1)}).
		Complete(r)
}

// stalledRequests maps a changed Dataset to the requests of its namespace
// that wait for a human (a Dataset fixed after a preflight stopped them
// plans again at once).
func (r *DeletionRequestReconciler) stalledRequests(ctx context.Context, o client.Object) []reconcile.Request {
	var list retentionv1.DeletionRequestList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, dr := range list.Items {
		if dr.Status.Phase != retentionv1.RequestCompleted && dr.Status.Phase != retentionv1.RequestFailed && meta.IsStatusConditionTrue(dr.Status.Conditions, retentionv1.ConditionStalled) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&dr)})
		}
	}
	return out
}

// completedRequests maps a changed DataStore (its spec.backups) to the
// completed requests of its namespace, whose BackupsExpired it may change.
func (r *DeletionRequestReconciler) completedRequests(ctx context.Context, o client.Object) []reconcile.Request {
	var list retentionv1.DeletionRequestList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, dr := range list.Items {
		if dr.Status.Phase == retentionv1.RequestCompleted {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&dr)})
		}
	}
	return out
}

// requestsOfJob maps a PurgeJob to the requests it erases (its annotation).
func (r *DeletionRequestReconciler) requestsOfJob(_ context.Context, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, name := range jobRequests(o) {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}})
	}
	return out
}

func (r *DeletionRequestReconciler) heldRequests(ctx context.Context, o client.Object) []reconcile.Request {
	var list retentionv1.DeletionRequestList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, dr := range list.Items {
		if dr.Status.Phase == retentionv1.RequestHeld {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&dr)})
		}
	}
	return out
}

// planner reads what planning needs from the cluster and the stores.
func (r *DeletionRequestReconciler) planner() *request.Planner {
	return &request.Planner{Client: r.Client, Reader: r.APIReader, Drivers: r.Pool}
}

// Reconcile gets the request, computes its status (reconcile), writes it
// once, and turns what happened into the result (internal/outcome).
func (r *DeletionRequestReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var dr retentionv1.DeletionRequest
	if err := r.Get(ctx, req.NamespacedName, &dr); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.ForgetDeletionRequest(req.Namespace, req.Name)
			// Gone: the coalesced PurgeJobs it was the last of go too.
			return outcome.Result(r.releaseJobs(ctx, req.NamespacedName), 0)
		}
		return outcome.Result(err, 0)
	}
	if !dr.DeletionTimestamp.IsZero() {
		metrics.ForgetDeletionRequest(req.Namespace, req.Name)
		return outcome.Result(nil, 0)
	}
	w := newStatusWriter(r.Client, &dr)
	next, err := r.reconcile(ctx, &dr)
	report(&dr, err)
	res, err := outcome.Result(err, next)
	if werr := w.write(ctx, &dr); werr != nil {
		return reconcile.Result{}, errors.Join(err, werr)
	}
	return res, err
}

// reconcile reads top to bottom: finished/TTL → subject → deadline → scope →
// plan → gates (review window, approval) → derivation → legal holds → erase
// → verify → receipt. It returns when to look again and what stopped it: an
// outcome.Stall or outcome.Wait (report puts it in the status) or a
// transient error.
func (r *DeletionRequestReconciler) reconcile(ctx context.Context, dr *retentionv1.DeletionRequest) (time.Duration, error) {
	now := r.now()
	p := r.planner()
	dr.Status.ObservedGeneration = dr.Generation
	if dr.Status.Phase == retentionv1.RequestCompleted || dr.Status.Phase == retentionv1.RequestFailed {
		return r.finished(ctx, p, dr, now, false)
	}
	if dr.Status.Phase == "" {
		dr.Status.Phase = retentionv1.RequestPending
		retentionv1.MarkReconciling(dr, retentionv1.ReasonProgressing, "Planning the erasure")
	}

	// Subject: identities, digest, timeline.
	identities, err := p.Identities(ctx, dr)
	if errors.Is(err, connect.ErrSecretNotFound) {
		err = outcome.Stall(connect.SecretReason(err), err.Error())
	}
	if err != nil {
		return time.Minute, err
	}
	dr.Status.SubjectDigest = digest.Subject(r.DigestKey, identities)
	if err := setTimeline(dr); err != nil {
		return 0, err
	}
	r.deadline(dr, now)

	// Scope: every Dataset in scope validated against its store, and Ready.
	datasets, err := p.Datasets(ctx, dr)
	if err != nil {
		return 0, err
	}
	if next, err := r.datasetsReady(dr, identities, datasets); err != nil {
		return next, err
	}

	// Plan: every collection of every Dataset in scope that reaches the
	// subject. Before the stores are read, the plan includes what identity
	// types the given ones may be derived into (email → user_id through
	// users).
	planTypes, mayDerive := identity.Types(identities), map[string]string{}
	for t, how := range derive.Derivable(datasets, planTypes) {
		planTypes[t], mayDerive[t] = true, how
	}
	plan, _, err := request.Plan(dr, datasets, planTypes, mayDerive)
	if err != nil {
		return 0, outcome.Stall(retentionv1.ReasonInvalidSpec, err.Error())
	}
	setPlan(dr, plan)

	// Gates, in order: review window, approval.
	if err := reviewWindow(dr, now, len(plan)); err != nil {
		return 0, err
	}
	if err := approve(dr, request.ApprovalRequiredBy(datasets, plan)); err != nil {
		return 0, err
	}

	// Derive further identities from the stores (kept in the request's own
	// Secret, never in status), then plan with what was actually found, so
	// a hold on a derived identity blocks the request.
	derived, err := p.Derive(ctx, dr, datasets, identities, now)
	if err != nil {
		return time.Minute, cannot("Cannot derive identities", err)
	}
	r.reportDerivation(ctx, dr, derived)
	identities = derived.Identities
	plan, steps, err := request.Plan(dr, datasets, identity.Types(identities), derived.How)
	if err != nil {
		return 0, outcome.Stall(retentionv1.ReasonInvalidSpec, err.Error())
	}
	setPlan(dr, plan)

	// Last gate: legal holds, on every identity named or derived.
	if err := r.checkHolds(ctx, p, dr, datasets, identities, now); err != nil {
		return time.Minute, err
	}
	if len(plan) == 0 {
		return r.complete(ctx, p, dr, nil, now, retentionv1.ReasonNothingInScope)
	}

	// Erase: count the subject's records, then queue for a coalesced
	// PurgeJob per Dataset (set-based statements over many subjects).
	jobs, err := r.erase(ctx, p, dr, steps, identities)
	if err != nil {
		return time.Minute, cannot("Cannot erase", err)
	}
	if done, next, err := r.jobsDone(ctx, dr, jobs, now); !done {
		return next, err
	}

	// Verify: nothing identifiable left anywhere in the plan.
	if dr.Spec.DryRun {
		return r.complete(ctx, p, dr, jobs, now, retentionv1.ReasonDryRunCompleted)
	}
	msg, err := p.Verify(ctx, steps, jobs, identities, r.Coalescer)
	if err != nil {
		return time.Minute, cannot("Cannot verify", err)
	}
	if msg != "" {
		return 0, r.fail(dr, retentionv1.ReasonVerificationFailed, msg, now)
	}
	return r.complete(ctx, p, dr, jobs, now, retentionv1.ReasonErased)
}

// cannot turns an error saying that the stores cannot run an operation as
// specified (a value that does not fit a key pattern or prefix, a
// collection the store refuses) into a stall (InvalidSpec) that says so on
// the request, prefixed with what could not be done, rather than retry it in
// the log. Stalls and other errors pass as they are.
func cannot(what string, err error) error {
	if outcome.AsStall(err) == nil && request.InvalidOperation(err) {
		return outcome.Stall(retentionv1.ReasonInvalidSpec, what+": "+err.Error())
	}
	return err
}
