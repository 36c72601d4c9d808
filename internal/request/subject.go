package request

import (
	"context"
	"fmt"
	"slices"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/identity"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/schedule"
)

// Identities reads the subject: inline identities and the identity Secret,
// sorted and distinct per type. A value with a control character, or a
// Secret key that is not an identity type, is an outcome.Stall
// (InvalidIdentity); messages never carry the values. A missing or unmarked
// Secret is connect.ErrSecretNotFound.
func (p *Planner) Identities(ctx context.Context, dr *retentionv1.DeletionRequest) (map[string][]string, error) {
	out := map[string][]string{}
	for i, id := range dr.Spec.Subject.Identities {
		if err := identity.Check(string(id.Type), id.Value); err != nil {
			return nil, outcome.Stall(retentionv1.ReasonInvalidIdentity, fmt.Sprintf("spec.subject.identities[%d]: %v", i, err))
		}
		out[string(id.Type)] = append(out[string(id.Type)], id.Value)
	}
	if ref := dr.Spec.Subject.IdentitiesSecretRef; ref != nil {
		s, err := connect.GetSecret(ctx, p.Reader, dr.Namespace, ref.Name)
		if err != nil {
			return nil, err
		}
		for k, v := range s.Data {
			for _, value := range holds.SplitValues(string(v)) {
				if err := identity.Check(k, value); err != nil {
					return nil, outcome.Stall(retentionv1.ReasonInvalidIdentity, fmt.Sprintf("identity Secret %s, key %s: %v", ref.Name, k, err))
				}
				out[k] = append(out[k], value)
			}
		}
	}
	for k, vs := range out {
		slices.Sort(vs)
		out[k] = slices.Compact(vs)
	}
	return out, nil
}

// Timeline returns when the review window ends (notBefore) and the
// deadline, both from the creation time: the window is 48h for an account
// cancellation, none otherwise, unless spec.reviewWindow says (never for a
// minor); the deadline is spec.deadline, 30 days by default.
func Timeline(dr *retentionv1.DeletionRequest) (notBefore, deadline time.Time, err error) {
	created := dr.CreationTimestamp.Time
	window := "0h"
	if dr.Spec.Reason == retentionv1.ReasonAccountCancellation {
		window = "48h"
	}
	if dr.Spec.ReviewWindow != nil && dr.Spec.Reason != retentionv1.ReasonMinor {
		window = string(*dr.Spec.ReviewWindow)
	}
	w, err := schedule.ParseWait(window)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("reviewWindow: %w", err)
	}
	d := string(dr.Spec.Deadline)
	if d == "" {
		d = "30d"
	}
	r, err := schedule.ParseRetention(d)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("deadline: %w", err)
	}
	if notBefore, err = w.Deadline(created); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("reviewWindow: %w", err)
	}
	if deadline, err = r.Deadline(created); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("deadline: %w", err)
	}
	return notBefore, deadline, nil
}
