package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/ledger"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/receipt"
	"github.com/lethe-dev/lethe/internal/request"
)

// report puts what stopped a reconcile into the request's status: a stall
// as Stalled with its reason and message, a wait as Reconciling. A
// transient error leaves the conditions as they are (it is retried).
func report(dr *retentionv1.DeletionRequest, err error) {
	if se := outcome.AsStall(err); se != nil {
		retentionv1.MarkStalled(dr, se.Reason, se.Msg)
	} else if we := outcome.AsWait(err); we != nil {
		retentionv1.MarkReconciling(dr, we.Reason, we.Msg)
	}
}

// setPlan replaces the plan; counts taken before erasure stay with it.
func setPlan(dr *retentionv1.DeletionRequest, plan []retentionv1.PlannedCollection) {
	request.KeepCounts(dr.Status.Plan, plan)
	dr.Status.Plan = plan
}

// reportDerivation records, without values, that identities were derived
// and where they are kept: later passes (verification, the ledger, a
// restarted manager) read that Secret only when the IdentitiesDerived
// condition says it exists. Deriving them first raises an event.
func (r *DeletionRequestReconciler) reportDerivation(ctx context.Context, dr *retentionv1.DeletionRequest, d request.Derivation) {
	if d.Secret == "" {
		return
	}
	kinds := slices.Sorted(maps.Keys(d.How))
	var parts []string
	for _, t := range kinds {
		parts = append(parts, t+" from "+d.How[t])
	}
	retentionv1.SetCondition(dr, retentionv1.ConditionIdentitiesDerived, metav1.ConditionTrue, retentionv1.ReasonIdentitiesDerived,
		fmt.Sprintf("Derived %s; the values are kept in Secret %s", strings.Join(parts, "; "), d.Secret))
	if d.Created {
		r.Recorder.Eventf(dr, nil, "Normal", retentionv1.ReasonIdentitiesDerived, "Derive", "Derived identity types %s from the stores; kept in Secret %s", strings.Join(kinds, ", "), d.Secret)
		log.FromContext(ctx).Info("Derived identities", "subject", digest.Short(dr.Status.SubjectDigest), "types", kinds)
	}
}

// complete writes the receipt (internal/receipt), appends the ledger entry
// (internal/ledger; not for a dry run) and marks the request done; then the
// request waits for its TTL (expire).
func (r *DeletionRequestReconciler) complete(ctx context.Context, p *request.Planner, dr *retentionv1.DeletionRequest, jobs []*retentionv1.PurgeJob, now time.Time, reason string) (time.Duration, error) {
	dry := reason == retentionv1.ReasonDryRunCompleted
	rc, err := receipt.Build(dr.Status.SubjectDigest, dr.Status.Plan, jobs, now, !dry)
	if err != nil {
		return 0, err
	}
	if !dry {
		if err := r.appendLedger(ctx, p, dr, rc); err != nil {
			return 0, err
		}
	}
	dr.Status.Receipt = rc
	dr.Status.Phase = retentionv1.RequestCompleted
	dr.Status.CompletionTime = &metav1.Time{Time: now}
	rows := receipt.Rows(rc)
	msg := fmt.Sprintf("%d records in %d collections erased and verified; receipt sha256 %s", rows, len(rc.Entries), rc.SHA256[:12])
	switch reason {
	case retentionv1.ReasonNothingInScope:
		msg = "No collection in scope holds this subject's identity types; nothing to erase"
	case retentionv1.ReasonDryRunCompleted:
		msg = fmt.Sprintf("Dry run: %d records in %d collections would be erased; nothing was changed", rows, len(rc.Entries))
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
	return r.finished(ctx, p, dr, now, true)
}

// finished runs for a request that is over. A completed erasure (verified,
// with a plan) tells its Recipients (notify; completedNow: it completed in
// this reconcile) and shows when its backups expire (backups); then the
// request waits for its TTL (expire), which waits for every notice to be
// final. It returns the earliest time something is due.
func (r *DeletionRequestReconciler) finished(ctx context.Context, p *request.Planner, dr *retentionv1.DeletionRequest, now time.Time, completedNow bool) (time.Duration, error) {
	var next time.Duration
	soonest := func(d time.Duration) {
		if d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	erased := dr.Status.Phase == retentionv1.RequestCompleted && dr.Status.Receipt != nil && dr.Status.Receipt.Verified &&
		len(dr.Status.Plan) > 0 && dr.Status.CompletionTime != nil && dr.Status.DeadlineTime != nil
	if erased {
		wait, err := r.backups(ctx, dr, now)
		if err != nil {
			return 0, err
		}
		soonest(wait)
		if wait, err = r.notify(ctx, p, dr, now, completedNow); err != nil {
			return 0, err
		}
		soonest(wait)
	}
	if notifying(dr) {
		return next, nil
	}
	wait, err := r.expire(ctx, dr, now)
	soonest(wait)
	return next, err
}

// appendLedger records the erasure in the namespace's ledger, one key per
// request, so it outlives the request (ttlSecondsAfterFinished) and a
// restored backup can be checked against it. Its errors are retried: the
// identities it reads again were valid moments before.
func (r *DeletionRequestReconciler) appendLedger(ctx context.Context, p *request.Planner, dr *retentionv1.DeletionRequest, rc *retentionv1.Receipt) error {
	identities, err := p.LedgerIdentities(ctx, dr)
	if se := outcome.AsStall(err); se != nil {
		return errors.New("reading the identities for the erasure ledger: " + se.Msg)
	}
	if err != nil {
		return err
	}
	line, err := ledger.NewLine(r.DigestKey, dr.Name, rc, identities)
	if err != nil {
		return err
	}
	return r.Ledger.Append(ctx, dr.Namespace, ledger.Day(rc.CompletedAt.Time), dr.Name, line)
}

// fail ends the request as Failed: a stall with reason and msg, and the
// event that says so.
func (r *DeletionRequestReconciler) fail(dr *retentionv1.DeletionRequest, reason, msg string, now time.Time) error {
	dr.Status.Phase = retentionv1.RequestFailed
	dr.Status.CompletionTime = &metav1.Time{Time: now}
	metrics.DeletionRequests.WithLabelValues(dr.Namespace, string(retentionv1.RequestFailed)).Inc()
	metrics.ForgetDeletionRequest(dr.Namespace, dr.Name)
	r.Coalescer.Done(client.ObjectKeyFromObject(dr))
	r.Recorder.Eventf(dr, nil, "Warning", reason, "Erase", "%s", msg)
	return outcome.Stall(reason, msg)
}
