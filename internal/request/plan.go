package request

import (
	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/erasure"
)

// Plan is the erasure plan of the request (internal/erasure: every
// collection that holds one of the identity types itself or through an
// owning path, children first) and its steps, one per Dataset. derivedFrom
// says which types were (or may be) derived, and how, for plan[].via.
// Fallbacks an earlier preflight decided (dr.Status.Plan[].fallback) are
// kept; the counts of the earlier plan are not (see KeepCounts).
func Plan(dr *retentionv1.DeletionRequest, datasets []retentionv1.Dataset, have map[string]bool, derivedFrom map[string]string) ([]retentionv1.PlannedCollection, []erasure.Step, error) {
	steps, err := erasure.Plan(datasets, erasure.Request{Types: have, DerivedFrom: derivedFrom, Overrides: dr.Spec.Overrides})
	if err != nil {
		return nil, nil, err
	}
	var plan []retentionv1.PlannedCollection
	for si := range steps {
		s := &steps[si]
		for oi := range s.Ops {
			for _, old := range dr.Status.Plan {
				if old.Fallback == "" || old.Dataset != s.Dataset.Name || old.Collection != string(s.Ops[oi].Collection) {
					continue
				}
				if err := s.FallBack(oi, old.Fallback); err != nil {
					return nil, nil, err
				}
			}
		}
		plan = append(plan, s.Plan...)
	}
	return plan, steps, nil
}

// KeepCounts copies the counts taken before erasure (Matched) from the old
// plan to the same collections of the new one.
func KeepCounts(old, plan []retentionv1.PlannedCollection) {
	for i := range plan {
		for _, o := range old {
			if o.Dataset == plan[i].Dataset && o.Collection == plan[i].Collection {
				plan[i].Matched = o.Matched
			}
		}
	}
}
