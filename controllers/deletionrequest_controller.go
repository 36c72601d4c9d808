package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/schedule"
)

// DeletionRequest phases, condition types, reasons and annotations.

// DeletionRequestReconciler erases one subject across the Datasets in scope:
// plan → review window → approval → legal holds → PurgeJobs → verification
// → receipt and ledger.
type DeletionRequestReconciler struct {
	Deps
	Coalescer *Coalescer
	Ledger    *Ledger
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

// Reconcile reads top to bottom: get → finished/TTL → subject → deadline →
// plan → gates → execute → verify → receipt.
func (r *DeletionRequestReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var dr retentionv1.DeletionRequest
	if err := r.Get(ctx, req.NamespacedName, &dr); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.ForgetDeletionRequest(req.Namespace, req.Name)
			// Gone: the coalesced PurgeJobs it was the last of go too.
			return reconcile.Result{}, r.releaseJobs(ctx, req.NamespacedName)
		}
		return reconcile.Result{}, err
	}
	if !dr.DeletionTimestamp.IsZero() {
		metrics.ForgetDeletionRequest(req.Namespace, req.Name)
		return reconcile.Result{}, nil
	}
	before := dr.DeepCopy()
	res, err := r.reconcile(ctx, &dr)
	if !equality.Semantic.DeepEqual(before.Status, dr.Status) {
		if perr := r.Status().Patch(ctx, &dr, client.MergeFrom(before)); perr != nil {
			return reconcile.Result{}, errors.Join(err, perr)
		}
	}
	return res, err
}

func (r *DeletionRequestReconciler) reconcile(ctx context.Context, dr *retentionv1.DeletionRequest) (reconcile.Result, error) {
	now := r.now()
	dr.Status.ObservedGeneration = dr.Generation
	if dr.Status.Phase == retentionv1.RequestCompleted || dr.Status.Phase == retentionv1.RequestFailed {
		return r.expire(ctx, dr, now)
	}
	if dr.Status.Phase == "" {
		dr.Status.Phase = retentionv1.RequestPending
		retentionv1.MarkReconciling(dr, retentionv1.ReasonProgressing, "Planning the erasure")
	}

	// Subject: identities, digest, timeline.
	identities, err := r.identities(ctx, dr)
	if err != nil {
		se := outcome.AsStall(err)
		switch {
		case errors.Is(err, connect.ErrSecretNotFound):
			retentionv1.MarkStalled(dr, connect.SecretReason(err), err.Error())
			return reconcile.Result{RequeueAfter: time.Minute}, nil
		case se != nil:
			retentionv1.MarkStalled(dr, se.Reason, se.Msg)
			return reconcile.Result{RequeueAfter: time.Minute}, nil
		}
		return reconcile.Result{}, err
	}
	dr.Status.SubjectDigest = digest.Subject(r.DigestKey, identities)
	if err := r.timeline(dr); err != nil {
		retentionv1.MarkStalled(dr, retentionv1.ReasonInvalidSpec, err.Error())
		return reconcile.Result{}, nil
	}
	r.deadline(dr, now)

	// Plan: every collection of every Dataset in scope that reaches the subject.
	datasets, err := r.datasetsInScope(ctx, dr)
	if err != nil {
		se := outcome.AsStall(err)
		if se != nil {
			retentionv1.MarkStalled(dr, se.Reason, se.Msg)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	// Types no Dataset declares match nothing: reported, and a request
	// naming only such types stops instead of completing as NothingInScope.
	// (Datasets are not watched: the check repeats every minute.)
	if _, all := r.markUnknownTypes(dr, "request", identityTypes(identities), datasets); all {
		retentionv1.MarkStalled(dr, retentionv1.ReasonUnknownIdentityType, meta.FindStatusCondition(dr.Status.Conditions, retentionv1.ConditionUnknownIdentityTypes).Message)
		return reconcile.Result{RequeueAfter: time.Minute}, nil
	}
	if name := unvalidated(datasets); name != "" {
		// Foreign keys come from the Dataset's validation: a plan made
		// before it would miss the collections only they reach.
		retentionv1.MarkReconciling(dr, retentionv1.ReasonProgressing, fmt.Sprintf("Waiting for Dataset %s to be validated against its store", name))
		return reconcile.Result{RequeueAfter: 2 * time.Second}, nil
	}
	if name, why := invalid(datasets); name != "" {
		retentionv1.MarkStalled(dr, retentionv1.ReasonDatasetNotReady, fmt.Sprintf("Dataset %s is not valid (%s); nothing is erased until it is fixed", name, why))
		return reconcile.Result{RequeueAfter: time.Minute}, nil
	}
	// Before the stores are read, the plan includes what identity types the
	// given ones may be derived into (email → user_id through users).
	planTypes, mayDerive := identityTypes(identities), map[string]string{}
	for t, how := range derivable(datasets, planTypes) {
		planTypes[t], mayDerive[t] = true, how
	}
	plan, _, err := r.plan(dr, datasets, planTypes, mayDerive)
	if err != nil {
		retentionv1.MarkStalled(dr, retentionv1.ReasonInvalidSpec, err.Error())
		return reconcile.Result{}, nil
	}
	setPlan(dr, plan)

	// Gates, in order: review window, approval, legal holds.
	if wait := dr.Status.NotBefore.Time.Sub(now); wait > 0 {
		dr.Status.Phase = retentionv1.RequestReviewing
		retentionv1.SetCondition(dr, retentionv1.ConditionReviewWindowPassed, metav1.ConditionFalse, retentionv1.ReasonInReview, fmt.Sprintf("In review until %s", dr.Status.NotBefore.UTC().Format(time.RFC3339)))
		retentionv1.MarkReconciling(dr, retentionv1.ReasonInReview, fmt.Sprintf("Review window open until %s; %d collections planned", dr.Status.NotBefore.UTC().Format(time.RFC3339), len(plan)))
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	retentionv1.SetCondition(dr, retentionv1.ConditionReviewWindowPassed, metav1.ConditionTrue, retentionv1.ReasonWindowPassed, "The review window has passed")
	if !r.approved(dr, approvalRequiredBy(datasets, plan)) {
		return reconcile.Result{}, nil
	}

	// Derive further identities from the stores (kept in the request's own
	// Secret, never in status), then plan with what was actually found, so
	// a hold on a derived identity blocks the request.
	identities, derivedFrom, err := r.derive(ctx, dr, datasets, identities)
	if err != nil {
		se := outcome.AsStall(err)
		if se != nil {
			retentionv1.MarkStalled(dr, se.Reason, se.Msg)
			return reconcile.Result{RequeueAfter: time.Minute}, nil
		}
		if invalidOperation(err) {
			retentionv1.MarkStalled(dr, retentionv1.ReasonInvalidSpec, "Cannot derive identities: "+err.Error())
			return reconcile.Result{RequeueAfter: time.Minute}, nil
		}
		return reconcile.Result{}, err
	}
	plan, steps, err := r.plan(dr, datasets, identityTypes(identities), derivedFrom)
	if err != nil {
		retentionv1.MarkStalled(dr, retentionv1.ReasonInvalidSpec, err.Error())
		return reconcile.Result{}, nil
	}
	setPlan(dr, plan)
	if held, err := r.held(ctx, dr, datasets, identities, now); err != nil || held {
		return reconcile.Result{RequeueAfter: time.Minute}, err
	}
	if len(plan) == 0 {
		return r.complete(ctx, dr, nil, now, retentionv1.ReasonNothingInScope)
	}

	// Execute: count the subject's records, then queue for a coalesced
	// PurgeJob per Dataset (set-based statements over many subjects).
	jobs, queued, err := r.execute(ctx, dr, steps, identities)
	se := outcome.AsStall(err)
	if se != nil {
		retentionv1.MarkStalled(dr, se.Reason, se.Msg)
		return reconcile.Result{RequeueAfter: time.Minute}, nil
	}
	if invalidOperation(err) {
		// The stores cannot run this erasure as specified (a value that does
		// not fit a key pattern or prefix, a collection the store refuses):
		// say so on the request rather than retry in the log.
		retentionv1.MarkStalled(dr, retentionv1.ReasonInvalidSpec, "Cannot erase: "+err.Error())
		return reconcile.Result{RequeueAfter: time.Minute}, nil
	}
	if err != nil || queued {
		// A finished PurgeJob wakes its requests (its annotation names
		// them); the timer shows a long erasure as Running.
		return reconcile.Result{RequeueAfter: 5 * time.Second}, err
	}
	for _, j := range jobs {
		if orphaned(j) {
			if err := r.deleteJob(ctx, j); err != nil {
				return reconcile.Result{}, err
			}
			log.FromContext(ctx).Info("Deleted a coalesced PurgeJob whose subjects Secret was never created; queueing the request again", "purgeJob", j.Name)
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		switch j.Status.Phase {
		case retentionv1.PurgeJobFailed:
			msg := fmt.Sprintf("PurgeJob %s failed", j.Name)
			if c := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionStalled); c != nil {
				msg += ": " + c.Message
			}
			return r.fail(dr, retentionv1.ReasonErasureFailed, msg, now)
		case retentionv1.PurgeJobStalled:
			// Stopped, but not over: a safety limit to release, records
			// referring from outside, or an interrupted erasure that resumes
			// once its cause is fixed. The job's end wakes this request.
			reason, msg := retentionv1.ReasonErasureFailed, fmt.Sprintf("PurgeJob %s stopped", j.Name)
			if c := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionStalled); c != nil {
				reason, msg = c.Reason, msg+": "+c.Message
			}
			dr.Status.Phase = retentionv1.RequestRunning
			retentionv1.MarkStalled(dr, reason, msg)
			return reconcile.Result{RequeueAfter: time.Minute}, nil
		case retentionv1.PurgeJobSucceeded:
		default:
			dr.Status.Phase = retentionv1.RequestRunning
			retentionv1.MarkReconciling(dr, retentionv1.ReasonErasing, fmt.Sprintf("Erasing with %d PurgeJobs", len(jobs)))
			// The job's end requeues this request; the timer is a fallback.
			return reconcile.Result{RequeueAfter: 10 * time.Second}, nil
		}
	}

	// Verify: nothing identifiable left anywhere in the plan.
	if dr.Spec.DryRun {
		return r.complete(ctx, dr, jobs, now, retentionv1.ReasonDryRunCompleted)
	}
	if msg, err := r.verify(ctx, steps, jobs, identities); invalidOperation(err) {
		retentionv1.MarkStalled(dr, retentionv1.ReasonInvalidSpec, "Cannot verify: "+err.Error())
		return reconcile.Result{RequeueAfter: time.Minute}, nil
	} else if err != nil {
		return reconcile.Result{}, err
	} else if msg != "" {
		return r.fail(dr, retentionv1.ReasonVerificationFailed, msg, now)
	}
	return r.complete(ctx, dr, jobs, now, retentionv1.ReasonErased)
}

// invalidOperation reports whether err says that an operation cannot run as
// specified (retrying cannot help).
func invalidOperation(err error) bool {
	return err != nil && (errors.Is(err, datastore.ErrInvalid) || errors.Is(err, engine.ErrInvalid))
}

// identities reads the subject: inline identities and the identity Secret.
// A value with a control character, or a Secret key that is not an identity
// type, is a stallError (InvalidIdentity); messages never carry the values.
func (r *DeletionRequestReconciler) identities(ctx context.Context, dr *retentionv1.DeletionRequest) (map[string][]string, error) {
	out := map[string][]string{}
	for i, id := range dr.Spec.Subject.Identities {
		if err := checkIdentity(string(id.Type), id.Value); err != nil {
			return nil, outcome.Stall(retentionv1.ReasonInvalidIdentity, fmt.Sprintf("spec.subject.identities[%d]: %v", i, err))
		}
		out[string(id.Type)] = append(out[string(id.Type)], id.Value)
	}
	if ref := dr.Spec.Subject.IdentitiesSecretRef; ref != nil {
		s, err := connect.GetSecret(ctx, r.APIReader, dr.Namespace, ref.Name)
		if err != nil {
			return nil, err
		}
		for k, v := range s.Data {
			for _, value := range holds.SplitValues(string(v)) {
				if err := checkIdentity(k, value); err != nil {
					return nil, outcome.Stall(retentionv1.ReasonInvalidIdentity, fmt.Sprintf("identity Secret %s, key %s: %v", ref.Name, k, err))
				}
				out[k] = append(out[k], value)
			}
		}
	}
	for k, vs := range out {
		slices.Sort(vs)
		out[k] = slices.Compact(vs)
	}
	return out, nil
}

// checkIdentity checks one identity read from a request or a Secret: the
// type is an identity type and the value holds no NUL or other control
// character (which no store compares sensibly, and which PostgreSQL refuses
// in text). The error never contains the value.
func checkIdentity(typ, value string) error {
	if !identityTypePattern(typ) || len(typ) > 63 {
		return fmt.Errorf("%q is not an identity type (lowercase letters, digits and underscores)", typ)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("a %s value is not valid UTF-8", typ)
	}
	for _, c := range value {
		if unicode.IsControl(c) {
			return fmt.Errorf("a %s value contains a NUL or other control character", typ)
		}
	}
	return nil
}

// timeline fixes notBefore and the deadline from the creation time.
func (r *DeletionRequestReconciler) timeline(dr *retentionv1.DeletionRequest) error {
	created := dr.CreationTimestamp.Time
	window := "0h"
	if dr.Spec.Reason == retentionv1.ReasonAccountCancellation {
		window = "48h"
	}
	if dr.Spec.ReviewWindow != nil && dr.Spec.Reason != retentionv1.ReasonMinor {
		window = string(*dr.Spec.ReviewWindow)
	}
	w, err := schedule.ParseWait(window)
	if err != nil {
		return fmt.Errorf("reviewWindow: %w", err)
	}
	deadline := string(dr.Spec.Deadline)
	if deadline == "" {
		deadline = "30d"
	}
	d, err := schedule.ParseRetention(deadline)
	if err != nil {
		return fmt.Errorf("deadline: %w", err)
	}
	notBefore, err := w.Deadline(created)
	if err != nil {
		return fmt.Errorf("reviewWindow: %w", err)
	}
	until, err := d.Deadline(created)
	if err != nil {
		return fmt.Errorf("deadline: %w", err)
	}
	dr.Status.NotBefore = &metav1.Time{Time: notBefore}
	dr.Status.DeadlineTime = &metav1.Time{Time: until}
	return nil
}

// deadline sets the DeadlineMet condition and metric; an overdue request
// raises one Warning event when it becomes overdue.
func (r *DeletionRequestReconciler) deadline(dr *retentionv1.DeletionRequest, now time.Time) {
	left := dr.Status.DeadlineTime.Sub(now)
	metrics.DeletionRequestDeadline.WithLabelValues(dr.Namespace, dr.Name).Set(left.Seconds())
	if left >= 0 {
		retentionv1.SetCondition(dr, retentionv1.ConditionDeadlineMet, metav1.ConditionTrue, retentionv1.ReasonOnTrack, fmt.Sprintf("%s left until the deadline %s", humanDuration(left), dr.Status.DeadlineTime.UTC().Format(time.RFC3339)))
		return
	}
	c := meta.FindStatusCondition(dr.Status.Conditions, retentionv1.ConditionDeadlineMet)
	if c == nil || c.Reason != retentionv1.ReasonOverdue {
		r.Recorder.Eventf(dr, nil, "Warning", retentionv1.ReasonOverdue, "Deadline", "Overdue: the deadline %s passed %s ago", dr.Status.DeadlineTime.UTC().Format(time.RFC3339), humanDuration(-left))
	}
	retentionv1.SetCondition(dr, retentionv1.ConditionDeadlineMet, metav1.ConditionFalse, retentionv1.ReasonOverdue, fmt.Sprintf("Overdue by %s (deadline %s)", humanDuration(-left), dr.Status.DeadlineTime.UTC().Format(time.RFC3339)))
}

func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return d.Round(time.Second).String()
	}
}

// datasetsInScope lists the Datasets the request covers, by name.
func (r *DeletionRequestReconciler) datasetsInScope(ctx context.Context, dr *retentionv1.DeletionRequest) ([]retentionv1.Dataset, error) {
	var list retentionv1.DatasetList
	opts := []client.ListOption{client.InNamespace(dr.Namespace)}
	if s := dr.Spec.Scope; s != nil && s.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(s.Selector)
		if err != nil {
			return nil, outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("spec.scope.selector is not a valid label selector: %v", err))
		}
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	if err := r.List(ctx, &list, opts...); err != nil {
		return nil, err
	}
	out := list.Items
	if s := dr.Spec.Scope; s != nil && len(s.Datasets) > 0 {
		out = slices.DeleteFunc(out, func(d retentionv1.Dataset) bool { return !slices.Contains(s.Datasets, retentionv1.ObjectName(d.Name)) })
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// datasetSteps is the planned erasure of one Dataset (internal/erasure).
type datasetSteps = erasure.Step

// setPlan replaces the plan; counts taken before erasure stay with it.
func setPlan(dr *retentionv1.DeletionRequest, plan []retentionv1.PlannedCollection) {
	for i := range plan {
		for _, old := range dr.Status.Plan {
			if old.Dataset == plan[i].Dataset && old.Collection == plan[i].Collection {
				plan[i].Matched = old.Matched
			}
		}
	}
	dr.Status.Plan = plan
}

// plan is the erasure plan of the request (internal/erasure: every
// collection that holds one of the identity types itself or through an
// owning path, children first). derivedFrom says which types were (or may
// be) derived, and how, for status.plan[].via. Fallbacks decided by an
// earlier preflight (status.plan[].fallback) are kept.
func (r *DeletionRequestReconciler) plan(dr *retentionv1.DeletionRequest, datasets []retentionv1.Dataset, have map[string]bool, derivedFrom map[string]string) ([]retentionv1.PlannedCollection, []datasetSteps, error) {
	steps, err := erasure.Plan(datasets, erasure.Request{Types: have, DerivedFrom: derivedFrom, Overrides: dr.Spec.Overrides})
	if err != nil {
		return nil, nil, err
	}
	var plan []retentionv1.PlannedCollection
	for si := range steps {
		s := &steps[si]
		for oi := range s.Ops {
			for _, old := range dr.Status.Plan {
				if old.Fallback == "" || old.Dataset != s.Dataset.Name || old.Collection != string(s.Ops[oi].Collection) {
					continue
				}
				if err := s.FallBack(oi, old.Fallback); err != nil {
					return nil, nil, err
				}
			}
		}
		plan = append(plan, s.Plan...)
	}
	return plan, steps, nil
}

// preflight proves, before the first change, that the erasure can run to
// the end, on every Dataset whose store has foreign keys (engine.Preflight:
// no record outside the erasure left referring to one it deletes, with the
// whenReferenced fallbacks). It reads the stores only.
func (r *DeletionRequestReconciler) preflight(ctx context.Context, steps []datasetSteps, identities map[string][]string) (string, error) {
	for si := range steps {
		s := &steps[si]
		store, d, err := r.storeOf(ctx, s.Dataset)
		if err != nil {
			return "", err
		}
		ref, ok := d.(datastore.Referrers)
		if !ok {
			continue
		}
		if msg, err := engine.Preflight(ctx, ref, s, store.Spec.Type, identities); err != nil || msg != "" {
			return msg, err
		}
	}
	return "", nil
}

// storeOf reads a Dataset's DataStore and opens its driver.
func (r *DeletionRequestReconciler) storeOf(ctx context.Context, ds *retentionv1.Dataset) (*retentionv1.DataStore, datastore.Driver, error) {
	var store retentionv1.DataStore
	if err := r.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: string(ds.Spec.DataStoreRef.Name)}, &store); err != nil {
		return nil, nil, err
	}
	d, err := r.Pool.Get(ctx, &store)
	if err != nil {
		return nil, nil, err
	}
	return &store, d, nil
}

// approvalRequiredBy names the planned Datasets that require approval for
// every erasure (spec.requireApproval), sorted.
func approvalRequiredBy(datasets []retentionv1.Dataset, plan []retentionv1.PlannedCollection) []string {
	var names []string
	for _, ds := range datasets {
		if ds.Spec.RequireApproval && slices.ContainsFunc(plan, func(p retentionv1.PlannedCollection) bool { return p.Dataset == ds.Name }) {
			names = append(names, ds.Name)
		}
	}
	slices.Sort(names)
	return names
}

// approved checks the approval gate: required by the request itself or by a
// Dataset it touches (datasets), so a requester cannot opt out. The
// annotations are authenticated by the ValidatingAdmissionPolicy (which also
// requires the RBAC verb approve on deletionrequests to approve); the
// creator check is repeated here.
func (r *DeletionRequestReconciler) approved(dr *retentionv1.DeletionRequest, datasets []string) bool {
	if !dr.Spec.RequireApproval && len(datasets) == 0 {
		retentionv1.SetCondition(dr, retentionv1.ConditionApproved, metav1.ConditionTrue, retentionv1.ReasonNotRequired, "No approval required")
		return true
	}
	by, creator := dr.Annotations[retentionv1.AnnotationApprovedBy], dr.Annotations[retentionv1.AnnotationRequestedBy]
	switch {
	case creator == "" && !dr.Spec.RequireApproval:
		// Without the creator's authenticated name, an approval could be
		// the creator's own.
		dr.Status.Phase = retentionv1.RequestAwaitingApproval
		msg := fmt.Sprintf("Dataset %s requires approval for every erasure, and an approval needs the creator's name: recreate the request with annotation %s=<your user name> (checked at admission)", strings.Join(datasets, ", "), retentionv1.AnnotationRequestedBy)
		retentionv1.SetCondition(dr, retentionv1.ConditionApproved, metav1.ConditionFalse, retentionv1.ReasonRequesterUnknown, msg)
		retentionv1.MarkStalled(dr, retentionv1.ReasonRequesterUnknown, msg)
		return false
	case by == "":
		dr.Status.Phase = retentionv1.RequestAwaitingApproval
		msg := fmt.Sprintf("Awaiting approval: someone other than the creator annotates it with %s=<their user name>", retentionv1.AnnotationApprovedBy)
		retentionv1.SetCondition(dr, retentionv1.ConditionApproved, metav1.ConditionFalse, retentionv1.ReasonAwaitingApproval, msg)
		retentionv1.MarkReconciling(dr, retentionv1.ReasonAwaitingApproval, msg)
		return false
	case creator == "" || by == creator:
		dr.Status.Phase = retentionv1.RequestAwaitingApproval
		msg := "The approval is not valid: the creator cannot approve their own request"
		retentionv1.SetCondition(dr, retentionv1.ConditionApproved, metav1.ConditionFalse, retentionv1.ReasonSelfApproval, msg)
		retentionv1.MarkStalled(dr, retentionv1.ReasonSelfApproval, msg)
		return false
	}
	dr.Status.ApprovedBy = by
	retentionv1.SetCondition(dr, retentionv1.ConditionApproved, metav1.ConditionTrue, retentionv1.ReasonApproved, "Approved by "+by)
	return true
}

// held checks legal holds: a hold naming one of the subject's identities
// (named or derived, the request's or the hold's), or keeping a whole
// planned collection, blocks the request until it ends. status.heldBy names
// every such hold; each lists the request in its status.blocking.
func (r *DeletionRequestReconciler) held(ctx context.Context, dr *retentionv1.DeletionRequest, datasets []retentionv1.Dataset, identities map[string][]string, now time.Time) (bool, error) {
	var list retentionv1.LegalHoldList
	if err := r.List(ctx, &list, client.InNamespace(dr.Namespace)); err != nil {
		return false, err
	}
	var by []string
	for i := range list.Items {
		h := &list.Items[i]
		if holds.Phase(h, now) != retentionv1.HoldActive {
			continue
		}
		var subjects map[string][]string // read once per hold, when needed
		for _, p := range dr.Status.Plan {
			ds := findDataset(datasets, p.Dataset)
			c, ok := engine.Collection(ds, retentionv1.Identifier(p.Collection))
			if !ok || !holds.Applies(h, ds.Name, c) {
				continue
			}
			if !holds.HasSubjects(h) {
				by = append(by, h.Name)
				break
			}
			if subjects == nil {
				var err error
				subjects, err = holds.Subjects(ctx, r.APIReader, h)
				if errors.Is(err, connect.ErrSecretNotFound) || errors.Is(err, holds.ErrInvalidSubject) {
					// A hold whose subjects cannot be read may hold this
					// subject: holds win, so wait, and say why on the request.
					dr.Status.Phase = retentionv1.RequestHeld
					msg := fmt.Sprintf("Blocked until the subjects of LegalHold %s can be read: %v", h.Name, err)
					retentionv1.SetCondition(dr, retentionv1.ConditionHeld, metav1.ConditionTrue, retentionv1.ReasonLegalHold, msg)
					retentionv1.MarkStalled(dr, retentionv1.ReasonLegalHold, msg)
					return true, nil
				}
				if err != nil {
					return false, fmt.Errorf("LegalHold %q: %w", h.Name, err)
				}
				if !holds.Derivation(h) {
					return false, fmt.Errorf("LegalHold %q: %w", h.Name, holds.ErrNotDerived)
				}
			}
			if sharesIdentity(subjects, identities) {
				by = append(by, h.Name)
				break
			}
		}
	}
	slices.Sort(by)
	dr.Status.HeldBy = by
	if len(by) > 0 {
		dr.Status.Phase = retentionv1.RequestHeld
		msg := fmt.Sprintf("Blocked by LegalHold %s until it is released or expires", by[0])
		if len(by) > 1 {
			msg = fmt.Sprintf("Blocked by LegalHolds %s until they are released or expire", strings.Join(by, ", "))
		}
		retentionv1.SetCondition(dr, retentionv1.ConditionHeld, metav1.ConditionTrue, retentionv1.ReasonLegalHold, msg)
		retentionv1.MarkStalled(dr, retentionv1.ReasonLegalHold, msg)
		return true, nil
	}
	retentionv1.SetCondition(dr, retentionv1.ConditionHeld, metav1.ConditionFalse, retentionv1.ReasonNotHeld, "No legal hold applies")
	return false, nil
}

// sharesIdentity reports whether two identity sets (type → values) have a
// value of the same type in common.
func sharesIdentity(a, b map[string][]string) bool {
	for t, vs := range b {
		for _, v := range vs {
			if slices.Contains(a[t], v) {
				return true
			}
		}
	}
	return false
}

func findDataset(all []retentionv1.Dataset, name string) *retentionv1.Dataset {
	for i := range all {
		if all[i].Name == name {
			return &all[i]
		}
	}
	return &retentionv1.Dataset{}
}

// execute counts the subject's records in every planned collection (the
// receipt reports them), hands each Dataset's operations to the coalescer,
// and returns the PurgeJobs once one exists for every Dataset.
func (r *DeletionRequestReconciler) execute(ctx context.Context, dr *retentionv1.DeletionRequest, steps []datasetSteps, identities map[string][]string) ([]*retentionv1.PurgeJob, bool, error) {
	jobs, err := r.jobsOf(ctx, dr)
	if err != nil {
		return nil, false, err
	}
	var missing []datasetSteps
	for _, s := range steps {
		if jobFor(jobs, s.Dataset.Name) == nil {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		dr.Status.PurgeJobs = dr.Status.PurgeJobs[:0]
		for _, j := range jobs {
			dr.Status.PurgeJobs = append(dr.Status.PurgeJobs, j.Name)
		}
		return jobs, false, nil
	}
	if dr.Status.Phase != retentionv1.RequestQueued {
		msg, err := r.preflight(ctx, steps, identities)
		if err != nil {
			return nil, false, err
		}
		plan := []retentionv1.PlannedCollection{}
		for _, s := range steps {
			plan = append(plan, s.Plan...)
		}
		setPlan(dr, plan)
		if msg != "" {
			return nil, false, outcome.Stall(retentionv1.ReasonReferencedOutsideErasure, msg)
		}
		counts, err := r.countSubject(ctx, steps, identities)
		if err != nil {
			return nil, false, err
		}
		i := 0
		for si, s := range steps {
			for oi := range s.Ops {
				n := counts[si][oi]
				dr.Status.Plan[i].Matched = &n
				i++
			}
		}
	}
	mode := retentionv1.ModeEnforce
	if dr.Spec.DryRun {
		mode = retentionv1.ModeDryRun
	}
	for _, s := range missing {
		r.Coalescer.Add(client.ObjectKeyFromObject(dr), s.Dataset.Name, mode, s.Ops, identities)
	}
	dr.Status.Phase = retentionv1.RequestQueued
	retentionv1.MarkReconciling(dr, retentionv1.ReasonQueued, "Queued for erasure together with other requests")
	return nil, true, nil
}

// jobsOf returns the PurgeJobs erasing this request: those naming it in
// their annotation, those the coalescer just started (the cache may not have
// them yet) and those its status already records, sorted by name.
func (r *DeletionRequestReconciler) jobsOf(ctx context.Context, dr *retentionv1.DeletionRequest) ([]*retentionv1.PurgeJob, error) {
	var list retentionv1.PurgeJobList
	if err := r.List(ctx, &list, client.InNamespace(dr.Namespace), client.MatchingFields{jobRequestIndex: dr.Name}); err != nil {
		return nil, err
	}
	var jobs []*retentionv1.PurgeJob
	for i := range list.Items {
		// Anyone who can write PurgeJobs can name a request in the
		// annotation: only the manager's own jobs count.
		if signedByManager(r.DigestKey, &list.Items[i]) {
			jobs = append(jobs, &list.Items[i])
		}
	}
	started := r.Coalescer.Assigned(client.ObjectKeyFromObject(dr))
	for _, name := range append(started, dr.Status.PurgeJobs...) {
		if slices.ContainsFunc(jobs, func(j *retentionv1.PurgeJob) bool { return j.Name == name }) {
			continue
		}
		job := &retentionv1.PurgeJob{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: name}, job)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if signedByManager(r.DigestKey, job) {
			jobs = append(jobs, job)
		}
	}
	slices.SortFunc(jobs, func(a, b *retentionv1.PurgeJob) int { return strings.Compare(a.Name, b.Name) })
	return jobs, nil
}

func jobFor(jobs []*retentionv1.PurgeJob, dataset string) *retentionv1.PurgeJob {
	for _, j := range jobs {
		if string(j.Spec.DatasetRef.Name) == dataset {
			return j
		}
	}
	return nil
}

// countSubject counts the subject's records in each planned collection,
// aligned with steps[i].ops[j].
func (r *DeletionRequestReconciler) countSubject(ctx context.Context, steps []datasetSteps, identities map[string][]string) ([][]int64, error) {
	out := make([][]int64, len(steps))
	for si, s := range steps {
		n, err := r.countStep(ctx, s, identities)
		if err != nil {
			return nil, err
		}
		out[si] = n
	}
	return out, nil
}

// countStep counts the records of these identities in each of one Dataset's
// planned collections.
func (r *DeletionRequestReconciler) countStep(ctx context.Context, s datasetSteps, identities map[string][]string) ([]int64, error) {
	store, d, err := r.storeOf(ctx, s.Dataset)
	if err != nil {
		return nil, err
	}
	out := make([]int64, 0, len(s.Ops))
	for _, op := range s.Ops {
		o, err := engine.SubjectOperation(s.Dataset, store.Spec.Type, op, identities)
		if err != nil {
			return nil, err
		}
		n, err := d.Count(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("counting in %s/%s: %w", s.Dataset.Name, op.Collection, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// verify queries every planned collection again for the subject: a Delete
// collection must hold no matching record, and an Anonymize collection no
// record still matching an identity field. Requests erased by one PurgeJob
// are verified together (one count per collection over all their subjects);
// only a Dataset where that finds something is counted for this subject
// alone. It names the first collection that fails.
func (r *DeletionRequestReconciler) verify(ctx context.Context, steps []datasetSteps, jobs []*retentionv1.PurgeJob, identities map[string][]string) (string, error) {
	for _, s := range steps {
		if job := jobFor(jobs, s.Dataset.Name); job != nil {
			left, ok, err := r.Coalescer.Verified(job.Namespace, job.Name, func(union map[string][]string) ([]int64, error) {
				return r.countStep(ctx, s, union)
			})
			if err != nil {
				return "", err
			}
			if ok && !slices.ContainsFunc(left, func(n int64) bool { return n > 0 }) {
				continue
			}
		}
		left, err := r.countStep(ctx, s, identities)
		if err != nil {
			return "", err
		}
		for oi, op := range s.Ops {
			if left[oi] > 0 {
				return fmt.Sprintf("Verification failed: %d records in collection %s of Dataset %s still identify the subject after erasure", left[oi], op.Collection, s.Dataset.Name), nil
			}
		}
	}
	return "", nil
}

// complete writes the receipt (per planned collection the subject's rows and
// when the PurgeJob of its Dataset finished), appends the ledger entry and
// marks the request done.
func (r *DeletionRequestReconciler) complete(ctx context.Context, dr *retentionv1.DeletionRequest, jobs []*retentionv1.PurgeJob, now time.Time, reason string) (reconcile.Result, error) {
	dry := reason == retentionv1.ReasonDryRunCompleted
	receipt := &retentionv1.Receipt{SubjectDigest: dr.Status.SubjectDigest, Verified: !dry, CompletedAt: &metav1.Time{Time: now}}
	for _, p := range dr.Status.Plan {
		var rows int64
		if p.Matched != nil {
			rows = *p.Matched
		}
		at := metav1.Time{Time: now}
		if j := jobFor(jobs, p.Dataset); j != nil && j.Status.CompletionTime != nil {
			at = *j.Status.CompletionTime
		}
		receipt.Entries = append(receipt.Entries, retentionv1.ReceiptEntry{
			Dataset: p.Dataset, Collection: p.Collection, Action: p.Action, Rows: rows, CompletedAt: &at,
		})
	}
	sum, err := ReceiptSHA256(receipt)
	if err != nil {
		return reconcile.Result{}, err
	}
	receipt.SHA256 = sum
	if !dry {
		if err := r.appendLedger(ctx, dr, receipt); err != nil {
			return reconcile.Result{}, err
		}
	}
	dr.Status.Receipt = receipt
	dr.Status.Phase = retentionv1.RequestCompleted
	dr.Status.CompletionTime = &metav1.Time{Time: now}
	rows := int64(0)
	for _, e := range receipt.Entries {
		rows += e.Rows
	}
	msg := fmt.Sprintf("%d records in %d collections erased and verified; receipt sha256 %s", rows, len(receipt.Entries), sum[:12])
	switch reason {
	case retentionv1.ReasonNothingInScope:
		msg = "No collection in scope holds this subject's identity types; nothing to erase"
	case retentionv1.ReasonDryRunCompleted:
		msg = fmt.Sprintf("Dry run: %d records in %d collections would be erased; nothing was changed", rows, len(receipt.Entries))
	}
	retentionv1.MarkReady(dr, reason, msg)
	if c := meta.FindStatusCondition(dr.Status.Conditions, retentionv1.ConditionDeadlineMet); c != nil && c.Status == metav1.ConditionTrue {
		retentionv1.SetCondition(dr, retentionv1.ConditionDeadlineMet, metav1.ConditionTrue, retentionv1.ReasonAnsweredInTime, fmt.Sprintf("Answered %s before the deadline", humanDuration(dr.Status.DeadlineTime.Sub(now))))
	}
	metrics.ForgetDeletionRequest(dr.Namespace, dr.Name)
	metrics.DeletionRequests.WithLabelValues(dr.Namespace, string(retentionv1.RequestCompleted)).Inc()
	r.Coalescer.Done(client.ObjectKeyFromObject(dr))
	r.Recorder.Eventf(dr, nil, "Normal", reason, "Erase", "%s", msg)
	log.FromContext(ctx).Info("DeletionRequest completed", "subject", digest.Short(dr.Status.SubjectDigest), "records", rows)
	return r.expire(ctx, dr, now)
}

func (r *DeletionRequestReconciler) fail(dr *retentionv1.DeletionRequest, reason, msg string, now time.Time) (reconcile.Result, error) {
	dr.Status.Phase = retentionv1.RequestFailed
	dr.Status.CompletionTime = &metav1.Time{Time: now}
	retentionv1.MarkStalled(dr, reason, msg)
	metrics.DeletionRequests.WithLabelValues(dr.Namespace, string(retentionv1.RequestFailed)).Inc()
	metrics.ForgetDeletionRequest(dr.Namespace, dr.Name)
	r.Coalescer.Done(client.ObjectKeyFromObject(dr))
	r.Recorder.Eventf(dr, nil, "Warning", reason, "Erase", "%s", msg)
	return reconcile.Result{}, nil
}

// ReceiptSHA256 is the SHA-256 of the receipt's canonical JSON without its
// sha256 field (encoding/json sorts nothing, but the struct's field order
// and the entries' plan order are fixed, which makes it canonical).
func ReceiptSHA256(r *retentionv1.Receipt) (string, error) {
	c := r.DeepCopy()
	c.SHA256 = ""
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// ledgerEntry is one line of the erasure ledger: digests only.
type ledgerEntry struct {
	Request    string   `json:"request"`
	Subject    string   `json:"subject"`
	Identities []string `json:"identities"`
	Receipt    string   `json:"receiptSHA256"`
	Completed  string   `json:"completed"`
}

// appendLedger records the erasure in the namespace's ledger ConfigMap, one
// key per request, so it outlives the request (ttlSecondsAfterFinished) and
// a restored backup can be checked against it.
func (r *DeletionRequestReconciler) appendLedger(ctx context.Context, dr *retentionv1.DeletionRequest, receipt *retentionv1.Receipt) error {
	identities, err := r.ledgerIdentities(ctx, dr)
	if err != nil {
		return err
	}
	entry := ledgerEntry{Request: dr.Name, Subject: receipt.SubjectDigest, Receipt: receipt.SHA256, Completed: receipt.CompletedAt.UTC().Format(time.RFC3339)}
	for typ, vs := range identities {
		for _, v := range vs {
			entry.Identities = append(entry.Identities, typ+"="+digest.Identity(r.DigestKey, typ, v))
		}
	}
	slices.Sort(entry.Identities)
	line, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	return r.Ledger.Append(ctx, dr.Namespace, LedgerDay(receipt.CompletedAt.Time), dr.Name, string(line))
}

// expire deletes a finished request after ttlSecondsAfterFinished, with the
// Secrets it owns (<request>-subject, and the identity Secret if the request
// owns it; never a Secret it does not own) and its PurgeJobs; a coalesced
// PurgeJob, which erased other requests too, goes with the last of them
// (releaseJobs). Only the ledger's digests remain.
func (r *DeletionRequestReconciler) expire(ctx context.Context, dr *retentionv1.DeletionRequest, now time.Time) (reconcile.Result, error) {
	if dr.Spec.TTLSecondsAfterFinished == nil || dr.Status.CompletionTime == nil {
		return reconcile.Result{}, nil
	}
	at := dr.Status.CompletionTime.Add(time.Duration(*dr.Spec.TTLSecondsAfterFinished) * time.Second)
	if wait := at.Sub(now); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	secrets := []string{subjectSecretName(dr)}
	if ref := dr.Spec.Subject.IdentitiesSecretRef; ref != nil {
		secrets = append(secrets, ref.Name)
	}
	for _, name := range secrets {
		if err := deleteOwnedSecret(ctx, r.Client, r.APIReader, dr, name); err != nil {
			return reconcile.Result{}, err
		}
	}
	var jobs retentionv1.PurgeJobList
	if err := r.List(ctx, &jobs, client.InNamespace(dr.Namespace), client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(labels.Set{retentionv1.LabelDeletionRequest: dr.Name})}); err != nil {
		return reconcile.Result{}, err
	}
	for i := range jobs.Items {
		if err := r.deleteJob(ctx, &jobs.Items[i]); err != nil {
			return reconcile.Result{}, err
		}
	}
	if err := r.Delete(ctx, dr, client.Preconditions{UID: &dr.UID}); client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, err
	}
	log.FromContext(ctx).Info("DeletionRequest removed after its TTL; the ledger entry remains", "subject", digest.Short(dr.Status.SubjectDigest))
	// Its deletion reconciles it again (releaseJobs); this spares the wait.
	return reconcile.Result{}, r.releaseJobs(ctx, client.ObjectKeyFromObject(dr))
}

// releaseJobs runs when a request is gone (deleted by its TTL or by hand):
// each coalesced PurgeJob that named it is deleted, with its subjects
// Secret, once no request it names exists any more. A job still running is
// left to finish; its end reconciles its requests, which brings this back.
func (r *DeletionRequestReconciler) releaseJobs(ctx context.Context, req types.NamespacedName) error {
	var list retentionv1.PurgeJobList
	if err := r.List(ctx, &list, client.InNamespace(req.Namespace), client.MatchingFields{jobRequestIndex: req.Name}); err != nil {
		return err
	}
	for i := range list.Items {
		job := &list.Items[i]
		if job.Status.Phase == retentionv1.PurgeJobRunning || !job.DeletionTimestamp.IsZero() {
			continue
		}
		live := false
		for _, name := range jobRequests(job) {
			var other retentionv1.DeletionRequest
			err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: name}, &other)
			if err == nil && other.DeletionTimestamp.IsZero() {
				live = true
				break
			}
			if client.IgnoreNotFound(err) != nil {
				return err
			}
		}
		if live {
			continue
		}
		if err := r.deleteJob(ctx, job); err != nil {
			return err
		}
		log.FromContext(ctx).Info("Coalesced PurgeJob removed with the last of its DeletionRequests", "purgeJob", job.Name)
	}
	return nil
}

// deleteJob deletes a PurgeJob and the subjects Secret it owns. The garbage
// collector would remove the Secret with the job too; deleting it here does
// not depend on it.
func (r *DeletionRequestReconciler) deleteJob(ctx context.Context, job *retentionv1.PurgeJob) error {
	if ref := job.Spec.SubjectsSecretRef; ref != nil {
		if err := deleteOwnedSecret(ctx, r.Client, r.APIReader, job, ref.Name); err != nil {
			return err
		}
	}
	r.Coalescer.Forget(job.Namespace, job.Name)
	return client.IgnoreNotFound(r.Delete(ctx, job, client.Preconditions{UID: &job.UID}))
}

// orphaned is a coalesced PurgeJob that stalled before it started because
// its subjects Secret was never created (the manager stopped between
// creating the job and the Secret): nothing ran, so its requests are queued
// again instead of failing.
func orphaned(job *retentionv1.PurgeJob) bool {
	if job.Labels[retentionv1.LabelCoalesced] != "true" || job.Status.Phase != retentionv1.PurgeJobStalled || job.Status.StartTime != nil {
		return false
	}
	c := meta.FindStatusCondition(job.Status.Conditions, retentionv1.ConditionStalled)
	return c != nil && c.Reason == retentionv1.ReasonSecretNotFound
}
