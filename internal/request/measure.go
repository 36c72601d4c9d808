package request

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/erasure"
)

// Preflight proves, before the first change, that the erasure can run to
// the end, on every Dataset whose store has foreign keys (engine.Preflight:
// no record outside the erasure left referring to one it deletes, with the
// whenReferenced fallbacks, which it applies to steps). It reads the stores
// only, and returns what stops the erasure ("" when nothing does).
func (p *Planner) Preflight(ctx context.Context, steps []erasure.Step, identities map[string][]string) (string, error) {
	for si := range steps {
		s := &steps[si]
		store, d, err := p.storeOf(ctx, s.Dataset)
		if err != nil {
			return "", err
		}
		ref, ok := d.(datastore.Referrers)
		if !ok {
			continue
		}
		if msg, err := engine.Preflight(ctx, ref, s, store.Spec.Type, identities); err != nil || msg != "" {
			return msg, err
		}
	}
	return "", nil
}

// Count counts the subject's records in each planned collection, aligned
// with steps[i].Ops[j].
func (p *Planner) Count(ctx context.Context, steps []erasure.Step, identities map[string][]string) ([][]int64, error) {
	out := make([][]int64, len(steps))
	for si, s := range steps {
		n, err := p.countStep(ctx, s, identities)
		if err != nil {
			return nil, err
		}
		out[si] = n
	}
	return out, nil
}

// countStep counts the records of these identities in each of one Dataset's
// planned collections.
func (p *Planner) countStep(ctx context.Context, s erasure.Step, identities map[string][]string) ([]int64, error) {
	store, d, err := p.storeOf(ctx, s.Dataset)
	if err != nil {
		return nil, err
	}
	out := make([]int64, 0, len(s.Ops))
	for _, op := range s.Ops {
		o, err := engine.SubjectOperation(s.Dataset, store.Spec.Type, op, identities)
		if err != nil {
			return nil, err
		}
		n, err := d.Count(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("counting in %s/%s: %w", s.Dataset.Name, op.Collection, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// Verifier counts once for all the requests a PurgeJob erased
// (coalesce.Coalescer): verify runs over the union of their identities, and
// ok is false for a job it does not know.
type Verifier interface {
	Verified(namespace, job string, verify func(union map[string][]string) ([]int64, error)) (left []int64, ok bool, err error)
}

// Verify queries every planned collection again for the subject: a Delete
// collection must hold no matching record, and an Anonymize collection no
// record still matching an identity field. Requests erased by one PurgeJob
// are verified together (v: one count per collection over all their
// subjects); only a Dataset where that finds something is counted for this
// subject alone. It describes the first collection that fails ("" when none
// does).
func (p *Planner) Verify(ctx context.Context, steps []erasure.Step, jobs []*retentionv1.PurgeJob, identities map[string][]string, v Verifier) (string, error) {
	for _, s := range steps {
		if job := JobFor(jobs, s.Dataset.Name); job != nil {
			left, ok, err := v.Verified(job.Namespace, job.Name, func(union map[string][]string) ([]int64, error) {
				return p.countStep(ctx, s, union)
			})
			if err != nil {
				return "", err
			}
			if ok && !slices.ContainsFunc(left, func(n int64) bool { return n > 0 }) {
				continue
			}
		}
		left, err := p.countStep(ctx, s, identities)
		if err != nil {
			return "", err
		}
		for oi, op := range s.Ops {
			if left[oi] > 0 {
				return fmt.Sprintf("Verification failed: %d records in collection %s of Dataset %s still identify the subject after erasure", left[oi], op.Collection, s.Dataset.Name), nil
			}
		}
	}
	return "", nil
}

// JobFor returns the PurgeJob of a Dataset among jobs (nil when none).
func JobFor(jobs []*retentionv1.PurgeJob, dataset string) *retentionv1.PurgeJob {
	for _, j := range jobs {
		if string(j.Spec.DatasetRef.Name) == dataset {
			return j
		}
	}
	return nil
}

// storeOf reads a Dataset's DataStore and opens its driver.
func (p *Planner) storeOf(ctx context.Context, ds *retentionv1.Dataset) (*retentionv1.DataStore, datastore.Driver, error) {
	var store retentionv1.DataStore
	if err := p.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: string(ds.Spec.DataStoreRef.Name)}, &store); err != nil {
		return nil, nil, err
	}
	d, err := p.Drivers.Get(ctx, &store)
	if err != nil {
		return nil, nil, err
	}
	return &store, d, nil
}
