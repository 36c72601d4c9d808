package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/coalesce"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/request"
	"github.com/lethe-dev/lethe/internal/signature"
)

// erase returns the request's PurgeJobs once one exists for every Dataset of
// the plan. Before that, the first time, it proves the erasure can run
// (preflight, a stall ReferencedOutsideErasure when it cannot) and counts
// the subject's records in every planned collection (the receipt reports
// them); then it hands each Dataset's operations to the coalescer and waits
// (Queued).
func (r *DeletionRequestReconciler) erase(ctx context.Context, p *request.Planner, dr *retentionv1.DeletionRequest, steps []erasure.Step, identities map[string][]string) ([]*retentionv1.PurgeJob, error) {
	jobs, err := r.jobsOf(ctx, dr)
	if err != nil {
		return nil, err
	}
	var missing []erasure.Step
	for _, s := range steps {
		if request.JobFor(jobs, s.Dataset.Name) == nil {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		dr.Status.PurgeJobs = dr.Status.PurgeJobs[:0]
		for _, j := range jobs {
			dr.Status.PurgeJobs = append(dr.Status.PurgeJobs, j.Name)
		}
		return jobs, nil
	}
	if dr.Status.Phase != retentionv1.RequestQueued {
		msg, err := p.Preflight(ctx, steps, identities)
		if err != nil {
			return nil, err
		}
		plan := []retentionv1.PlannedCollection{}
		for _, s := range steps {
			plan = append(plan, s.Plan...)
		}
		setPlan(dr, plan)
		if msg != "" {
			return nil, outcome.Stall(retentionv1.ReasonReferencedOutsideErasure, msg)
		}
		counts, err := p.Count(ctx, steps, identities)
		if err != nil {
			return nil, err
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
	// A finished PurgeJob wakes its requests (its annotation names them);
	// the timer shows a long erasure as Running.
	return nil, outcome.Wait(5*time.Second, retentionv1.ReasonQueued, "Queued for erasure together with other requests")
}

// jobsOf returns the PurgeJobs erasing this request: those naming it in
// their annotation, those the coalescer just started (the cache may not have
// them yet) and those its status already records, sorted by name. Only the
// manager's own (signed) jobs count.
func (r *DeletionRequestReconciler) jobsOf(ctx context.Context, dr *retentionv1.DeletionRequest) ([]*retentionv1.PurgeJob, error) {
	var list retentionv1.PurgeJobList
	if err := r.List(ctx, &list, client.InNamespace(dr.Namespace), client.MatchingFields{jobRequestIndex: dr.Name}); err != nil {
		return nil, err
	}
	var jobs []*retentionv1.PurgeJob
	for i := range list.Items {
		// Anyone who can write PurgeJobs can name a request in the
		// annotation: only the manager's own jobs count.
		if signature.Signed(r.DigestKey, &list.Items[i]) {
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
		if signature.Signed(r.DigestKey, job) {
			jobs = append(jobs, job)
		}
	}
	slices.SortFunc(jobs, func(a, b *retentionv1.PurgeJob) int { return strings.Compare(a.Name, b.Name) })
	return jobs, nil
}

// jobsDone reports whether every PurgeJob of the request has succeeded.
// Otherwise it says when to look again and why not: a job that failed fails
// the request; a job that stopped stalls it (Running); a job still running
// is awaited. A coalesced job orphaned before it started (coalesce.Orphaned)
// is deleted, and the request queued again.
func (r *DeletionRequestReconciler) jobsDone(ctx context.Context, dr *retentionv1.DeletionRequest, jobs []*retentionv1.PurgeJob, now time.Time) (done bool, next time.Duration, err error) {
	for _, j := range jobs {
		if coalesce.Orphaned(j) {
			if err := r.deleteJob(ctx, j); err != nil {
				return false, 0, err
			}
			log.FromContext(ctx).Info("Deleted a coalesced PurgeJob whose subjects Secret was never created; queueing the request again", "purgeJob", j.Name)
			return false, time.Second, nil
		}
		switch j.Status.Phase {
		case retentionv1.PurgeJobFailed:
			msg := fmt.Sprintf("PurgeJob %s failed", j.Name)
			if c := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionStalled); c != nil {
				msg += ": " + c.Message
			}
			return false, 0, r.fail(dr, retentionv1.ReasonErasureFailed, msg, now)
		case retentionv1.PurgeJobStalled:
			// Stopped, but not over: a safety limit to release, records
			// referring from outside, or an interrupted erasure that resumes
			// once its cause is fixed. The job's end wakes this request.
			reason, msg := retentionv1.ReasonErasureFailed, fmt.Sprintf("PurgeJob %s stopped", j.Name)
			if c := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionStalled); c != nil {
				reason, msg = c.Reason, msg+": "+c.Message
			}
			dr.Status.Phase = retentionv1.RequestRunning
			return false, time.Minute, outcome.Stall(reason, msg)
		case retentionv1.PurgeJobSucceeded:
		default:
			dr.Status.Phase = retentionv1.RequestRunning
			// The job's end requeues this request; the timer is a fallback.
			return false, 0, outcome.Wait(10*time.Second, retentionv1.ReasonErasing, fmt.Sprintf("Erasing with %d PurgeJobs", len(jobs)))
		}
	}
	return true, 0, nil
}
