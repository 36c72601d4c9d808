package executor

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/metrics"
)

// DefaultSliceDuration bounds one slice when Run.SliceDuration is not set.
const DefaultSliceDuration = 10 * time.Second

// batchTimeout bounds one batch and its checkpoint, which run to completion
// even when the reconcile's context is cancelled.
const batchTimeout = 2 * time.Minute

// Progress is what a slice that returned no error did.
type Progress int

const (
	// Started: every operation was counted and checked and the subject
	// keys sealed; StartTime is set and nothing was changed. Nothing was
	// checkpointed: the caller marks the job running, writes its status and
	// comes back at once.
	Started Progress = iota + 1
	// DryRunCompleted: a dry run was counted and checked; every operation
	// not held is Succeeded and nothing was changed. Nothing was
	// checkpointed.
	DryRunCompleted
	// Yielded: the slice is used up; the progress was checkpointed. Come
	// back at once.
	Yielded
	// Completed: every operation succeeded or is held; the last batch was
	// checkpointed and the counts verified (Run.Verified).
	Completed
	// Paused: a gate (Run.Gates) stopped the slice at a batch boundary;
	// Run.Paused says why. Run.OnPause was called and the progress
	// checkpointed. Come back after Run.Paused.After.
	Paused
)

// String names the progress, for tests and logs.
func (p Progress) String() string {
	switch p {
	case Started:
		return "Started"
	case DryRunCompleted:
		return "DryRunCompleted"
	case Yielded:
		return "Yielded"
	case Completed:
		return "Completed"
	case Paused:
		return "Paused"
	}
	return fmt.Sprintf("Progress(%d)", int(p))
}

// Run executes one resolved PurgeJob, one slice per reconcile. It is built
// anew for every reconcile.
type Run struct {
	// Job is the PurgeJob. Its spec is read; its status is progressed in
	// place: operations (phase, counts, cursor), the job's counts,
	// SealedKeys and StartTime. Its phase and conditions are the caller's.
	Job *retentionv1.PurgeJob
	// Steps are the job's operations resolved for this slice, in spec
	// order (engine.Resolve): one per spec operation.
	Steps []engine.Step
	// Driver works on the job's store. If it implements datastore.Referrers
	// the preflight runs; if it implements datastore.Sealer, subject keys
	// are sealed.
	Driver datastore.Driver
	// StoreType labels the batch metrics.
	StoreType retentionv1.DataStoreType
	// Seals keeps the sealed keys (the controller: a Secret owned by the job).
	Seals SealStore
	// Checkpoint writes the job's status as it is now. It is called at a
	// batch boundary once CheckpointInterval has passed since the last
	// one, when a hold newly skips an operation and when the slice ends
	// (yields, pauses, completes or is cancelled); an error aborts the
	// slice (*AbortError).
	Checkpoint func(ctx context.Context) error
	// CheckpointInterval bounds the time between checkpoints of a running
	// job (0: DefaultCheckpointInterval): status writes per job are
	// bounded in time, not one per batch.
	CheckpointInterval time.Duration
	// Ledger knows which jobs this process checkpointed cleanly; a job it
	// cannot vouch for is recounted before its next batch (recount.go).
	// The caller vouches after every status write (Ledger.Vouch). nil
	// vouches for nothing: every slice recounts.
	Ledger *Ledger
	// OnRecount, if set, is told how many deleted records a recount found
	// (records deleted by batches never checkpointed), before the
	// checkpoint that records them.
	OnRecount func(records int64)
	// Verified is what the count after the last batch found (Completed);
	// nil otherwise.
	Verified *Verification
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// CursorKey seals the cursors kept in status (digest.Seal).
	CursorKey []byte
	// SliceDuration bounds the batches of one slice in time (0:
	// DefaultSliceDuration); MaxBatchesPerSlice, when positive, in number.
	SliceDuration      time.Duration
	MaxBatchesPerSlice int
	// Limiter, if set, spaces the batches (the store's limiter from
	// Throttles): before each batch the slice waits for its turn, or yields
	// when the turn falls after its deadline.
	Limiter *rate.Limiter
	// Sleep waits d unless ctx is done first (the throttle's wait); nil
	// means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Reached, if set, is called after every call to the store that
	// succeeded (a count or a batch), before the checkpoint that follows
	// it: the store is available.
	Reached func()
	// Gates are asked before every batch whether it may run (suspension,
	// windows, the store's health); see Gate.
	Gates []Gate
	// OnPause, if set, is called when a gate pauses the slice, before the
	// checkpoint that ends it, so the caller can record why in the same
	// write. OnBatch, if set, is called after every batch that succeeded,
	// before its checkpoint (the job runs: a pause is over).
	OnPause func(*Pause)
	OnBatch func()
	// Paused is why the slice paused (Progress Paused); nil otherwise.
	Paused *Pause

	// unsaved: the status changed since the last checkpoint, written at
	// saved (checkpoint.go).
	unsaved bool
	saved   time.Time
	// Sizer, if set, returns the adaptive batch size of a step's operation
	// (nil: the step's fixed Op.BatchSize); see batchsize.go.
	Sizer func(datastore.Operation) *BatchSizer
}

// Slice does the next part of the job: it counts, checks and seals a job
// that has not started, and executes batches of one that has. Errors are
// sorted as Classify sorts them.
func (r *Run) Slice(ctx context.Context) (Progress, error) {
	status := &r.Job.Status
	if len(status.Operations) != len(r.Job.Spec.Operations) {
		status.Operations = make([]retentionv1.OperationStatus, len(r.Job.Spec.Operations))
		for i, op := range r.Job.Spec.Operations {
			status.Operations[i] = retentionv1.OperationStatus{Collection: string(op.Collection), Phase: retentionv1.PurgeJobPending}
		}
	}
	if len(r.Steps) != len(status.Operations) {
		return 0, r.classify(fmt.Errorf("%w: %d resolved steps for %d operations", engine.ErrInvalid, len(r.Steps), len(status.Operations)))
	}
	if status.StartTime == nil {
		return r.start(ctx)
	}
	return r.execute(ctx)
}

func (r *Run) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

// start counts every operation, applies the safety limits, runs the
// preflight and seals the subject keys: everything that can stop a job
// before its first change.
func (r *Run) start(ctx context.Context) (Progress, error) {
	job := r.Job
	if err := r.count(ctx); err != nil {
		return 0, r.classify(err)
	}
	// Proven before the first change: no record outside the job is left
	// referring to a record it deletes (a dry run stops here too, so the
	// two agree).
	if err := r.preflight(ctx); err != nil {
		return 0, r.classify(err)
	}
	if job.Spec.Mode == retentionv1.ModeEnforce {
		if err := r.seal(ctx); err != nil {
			return 0, r.classify(err)
		}
	}
	now := metav1.NewTime(r.now())
	job.Status.StartTime = &now
	// Nothing ran: the counts are exact; the caller's write vouches.
	r.Ledger.counted(job.UID)
	if job.Spec.Mode == retentionv1.ModeDryRun {
		for i := range job.Status.Operations {
			if job.Status.Operations[i].Phase == retentionv1.PurgeJobPending {
				job.Status.Operations[i].Phase = retentionv1.PurgeJobSucceeded
			}
		}
		return DryRunCompleted, nil
	}
	return Started, nil
}

// execute runs batches, checkpointing every CheckpointInterval, until every
// operation is done or the slice is used up. A job this process cannot
// vouch for is recounted first.
func (r *Run) execute(ctx context.Context) (Progress, error) {
	job := r.Job
	slice := r.SliceDuration
	if slice <= 0 {
		slice = DefaultSliceDuration
	}
	r.saved = r.now()
	deadline := r.saved.Add(slice)
	if !r.Ledger.vouches(job) {
		// Until the recount succeeds, no write vouches for the job.
		r.Ledger.dirty(job.UID)
		if err := r.recount(ctx); err != nil {
			return 0, r.classify(err)
		}
	}
	batches := 0
	for i, s := range r.Steps {
		st := &job.Status.Operations[i]
		if st.Phase == retentionv1.PurgeJobSucceeded || st.Phase == retentionv1.OperationHeld {
			continue
		}
		if s.BlockedBy != "" {
			// A hold placed while the job runs takes effect at the next batch.
			st.Phase = retentionv1.OperationHeld
			if err := r.checkpoint(ctx, time.Time{}); err != nil {
				return 0, err
			}
			continue
		}
		st.Phase = retentionv1.PurgeJobRunning
		for done := false; !done; {
			if ctx.Err() != nil {
				return 0, r.abort(ctx, ctx.Err())
			}
			now := r.now()
			if now.After(deadline) || (r.MaxBatchesPerSlice > 0 && batches >= r.MaxBatchesPerSlice) {
				if err := r.checkpoint(ctx, now); err != nil {
					return 0, err
				}
				return Yielded, nil
			}
			if r.checkpointDue(now) {
				if err := r.checkpoint(ctx, now); err != nil {
					return 0, err
				}
			}
			if p, err := r.gate(ctx); err != nil {
				// The batches before it are written first, so a store that
				// went away leaves nothing to recount.
				if r.unsaved {
					if cerr := r.checkpoint(ctx, time.Time{}); cerr != nil {
						return 0, cerr
					}
				}
				return 0, r.classify(err)
			} else if p != nil {
				r.Paused = p
				if r.OnPause != nil {
					r.OnPause(p)
				}
				if err := r.checkpoint(ctx, time.Time{}); err != nil {
					return 0, err
				}
				return Paused, nil
			}
			if turn, err := r.throttle(ctx, deadline); err != nil {
				return 0, r.abort(ctx, err)
			} else if !turn {
				if err := r.checkpoint(ctx, time.Time{}); err != nil {
					return 0, err
				}
				return Yielded, nil
			}
			var err error
			if done, err = r.batch(ctx, s, st); err != nil {
				return 0, err
			}
			batches++
			if eager(s) {
				if err := r.checkpoint(ctx, time.Time{}); err != nil {
					return 0, err
				}
			}
		}
	}
	// The last batches are written before they are verified, so a count
	// that fails leaves nothing to recount.
	if r.unsaved {
		if err := r.checkpoint(ctx, time.Time{}); err != nil {
			return 0, err
		}
	}
	if err := r.verify(ctx); err != nil {
		return 0, r.classify(err)
	}
	return Completed, nil
}

// batch runs one batch of a step from its checkpointed cursor and records
// what it did in status (checkpointed later: checkpoint.go). It reports
// whether the step is done.
func (r *Run) batch(ctx context.Context, s engine.Step, st *retentionv1.OperationStatus) (bool, error) {
	// A batch is not interrupted by shutdown: the transaction is bounded by
	// the store's statement timeout, and its result must be recorded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	started := time.Now()
	cursor, err := digest.Open(r.CursorKey, st.Cursor)
	if err != nil {
		return false, r.classify(fmt.Errorf("%w: %w", engine.ErrInvalid, err))
	}
	// Until a status holding this batch is written, the job is not vouched
	// for; if the batch fails, its outcome is unknown (the store may have
	// committed before the error, a lost reply to COMMIT) and the job
	// stays so until the next slice recounts it.
	r.Ledger.dirty(r.Job.UID)
	sizer := r.sizer(s.Op)
	if sizer != nil {
		s.Op.BatchSize = sizer.Size()
	}
	b, err := r.Driver.Execute(ctx, s.Op, cursor)
	metrics.BatchDuration.WithLabelValues(string(r.StoreType)).Observe(time.Since(started).Seconds())
	if err != nil {
		return false, r.classify(err)
	}
	if sizer != nil {
		sizer.Observe(s.Op.BatchSize, b.Affected, time.Since(started))
	}
	// The cursor may hold a key that is personal data: status keeps it sealed.
	if b.Cursor, err = digest.Seal(r.CursorKey, b.Cursor); err != nil {
		// Committed but not recorded: the job stays dirty, recounted next.
		return false, &AbortError{Err: err}
	}
	r.reached()
	if r.OnBatch != nil {
		r.OnBatch()
	}
	r.record(st, s, b)
	if b.Done {
		st.Phase = retentionv1.PurgeJobSucceeded
	}
	r.unsaved = true
	return b.Done, nil
}

// reached reports a successful call to the store (Run.Reached).
func (r *Run) reached() {
	if r.Reached != nil {
		r.Reached()
	}
}

// record adds one batch to the operation's and the job's totals.
func (r *Run) record(st *retentionv1.OperationStatus, s engine.Step, b datastore.Batch) {
	job := r.Job
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
	metrics.Batches.WithLabelValues(job.Namespace, string(job.Spec.DatasetRef.Name), string(r.StoreType)).Inc()
}

// classify sorts an error of this run (Classify).
func (r *Run) classify(err error) error { return Classify(&r.Job.Status, err) }
