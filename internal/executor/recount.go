package executor

import (
	"context"
	"fmt"
	"strings"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/metrics"
)

// Counts that stay exact (see doc.go, "Exact counts").
//
// When a delete operation was counted before the job started (count.go),
// Matched is what it selected with the holds' subjects excluded and Held
// what they kept out of it, so Matched + Held is what its scope — fixed
// cutoff, subjects and sealed keys, no hold exclusions — held then. Each
// deleted record leaves the scope and nothing else enters or leaves it (the
// cutoff is fixed, new records are newer), so at any moment
//
//	left in scope = Matched + Held − truly deleted.
//
// The records deleted by batches that committed but were never
// checkpointed are therefore (Matched + Held − Deleted) − left, where
// Deleted is what the status read from the API server counts and left is a
// count of the scope now. A hold placed mid-run does not change it: the
// count ignores hold exclusions.

// Verification is what the check after a job's last batch found
// (Run.Verified).
type Verification struct {
	// Exact: every operation's counts agree with what is left, or every
	// total was counted by the batches themselves (ReadBack false).
	Exact bool
	// ReadBack: what is left of the delete operations' scopes was counted.
	// Without a recount (and with safety.verifyCounts AfterRecount) it is
	// not: each total is the sum of the row counts the store returned inside
	// the batches' committed transactions, every one recorded by this
	// process (the ledger vouched for the job at every slice).
	ReadBack bool
	// Message says what was compared, with the expected and found numbers
	// where they differ; no personal data.
	Message string
}

// scope is the operation's scope without the hold exclusions.
func scope(s engine.Step) datastore.Operation {
	op := s.Op
	op.Held, op.HeldPaths = nil, nil
	return op
}

// uncounted reports whether the operation was never counted (held from the
// start): there is nothing to recount or verify.
func uncounted(st *retentionv1.OperationStatus) bool {
	return st.Matched+st.Held == 0 && st.Batches == 0 && st.Deleted == 0 && st.Anonymized == 0
}

// recount adds to a job this process cannot vouch for (Ledger) the records
// its delete operations deleted in batches that were never checkpointed. An
// anonymization needs none: its batches re-run from the checkpointed cursor
// and select the records they anonymized again (the SQL drivers by cutoff
// or by the sealed keys, Redis by key pattern; none skips a record already
// masked), so each is counted once; what a store does not re-select shows
// at the verification (anonymized differs from matched).
func (r *Run) recount(ctx context.Context) error {
	job := r.Job
	var found int64
	for i, s := range r.Steps {
		st := &job.Status.Operations[i]
		// A Succeeded operation's last batch was written with its phase.
		if !s.Op.Delete || st.Phase == retentionv1.PurgeJobSucceeded || uncounted(st) {
			continue
		}
		left, err := r.Driver.Count(ctx, scope(s))
		if err != nil {
			return err
		}
		r.reached()
		// Negative: records entered the scope (or left it otherwise) since
		// the first count; nothing can be attributed, and the verification
		// at the end will say the counts are not exact.
		lost := st.Matched + st.Held - st.Deleted - left
		if lost < 0 {
			r.Ledger.differ(job.UID)
		}
		if lost <= 0 {
			continue
		}
		st.Deleted += lost
		job.Status.Deleted += lost
		metrics.RowsDeleted.WithLabelValues(job.Namespace, string(job.Spec.DatasetRef.Name), s.Op.Collection.Name).Add(float64(lost))
		found += lost
	}
	r.Ledger.counted(job.UID)
	if found > 0 {
		job.Status.Recounted += found
		r.unsaved = true
		if r.OnRecount != nil {
			r.OnRecount(found)
		}
	}
	return nil
}

// readBack reports whether the verification counts what is left of the
// delete operations' scopes: always with safety.verifyCounts Always, and
// otherwise only when a total holds records a recount attributed
// (status.recounted, written with the checkpoints, so a later process knows
// it too) or a recount in this process found the scope changed. A recount
// infers what batches never written deleted from the scope's size, which
// holds only while nobody else changes the scope; the count after the last
// batch checks it. Without a recount, every total is what the store
// reported inside each committed batch: exact as it stands, and the count
// (on PostgreSQL, one visit of every deleted row's dead index entry) would
// add about a quarter to a purge's time.
func (r *Run) readBack() bool {
	job := r.Job
	if s := job.Spec.Safety; s != nil && s.VerifyCounts == retentionv1.VerifyCountsAlways {
		return true
	}
	return job.Status.Recounted > 0 || r.Ledger.differs(job.UID)
}

// verify checks the counts after the last batch: when readBack, it counts
// what is left of every delete operation's scope and compares it with the
// counts in status; an anonymization must have anonymized what it matched.
// The result is Run.Verified.
func (r *Run) verify(ctx context.Context) error {
	job := r.Job
	readBack := r.readBack()
	var diffs []string
	for i, s := range r.Steps {
		st := &job.Status.Operations[i]
		if uncounted(st) {
			continue
		}
		if !s.Op.Delete {
			// A held operation stopped part way: fewer is expected.
			if st.Anonymized > st.Matched || st.Phase != retentionv1.OperationHeld && st.Anonymized != st.Matched {
				diffs = append(diffs, fmt.Sprintf("%s: anonymized %d of %d matched", s.Op.Collection.Name, st.Anonymized, st.Matched))
			}
			continue
		}
		if !readBack {
			continue
		}
		left, err := r.Driver.Count(ctx, scope(s))
		if err != nil {
			return err
		}
		r.reached()
		if want := st.Matched + st.Held - st.Deleted; left != want {
			diffs = append(diffs, fmt.Sprintf("%s: expected %d records left in scope (matched %d + held %d - deleted %d), found %d",
				s.Op.Collection.Name, want, st.Matched, st.Held, st.Deleted, left))
		}
	}
	if len(diffs) > 0 {
		r.Verified = &Verification{ReadBack: readBack, Message: "The counts cannot be proven exact: " + strings.Join(diffs, "; ") +
			". Records in scope were added or removed by someone else during the run, or the store re-selected records"}
		return nil
	}
	if !readBack {
		r.Verified = &Verification{Exact: true, Message: fmt.Sprintf(
			"%d deleted and %d anonymized, each the sum of the counts the store returned inside the committed batches; none had to be recounted, so what is left in scope was not counted (safety.verifyCounts: Always counts it)",
			job.Status.Deleted, job.Status.Anonymized)}
		return nil
	}
	msg := fmt.Sprintf("What is left in scope agrees with %d deleted and %d anonymized", job.Status.Deleted, job.Status.Anonymized)
	if job.Status.Recounted > 0 {
		msg += fmt.Sprintf(" (%d of the deleted found by a recount)", job.Status.Recounted)
	}
	r.Verified = &Verification{Exact: true, ReadBack: true, Message: msg}
	return nil
}
