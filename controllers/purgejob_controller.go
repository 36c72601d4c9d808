package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/signature"
	"github.com/lethe-dev/lethe/internal/window"
)

// subjectsSecretGrace is how long a PurgeJob that has not started waits for
// a subjects Secret that does not exist yet before it stalls
// (SecretNotFound): the coalescer creates the Secret right after the job,
// owned by it.
const subjectsSecretGrace = 30 * time.Second

// subjectsSecretPoll is how often a job waiting for its subjects Secret
// looks again.
const subjectsSecretPoll = 250 * time.Millisecond

// PurgeJobReconciler executes PurgeJobs: it checks a job's gates, resolves
// its operations and has internal/executor run one slice of batches per
// reconcile, which checkpoints progress in status so that a restarted
// manager resumes where it stopped.
type PurgeJobReconciler struct {
	Deps
	// SliceDuration bounds the work of one reconcile; the job is requeued
	// after it, so holds and cancellation are noticed and workers are shared.
	SliceDuration time.Duration
	// MaxBatchesPerSlice, when positive, also bounds the batches of one
	// reconcile (tests use 1 to interrupt a job between batches).
	MaxBatchesPerSlice int
	// CheckpointInterval bounds the time between two status writes of a
	// running job (0: executor.DefaultCheckpointInterval).
	CheckpointInterval time.Duration
	// throttles space the batches of all jobs against one DataStore
	// (spec.limits.maxBatchesPerSecond).
	throttles executor.Throttles
	// ledger knows which jobs this process checkpointed cleanly; any
	// other is recounted before its next batch (internal/executor).
	ledger executor.Ledger
	// sizes are the adaptive batch sizes learned per store and collection
	// (purgejob_batchsize.go).
	sizes executor.BatchSizers
}

// batchThrottles are the per-DataStore limiters: the manager's shared ones
// (Deps.Throttles, which ErasureReplay scans use too), or this
// reconciler's own.
func (r *PurgeJobReconciler) batchThrottles() *executor.Throttles {
	if r.Throttles != nil {
		return r.Throttles
	}
	return &r.throttles
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
		return outcome.Result(client.IgnoreNotFound(err), 0)
	}
	if finished(&job) || !job.DeletionTimestamp.IsZero() {
		r.ledger.Forget(job.UID)
		return outcome.Result(nil, 0)
	}
	j := &jobRun{r: r, job: &job, status: newLockedStatusWriter(r.Client, r.APIReader, &job)}
	j.seals = &sealedSecret{c: r.Client, reader: r.APIReader, job: &job}
	// Only what this manager created runs: checked before every slice.
	if err := signature.Verify(ctx, r.APIReader, r.DigestKey, &job); err != nil {
		if waitingForSubjects(&job, err) {
			return outcome.Requeue(subjectsSecretPoll)
		}
		st := outcome.AsStall(err)
		if st != nil && st.Reason == retentionv1.ReasonUnsignedPurgeJob {
			return j.refuse(ctx, st.Msg)
		}
		return j.fail(ctx, err)
	}
	return j.reconcile(ctx)
}

// waitingForSubjects reports whether err is the subjects Secret of a job
// that has not started and was created less than subjectsSecretGrace ago:
// the coalescer creates the Secret right after the job, owned by it.
func waitingForSubjects(job *retentionv1.PurgeJob, err error) bool {
	return (errors.Is(err, engine.ErrSubjectsSecretMissing) || errors.Is(err, connect.ErrSecretNotFound)) &&
		job.Status.StartTime == nil && time.Since(job.CreationTimestamp.Time) < subjectsSecretGrace
}

func finished(job *retentionv1.PurgeJob) bool {
	return job.Status.Phase == retentionv1.PurgeJobSucceeded || job.Status.Phase == retentionv1.PurgeJobFailed
}

// jobRun is the state of one reconcile of one job.
type jobRun struct {
	r      *PurgeJobReconciler
	job    *retentionv1.PurgeJob
	status *statusWriter[*retentionv1.PurgeJob]
	seals  *sealedSecret
	store  *retentionv1.DataStore
	driver datastore.Driver
	steps  []engine.Step
	// reached: a call to the store succeeded in this reconcile, and none
	// failed after it.
	reached bool
	// window is the store's window state, valid until it changes
	// (windowGate).
	window *window.State
}

func (j *jobRun) reconcile(ctx context.Context) (reconcile.Result, error) {
	job := j.job
	job.Status.ObservedGeneration = job.Generation
	if job.Status.Phase == "" {
		job.Status.Phase = retentionv1.PurgeJobPending
		retentionv1.MarkReconciling(job, retentionv1.ReasonProgressing, "Preparing the job")
	}
	// Suspended by the user: hold it before it touches anything.
	if job.Spec.Suspend {
		return j.suspended(ctx)
	}
	j.resumed()

	// Gates: Dataset, DataStore, connection; a job that has not started
	// waits for its DataStore's window before counting.
	dataset, err := j.gates(ctx)
	if err != nil {
		return j.fail(ctx, err)
	}
	if wait, res, err := j.waitForWindow(ctx); wait {
		return res, err
	}
	// Plan: resolve operations, holds and subjects for this slice.
	var holdList retentionv1.LegalHoldList
	if err := j.r.List(ctx, &holdList, client.InNamespace(job.Namespace)); err != nil {
		return outcome.Result(err, 0)
	}
	sealed, err := executor.Sealed(ctx, &job.Status, j.seals)
	if err != nil {
		return j.fail(ctx, err)
	}
	j.steps, err = engine.Resolve(ctx, job, engine.Inputs{
		Reader: j.r.APIReader, Dataset: dataset, StoreType: j.store.Spec.Type, Holds: holdList.Items, Now: j.r.now(), Sealed: sealed,
	})
	if waitingForSubjects(job, err) {
		// Created just before its subjects Secret (the coalescer makes the
		// Secret owned by the job): wait, nothing has run.
		return outcome.Requeue(subjectsSecretPoll)
	}
	if err != nil {
		return j.fail(ctx, err)
	}
	if c := findCondition(job.Status.Conditions, retentionv1.ConditionReconciling); c != nil && c.Reason == retentionv1.ReasonWaitingForLegalHold && job.Status.Phase == retentionv1.PurgeJobRunning {
		retentionv1.MarkReconciling(job, retentionv1.ReasonRunning, "Executing; the legal holds in scope are known again")
	}
	if job.Status.StartTime != nil && job.Status.Phase == retentionv1.PurgeJobStalled {
		// An interrupted job retried: it resumes from its checkpoint.
		job.Status.Phase = retentionv1.PurgeJobRunning
		retentionv1.MarkReconciling(job, retentionv1.ReasonRunning, "Resuming from the last checkpoint")
	}

	// Act: count, check and seal a job that has not started (the whole of a
	// dry run), or execute batches until the slice is used up.
	run := &executor.Run{
		Job: job, Steps: j.steps, Driver: j.driver, StoreType: j.store.Spec.Type, Seals: j.seals,
		Checkpoint: j.checkpoint, CheckpointInterval: j.r.CheckpointInterval, Ledger: &j.r.ledger,
		OnRecount: j.recounted, Clock: j.r.now, CursorKey: j.r.DigestKey,
		SliceDuration: j.r.SliceDuration, MaxBatchesPerSlice: j.r.MaxBatchesPerSlice,
		Limiter: j.r.batchThrottles().For(j.store.Namespace+"/"+j.store.Name, j.store.Spec.Limits.MaxBatchesPerSecond, j.r.now()),
		Reached: func() { j.reached = true },
		OnPause: j.paused, OnBatch: j.unpaused,
		Gates: []executor.Gate{j.suspendGate, j.windowGate, j.healthGate},
		Sizer: j.sizer(),
	}
	progress, err := run.Slice(ctx)
	if err != nil {
		return j.fail(ctx, err)
	}
	switch progress {
	case executor.Started:
		return j.started(ctx)
	case executor.DryRunCompleted:
		return j.succeed(ctx, retentionv1.ReasonDryRunCompleted, fmt.Sprintf("Dry run: %d records would be deleted or anonymized%s; nothing was changed", job.Status.Matched, keptByHolds(job.Status.Held)))
	case executor.Completed:
		j.verified(run.Verified)
		return j.succeed(ctx, retentionv1.ReasonSucceeded, j.summary())
	case executor.Paused:
		// Checkpointed with the pause recorded (paused): look again later,
		// or, suspended, when the spec changes.
		if run.Paused.Reason == retentionv1.ReasonSuspended {
			j.r.Recorder.Eventf(job, nil, "Normal", retentionv1.ReasonSuspended, "Suspend", "%s", suspendedMessage(job))
			return outcome.Result(nil, 0)
		}
		return outcome.Requeue(run.Paused.After(j.r.now()))
	default: // Yielded: checkpointed; the next slice continues at once.
		return outcome.Requeue(time.Millisecond)
	}
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
