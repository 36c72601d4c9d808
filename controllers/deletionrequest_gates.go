package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/identity"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/request"
)

// The gates of a DeletionRequest, in the order Reconcile passes them. Each
// sets its own conditions and returns nil when passed, or an outcome.Stall
// or outcome.Wait that says why not.

// setTimeline fixes notBefore and the deadline from the creation time; an
// invalid window or deadline is a stall (InvalidSpec).
func setTimeline(dr *retentionv1.DeletionRequest) error {
	notBefore, deadline, err := request.Timeline(dr)
	if err != nil {
		return outcome.Stall(retentionv1.ReasonInvalidSpec, err.Error())
	}
	dr.Status.NotBefore = &metav1.Time{Time: notBefore}
	dr.Status.DeadlineTime = &metav1.Time{Time: deadline}
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

// datasetsReady passes when the Datasets in scope can be planned on: some
// declare a type the request names (types no Dataset declares are reported,
// and a request naming only such types stops instead of completing as
// NothingInScope), every one has been validated against its store (foreign
// keys come from that validation: a plan made before it would miss the
// collections only they reach), and every one is Ready. Datasets are watched
// by generation only, so a stall is looked at again after the returned
// interval.
func (r *DeletionRequestReconciler) datasetsReady(dr *retentionv1.DeletionRequest, identities map[string][]string, datasets []retentionv1.Dataset) (time.Duration, error) {
	if _, all := r.markUnknownTypes(dr, "request", identity.Types(identities), datasets); all {
		return time.Minute, outcome.Stall(retentionv1.ReasonUnknownIdentityType, meta.FindStatusCondition(dr.Status.Conditions, retentionv1.ConditionUnknownIdentityTypes).Message)
	}
	if name := request.Unvalidated(datasets); name != "" {
		return 0, outcome.Wait(2*time.Second, retentionv1.ReasonProgressing, fmt.Sprintf("Waiting for Dataset %s to be validated against its store", name))
	}
	if name, why := request.Invalid(datasets); name != "" {
		return time.Minute, outcome.Stall(retentionv1.ReasonDatasetNotReady, fmt.Sprintf("Dataset %s is not valid (%s); nothing is erased until it is fixed", name, why))
	}
	return 0, nil
}

// reviewWindow passes once status.notBefore has passed; until then the
// request is Reviewing and waits for it.
func reviewWindow(dr *retentionv1.DeletionRequest, now time.Time, planned int) error {
	if wait := dr.Status.NotBefore.Time.Sub(now); wait > 0 {
		until := dr.Status.NotBefore.UTC().Format(time.RFC3339)
		dr.Status.Phase = retentionv1.RequestReviewing
		retentionv1.SetCondition(dr, retentionv1.ConditionReviewWindowPassed, metav1.ConditionFalse, retentionv1.ReasonInReview, fmt.Sprintf("In review until %s", until))
		return outcome.Wait(wait, retentionv1.ReasonInReview, fmt.Sprintf("Review window open until %s; %d collections planned", until, planned))
	}
	retentionv1.SetCondition(dr, retentionv1.ConditionReviewWindowPassed, metav1.ConditionTrue, retentionv1.ReasonWindowPassed, "The review window has passed")
	return nil
}

// approve checks the approval gate: required by the request itself or by a
// Dataset it touches (datasets), so a requester cannot opt out. The
// annotations are authenticated by the ValidatingAdmissionPolicy (which also
// requires the RBAC verb approve on deletionrequests to approve); the
// creator check is repeated here. Awaiting an approval is a wait without a
// timer (the annotation's change reconciles the request); an approval that
// cannot count is a stall.
func approve(dr *retentionv1.DeletionRequest, datasets []string) error {
	if !dr.Spec.RequireApproval && len(datasets) == 0 {
		retentionv1.SetCondition(dr, retentionv1.ConditionApproved, metav1.ConditionTrue, retentionv1.ReasonNotRequired, "No approval required")
		return nil
	}
	by, creator := dr.Annotations[retentionv1.AnnotationApprovedBy], dr.Annotations[retentionv1.AnnotationRequestedBy]
	switch {
	case creator == "" && !dr.Spec.RequireApproval:
		// Without the creator's authenticated name, an approval could be
		// the creator's own.
		dr.Status.Phase = retentionv1.RequestAwaitingApproval
		msg := fmt.Sprintf("Dataset %s requires approval for every erasure, and an approval needs the creator's name: recreate the request with annotation %s=<your user name> (checked at admission)", strings.Join(datasets, ", "), retentionv1.AnnotationRequestedBy)
		retentionv1.SetCondition(dr, retentionv1.ConditionApproved, metav1.ConditionFalse, retentionv1.ReasonRequesterUnknown, msg)
		return outcome.Stall(retentionv1.ReasonRequesterUnknown, msg)
	case by == "":
		dr.Status.Phase = retentionv1.RequestAwaitingApproval
		msg := fmt.Sprintf("Awaiting approval: someone other than the creator annotates it with %s=<their user name>", retentionv1.AnnotationApprovedBy)
		retentionv1.SetCondition(dr, retentionv1.ConditionApproved, metav1.ConditionFalse, retentionv1.ReasonAwaitingApproval, msg)
		return outcome.Wait(0, retentionv1.ReasonAwaitingApproval, msg)
	case creator == "" || by == creator:
		dr.Status.Phase = retentionv1.RequestAwaitingApproval
		msg := "The approval is not valid: the creator cannot approve their own request"
		retentionv1.SetCondition(dr, retentionv1.ConditionApproved, metav1.ConditionFalse, retentionv1.ReasonSelfApproval, msg)
		return outcome.Stall(retentionv1.ReasonSelfApproval, msg)
	}
	dr.Status.ApprovedBy = by
	retentionv1.SetCondition(dr, retentionv1.ConditionApproved, metav1.ConditionTrue, retentionv1.ReasonApproved, "Approved by "+by)
	return nil
}

// checkHolds checks legal holds (request.Planner.Holds): a hold that blocks
// the request makes it Held, a stall until the hold ends. status.heldBy
// names every such hold; each lists the request in its status.blocking.
func (r *DeletionRequestReconciler) checkHolds(ctx context.Context, p *request.Planner, dr *retentionv1.DeletionRequest, datasets []retentionv1.Dataset, identities map[string][]string, now time.Time) error {
	held, err := p.Holds(ctx, dr.Namespace, dr.Status.Plan, datasets, identities, now)
	if err != nil {
		return err
	}
	if held.Unreadable != "" {
		// A hold whose subjects cannot be read may hold this subject:
		// holds win, so wait, and say why on the request.
		dr.Status.Phase = retentionv1.RequestHeld
		msg := fmt.Sprintf("Blocked until the subjects of LegalHold %s can be read: %v", held.Unreadable, held.Why)
		retentionv1.SetCondition(dr, retentionv1.ConditionHeld, metav1.ConditionTrue, retentionv1.ReasonLegalHold, msg)
		return outcome.Stall(retentionv1.ReasonLegalHold, msg)
	}
	dr.Status.HeldBy = held.By
	if len(held.By) > 0 {
		dr.Status.Phase = retentionv1.RequestHeld
		msg := fmt.Sprintf("Blocked by LegalHold %s until it is released or expires", held.By[0])
		if len(held.By) > 1 {
			msg = fmt.Sprintf("Blocked by LegalHolds %s until they are released or expire", strings.Join(held.By, ", "))
		}
		retentionv1.SetCondition(dr, retentionv1.ConditionHeld, metav1.ConditionTrue, retentionv1.ReasonLegalHold, msg)
		return outcome.Stall(retentionv1.ReasonLegalHold, msg)
	}
	retentionv1.SetCondition(dr, retentionv1.ConditionHeld, metav1.ConditionFalse, retentionv1.ReasonNotHeld, "No legal hold applies")
	return nil
}
