package executor

import (
	"context"
	"fmt"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// preflight checks, on stores with foreign keys (datastore.Referrers), that
// no record outside the job is left referring to a record it deletes. One
// that is stops the job before any change: a stall
// (ReferencedOutsideErasure) naming the first such key.
func (r *Run) preflight(ctx context.Context) error {
	ref, ok := r.Driver.(datastore.Referrers)
	if !ok {
		return nil
	}
	var ops []datastore.Operation
	for _, s := range r.Steps {
		if s.BlockedBy == "" {
			ops = append(ops, s.Op)
		}
	}
	blockers, err := ref.Blockers(ctx, ops)
	if err != nil || len(blockers) == 0 {
		return err
	}
	msg := engine.DescribeBlocker(blockers[0])
	if len(blockers) > 1 {
		msg += fmt.Sprintf(" (and %d more foreign keys)", len(blockers)-1)
	}
	return outcome.Stall(retentionv1.ReasonReferencedOutsideErasure, "Stopped before any change: "+msg+"; nothing was changed")
}
