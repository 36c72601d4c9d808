package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/backlog"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/schedule"
	"github.com/lethe-dev/lethe/internal/signature"
)

// RetentionPolicy annotations, labels and reasons.
const (
	policyIndex = "spec.datasetRef.name"
)

// RetentionPolicyReconciler schedules a policy's runs: each due run becomes a
// PurgeJob with its cutoffs fixed as absolute instants.
type RetentionPolicyReconciler struct {
	Deps
}

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=retentionpolicies,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=retentionpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datasets;datastores;legalholds,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// SetupWithManager registers the controller: it owns its PurgeJobs and
// follows its Dataset.
func (r *RetentionPolicyReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &retentionv1.RetentionPolicy{}, policyIndex, func(o client.Object) []string {
		return []string{string(o.(*retentionv1.RetentionPolicy).Spec.DatasetRef.Name)}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("retentionpolicy").
		For(&retentionv1.RetentionPolicy{}, builder.WithPredicates(specOrMetadataChanged())).
		Owns(&retentionv1.PurgeJob{}, builder.WithPredicates(purgeJobPhaseChanged())).
		Watches(&retentionv1.Dataset{}, handler.EnqueueRequestsFromMapFunc(r.policiesOfDataset)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(concurrency, 1)}).
		Complete(r)
}

func (r *RetentionPolicyReconciler) policiesOfDataset(ctx context.Context, o client.Object) []reconcile.Request {
	return listRequests(ctx, r, &retentionv1.RetentionPolicyList{}, client.InNamespace(o.GetNamespace()), client.MatchingFields{policyIndex: o.GetName()})
}

// Reconcile: get → gates (schedule, Dataset, rules) → runs (history, release,
// status of the last run) → schedule the next run → status.
func (r *RetentionPolicyReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var p retentionv1.RetentionPolicy
	if err := r.Get(ctx, req.NamespacedName, &p); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	status := newStatusWriter(r.Client, &p)
	p.Status.ObservedGeneration = p.Generation
	now := r.now()

	result, err := r.reconcile(ctx, &p, now)
	if werr := status.write(ctx, &p); werr != nil {
		return reconcile.Result{}, errors.Join(err, werr)
	}
	if err != nil {
		return outcome.Result(err, 0)
	}
	return result, nil
}

func (r *RetentionPolicyReconciler) reconcile(ctx context.Context, p *retentionv1.RetentionPolicy, now time.Time) (reconcile.Result, error) {
	// Gates: a valid schedule, an existing Dataset, rules that plan.
	sched, err := schedule.Parse(string(p.Spec.Schedule), string(p.Spec.TimeZone))
	if err != nil {
		retentionv1.MarkStalled(p, retentionv1.ReasonInvalidSchedule, err.Error())
		p.Status.NextScheduleTime = nil
		return reconcile.Result{}, nil
	}
	var ds retentionv1.Dataset
	if err := r.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: string(p.Spec.DatasetRef.Name)}, &ds); err != nil {
		if apierrors.IsNotFound(err) {
			retentionv1.MarkStalled(p, retentionv1.ReasonDatasetNotFound, fmt.Sprintf("Dataset %s not found", p.Spec.DatasetRef.Name))
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if _, err := engine.PolicyOperations(p, &ds, now); err != nil {
		retentionv1.MarkStalled(p, retentionv1.ReasonInvalidSpec, strings.TrimPrefix(err.Error(), engine.ErrInvalid.Error()+": "))
		return reconcile.Result{}, nil
	}
	if p.Spec.StartingDeadlineSeconds != nil {
		if _, err := schedule.StartingDeadline(*p.Spec.StartingDeadlineSeconds); err != nil {
			retentionv1.MarkStalled(p, retentionv1.ReasonInvalidSpec, err.Error())
			return reconcile.Result{}, nil
		}
	}
	if next := nextRun(p, sched, now); !next.IsZero() && next.After(schedule.MaxTime) {
		retentionv1.MarkStalled(p, retentionv1.ReasonInvalidSchedule, "The next run (after effectiveFrom) is beyond the range of dates the API can store")
		p.Status.NextScheduleTime = nil
		return reconcile.Result{}, nil
	}

	// Runs: history, safety releases, the last run's outcome.
	jobs, err := r.runs(ctx, p)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.release(ctx, p, jobs); err != nil {
		return reconcile.Result{}, err
	}
	active := summarize(p, jobs)
	// Backlog: counted after a run finished (before its PurgeJob may be
	// pruned) and every backlogInterval.
	backlogWait := r.backlog(ctx, p, &ds, jobs, now)
	if err := r.pruneHistory(ctx, p, jobs); err != nil {
		return reconcile.Result{}, err
	}

	// Schedule: a run requested now, or the next due run.
	created, err := r.startDueRun(ctx, p, &ds, sched, active, now)
	if err != nil {
		return reconcile.Result{}, err
	}
	if created != nil {
		active = append(active, created)
		p.Status.Active = append(p.Status.Active, created.Name)
	}
	next := nextRun(p, sched, now)
	if next.IsZero() {
		p.Status.NextScheduleTime = nil
	} else {
		p.Status.NextScheduleTime = &metav1.Time{Time: next}
	}

	// Status.
	r.setReady(p, active, jobs)
	wait := backlogWait
	if !next.IsZero() && (wait == 0 || next.Sub(now) < wait) {
		wait = next.Sub(now)
	}
	if wait == 0 {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{RequeueAfter: max(wait, time.Second)}, nil
}

// backlogRetry is how soon a backlog count that failed is tried again.
const backlogRetry = time.Minute

// backlogTimeout bounds one count of a policy's backlog (every rule and
// collection), besides the DataStore's own statement timeout.
const backlogTimeout = 5 * time.Minute

// backlog counts the policy's backlog when it is due (internal/backlog.Due:
// after a run finished, and every spec.backlogInterval), sets the
// BacklogCleared condition and returns how long until the next count (0:
// none on an interval). A count that fails leaves the last one in status
// (its measuredTime shows its age), is reported as a Warning event, and is
// tried again after backlogRetry; it never stops the schedule.
func (r *RetentionPolicyReconciler) backlog(ctx context.Context, p *retentionv1.RetentionPolicy, ds *retentionv1.Dataset, jobs []retentionv1.PurgeJob, now time.Time) time.Duration {
	interval, err := backlog.Interval(p.Spec.BacklogInterval)
	if err != nil { // refused at admission; an object stored before the rule
		interval, _ = backlog.Interval("")
	}
	var last *retentionv1.PurgeJob
	if len(jobs) > 0 {
		last = &jobs[0]
	}
	due, afterRun, wait := backlog.Due(p.Status.Backlog, last, interval, now)
	if b := p.Status.Backlog; b != nil && !backlog.SameRules(b, p) {
		due = true // rules added, renamed or removed: count them now
	}
	if due {
		if err := r.countBacklog(ctx, p, ds, jobs, last, afterRun, now); err != nil {
			// classify: a driver's error in fixed words, never its text.
			_, msg := classify(err)
			log.FromContext(ctx).Info("Counting the backlog failed", "message", msg)
			r.Recorder.Eventf(p, nil, "Warning", "BacklogNotCounted", "CountBacklog", "Counting the records past their retention period failed: %s", msg)
			wait = backlogRetry
		}
	}
	dryRun := p.Spec.Mode == retentionv1.ModeDryRun
	if b := p.Status.Backlog; b != nil {
		if i := slices.IndexFunc(jobs, func(j retentionv1.PurgeJob) bool { return j.Name == b.AfterRun }); i >= 0 {
			dryRun = jobs[i].Spec.Mode == retentionv1.ModeDryRun
		}
	}
	status, reason, msg := backlog.Condition(p.Status.Backlog, dryRun)
	retentionv1.SetCondition(p, retentionv1.ConditionBacklogCleared, status, reason, msg)
	return wait
}

// countBacklog counts every rule's records past retention at now, with the
// legal holds in force, and, when afterRun, what the last run left.
func (r *RetentionPolicyReconciler) countBacklog(ctx context.Context, p *retentionv1.RetentionPolicy, ds *retentionv1.Dataset, jobs []retentionv1.PurgeJob, last *retentionv1.PurgeJob, afterRun bool, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, backlogTimeout)
	defer cancel()
	var store retentionv1.DataStore
	if err := r.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: string(ds.Spec.DataStoreRef.Name)}, &store); err != nil {
		return fmt.Errorf("DataStore %s: %w", ds.Spec.DataStoreRef.Name, err)
	}
	driver, err := r.Pool.Get(ctx, &store)
	if err != nil {
		return err
	}
	var holdList retentionv1.LegalHoldList
	if err := r.List(ctx, &holdList, client.InNamespace(p.Namespace)); err != nil {
		return err
	}
	in := engine.Inputs{Reader: r.APIReader, Dataset: ds, StoreType: store.Spec.Type, Holds: holdList.Items, Now: now}
	// The operations a run would have now, resolved as its PurgeJob would
	// be, never created.
	ops, err := engine.PolicyOperations(p, ds, now)
	if err != nil {
		return err
	}
	probe := &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name},
		Spec:       retentionv1.PurgeJobSpec{DatasetRef: p.Spec.DatasetRef, Mode: p.Spec.Mode, Operations: ops},
	}
	steps, err := engine.Resolve(ctx, probe, in)
	if err != nil {
		return err
	}
	since := backlog.AnonymizedBefore(jobs, p.Status.Backlog)
	targets := make([]backlog.Target, len(ops))
	for i, op := range ops {
		targets[i] = backlog.Target{Rule: string(op.Rule), Anonymize: op.Action == retentionv1.ActionAnonymize, Step: steps[i]}
		if at, ok := since[string(op.Rule)]; ok {
			targets[i].Since = &at
		}
	}
	m, err := backlog.Measure(ctx, driver, now, targets)
	if err != nil {
		return err
	}
	var left map[string]map[string]int64
	run := ""
	if afterRun {
		runSteps, err := engine.Resolve(ctx, last, in)
		if err != nil {
			return fmt.Errorf("run %s: %w", last.Name, err)
		}
		if left, err = backlog.AfterRun(ctx, driver, last, runSteps); err != nil {
			return err
		}
		run = last.Name
	}
	b := backlog.Status(m, run, left)
	backlog.Carry(b, p.Status.Backlog)
	p.Status.Backlog = b
	log.FromContext(ctx).V(1).Info("Counted the backlog", "records", b.Records, "held", b.Held, "afterRun", run)
	return nil
}

// runs lists the policy's PurgeJobs, newest first.
func (r *RetentionPolicyReconciler) runs(ctx context.Context, p *retentionv1.RetentionPolicy) ([]retentionv1.PurgeJob, error) {
	var list retentionv1.PurgeJobList
	if err := r.List(ctx, &list, client.InNamespace(p.Namespace), client.MatchingLabels{retentionv1.LabelPolicy: p.Name}); err != nil {
		return nil, err
	}
	// A run is a job this policy controls and this manager signed: a forged
	// job claiming the policy as owner is neither counted nor waited for.
	jobs := slices.DeleteFunc(list.Items, func(j retentionv1.PurgeJob) bool {
		return !metav1.IsControlledBy(&j, p) || !signature.Signed(r.DigestKey, &j)
	})
	slices.SortFunc(jobs, func(a, b retentionv1.PurgeJob) int {
		if c := scheduledTime(&b).Compare(scheduledTime(&a)); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
	return jobs, nil
}

func scheduledTime(j *retentionv1.PurgeJob) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, j.Annotations[retentionv1.AnnotationScheduledTime]); err == nil {
		return t
	}
	return j.CreationTimestamp.Time
}

// release propagates the policy's release-run annotation to the named run,
// if it is this policy's and stopped by its safety limit.
func (r *RetentionPolicyReconciler) release(ctx context.Context, p *retentionv1.RetentionPolicy, jobs []retentionv1.PurgeJob) error {
	name := p.Annotations[retentionv1.AnnotationReleaseRun]
	if name == "" {
		return nil
	}
	for i := range jobs {
		j := &jobs[i]
		if j.Name != name || j.Status.Phase != retentionv1.PurgeJobStalled || executor.Released(j) {
			continue
		}
		patch := client.MergeFrom(j.DeepCopy())
		if j.Annotations == nil {
			j.Annotations = map[string]string{}
		}
		j.Annotations[retentionv1.AnnotationReleaseSafetyLimit] = "true"
		if err := r.Patch(ctx, j, patch); err != nil {
			return fmt.Errorf("releasing run %s: %w", name, err)
		}
		r.Recorder.Eventf(p, j, "Normal", "RunReleased", "Release", "Run %s released past its safety limit by annotation", name)
	}
	return nil
}

// summarize fills lastRun, lastSuccessfulTime and active from the runs, and
// returns the active ones.
func summarize(p *retentionv1.RetentionPolicy, jobs []retentionv1.PurgeJob) []*retentionv1.PurgeJob {
	var active []*retentionv1.PurgeJob
	p.Status.Active = nil
	for i := range jobs {
		j := &jobs[i]
		if !finished(j) {
			active = append(active, j)
			p.Status.Active = append(p.Status.Active, j.Name)
		}
		if j.Status.Phase == retentionv1.PurgeJobSucceeded && j.Status.CompletionTime != nil &&
			(p.Status.LastSuccessfulTime == nil || j.Status.CompletionTime.After(p.Status.LastSuccessfulTime.Time)) {
			p.Status.LastSuccessfulTime = j.Status.CompletionTime.DeepCopy()
		}
	}
	if len(jobs) > 0 {
		j := &jobs[0]
		at := metav1.NewTime(scheduledTime(j))
		p.Status.LastRun = &retentionv1.RunSummary{
			PurgeJob: j.Name, ScheduledTime: &at, Result: j.Status.Phase,
			RowsMatched: j.Status.Matched, RowsDeleted: j.Status.Deleted, RowsAnonymized: j.Status.Anonymized, RowsHeld: j.Status.Held,
		}
		if p.Status.LastRun.Result == "" {
			p.Status.LastRun.Result = retentionv1.PurgeJobPending
		}
		if j.Status.StartTime != nil && j.Status.CompletionTime != nil {
			p.Status.LastRun.Duration = j.Status.CompletionTime.Sub(j.Status.StartTime.Time).Round(time.Millisecond).String()
		}
	}
	return active
}

// pruneHistory deletes finished runs beyond the history limits.
func (r *RetentionPolicyReconciler) pruneHistory(ctx context.Context, p *retentionv1.RetentionPolicy, jobs []retentionv1.PurgeJob) error {
	keepOK, keepFailed := limit(p.Spec.SuccessfulRunsHistoryLimit, 3), limit(p.Spec.FailedRunsHistoryLimit, 1)
	for i := range jobs {
		j := &jobs[i]
		switch j.Status.Phase {
		case retentionv1.PurgeJobSucceeded:
			if keepOK > 0 {
				keepOK--
				continue
			}
		case retentionv1.PurgeJobFailed:
			if keepFailed > 0 {
				keepFailed--
				continue
			}
		default:
			continue
		}
		if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

func limit(v *int32, def int) int {
	if v == nil {
		return def
	}
	return int(*v)
}

// startDueRun creates the PurgeJob of a run that is due now, if any.
func (r *RetentionPolicyReconciler) startDueRun(ctx context.Context, p *retentionv1.RetentionPolicy, ds *retentionv1.Dataset, sched *schedule.Schedule, active []*retentionv1.PurgeJob, now time.Time) (*retentionv1.PurgeJob, error) {
	runAt, name, manual := time.Time{}, "", false
	if token := p.Annotations[retentionv1.AnnotationRunNow]; token != "" && token != p.Status.LastRunNowToken {
		runAt, name, manual = now, manualRunName(p.Name, token), true
	}
	if name == "" {
		if p.Spec.Suspend || notYetEffective(p, now) {
			return nil, nil
		}
		var last time.Time
		if p.Status.LastScheduleTime != nil {
			last = p.Status.LastScheduleTime.Time
		}
		var deadline *time.Duration
		if p.Spec.StartingDeadlineSeconds != nil {
			d, err := schedule.StartingDeadline(*p.Spec.StartingDeadlineSeconds)
			if err != nil { // checked by reconcile's gates
				return nil, err
			}
			deadline = &d
		}
		due, ok, skipped := schedule.Due(sched, last, p.CreationTimestamp.Time, now, deadline)
		if !ok {
			if skipped != "" && !due.IsZero() {
				// Missed beyond the starting deadline: record it once, run later ones.
				p.Status.LastScheduleTime = &metav1.Time{Time: due}
				r.Recorder.Eventf(p, nil, "Warning", "MissedRun", "Schedule", "Skipped the run due at %s: %s", due.Format(time.RFC3339), skipped)
			}
			return nil, nil
		}
		runAt, name = due, schedule.RunName(p.Name, due)
	}

	if len(active) > 0 {
		switch p.Spec.ConcurrencyPolicy {
		case retentionv1.ConcurrencyReplace:
			for _, j := range active {
				if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
					return nil, err
				}
			}
		default: // Forbid: wait for the active run; the due run stays due.
			return nil, nil
		}
	}

	ops, err := engine.PolicyOperations(p, ds, runAt)
	if err != nil {
		return nil, err
	}
	job := &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   p.Namespace,
			Name:        name,
			Labels:      map[string]string{retentionv1.LabelPolicy: p.Name},
			Annotations: map[string]string{retentionv1.AnnotationScheduledTime: runAt.UTC().Format(time.RFC3339Nano)},
		},
		Spec: retentionv1.PurgeJobSpec{
			DatasetRef: p.Spec.DatasetRef,
			Mode:       p.Spec.Mode,
			Operations: ops,
			BatchSize:  p.Spec.BatchSize,
			Safety:     p.Spec.Safety.DeepCopy(),
		},
	}
	if err := controllerutil.SetControllerReference(p, job, r.Scheme()); err != nil {
		return nil, err
	}
	if err := signature.Sign(r.DigestKey, job, nil); err != nil {
		return nil, err
	}
	if err := r.Create(ctx, job); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating run %s: %w", name, err)
		}
		// Created by an earlier reconcile whose status write was lost: the
		// run exists, so record it as started and create nothing.
		job = nil
	}
	if manual {
		p.Status.LastRunNowToken = p.Annotations[retentionv1.AnnotationRunNow]
	} else {
		p.Status.LastScheduleTime = &metav1.Time{Time: runAt}
	}
	if job == nil {
		return nil, nil
	}
	log.FromContext(ctx).Info("Started run", "purgeJob", name, "scheduledTime", runAt, "manual", manual)
	r.Recorder.Eventf(p, job, "Normal", "RunStarted", "Schedule", "Started run %s (%s mode, %d operations)", name, p.Spec.Mode, len(ops))
	return job, nil
}

func manualRunName(policy, token string) string {
	sum := sha256.Sum256([]byte(token))
	if len(policy) > 40 {
		policy = policy[:40]
	}
	return fmt.Sprintf("%s-now-%s", policy, hex.EncodeToString(sum[:4]))
}

func notYetEffective(p *retentionv1.RetentionPolicy, now time.Time) bool {
	return p.Spec.EffectiveFrom != nil && now.Before(p.Spec.EffectiveFrom.Time)
}

// nextRun is the next scheduled activation, none while suspended.
func nextRun(p *retentionv1.RetentionPolicy, sched *schedule.Schedule, now time.Time) time.Time {
	if p.Spec.Suspend {
		return time.Time{}
	}
	from := now
	if notYetEffective(p, now) {
		from = p.Spec.EffectiveFrom.Time.Add(-time.Nanosecond)
	}
	return sched.Next(from)
}

// setReady: Ready while idle and healthy; Reconciling while a run executes
// (so kubectl wait --for=condition=Ready waits for it); Stalled when the
// last run stopped at its safety limit or failed.
func (r *RetentionPolicyReconciler) setReady(p *retentionv1.RetentionPolicy, active []*retentionv1.PurgeJob, jobs []retentionv1.PurgeJob) {
	for _, j := range active {
		if j.Status.Phase == retentionv1.PurgeJobStalled {
			c := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionStalled)
			msg := fmt.Sprintf("Run %s is stalled", j.Name)
			reason := retentionv1.ReasonRunFailed
			if c != nil {
				reason = c.Reason
				msg = fmt.Sprintf("Run %s: %s", j.Name, c.Message)
			}
			if reason == retentionv1.ReasonSafetyLimitExceeded {
				msg = fmt.Sprintf("Run %s would exceed the safety limit and changed nothing; to let that run proceed, annotate this policy with %s=%s", j.Name, retentionv1.AnnotationReleaseRun, j.Name)
			}
			retentionv1.MarkStalled(p, reason, msg)
			return
		}
	}
	if len(active) > 0 {
		retentionv1.MarkReconciling(p, retentionv1.ReasonRunInProgress, fmt.Sprintf("Run %s in progress", active[0].Name))
		return
	}
	if len(jobs) > 0 && jobs[0].Status.Phase == retentionv1.PurgeJobFailed {
		msg := fmt.Sprintf("The last run, %s, failed", jobs[0].Name)
		if c := meta.FindStatusCondition(jobs[0].Status.Conditions, retentionv1.ConditionStalled); c != nil {
			msg += ": " + c.Message
		}
		retentionv1.MarkStalled(p, retentionv1.ReasonRunFailed, msg)
		return
	}
	switch {
	case p.Spec.Suspend:
		retentionv1.MarkReady(p, retentionv1.ReasonSuspended, "Suspended: no new runs are scheduled")
	case notYetEffective(p, r.now()):
		retentionv1.MarkReady(p, retentionv1.ReasonNotYetEffective, fmt.Sprintf("Enforcement starts at %s", p.Spec.EffectiveFrom.UTC().Format(time.RFC3339)))
	default:
		msg := "Scheduled"
		if p.Status.NextScheduleTime != nil {
			msg = fmt.Sprintf("Next run at %s", p.Status.NextScheduleTime.UTC().Format(time.RFC3339))
		}
		if p.Status.LastRun != nil {
			msg += fmt.Sprintf("; last run %s: %s, %d deleted, %d anonymized", p.Status.LastRun.PurgeJob, p.Status.LastRun.Result, p.Status.LastRun.RowsDeleted, p.Status.LastRun.RowsAnonymized)
			if n := p.Status.LastRun.RowsHeld; n > 0 {
				msg += fmt.Sprintf(", %d kept by legal holds", n)
			}
		}
		retentionv1.MarkReady(p, retentionv1.ReasonScheduled, msg)
	}
}
