package request

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/identity"
)

// Held is what the active LegalHolds do to a request.
type Held struct {
	// By names the holds that block the request, sorted.
	By []string
	// Unreadable names a hold whose subjects cannot be read (a missing or
	// unmarked Secret, an invalid value), and Why says why: it may hold
	// this subject, and holds win, so the request waits. By is then not
	// known.
	Unreadable string
	Why        error
}

// Holds checks the active holds of the request's namespace against its plan
// (plan, over datasets): a hold naming one of the subject's identities
// (named or derived, the request's or the hold's), or keeping a whole
// planned collection, blocks the request until it ends.
func (p *Planner) Holds(ctx context.Context, namespace string, plan []retentionv1.PlannedCollection, datasets []retentionv1.Dataset, identities map[string][]string, now time.Time) (Held, error) {
	var list retentionv1.LegalHoldList
	if err := p.Client.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return Held{}, err
	}
	var by []string
	for i := range list.Items {
		h := &list.Items[i]
		if holds.Phase(h, now) != retentionv1.HoldActive {
			continue
		}
		var subjects map[string][]string // read once per hold, when needed
		for _, pc := range plan {
			ds := dataset(datasets, pc.Dataset)
			c, ok := engine.Collection(ds, retentionv1.Identifier(pc.Collection))
			if !ok || !holds.Applies(h, ds.Name, c) {
				continue
			}
			if !holds.HasSubjects(h) {
				by = append(by, h.Name)
				break
			}
			if subjects == nil {
				var err error
				subjects, err = holds.Subjects(ctx, p.Reader, h)
				if errors.Is(err, connect.ErrSecretNotFound) || errors.Is(err, holds.ErrInvalidSubject) {
					return Held{Unreadable: h.Name, Why: err}, nil
				}
				if err != nil {
					return Held{}, fmt.Errorf("LegalHold %q: %w", h.Name, err)
				}
				if !holds.Derivation(h) {
					return Held{}, fmt.Errorf("LegalHold %q: %w", h.Name, holds.ErrNotDerived)
				}
			}
			if identity.Shared(subjects, identities) {
				by = append(by, h.Name)
				break
			}
		}
	}
	slices.Sort(by)
	return Held{By: by}, nil
}
