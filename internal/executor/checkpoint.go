package executor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/mask"
)

// DefaultCheckpointInterval is how often a running job's progress is
// written to the API server when Run.CheckpointInterval is not set.
const DefaultCheckpointInterval = 5 * time.Second

// checkpointTimeout bounds a checkpoint, which a cancelled reconcile
// (manager shutdown) does not interrupt.
const checkpointTimeout = 10 * time.Second

// A Ledger is what this manager process knows of the progress it wrote:
// per job, the progress (progress) of its last status write that holds
// every batch this process ran, as long as no batch ran since. A job read
// from the API server whose progress the ledger vouches for has no
// committed batch beyond its checkpoint; any other — a new process after
// kill -9, a new leader, a checkpoint that failed or whose result is
// unknown, a batch that failed with an unknown outcome — is recounted
// before its next batch (recount.go). The PurgeJob controller keeps one for
// all jobs and calls Vouch after every status write; the zero value is
// ready to use. A nil *Ledger vouches for nothing.
//
// Only three things make a job's progress known: the first count (start:
// nothing ran yet), a recount, and a checkpoint written by the Run that ran
// the batches (its status in memory holds every one of them). A write of a
// status merely read back (the controller stalling a job it could not
// recount, say) vouches for nothing.
type Ledger struct {
	mu   sync.Mutex
	jobs map[types.UID]*ledgerEntry
}

type ledgerEntry struct {
	// progress is the progress of the last write that holds every batch,
	// "" when the job was counted or recounted and not written since.
	progress string
	// dirty: a batch ran (or is running, or failed with an unknown
	// outcome) after that write, or a recount is due; only a write by the
	// Run that ran the batches, or a recount, clears it.
	dirty bool
	// differed: a recount found fewer records deleted than its formula
	// allows (records entered the scope), so the totals are proven only by
	// the count after the last batch (verify).
	differed bool
}

// update applies f to the job's entry, made if missing, under the lock;
// nil l does nothing.
func (l *Ledger) update(uid types.UID, f func(e *ledgerEntry)) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.jobs == nil {
		l.jobs = map[types.UID]*ledgerEntry{}
	}
	e := l.jobs[uid]
	if e == nil {
		e = &ledgerEntry{}
		l.jobs[uid] = e
	}
	f(e)
}

// Vouch records that job's status, as it is now, was written to the API
// server. It counts only for a job this process has just counted or
// recounted and not written since (the first write of a started job, the
// write after a recount); for any other the Run's own checkpoints do.
func (l *Ledger) Vouch(job *retentionv1.PurgeJob) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.jobs[job.UID]; e != nil && !e.dirty && e.progress == "" {
		e.progress = progress(&job.Status)
	}
}

// Forget drops a job that finished or is gone.
func (l *Ledger) Forget(uid types.UID) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.jobs, uid)
}

// vouches reports whether job, as read, holds every batch this process ran.
func (l *Ledger) vouches(job *retentionv1.PurgeJob) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.jobs[job.UID]
	return e != nil && !e.dirty && e.progress != "" && e.progress == progress(&job.Status)
}

// dirty records that a batch of the job is about to run (or a recount is
// due): until the Run writes a status holding it, the job is not vouched
// for.
func (l *Ledger) dirty(uid types.UID) {
	l.update(uid, func(e *ledgerEntry) { e.dirty = true })
}

// written records a checkpoint the Run wrote: its status holds every batch
// it ran.
func (l *Ledger) written(job *retentionv1.PurgeJob) {
	p := progress(&job.Status)
	l.update(job.UID, func(e *ledgerEntry) { e.dirty, e.progress = false, p })
}

// counted records that the job's counts in memory are exact (counted
// before its first batch, or recounted), not yet written.
func (l *Ledger) counted(uid types.UID) {
	l.update(uid, func(e *ledgerEntry) { e.dirty, e.progress = false, "" })
}

// differ records that a recount of the job found its scope changed.
func (l *Ledger) differ(uid types.UID) {
	l.update(uid, func(e *ledgerEntry) { e.differed = true })
}

// differs reports whether a recount of the job in this process found its
// scope changed.
func (l *Ledger) differs(uid types.UID) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.jobs[uid]
	return e != nil && e.differed
}

// progress is what a status says of the work done: per operation its
// phase, cursor and counts, and the job's totals. Metadata (a user's
// annotation changes the resourceVersion) and conditions do not matter.
func progress(st *retentionv1.PurgeJobStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d/%d/%d", st.Deleted, st.Anonymized, st.Recounted, len(st.Operations))
	for _, op := range st.Operations {
		fmt.Fprintf(&b, "|%s/%s/%d/%d/%d/%d", op.Phase, op.Cursor, op.Batches, op.Deleted, op.Anonymized, op.PartitionsDropped)
	}
	return b.String()
}

// checkpointDue reports whether the progress since the last checkpoint
// should be written now: CheckpointInterval has passed since it.
func (r *Run) checkpointDue(now time.Time) bool {
	interval := r.CheckpointInterval
	if interval <= 0 {
		interval = DefaultCheckpointInterval
	}
	return r.unsaved && now.Sub(r.saved) >= interval
}

// checkpoint writes the job's status (Run.Checkpoint); a failure aborts the
// slice. The write is not interrupted by a cancelled reconcile (manager
// shutdown), bounded by checkpointTimeout: it records batches that
// committed. now, if not zero, is when (for the next checkpointDue).
func (r *Run) checkpoint(ctx context.Context, now time.Time) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkpointTimeout)
	defer cancel()
	if err := r.Checkpoint(ctx); err != nil {
		return &AbortError{Err: err}
	}
	r.Ledger.written(r.Job)
	r.unsaved = false
	if !now.IsZero() {
		r.saved = now
	}
	return nil
}

// abort stops the slice on a cancelled reconcile: the progress not yet
// checkpointed is written first, so an orderly shutdown leaves nothing to
// recount. A write that fails is recounted by the next slice.
func (r *Run) abort(ctx context.Context, err error) error {
	if r.unsaved {
		_ = r.checkpoint(ctx, time.Time{})
	}
	return &AbortError{Err: err}
}

// eager reports whether a step's batches are checkpointed one by one. A
// batch whose checkpoint is lost re-runs from the cursor before it: a
// delete finds its records gone (and the recount counts them), an
// anonymization masks its records again — harmless for Null, Fixed, Redact
// and PartialMask, which are idempotent, but HMAC would hash a pseudonym a
// second time and break its joins. So an anonymization with an HMAC field
// keeps at most one batch unwritten, as before checkpoints were bounded in
// time.
func eager(s engine.Step) bool {
	if s.Op.Delete {
		return false
	}
	return slices.ContainsFunc(s.Op.Fields, func(f datastore.FieldMask) bool { return f.Strategy.Kind == mask.HMAC })
}
