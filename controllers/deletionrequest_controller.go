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

	corev1 "k8s.io/api/core/v1"
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
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/schedule"
)

// DeletionRequest phases, condition types, reasons and annotations.
const (
	DRPending          = "Pending"
	DRReviewing        = "Reviewing"
	DRAwaitingApproval = "AwaitingApproval"
	DRHeld             = "Held"
	DRQueued           = "Queued"
	DRRunning          = "Running"
	DRCompleted        = "Completed"
	DRFailed           = "Failed"

	ConditionReviewWindowPassed = "ReviewWindowPassed"
	ConditionApproved           = "Approved"
	ConditionHeld               = "Held"
	ConditionDeadlineMet        = "DeadlineMet"

	ReasonInReview           = "InReview"
	ReasonWindowPassed       = "WindowPassed"
	ReasonAwaitingApproval   = "AwaitingApproval"
	ReasonApproved           = "Approved"
	ReasonSelfApproval       = "SelfApproval"
	ReasonNotRequired        = "NotRequired"
	ReasonNotHeld            = "NotHeld"
	ReasonOnTrack            = "OnTrack"
	ReasonAnsweredInTime     = "AnsweredInTime"
	ReasonOverdue            = "Overdue"
	ReasonQueued             = "Queued"
	ReasonErasing            = "Erasing"
	ReasonErased             = "Erased"
	ReasonVerificationFailed = "VerificationFailed"
	ReasonErasureFailed      = "ErasureFailed"
	ReasonNothingInScope     = "NothingInScope"
	// ReasonInvalidIdentity: an identity read from the spec or a Secret is
	// not usable (a control character, or a key that is not an identity type).
	ReasonInvalidIdentity = "InvalidIdentity"

	// AnnotationRequestedBy carries the creator's user name; the
	// ValidatingAdmissionPolicy in config/admission checks it against the
	// API server's authentication when approval is required.
	AnnotationRequestedBy = "retention.lethe.dev/requested-by"
	// AnnotationApprovedBy carries the approver's user name, checked the
	// same way: it must be the user making the change, and not the creator.
	AnnotationApprovedBy = "retention.lethe.dev/approved-by"
	// LabelDeletionRequest on PurgeJobs and Secrets names their request.
	LabelDeletionRequest = "retention.lethe.dev/deletion-request"
	// LedgerConfigMap prefixes the ConfigMaps holding the erasure ledger of a
	// namespace: one line per completed request, keyed digests only.
	LedgerConfigMap = "lethe-erasure-ledger"
)

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
	v := job.GetAnnotations()[AnnotationDeletionRequests]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=deletionrequests,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=deletionrequests/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;delete;patch
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
		WithOptions(controller.Options{MaxConcurrentReconciles: max(concurrency, 1)}).
		Complete(r)
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
		if dr.Status.Phase == DRHeld {
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
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
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
	if dr.Status.Phase == DRCompleted || dr.Status.Phase == DRFailed {
		return r.expire(ctx, dr, now)
	}
	if dr.Status.Phase == "" {
		dr.Status.Phase = DRPending
		retentionv1.MarkReconciling(dr, retentionv1.ReasonProgressing, "Planning the erasure")
	}

	// Subject: identities, digest, timeline.
	identities, err := r.identities(ctx, dr)
	if err != nil {
		var se stallError
		switch {
		case errors.Is(err, connect.ErrSecretNotFound):
			retentionv1.MarkStalled(dr, retentionv1.ReasonSecretNotFound, err.Error())
			return reconcile.Result{RequeueAfter: time.Minute}, nil
		case errors.As(err, &se):
			retentionv1.MarkStalled(dr, se.reason, se.msg)
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
		var se stallError
		if errors.As(err, &se) {
			retentionv1.MarkStalled(dr, se.reason, se.msg)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if name := unvalidated(datasets); name != "" {
		// Foreign keys come from the Dataset's validation: a plan made
		// before it would miss the collections only they reach.
		retentionv1.MarkReconciling(dr, retentionv1.ReasonProgressing, fmt.Sprintf("Waiting for Dataset %s to be validated against its store", name))
		return reconcile.Result{RequeueAfter: 2 * time.Second}, nil
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
		dr.Status.Phase = DRReviewing
		retentionv1.SetCondition(dr, ConditionReviewWindowPassed, metav1.ConditionFalse, ReasonInReview, fmt.Sprintf("In review until %s", dr.Status.NotBefore.UTC().Format(time.RFC3339)))
		retentionv1.MarkReconciling(dr, ReasonInReview, fmt.Sprintf("Review window open until %s; %d collections planned", dr.Status.NotBefore.UTC().Format(time.RFC3339), len(plan)))
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	retentionv1.SetCondition(dr, ConditionReviewWindowPassed, metav1.ConditionTrue, ReasonWindowPassed, "The review window has passed")
	if !r.approved(dr) {
		return reconcile.Result{}, nil
	}

	// Derive further identities from the stores (kept in the request's own
	// Secret, never in status), then plan with what was actually found, so
	// a hold on a derived identity blocks the request.
	identities, derivedFrom, err := r.derive(ctx, dr, datasets, identities)
	if err != nil {
		var se stallError
		if errors.As(err, &se) {
			retentionv1.MarkStalled(dr, se.reason, se.msg)
			return reconcile.Result{RequeueAfter: time.Minute}, nil
		}
		if invalid(err) {
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
		return r.complete(ctx, dr, nil, now, ReasonNothingInScope)
	}

	// Execute: count the subject's records, then queue for a coalesced
	// PurgeJob per Dataset (set-based statements over many subjects).
	jobs, queued, err := r.execute(ctx, dr, steps, identities)
	if invalid(err) {
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
		switch j.Status.Phase {
		case PhaseFailed, PhaseStalled:
			msg := fmt.Sprintf("PurgeJob %s %s", j.Name, strings.ToLower(j.Status.Phase))
			if c := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionStalled); c != nil {
				msg += ": " + c.Message
			}
			return r.fail(dr, ReasonErasureFailed, msg, now)
		case PhaseSucceeded:
		default:
			dr.Status.Phase = DRRunning
			retentionv1.MarkReconciling(dr, ReasonErasing, fmt.Sprintf("Erasing with %d PurgeJobs", len(jobs)))
			// The job's end requeues this request; the timer is a fallback.
			return reconcile.Result{RequeueAfter: 10 * time.Second}, nil
		}
	}

	// Verify: nothing identifiable left anywhere in the plan.
	if dr.Spec.DryRun {
		return r.complete(ctx, dr, jobs, now, ReasonDryRunCompleted)
	}
	if msg, err := r.verify(ctx, steps, jobs, identities); invalid(err) {
		retentionv1.MarkStalled(dr, retentionv1.ReasonInvalidSpec, "Cannot verify: "+err.Error())
		return reconcile.Result{RequeueAfter: time.Minute}, nil
	} else if err != nil {
		return reconcile.Result{}, err
	} else if msg != "" {
		return r.fail(dr, ReasonVerificationFailed, msg, now)
	}
	return r.complete(ctx, dr, jobs, now, ReasonErased)
}

// invalid reports whether err says that an operation cannot run as
// specified (retrying cannot help).
func invalid(err error) bool {
	return err != nil && (errors.Is(err, datastore.ErrInvalid) || errors.Is(err, engine.ErrInvalid))
}

// identities reads the subject: inline identities and the identity Secret.
// A value with a control character, or a Secret key that is not an identity
// type, is a stallError (InvalidIdentity); messages never carry the values.
func (r *DeletionRequestReconciler) identities(ctx context.Context, dr *retentionv1.DeletionRequest) (map[string][]string, error) {
	out := map[string][]string{}
	for i, id := range dr.Spec.Subject.Identities {
		if err := checkIdentity(string(id.Type), id.Value); err != nil {
			return nil, stalled(ReasonInvalidIdentity, fmt.Sprintf("spec.subject.identities[%d]: %v", i, err))
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
					return nil, stalled(ReasonInvalidIdentity, fmt.Sprintf("identity Secret %s, key %s: %v", ref.Name, k, err))
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
		retentionv1.SetCondition(dr, ConditionDeadlineMet, metav1.ConditionTrue, ReasonOnTrack, fmt.Sprintf("%s left until the deadline %s", humanDuration(left), dr.Status.DeadlineTime.UTC().Format(time.RFC3339)))
		return
	}
	c := meta.FindStatusCondition(dr.Status.Conditions, ConditionDeadlineMet)
	if c == nil || c.Reason != ReasonOverdue {
		r.Recorder.Eventf(dr, nil, "Warning", ReasonOverdue, "Deadline", "Overdue: the deadline %s passed %s ago", dr.Status.DeadlineTime.UTC().Format(time.RFC3339), humanDuration(-left))
	}
	retentionv1.SetCondition(dr, ConditionDeadlineMet, metav1.ConditionFalse, ReasonOverdue, fmt.Sprintf("Overdue by %s (deadline %s)", humanDuration(-left), dr.Status.DeadlineTime.UTC().Format(time.RFC3339)))
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
			return nil, stalled(retentionv1.ReasonInvalidSpec, fmt.Sprintf("spec.scope.selector is not a valid label selector: %v", err))
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

// datasetSteps is the planned erasure of one Dataset.
type datasetSteps struct {
	dataset *retentionv1.Dataset
	ops     []retentionv1.Operation
}

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

// plan walks each Dataset's identity graph: every collection holding one of
// the identity types directly or through references and discovered foreign
// keys, with its action (the request's override, else the Dataset's),
// children first. derivedFrom says which types were (or may be) derived,
// and how, for status.plan[].via.
func (r *DeletionRequestReconciler) plan(dr *retentionv1.DeletionRequest, datasets []retentionv1.Dataset, have map[string]bool, derivedFrom map[string]string) ([]retentionv1.PlannedCollection, []datasetSteps, error) {
	var plan []retentionv1.PlannedCollection
	var steps []datasetSteps
	for i := range datasets {
		ds := &datasets[i]
		var ops []retentionv1.Operation
		via := map[retentionv1.Identifier]string{}
		graph := engine.NewGraph(ds)
		for ci := range ds.Spec.Collections {
			c := &ds.Spec.Collections[ci]
			path, err := graph.Path(c, func(t string) bool { return have[t] })
			if errors.Is(err, engine.ErrNoPath) {
				continue // holds none of this subject's identities
			}
			if err != nil {
				return nil, nil, err
			}
			action := c.Action
			if action == "" {
				action = retentionv1.ActionDelete
			}
			for _, o := range dr.Spec.Overrides {
				if string(o.Dataset) == ds.Name && o.Collection == c.Name {
					action = o.Action
				}
			}
			op := retentionv1.Operation{Collection: c.Name, Action: action, BySubject: true}
			if action == retentionv1.ActionAnonymize {
				for _, f := range c.Fields {
					if f.Anonymize != nil {
						op.Fields = append(op.Fields, retentionv1.FieldAnonymization{Name: f.Name, Anonymization: *f.Anonymize})
					}
				}
				if len(op.Fields) == 0 {
					return nil, nil, fmt.Errorf("collection %s of Dataset %s is to be anonymized, but none of its fields has an anonymize strategy", c.Name, ds.Name)
				}
			}
			ops = append(ops, op)
			via[c.Name] = describeVia(ds, c, path, have, derivedFrom)
		}
		if len(ops) == 0 {
			continue
		}
		ops = engine.OrderChildrenFirst(ds, ops)
		for order, op := range ops {
			plan = append(plan, retentionv1.PlannedCollection{Dataset: ds.Name, Collection: string(op.Collection), Action: op.Action, Order: int32(order), Via: via[op.Collection]})
		}
		steps = append(steps, datasetSteps{dataset: ds, ops: ops})
	}
	return plan, steps, nil
}

// approved checks the approval gate. The annotations are authenticated by
// the ValidatingAdmissionPolicy; the creator check is repeated here.
func (r *DeletionRequestReconciler) approved(dr *retentionv1.DeletionRequest) bool {
	if !dr.Spec.RequireApproval {
		retentionv1.SetCondition(dr, ConditionApproved, metav1.ConditionTrue, ReasonNotRequired, "No approval required")
		return true
	}
	by, creator := dr.Annotations[AnnotationApprovedBy], dr.Annotations[AnnotationRequestedBy]
	switch {
	case by == "":
		dr.Status.Phase = DRAwaitingApproval
		msg := fmt.Sprintf("Awaiting approval: someone other than the creator annotates it with %s=<their user name>", AnnotationApprovedBy)
		retentionv1.SetCondition(dr, ConditionApproved, metav1.ConditionFalse, ReasonAwaitingApproval, msg)
		retentionv1.MarkReconciling(dr, ReasonAwaitingApproval, msg)
		return false
	case creator == "" || by == creator:
		dr.Status.Phase = DRAwaitingApproval
		msg := "The approval is not valid: the creator cannot approve their own request"
		retentionv1.SetCondition(dr, ConditionApproved, metav1.ConditionFalse, ReasonSelfApproval, msg)
		retentionv1.MarkStalled(dr, ReasonSelfApproval, msg)
		return false
	}
	dr.Status.ApprovedBy = by
	retentionv1.SetCondition(dr, ConditionApproved, metav1.ConditionTrue, ReasonApproved, "Approved by "+by)
	return true
}

// held checks legal holds: a hold naming one of the subject's identities, or
// keeping a whole planned collection, blocks the request until it ends.
func (r *DeletionRequestReconciler) held(ctx context.Context, dr *retentionv1.DeletionRequest, datasets []retentionv1.Dataset, identities map[string][]string, now time.Time) (bool, error) {
	var list retentionv1.LegalHoldList
	if err := r.List(ctx, &list, client.InNamespace(dr.Namespace)); err != nil {
		return false, err
	}
	for _, p := range dr.Status.Plan {
		ds := findDataset(datasets, p.Dataset)
		c, _ := engine.Collection(ds, retentionv1.Identifier(p.Collection))
		effect, err := holds.For(ctx, r.APIReader, list.Items, ds.Name, c, now)
		if errors.Is(err, connect.ErrSecretNotFound) || errors.Is(err, holds.ErrInvalidSubject) {
			// A hold whose subjects cannot be read may hold this subject:
			// holds win, so wait, and say why on the request.
			dr.Status.Phase = DRHeld
			msg := fmt.Sprintf("Blocked until the subjects of a LegalHold can be read: %v", err)
			retentionv1.SetCondition(dr, ConditionHeld, metav1.ConditionTrue, retentionv1.ReasonLegalHold, msg)
			retentionv1.MarkStalled(dr, retentionv1.ReasonLegalHold, msg)
			return true, nil
		}
		if err != nil {
			return false, err
		}
		hold := effect.Blocked
		for typ, values := range identities {
			for _, v := range values {
				if hold == "" && slices.Contains(effect.Held[typ], v) {
					hold = heldBy(ctx, r.APIReader, list.Items, ds.Name, c, typ, v, now)
				}
			}
		}
		if hold != "" {
			dr.Status.Phase = DRHeld
			msg := fmt.Sprintf("Blocked by LegalHold %s until it is released or expires", hold)
			retentionv1.SetCondition(dr, ConditionHeld, metav1.ConditionTrue, retentionv1.ReasonLegalHold, msg)
			retentionv1.MarkStalled(dr, retentionv1.ReasonLegalHold, msg)
			return true, nil
		}
	}
	retentionv1.SetCondition(dr, ConditionHeld, metav1.ConditionFalse, ReasonNotHeld, "No legal hold applies")
	return false, nil
}

// heldBy names the active hold that holds one identity.
func heldBy(ctx context.Context, r client.Reader, all []retentionv1.LegalHold, dataset string, c *retentionv1.Collection, typ, value string, now time.Time) string {
	for i := range all {
		effect, err := holds.For(ctx, r, all[i:i+1], dataset, c, now)
		if err == nil && slices.Contains(effect.Held[typ], value) {
			return all[i].Name
		}
	}
	return "unknown"
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
		if jobFor(jobs, s.dataset.Name) == nil {
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
	if dr.Status.Phase != DRQueued {
		counts, err := r.countSubject(ctx, steps, identities)
		if err != nil {
			return nil, false, err
		}
		i := 0
		for si, s := range steps {
			for oi := range s.ops {
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
		r.Coalescer.Add(client.ObjectKeyFromObject(dr), s.dataset.Name, mode, s.ops, identities)
	}
	dr.Status.Phase = DRQueued
	retentionv1.MarkReconciling(dr, ReasonQueued, "Queued for erasure together with other requests")
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
		jobs = append(jobs, &list.Items[i])
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
		jobs = append(jobs, job)
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
	var store retentionv1.DataStore
	if err := r.Get(ctx, types.NamespacedName{Namespace: s.dataset.Namespace, Name: string(s.dataset.Spec.DataStoreRef.Name)}, &store); err != nil {
		return nil, err
	}
	d, err := r.Pool.Get(ctx, &store)
	if err != nil {
		return nil, err
	}
	out := make([]int64, 0, len(s.ops))
	for _, op := range s.ops {
		c, _ := engine.Collection(s.dataset, op.Collection)
		dc, err := engine.ToDriver(store.Spec.Type, c)
		if err != nil {
			return nil, err
		}
		hops, err := engine.PathToIdentities(s.dataset, store.Spec.Type, c, identities)
		if err != nil {
			return nil, err
		}
		n, err := d.Count(ctx, datastore.Operation{Collection: dc, Subjects: identities, Via: hops, Delete: op.Action == retentionv1.ActionDelete})
		if err != nil {
			return nil, fmt.Errorf("counting in %s/%s: %w", s.dataset.Name, op.Collection, err)
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
		if job := jobFor(jobs, s.dataset.Name); job != nil {
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
		for oi, op := range s.ops {
			if left[oi] > 0 {
				return fmt.Sprintf("Verification failed: %d records in collection %s of Dataset %s still identify the subject after erasure", left[oi], op.Collection, s.dataset.Name), nil
			}
		}
	}
	return "", nil
}

// complete writes the receipt (per planned collection the subject's rows and
// when the PurgeJob of its Dataset finished), appends the ledger entry and
// marks the request done.
func (r *DeletionRequestReconciler) complete(ctx context.Context, dr *retentionv1.DeletionRequest, jobs []*retentionv1.PurgeJob, now time.Time, reason string) (reconcile.Result, error) {
	dry := reason == ReasonDryRunCompleted
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
	dr.Status.Phase = DRCompleted
	dr.Status.CompletionTime = &metav1.Time{Time: now}
	rows := int64(0)
	for _, e := range receipt.Entries {
		rows += e.Rows
	}
	msg := fmt.Sprintf("%d records in %d collections erased and verified; receipt sha256 %s", rows, len(receipt.Entries), sum[:12])
	switch reason {
	case ReasonNothingInScope:
		msg = "No collection in scope holds this subject's identity types; nothing to erase"
	case ReasonDryRunCompleted:
		msg = fmt.Sprintf("Dry run: %d records in %d collections would be erased; nothing was changed", rows, len(receipt.Entries))
	}
	retentionv1.MarkReady(dr, reason, msg)
	if c := meta.FindStatusCondition(dr.Status.Conditions, ConditionDeadlineMet); c != nil && c.Status == metav1.ConditionTrue {
		retentionv1.SetCondition(dr, ConditionDeadlineMet, metav1.ConditionTrue, ReasonAnsweredInTime, fmt.Sprintf("Answered %s before the deadline", humanDuration(dr.Status.DeadlineTime.Sub(now))))
	}
	metrics.ForgetDeletionRequest(dr.Namespace, dr.Name)
	metrics.DeletionRequests.WithLabelValues(dr.Namespace, DRCompleted).Inc()
	r.Coalescer.Done(client.ObjectKeyFromObject(dr))
	r.Recorder.Eventf(dr, nil, "Normal", reason, "Erase", "%s", msg)
	log.FromContext(ctx).Info("DeletionRequest completed", "subject", digest.Short(dr.Status.SubjectDigest), "records", rows)
	return r.expire(ctx, dr, now)
}

func (r *DeletionRequestReconciler) fail(dr *retentionv1.DeletionRequest, reason, msg string, now time.Time) (reconcile.Result, error) {
	dr.Status.Phase = DRFailed
	dr.Status.CompletionTime = &metav1.Time{Time: now}
	retentionv1.MarkStalled(dr, reason, msg)
	metrics.DeletionRequests.WithLabelValues(dr.Namespace, DRFailed).Inc()
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

// expire deletes a finished request after ttlSecondsAfterFinished, with its
// subject Secret and, if the request owns it, the identity Secret.
func (r *DeletionRequestReconciler) expire(ctx context.Context, dr *retentionv1.DeletionRequest, now time.Time) (reconcile.Result, error) {
	if dr.Spec.TTLSecondsAfterFinished == nil || dr.Status.CompletionTime == nil {
		return reconcile.Result{}, nil
	}
	at := dr.Status.CompletionTime.Add(time.Duration(*dr.Spec.TTLSecondsAfterFinished) * time.Second)
	if wait := at.Sub(now); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	// Only Secrets this request owns (an owner reference with its UID) are
	// deleted: a Secret that merely has the request's name in its name, or
	// that the request points at, may be someone else's.
	secrets := []string{dr.Name + "-subject"}
	if ref := dr.Spec.Subject.IdentitiesSecretRef; ref != nil && ref.Name != secrets[0] {
		secrets = append(secrets, ref.Name)
	}
	for _, name := range secrets {
		var s corev1.Secret
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: name}, &s)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return reconcile.Result{}, err
		}
		if !ownedBy(&s, dr) {
			continue
		}
		if err := r.Delete(ctx, &s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, err
		}
	}
	var jobs retentionv1.PurgeJobList
	if err := r.List(ctx, &jobs, client.InNamespace(dr.Namespace), client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(labels.Set{LabelDeletionRequest: dr.Name})}); err != nil {
		return reconcile.Result{}, err
	}
	for i := range jobs.Items {
		if err := r.Delete(ctx, &jobs.Items[i]); client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, err
		}
	}
	if err := r.Delete(ctx, dr); client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, err
	}
	log.FromContext(ctx).Info("DeletionRequest removed after its TTL; the ledger entry remains", "subject", digest.Short(dr.Status.SubjectDigest))
	return reconcile.Result{}, nil
}

func ownedBy(o metav1.Object, owner metav1.Object) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.UID == owner.GetUID() {
			return true
		}
	}
	return false
}
