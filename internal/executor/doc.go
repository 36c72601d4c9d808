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
// After every batch the operation's cursor (sealed with the manager's key:
// it may hold a key that is personal data) and counts are checkpointed. A
// batch and its checkpoint run to completion even when the reconcile's
// context is cancelled (manager shutdown), bounded by batchTimeout, so the
// checkpoint records what the batch committed and a restarted manager
// resumes exactly there.
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
