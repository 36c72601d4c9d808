package controllers

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/owned"
	"github.com/lethe-dev/lethe/internal/signature"
)

// PurgeJob phases.

// PurgeJob condition types and reasons beyond the shared ones.
const (

	// sealedKeysField is the Secret key holding them (gzip-compressed JSON:
	// collection → key tuples).
	sealedKeysField = "keys.json.gz"
	// maxSealedKeys bounds the keys sealed per operation; maxSealedBytes
	// the compressed size (a Secret holds at most 1 MiB).
	maxSealedKeys  = 100_000
	maxSealedBytes = 900 << 10
)

// interruptedRetry is how long an interrupted job waits before retrying.
const interruptedRetry = 30 * time.Second

// subjectsSecretGrace is how long a PurgeJob that has not started waits for
// a subjects Secret that does not exist yet before it stalls
// (SecretNotFound): the coalescer creates the Secret right after the job,
// owned by it.
const subjectsSecretGrace = 30 * time.Second

// batchTimeout bounds one batch and its checkpoint, which run to completion
// even when the manager is shutting down.
const batchTimeout = 2 * time.Minute

// PurgeJobReconciler executes PurgeJobs batch by batch, checkpointing
// progress in status so that a restarted manager resumes where it stopped.
type PurgeJobReconciler struct {
	Deps
	// SliceDuration bounds the work of one reconcile; the job is requeued
	// after it, so holds and cancellation are noticed and workers are shared.
	SliceDuration time.Duration
	// MaxBatchesPerSlice, when positive, also bounds the batches of one
	// reconcile (tests use 1 to interrupt a job between batches).
	MaxBatchesPerSlice int
}

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=purgejobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=purgejobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datasets;datastores;legalholds,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile reads top to bottom: get → gates → plan → act → status.
func (r *PurgeJobReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	// The checkpoint must be authoritative: read the job from the API server,
	// not the informer cache, which may lag behind the last batch's status.
	var job retentionv1.PurgeJob
	if err := r.APIReader.Get(ctx, req.NamespacedName, &job); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if finished(&job) || !job.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	run := &jobRun{r: r, job: &job, before: job.DeepCopy()}
	// Only what this manager created runs: checked before every slice.
	if err := signature.Verify(ctx, r.APIReader, r.DigestKey, &job); err != nil {
		if waitingForSubjects(&job, err) {
			return reconcile.Result{RequeueAfter: 250 * time.Millisecond}, nil
		}
		st := outcome.AsStall(err)
		if st != nil && st.Reason == retentionv1.ReasonUnsignedPurgeJob {
			return run.refuse(ctx, st.Msg)
		}
		return run.fail(ctx, err)
	}
	return run.reconcile(ctx)
}

// waitingForSubjects reports whether err is the subjects Secret of a job
// that has not started and was created less than subjectsSecretGrace ago:
// the coalescer creates the Secret right after the job, owned by it.
func waitingForSubjects(job *retentionv1.PurgeJob, err error) bool {
	return (errors.Is(err, engine.ErrSubjectsSecretMissing) || errors.Is(err, connect.ErrSecretNotFound)) &&
		job.Status.StartTime == nil && time.Since(job.CreationTimestamp.Time) < subjectsSecretGrace
}

// refuse fails a PurgeJob this manager did not create, before anything runs.
func (j *jobRun) refuse(ctx context.Context, msg string) (reconcile.Result, error) {
	job := j.job
	now := metav1.NewTime(j.r.now())
	job.Status.ObservedGeneration = job.Generation
	job.Status.Phase = retentionv1.PurgeJobFailed
	job.Status.CompletionTime = &now
	retentionv1.MarkStalled(job, retentionv1.ReasonUnsignedPurgeJob, msg)
	if err := j.saveStatus(ctx); err != nil {
		return reconcile.Result{}, err
	}
	metrics.PurgeJobs.WithLabelValues(job.Namespace, string(retentionv1.PurgeJobFailed)).Inc()
	j.r.Recorder.Eventf(job, nil, "Warning", retentionv1.ReasonUnsignedPurgeJob, "Execute", "%s", msg)
	log.FromContext(ctx).Info("Refused a PurgeJob Lethe did not create")
	return reconcile.Result{}, nil
}

func finished(job *retentionv1.PurgeJob) bool {
	return job.Status.Phase == retentionv1.PurgeJobSucceeded || job.Status.Phase == retentionv1.PurgeJobFailed
}

// jobRun is the state of one reconcile of one job.
type jobRun struct {
	r      *PurgeJobReconciler
	job    *retentionv1.PurgeJob
	before *retentionv1.PurgeJob
	store  *retentionv1.DataStore
	driver datastore.Driver
	steps  []engine.Step
}

func (j *jobRun) reconcile(ctx context.Context) (reconcile.Result, error) {
	job := j.job
	job.Status.ObservedGeneration = job.Generation
	if job.Status.Phase == "" {
		job.Status.Phase = retentionv1.PurgeJobPending
		retentionv1.MarkReconciling(job, retentionv1.ReasonProgressing, "Preparing the job")
	}

	// Gates: Dataset, DataStore, connection.
	dataset, err := j.gates(ctx)
	if err != nil {
		return j.fail(ctx, err)
	}
	// Plan: resolve operations, holds and subjects for this slice.
	var holdList retentionv1.LegalHoldList
	if err := j.r.List(ctx, &holdList, client.InNamespace(job.Namespace)); err != nil {
		return reconcile.Result{}, err
	}
	sealed, err := j.sealedKeys(ctx)
	if err != nil {
		return j.fail(ctx, err)
	}
	j.steps, err = engine.Resolve(ctx, job, engine.Inputs{
		Reader: j.r.APIReader, Dataset: dataset, StoreType: j.store.Spec.Type, Holds: holdList.Items, Now: j.r.now(), Sealed: sealed,
	})
	if waitingForSubjects(job, err) {
		// Created just before its subjects Secret (the coalescer makes the
		// Secret owned by the job): wait, nothing has run.
		return reconcile.Result{RequeueAfter: 250 * time.Millisecond}, nil
	}
	if err != nil {
		return j.fail(ctx, err)
	}
	if c := findCondition(job.Status.Conditions, retentionv1.ConditionReconciling); c != nil && c.Reason == retentionv1.ReasonWaitingForLegalHold && job.Status.Phase == retentionv1.PurgeJobRunning {
		retentionv1.MarkReconciling(job, retentionv1.ReasonRunning, "Executing; the legal holds in scope are known again")
	}
	if len(job.Status.Operations) != len(job.Spec.Operations) {
		job.Status.Operations = make([]retentionv1.OperationStatus, len(job.Spec.Operations))
		for i, op := range job.Spec.Operations {
			job.Status.Operations[i] = retentionv1.OperationStatus{Collection: string(op.Collection), Phase: retentionv1.PurgeJobPending}
		}
	}

	// Count before anything changes: dry run result, safety limits.
	if job.Status.StartTime == nil {
		return j.start(ctx)
	}
	// Act: batches until the slice is used up.
	return j.execute(ctx)
}

// gates checks that the Dataset and DataStore exist and opens the driver.
func (j *jobRun) gates(ctx context.Context) (*retentionv1.Dataset, error) {
	job := j.job
	var dataset retentionv1.Dataset
	if err := j.r.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: string(job.Spec.DatasetRef.Name)}, &dataset); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, outcome.Stall(retentionv1.ReasonDatasetNotFound, fmt.Sprintf("Dataset %s not found", job.Spec.DatasetRef.Name))
		}
		return nil, err
	}
	var store retentionv1.DataStore
	if err := j.r.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: string(dataset.Spec.DataStoreRef.Name)}, &store); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, outcome.Stall(retentionv1.ReasonDataStoreNotReady, fmt.Sprintf("DataStore %s not found", dataset.Spec.DataStoreRef.Name))
		}
		return nil, err
	}
	j.store = &store
	d, err := j.r.Pool.Get(ctx, &store)
	if err != nil {
		return nil, err
	}
	j.driver = d
	return &dataset, nil
}

// start counts every operation, applies safety limits and either finishes a
// dry run or starts executing.
func (j *jobRun) start(ctx context.Context) (reconcile.Result, error) {
	job := j.job
	var total, held int64
	for i, s := range j.steps {
		st := &job.Status.Operations[i]
		if s.BlockedBy != "" {
			st.Phase = retentionv1.OperationHeld
			continue
		}
		n, err := j.driver.Count(ctx, s.Op)
		if err != nil {
			return j.fail(ctx, err)
		}
		st.Matched = n
		total += n
		if st.Held, err = j.heldCount(ctx, s, n); err != nil {
			return j.fail(ctx, err)
		}
		held += st.Held
		if msg, err := j.overPercent(ctx, s, n); err != nil {
			return j.fail(ctx, err)
		} else if msg != "" && !released(job) {
			return j.stall(ctx, retentionv1.ReasonSafetyLimitExceeded, msg)
		}
	}
	job.Status.Matched = total
	job.Status.Held = held
	if lim := job.Spec.Safety; lim != nil && lim.MaxRows != nil && total > *lim.MaxRows && !released(job) {
		return j.stall(ctx, retentionv1.ReasonSafetyLimitExceeded, fmt.Sprintf(
			"would touch %d records, more than safety.maxRows %d; nothing was changed. Set annotation %s=true on this PurgeJob to let it proceed", total, *lim.MaxRows, retentionv1.AnnotationReleaseSafetyLimit))
	}
	// Proven before the first change: no record outside the job is left
	// referring to a record it deletes (a dry run stops here too, so the
	// two agree).
	if msg, err := j.preflight(ctx); err != nil {
		return j.fail(ctx, err)
	} else if msg != "" {
		return j.stall(ctx, retentionv1.ReasonReferencedOutsideErasure, msg)
	}
	if job.Spec.Mode == retentionv1.ModeEnforce {
		if err := j.seal(ctx); err != nil {
			return j.fail(ctx, err)
		}
	}
	now := metav1.NewTime(j.r.now())
	job.Status.StartTime = &now
	if job.Spec.Mode == retentionv1.ModeDryRun {
		for i := range job.Status.Operations {
			if job.Status.Operations[i].Phase == retentionv1.PurgeJobPending {
				job.Status.Operations[i].Phase = retentionv1.PurgeJobSucceeded
			}
		}
		return j.succeed(ctx, retentionv1.ReasonDryRunCompleted, fmt.Sprintf("Dry run: %d records would be deleted or anonymized%s; nothing was changed", total, keptByHolds(held)))
	}
	job.Status.Phase = retentionv1.PurgeJobRunning
	retentionv1.MarkReconciling(job, retentionv1.ReasonRunning, fmt.Sprintf("Executing %d operations, %d records matched", len(j.steps), total))
	j.r.Recorder.Eventf(job, nil, "Normal", "Started", "Execute", "Started: %d operations, %d records matched, %s", len(j.steps), total, scopeString(job))
	if err := j.saveStatus(ctx); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: time.Millisecond}, nil
}

// heldCount is how many records the holds' held subjects keep out of one
// operation: its count without them excluded, minus matched (its count with
// them). Operations no hold reaches cost no second count.
func (j *jobRun) heldCount(ctx context.Context, s engine.Step, matched int64) (int64, error) {
	if len(s.Op.Held) == 0 {
		return 0, nil
	}
	op := s.Op
	op.Held, op.HeldPaths = nil, nil
	all, err := j.driver.Count(ctx, op)
	if err != nil {
		return 0, err
	}
	return max(all-matched, 0), nil
}

// keptByHolds is the summary's note of records legal holds kept.
func keptByHolds(n int64) string {
	switch n {
	case 0:
		return ""
	case 1:
		return "; 1 record kept by legal holds"
	default:
		return fmt.Sprintf("; %d records kept by legal holds", n)
	}
}

// overPercent checks safety.maxPercent for one operation.
func (j *jobRun) overPercent(ctx context.Context, s engine.Step, matched int64) (string, error) {
	lim := j.job.Spec.Safety
	if lim == nil || lim.MaxPercent == nil || matched == 0 {
		return "", nil
	}
	total, err := j.driver.Total(ctx, s.Op.Collection)
	if err != nil {
		return "", err
	}
	if total > 0 && matched*100 > total*int64(*lim.MaxPercent) {
		return fmt.Sprintf("would touch %d of %d records (%d%%) of collection %s, more than safety.maxPercent %d%%; nothing was changed. Set annotation %s=true on this PurgeJob to let it proceed",
			matched, total, matched*100/total, s.Op.Collection.Name, *lim.MaxPercent, retentionv1.AnnotationReleaseSafetyLimit), nil
	}
	return "", nil
}

func released(job *retentionv1.PurgeJob) bool {
	return job.Annotations[retentionv1.AnnotationReleaseSafetyLimit] == "true"
}

// execute runs batches, checkpointing after each, until every operation is
// done or the slice is used up.
func (j *jobRun) execute(ctx context.Context) (reconcile.Result, error) {
	job := j.job
	if job.Status.Phase == retentionv1.PurgeJobStalled {
		// An interrupted job retried: it resumes from its checkpoint.
		job.Status.Phase = retentionv1.PurgeJobRunning
		retentionv1.MarkReconciling(job, retentionv1.ReasonRunning, "Resuming from the last checkpoint")
	}
	deadline := j.r.now().Add(j.r.sliceDuration())
	batches := 0
	for i, s := range j.steps {
		st := &job.Status.Operations[i]
		if st.Phase == retentionv1.PurgeJobSucceeded || st.Phase == retentionv1.OperationHeld {
			continue
		}
		if s.BlockedBy != "" {
			// A hold placed while the job runs takes effect at the next batch.
			st.Phase = retentionv1.OperationHeld
			if err := j.saveStatus(ctx); err != nil {
				return reconcile.Result{}, err
			}
			continue
		}
		st.Phase = retentionv1.PurgeJobRunning
		for {
			if ctx.Err() != nil {
				return reconcile.Result{}, ctx.Err()
			}
			if j.r.now().After(deadline) || (j.r.MaxBatchesPerSlice > 0 && batches >= j.r.MaxBatchesPerSlice) {
				if err := j.saveStatus(ctx); err != nil {
					return reconcile.Result{}, err
				}
				return reconcile.Result{RequeueAfter: time.Millisecond}, nil
			}
			// A batch and its checkpoint are not interrupted by shutdown: the
			// transaction is bounded by the store's statement timeout, and
			// the checkpoint must record what it committed.
			batchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
			started := time.Now()
			cursor, err := digest.Open(j.r.DigestKey, st.Cursor)
			if err != nil {
				cancel()
				return j.fail(ctx, fmt.Errorf("%w: %w", engine.ErrInvalid, err))
			}
			b, err := j.driver.Execute(batchCtx, s.Op, cursor)
			metrics.BatchDuration.WithLabelValues(string(j.store.Spec.Type)).Observe(time.Since(started).Seconds())
			if err != nil {
				cancel()
				return j.fail(ctx, err)
			}
			batches++
			// The cursor may hold a key that is personal data: status keeps it sealed.
			if b.Cursor, err = digest.Seal(j.r.DigestKey, b.Cursor); err != nil {
				cancel()
				return reconcile.Result{}, err
			}
			j.record(st, s, b)
			if b.Done {
				st.Phase = retentionv1.PurgeJobSucceeded
			}
			err = j.saveStatus(batchCtx)
			cancel()
			if err != nil {
				return reconcile.Result{}, err
			}
			if b.Done {
				break
			}
		}
	}
	return j.succeed(ctx, retentionv1.ReasonSucceeded, j.summary())
}

// record adds one batch to the operation's and the job's totals.
func (j *jobRun) record(st *retentionv1.OperationStatus, s engine.Step, b datastore.Batch) {
	job := j.job
	st.Batches++
	st.Cursor = b.Cursor
	st.PartitionsDropped += int32(b.PartitionsDropped)
	labels := []string{job.Namespace, string(job.Spec.DatasetRef.Name), s.Op.Collection.Name}
	if s.Op.Delete {
		st.Deleted += b.Affected
		job.Status.Deleted += b.Affected
		metrics.RowsDeleted.WithLabelValues(labels...).Add(float64(b.Affected))
	} else {
		st.Anonymized += b.Affected
		job.Status.Anonymized += b.Affected
		metrics.RowsAnonymized.WithLabelValues(labels...).Add(float64(b.Affected))
	}
	metrics.Batches.WithLabelValues(job.Namespace, string(job.Spec.DatasetRef.Name), string(j.store.Spec.Type)).Inc()
}

func (j *jobRun) summary() string {
	job := j.job
	held := 0
	for _, st := range job.Status.Operations {
		if st.Phase == retentionv1.OperationHeld {
			held++
		}
	}
	msg := fmt.Sprintf("Deleted %d and anonymized %d records in %d operations", job.Status.Deleted, job.Status.Anonymized, len(job.Status.Operations)-held)
	if held > 0 {
		msg += fmt.Sprintf("; %d operations skipped under legal hold", held)
	}
	return msg + keptByHolds(job.Status.Held)
}

func (j *jobRun) succeed(ctx context.Context, reason, msg string) (reconcile.Result, error) {
	job := j.job
	if err := j.dropSealed(ctx); err != nil {
		return reconcile.Result{}, err
	}
	now := metav1.NewTime(j.r.now())
	job.Status.CompletionTime = &now
	job.Status.Phase = retentionv1.PurgeJobSucceeded
	retentionv1.MarkReady(job, reason, msg)
	if err := j.saveStatus(ctx); err != nil {
		return reconcile.Result{}, err
	}
	metrics.PurgeJobs.WithLabelValues(job.Namespace, string(retentionv1.PurgeJobSucceeded)).Inc()
	j.r.Recorder.Eventf(job, nil, "Normal", reason, "Execute", "%s (%s)", msg, j.elapsed())
	log.FromContext(ctx).Info("PurgeJob finished", "phase", job.Status.Phase, "deleted", job.Status.Deleted, "anonymized", job.Status.Anonymized)
	return reconcile.Result{}, nil
}

func (j *jobRun) elapsed() string {
	if j.job.Status.StartTime == nil || j.job.Status.CompletionTime == nil {
		return "0s"
	}
	return j.job.Status.CompletionTime.Sub(j.job.Status.StartTime.Time).Round(time.Millisecond).String()
}

// stall stops the job until a human acts (safety limit, missing objects).
func (j *jobRun) stall(ctx context.Context, reason, msg string) (reconcile.Result, error) {
	job := j.job
	first := job.Status.Phase != retentionv1.PurgeJobStalled
	job.Status.Phase = retentionv1.PurgeJobStalled
	retentionv1.MarkStalled(job, reason, msg)
	if err := j.saveStatus(ctx); err != nil {
		return reconcile.Result{}, err
	}
	if first {
		metrics.PurgeJobs.WithLabelValues(job.Namespace, string(retentionv1.PurgeJobStalled)).Inc()
		j.r.Recorder.Eventf(job, nil, "Warning", reason, "Execute", "%s", msg)
	}
	return reconcile.Result{}, nil
}

// fail sorts an error: terminal (invalid job) fails the job, a stalling
// condition stalls it, anything else is transient and retried with backoff.
func (j *jobRun) fail(ctx context.Context, err error) (reconcile.Result, error) {
	job := j.job
	st := outcome.AsStall(err)
	switch {
	case st != nil:
		return j.stall(ctx, st.Reason, st.Msg)
	case (errors.Is(err, engine.ErrInvalid) || errors.Is(err, datastore.ErrInvalid) || errors.Is(err, datastore.ErrNotFound)) && changed(job):
		// Records were already changed: failing now would leave the erasure
		// half done. Stop, say what was and was not done, and retry: the job
		// resumes exactly (fixed cutoff, sealed keys, checkpointed cursor)
		// once the cause is fixed.
		j.countError(err)
		if _, serr := j.stall(ctx, retentionv1.ReasonInterrupted, fmt.Sprintf("Stopped after changing records: %v; %s. Fix the cause: the job retries every %s and resumes where it stopped",
			err, progressString(job), interruptedRetry)); serr != nil {
			return reconcile.Result{}, serr
		}
		return reconcile.Result{RequeueAfter: interruptedRetry}, nil
	case errors.Is(err, holds.ErrNotDerived):
		// A hold just placed or changed: wait until its derived identities
		// are known, or the job would hold only the ones it names.
		retentionv1.MarkReconciling(job, retentionv1.ReasonWaitingForLegalHold, err.Error()+"; waiting")
		if serr := j.saveStatus(ctx); serr != nil {
			return reconcile.Result{}, serr
		}
		return reconcile.Result{RequeueAfter: 500 * time.Millisecond}, nil
	case errors.Is(err, engine.ErrInvalid), errors.Is(err, datastore.ErrInvalid), errors.Is(err, datastore.ErrNotFound):
		j.countError(err)
		now := metav1.NewTime(j.r.now())
		job.Status.Phase = retentionv1.PurgeJobFailed
		job.Status.CompletionTime = &now
		for i := range job.Status.Operations {
			if job.Status.Operations[i].Phase == retentionv1.PurgeJobRunning {
				job.Status.Operations[i].Phase = retentionv1.PurgeJobFailed
			}
		}
		if derr := j.dropSealed(ctx); derr != nil {
			return reconcile.Result{}, derr
		}
		retentionv1.MarkStalled(job, retentionv1.ReasonInvalidOperation, err.Error())
		if serr := j.saveStatus(ctx); serr != nil {
			return reconcile.Result{}, serr
		}
		metrics.PurgeJobs.WithLabelValues(job.Namespace, string(retentionv1.PurgeJobFailed)).Inc()
		j.r.Recorder.Eventf(job, nil, "Warning", "Failed", "Execute", "Failed: %v; deleted %d and anonymized %d records before stopping", err, job.Status.Deleted, job.Status.Anonymized)
		return reconcile.Result{}, reconcile.TerminalError(err)
	default:
		reason, msg := classify(err)
		if j.store != nil {
			j.countError(err)
		}
		retentionv1.SetCondition(job, retentionv1.ConditionDataStoreAvailable, metav1.ConditionFalse, reason, msg)
		retentionv1.MarkNotReady(job, reason, msg+"; retrying with backoff")
		if connect.SecretReason(err) != "" || reason == retentionv1.ReasonAuthenticationFailed ||
			reason == retentionv1.ReasonNetworkNotAllowed || reason == retentionv1.ReasonTLSVerificationFailed {
			return j.stall(ctx, reason, msg)
		}
		if serr := j.saveStatus(ctx); serr != nil {
			return reconcile.Result{}, serr
		}
		return reconcile.Result{}, err
	}
}

func (j *jobRun) countError(err error) {
	store := "unknown"
	if j.store != nil {
		store = string(j.store.Spec.Type)
	}
	metrics.Errors.WithLabelValues(store, errorKind(err)).Inc()
}

// saveStatus checkpoints status with an optimistic lock, so a writer holding
// an outdated view can never overwrite newer progress. On a conflict (an
// unrelated metadata change, such as an annotation) it re-reads the job and
// writes this run's status, which is authoritative: this controller is the
// only status writer and each job is reconciled by one worker at a time.
func (j *jobRun) saveStatus(ctx context.Context) error {
	if j.job.Status.Phase != retentionv1.PurgeJobStalled && j.job.Status.Phase != "" {
		if c := findCondition(j.job.Status.Conditions, retentionv1.ConditionDataStoreAvailable); c != nil && c.Status != metav1.ConditionTrue && j.driver != nil {
			retentionv1.SetCondition(j.job, retentionv1.ConditionDataStoreAvailable, metav1.ConditionTrue, retentionv1.ReasonConnected, "The DataStore is reachable")
		}
	}
	// Write a copy: the server's answer only refreshes metadata, so pointers
	// into j.job.Status held by the caller stay valid.
	sent := j.job.DeepCopy()
	err := j.r.Status().Patch(ctx, sent, client.MergeFromWithOptions(j.before, client.MergeFromWithOptimisticLock{}))
	for attempt := 0; apierrors.IsConflict(err) && attempt < 5; attempt++ {
		if err = j.r.APIReader.Get(ctx, client.ObjectKeyFromObject(j.job), sent); err != nil {
			break
		}
		sent.Status = *j.job.Status.DeepCopy()
		err = j.r.Status().Update(ctx, sent)
	}
	if err != nil {
		return fmt.Errorf("checkpointing PurgeJob status: %w", err)
	}
	j.job.ObjectMeta = sent.ObjectMeta
	j.before = j.job.DeepCopy()
	return nil
}

// scopeString describes what the job selects, for its Started event: its
// cutoffs, or how many DeletionRequests' subjects it erases together.
func scopeString(job *retentionv1.PurgeJob) string {
	if n := len(jobRequests(job)); n > 0 {
		return fmt.Sprintf("the subjects of %d DeletionRequests", n)
	}
	return cutoffString(job)
}

// cutoffString describes the job's cutoffs.
func cutoffString(job *retentionv1.PurgeJob) string {
	if job.Spec.Cutoff != nil {
		return "cutoff " + job.Spec.Cutoff.UTC().Format(time.RFC3339)
	}
	var cutoffs []string
	for _, op := range job.Spec.Operations {
		if op.Cutoff != nil {
			c := op.Cutoff.UTC().Format(time.RFC3339)
			if !slices.Contains(cutoffs, c) {
				cutoffs = append(cutoffs, c)
			}
		}
	}
	if len(cutoffs) == 0 {
		return "no cutoff (by subject)"
	}
	return "cutoffs " + strings.Join(cutoffs, ", ")
}

// changed reports whether the job has changed any record.
func changed(job *retentionv1.PurgeJob) bool {
	return job.Status.Deleted > 0 || job.Status.Anonymized > 0 || slices.ContainsFunc(job.Status.Operations, func(o retentionv1.OperationStatus) bool {
		return o.Batches > 0 && (o.Deleted > 0 || o.Anonymized > 0 || o.PartitionsDropped > 0)
	})
}

// progressString says which operations are done and which are not, with
// counts only.
func progressString(job *retentionv1.PurgeJob) string {
	var done, open []string
	for _, o := range job.Status.Operations {
		switch o.Phase {
		case retentionv1.PurgeJobSucceeded, retentionv1.OperationHeld:
			done = append(done, fmt.Sprintf("%s (%d deleted, %d anonymized)", o.Collection, o.Deleted, o.Anonymized))
		default:
			open = append(open, fmt.Sprintf("%s (%d deleted, %d anonymized so far)", o.Collection, o.Deleted, o.Anonymized))
		}
	}
	if len(done) == 0 {
		done = []string{"none"}
	}
	return "done: " + strings.Join(done, ", ") + "; not done: " + strings.Join(open, ", ")
}

// preflight checks, on stores with foreign keys, that no record outside
// the job is left referring to a record it deletes. It returns a message
// naming the first such key ("" when there is none).
func (j *jobRun) preflight(ctx context.Context) (string, error) {
	ref, ok := j.driver.(datastore.Referrers)
	if !ok {
		return "", nil
	}
	var ops []datastore.Operation
	for _, s := range j.steps {
		if s.BlockedBy == "" {
			ops = append(ops, s.Op)
		}
	}
	blockers, err := ref.Blockers(ctx, ops)
	if err != nil || len(blockers) == 0 {
		return "", err
	}
	msg := engine.DescribeBlocker(blockers[0])
	if len(blockers) > 1 {
		msg += fmt.Sprintf(" (and %d more foreign keys)", len(blockers)-1)
	}
	return "Stopped before any change: " + msg + "; nothing was changed", nil
}

// sealedName is the Secret holding a job's sealed keys.
func sealedName(job *retentionv1.PurgeJob) string { return job.Name + "-sealed" }

// seal reads, before the first change, the primary keys of the records
// each subject operation selects, and keeps them in a Secret owned by the
// job from its creation. Execution then also selects by these keys, so a
// job resumed after a failure still reaches records whose link to the
// subject (a parent's identity field, an anonymized linking row) it has
// already changed.
func (j *jobRun) seal(ctx context.Context) error {
	sealer, ok := j.driver.(datastore.Sealer)
	if !ok {
		return nil
	}
	keys := map[string][][]string{}
	var n int64
	for _, s := range j.steps {
		if s.BlockedBy != "" || len(s.Op.Subjects) == 0 {
			continue
		}
		k, err := sealer.Keys(ctx, s.Op, maxSealedKeys)
		if err != nil {
			return err
		}
		if len(k) > 0 {
			keys[s.Op.Collection.Name] = append(keys[s.Op.Collection.Name], k...)
			n += int64(len(k))
		}
	}
	if n == 0 {
		return nil
	}
	data, err := encodeSealed(keys)
	if err != nil {
		return err
	}
	if len(data) > maxSealedBytes {
		return fmt.Errorf("%w: the keys of the records to erase take %d KiB compressed, more than a Secret holds; erase fewer subjects per job", engine.ErrInvalid, len(data)>>10)
	}
	job := j.job
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Namespace: job.Namespace, Name: sealedName(job), Labels: map[string]string{retentionv1.LabelSealedKeys: job.Name, retentionv1.LabelSecretConsent: "true"},
		OwnerReferences: []metav1.OwnerReference{owned.Reference(job, "PurgeJob")},
	}, Data: map[string][]byte{sealedKeysField: data}}
	err = j.r.Create(ctx, secret)
	if apierrors.IsAlreadyExists(err) {
		// A crash after sealing and before the checkpoint: nothing was
		// changed since, so seal again.
		if err := j.dropSealed(ctx); err != nil {
			return err
		}
		err = j.r.Create(ctx, secret)
	}
	if err != nil {
		return fmt.Errorf("sealing the keys of the records to erase: %w", err)
	}
	job.Status.SealedKeys = n
	return nil
}

// sealedKeys reads the keys sealed before the job's first change (nil when
// it sealed none).
func (j *jobRun) sealedKeys(ctx context.Context) (map[string][][]string, error) {
	if j.job.Status.SealedKeys == 0 {
		return nil, nil
	}
	var s corev1.Secret
	if err := j.r.APIReader.Get(ctx, types.NamespacedName{Namespace: j.job.Namespace, Name: sealedName(j.job)}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, outcome.Stall(retentionv1.ReasonSecretNotFound, fmt.Sprintf("Secret %s with the keys sealed before the first change is gone; the job cannot resume exactly", sealedName(j.job)))
		}
		return nil, err
	}
	if !metav1.IsControlledBy(&s, j.job) {
		return nil, outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("Secret %s was not created by this PurgeJob; Lethe does not use it", sealedName(j.job)))
	}
	return decodeSealed(s.Data[sealedKeysField])
}

// dropSealed removes the job's sealed keys (identities of a kind: they go
// as soon as the job no longer needs them). A Secret of that name that this
// job does not own is never touched: someone else made it.
func (j *jobRun) dropSealed(ctx context.Context) error {
	if j.job.Status.SealedKeys == 0 && j.job.Status.StartTime != nil {
		return nil
	}
	var s corev1.Secret
	switch err := j.r.APIReader.Get(ctx, types.NamespacedName{Namespace: j.job.Namespace, Name: sealedName(j.job)}, &s); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading sealed keys: %w", err)
	case !metav1.IsControlledBy(&s, j.job):
		return outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("Secret %s exists but was not created by this PurgeJob; Lethe neither uses nor deletes it. Rename or remove it", sealedName(j.job)))
	}
	if err := j.r.Delete(ctx, &s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing sealed keys: %w", err)
	}
	return nil
}

func encodeSealed(keys map[string][][]string) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(keys); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeSealed(data []byte) (map[string][][]string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: sealed keys: %w", engine.ErrInvalid, err)
	}
	var keys map[string][][]string
	if err := json.NewDecoder(io.LimitReader(zr, 64<<20)).Decode(&keys); err != nil {
		return nil, fmt.Errorf("%w: sealed keys: %w", engine.ErrInvalid, err)
	}
	return keys, nil
}
