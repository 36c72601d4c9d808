package executor

import (
	"context"
	"fmt"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// Released reports whether a human let a job past its safety limits (the
// annotation retention.lethe.dev/release-safety-limit=true).
func Released(job *retentionv1.PurgeJob) bool {
	return job.Annotations[retentionv1.AnnotationReleaseSafetyLimit] == "true"
}

// count counts every operation that is not held into status (Matched, Held)
// and checks the safety limits: exceeding one is a stall
// (SafetyLimitExceeded) unless the job is Released.
func (r *Run) count(ctx context.Context) error {
	job := r.Job
	var total, held int64
	for i, s := range r.Steps {
		st := &job.Status.Operations[i]
		if s.BlockedBy != "" {
			st.Phase = retentionv1.OperationHeld
			continue
		}
		n, err := r.Driver.Count(ctx, s.Op)
		if err != nil {
			return err
		}
		r.reached()
		st.Matched = n
		total += n
		if st.Held, err = r.heldCount(ctx, s, n); err != nil {
			return err
		}
		held += st.Held
		if msg, err := r.overPercent(ctx, s, n); err != nil {
			return err
		} else if msg != "" && !Released(job) {
			return outcome.Stall(retentionv1.ReasonSafetyLimitExceeded, msg)
		}
	}
	job.Status.Matched = total
	job.Status.Held = held
	if lim := job.Spec.Safety; lim != nil && lim.MaxRows != nil && total > *lim.MaxRows && !Released(job) {
		return outcome.Stall(retentionv1.ReasonSafetyLimitExceeded, fmt.Sprintf(
			"would touch %d records, more than safety.maxRows %d; nothing was changed. Set annotation %s=true on this PurgeJob to let it proceed", total, *lim.MaxRows, retentionv1.AnnotationReleaseSafetyLimit))
	}
	return nil
}

// heldCount is how many records the holds' held subjects keep out of one
// operation: its count without them excluded, minus matched (its count with
// them). Operations no hold reaches cost no second count.
func (r *Run) heldCount(ctx context.Context, s engine.Step, matched int64) (int64, error) {
	if len(s.Op.Held) == 0 {
		return 0, nil
	}
	op := s.Op
	op.Held, op.HeldPaths = nil, nil
	all, err := r.Driver.Count(ctx, op)
	if err != nil {
		return 0, err
	}
	return max(all-matched, 0), nil
}

// overPercent checks safety.maxPercent for one operation: it returns why the
// limit stops the job, or "".
func (r *Run) overPercent(ctx context.Context, s engine.Step, matched int64) (string, error) {
	lim := r.Job.Spec.Safety
	if lim == nil || lim.MaxPercent == nil || matched == 0 {
		return "", nil
	}
	total, err := r.Driver.Total(ctx, s.Op.Collection)
	if err != nil {
		return "", err
	}
	if total > 0 && matched*100 > total*int64(*lim.MaxPercent) {
		return fmt.Sprintf("would touch %d of %d records (%d%%) of collection %s, more than safety.maxPercent %d%%; nothing was changed. Set annotation %s=true on this PurgeJob to let it proceed",
			matched, total, matched*100/total, s.Op.Collection.Name, *lim.MaxPercent, retentionv1.AnnotationReleaseSafetyLimit), nil
	}
	return "", nil
}
