// Package executor executes a resolved PurgeJob: the batch loop and what
// surrounds it. The PurgeJob controller gets the job, checks its gates
// (signature, Dataset, DataStore), resolves its operations (internal/engine)
// and hands them to a Run; the Run counts, checks, seals and executes, and
// the controller writes what came of it (phase, conditions, events, job
// metrics). Nothing here reads or writes Kubernetes objects: the job's
// status is progressed in place and written through Run.Checkpoint, and
// sealed keys are kept through a SealStore.
//
// # One slice
//
// Each reconcile of a job runs one slice (Run.Slice). A job that has not
// started is first counted (the whole of a dry run, and what safety limits
// are checked against), proven by the preflight not to leave a record
// outside it referring to one it deletes, and its subject keys are sealed;
// then StartTime is set and the slice ends (Started, DryRunCompleted). A
// started job executes batches, each in its own short transaction, until
// every operation is done (Completed) or the slice is used up — its
// duration or its number of batches — when it yields (Yielded) so that
// holds and cancellation are noticed and workers are shared.
//
// # Throttle
//
// A DataStore's limits.maxBatchesPerSecond is enforced by one limiter per
// store (Throttles, kept by the PurgeJob controller), shared by every job
// against it, with a burst of one so batches are spaced evenly. The wait is
// at a batch boundary, never inside a transaction, ends with the
// reconcile's context, and never runs past the slice's deadline: a turn
// after it makes the slice wait until the deadline, give the turn back and
// yield.
//
// # Checkpoints
//
// Each batch records its cursor (sealed with the manager's key: it may hold
// a key that is personal data) and counts in the job's status in memory;
// the status is written (Run.Checkpoint) at a batch boundary once
// Run.CheckpointInterval (default 5s, --purgejob-checkpoint-interval) has
// passed since the last write, when a hold newly skips an operation, and
// whenever the slice ends: it yields, pauses, completes, or the reconcile is
// cancelled (manager shutdown: the write then runs without the cancelled
// context, bounded by checkpointTimeout). Status writes per job are bounded
// in time, not one per batch (checkpoint.go). A batch runs to completion
// even when the reconcile's context is cancelled, bounded by batchTimeout.
//
// # Exact counts
//
// Between a batch that committed and the write that records it, anything
// can fail: the manager is killed, loses its connection to the API server
// or its leadership, the write is refused or its result is unknown, the
// store's reply to the commit is lost. A restarted slice resumes from the
// cursor written last; the data stays right (the batches after it find
// nothing left of what was deleted), but their records would be missing
// from the totals. So:
//
//   - A Ledger (checkpoint.go), kept by the PurgeJob controller across
//     reconciles, remembers per job the progress — cursors, counts and
//     phases, not the resourceVersion, so a user's annotation does not
//     matter — of its last status write known to hold every batch this
//     process ran: the write after the first count or a recount, or a
//     checkpoint written by the Run that ran the batches. A batch marks the
//     job dirty until such a write; a batch that fails (its outcome is
//     unknown) leaves it dirty until a recount, and so does a recount that
//     fails: writing a status merely read back (the controller recording a
//     transient error) vouches for nothing.
//   - A started job whose status, as read from the API server, the ledger
//     does not vouch for (a new process after kill -9, a new leader, a
//     failed or unknown write, a batch in doubt) is recounted before its
//     next batch (recount.go): for each delete operation not yet Succeeded,
//     its scope is counted with the fixed cutoff, subjects and sealed keys
//     but without the hold exclusions, and (Matched + Held − Deleted) −
//     count records were deleted by batches never written. Matched (count
//     with the holds' subjects excluded) plus Held (the records they kept
//     out) is what the scope held when the job started, and each deleted
//     record leaves it, so the formula holds whenever nobody else adds to or
//     removes from the scope; a hold placed mid-run does not change it. The
//     records found are added to the operation's and the job's Deleted, the
//     rows-deleted metric and status.recounted, and OnRecount reports them
//     (the controller's Recounted event). Redis and S3 deletes use the same
//     formula with their driver's Count (same unit as Batch.Affected). A
//     recount costs one count of what is left of each unfinished delete's
//     scope, and only follows a failure: a job this process checkpointed
//     itself is never recounted.
//   - Anonymizations are not recounted: their batches re-run from the
//     written cursor and the drivers (PostgreSQL, MySQL, Redis) select the
//     records they masked again — by cutoff, by the sealed keys of an
//     erasure, by key pattern — none skips a record already masked, so each
//     is counted once. Re-running HMAC on a masked value would hash it
//     twice (Null, Fixed, Redact, PartialMask and Generalize are
//     idempotent), so an anonymization with an HMAC field is checkpointed
//     after every batch, as before: at most one batch can re-run.
//   - When the job completes, the counts are checked (Run.Verified, the
//     CountsVerified condition): every anonymization must have anonymized
//     what it matched. A delete operation's total needs no more when no
//     recount contributed to it: it is the sum of the row counts the store
//     returned inside each committed batch, every one recorded by this
//     process (CountedByBatches). When a recount attributed records
//     (status.recounted, persisted, so a later process knows too) or found
//     the scope grown (the Ledger remembers it; a later process's recount
//     finds it again), or with safety.verifyCounts Always, what is left of
//     its scope without hold exclusions is counted and must equal Matched +
//     Held − Deleted (Verified; readBack in recount.go says when). A job
//     whose counts disagree still succeeds — its records were deleted as
//     specified — but says CountsNotExact with the expected and found
//     numbers: someone else added to or removed from the scope during the
//     run, or a store re-selected records, and the totals cannot be proven.
//
// controllers/purgejob_counts_test.go (an API connection cut after committed
// batches), test/crash (kill -9 of the manager binary at random moments)
// and recount_test.go (random checkpoint failures, crashes, lost commit
// replies and holds) prove it.
//
// # Errors
//
// Slice returns errors sorted by Classify: a *outcome.StallError needs a
// human (safety limit, a reference outside the erasure, an Interrupted job);
// a *FailedError fails the job (it cannot run as specified, and nothing was
// changed); an *AbortError stopped the slice without a verdict on the job
// (a cancelled reconcile, a checkpoint that could not be written); anything
// else is transient and retried with backoff. A job that already changed
// records is never failed: failing then would leave an erasure half done,
// so it stalls Interrupted and resumes from its checkpoint once the cause
// is fixed (see docs/design.md §4).
package executor
