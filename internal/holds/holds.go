// Package holds decides what LegalHolds keep. A hold is active until it is
// released or expires; it applies to a collection of a Dataset when every
// scope it declares (datasets, collections, categories) matches. A hold with
// subjects keeps only those subjects' records; a hold without subjects keeps
// every record in its scope.
package holds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
)

// Phases of a hold.
const (
	PhaseActive   = "Active"
	PhaseExpired  = "Expired"
	PhaseReleased = "Released"
)

// Phase returns Active, Expired or Released at now.
func Phase(h *retentionv1.LegalHold, now time.Time) string {
	switch {
	case h.Spec.Released:
		return PhaseReleased
	case h.Spec.ExpiresAt != nil && !now.Before(h.Spec.ExpiresAt.Time):
		return PhaseExpired
	default:
		return PhaseActive
	}
}

// Applies reports whether an active-or-not hold's scope covers a collection.
func Applies(h *retentionv1.LegalHold, dataset string, c *retentionv1.Collection) bool {
	s := h.Spec
	if len(s.Datasets) > 0 && !slices.Contains(s.Datasets, retentionv1.ObjectName(dataset)) {
		return false
	}
	if len(s.Collections) > 0 && !slices.Contains(s.Collections, c.Name) {
		return false
	}
	if len(s.Categories) > 0 && !hasCategory(c, s.Categories) {
		return false
	}
	return true
}

// HasSubjects reports whether the hold is limited to named subjects.
func HasSubjects(h *retentionv1.LegalHold) bool {
	return len(h.Spec.Subjects) > 0 || h.Spec.SubjectsSecretRef != nil
}

// ErrInvalidSubject: a held identity cannot be used in a statement (it
// holds a NUL or other control character). The hold's status says so, and
// work in its scope stops rather than run without it.
var ErrInvalidSubject = errors.New("invalid held identity")

// Subjects returns the held identities (type → values), reading the
// subjects Secret if there is one. Secret values are newline-separated. A
// value with a control character is an ErrInvalidSubject naming the Secret
// and key, never the value.
func Subjects(ctx context.Context, r client.Reader, h *retentionv1.LegalHold) (map[string][]string, error) {
	out := map[string][]string{}
	for i, s := range h.Spec.Subjects {
		if hasControl(s.Value) {
			return nil, fmt.Errorf("%w: subjects[%d]: a %s value contains a NUL or other control character", ErrInvalidSubject, i, s.Type)
		}
		out[string(s.Type)] = append(out[string(s.Type)], s.Value)
	}
	if ref := h.Spec.SubjectsSecretRef; ref != nil {
		secret, err := connect.GetSecret(ctx, r, h.Namespace, ref.Name)
		if err != nil {
			return nil, err
		}
		for k, v := range secret.Data {
			for _, value := range SplitValues(string(v)) {
				if hasControl(value) {
					return nil, fmt.Errorf("%w: Secret %s, key %s: a value contains a NUL or other control character", ErrInvalidSubject, ref.Name, k)
				}
				out[k] = append(out[k], value)
			}
		}
	}
	return out, nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0 || !utf8.ValidString(s)
}

// SplitValues splits a newline-separated list, trimming blanks.
func SplitValues(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if v := strings.TrimSpace(line); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Effect is what the active holds mean for one collection of a Dataset.
type Effect struct {
	// Blocked names the hold that keeps the whole collection, if any.
	Blocked string
	// Held identities (type → values) to exclude inside statements.
	Held map[string][]string
	// By names every hold that had an effect.
	By []string
}

// For computes the effect of holds on one collection at now.
func For(ctx context.Context, r client.Reader, all []retentionv1.LegalHold, dataset string, c *retentionv1.Collection, now time.Time) (Effect, error) {
	var e Effect
	for i := range all {
		h := &all[i]
		if Phase(h, now) != PhaseActive || !Applies(h, dataset, c) {
			continue
		}
		e.By = append(e.By, h.Name)
		if !HasSubjects(h) {
			if e.Blocked == "" {
				e.Blocked = h.Name
			}
			continue
		}
		subjects, err := Subjects(ctx, r, h)
		if err != nil {
			return e, fmt.Errorf("LegalHold %q: %w", h.Name, err)
		}
		if e.Held == nil {
			e.Held = map[string][]string{}
		}
		for t, vs := range subjects {
			e.Held[t] = append(e.Held[t], vs...)
		}
	}
	return e, nil
}

func hasCategory(c *retentionv1.Collection, want []retentionv1.Category) bool {
	for _, w := range want {
		if slices.Contains(c.Categories, w) {
			return true
		}
		for _, f := range c.Fields {
			if slices.Contains(f.Categories, w) {
				return true
			}
		}
	}
	return false
}
