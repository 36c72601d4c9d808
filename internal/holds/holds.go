// Package holds decides what LegalHolds keep. A hold is active until it is
// released or expires; it applies to a collection of a Dataset when every
// scope it declares (datasets, collections, categories) matches. A hold with
// subjects keeps only those subjects' records; a hold without subjects keeps
// every record in its scope.
//
// A hold follows the person: the LegalHold controller derives the held
// subjects' further identities from the stores (a user_id's email through a
// users table) and keeps them in the hold's own Secret <hold>-derived, owned
// by the hold. Subjects, and so For, include them.
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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
)

// Phase returns Active, Expired or Released at now.
func Phase(h *retentionv1.LegalHold, now time.Time) retentionv1.LegalHoldPhase {
	switch {
	case h.Spec.Released:
		return retentionv1.HoldReleased
	case h.Spec.ExpiresAt != nil && !now.Before(h.Spec.ExpiresAt.Time):
		return retentionv1.HoldExpired
	default:
		return retentionv1.HoldActive
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

// ErrNotDerived: an active hold on subjects that the LegalHold controller
// has not yet looked at for its current generation (it was just created or
// changed). Its derived identities are unknown, so nothing in its scope may
// run yet: it would hold only the identities the hold names.
var ErrNotDerived = errors.New("the hold's derived identities are not established yet")

// Derivation reports whether the LegalHold controller has derived (or tried
// to derive) the hold's further identities for its current generation.
func Derivation(h *retentionv1.LegalHold) bool {
	c := meta.FindStatusCondition(h.Status.Conditions, retentionv1.ConditionIdentitiesDerived)
	return c != nil && c.ObservedGeneration == h.Generation
}

// LabelLegalHold on a Secret names the LegalHold whose derived identities it
// keeps.
const LabelLegalHold = "retention.lethe.dev/legal-hold"

// DerivedSecretName is the hold's own Secret of derived identities.
func DerivedSecretName(h *retentionv1.LegalHold) string { return h.Name + "-derived" }

// Subjects returns the held identities (type → values): the named ones
// (Named) and those derived from the stores, kept in the hold's own Secret
// (Derived). Values are sorted and distinct.
func Subjects(ctx context.Context, r client.Reader, h *retentionv1.LegalHold) (map[string][]string, error) {
	out, err := Named(ctx, r, h)
	if err != nil {
		return nil, err
	}
	derived, err := Derived(ctx, r, h)
	if err != nil {
		return nil, err
	}
	for t, vs := range derived {
		out[t] = append(out[t], vs...)
	}
	for t, vs := range out {
		slices.Sort(vs)
		out[t] = slices.Compact(vs)
	}
	return out, nil
}

// Derived returns the identities derived for the hold's subjects, from its
// own Secret (DerivedSecretName). A Secret of that name that the hold does
// not own is ignored; none yet means nothing derived yet.
func Derived(ctx context.Context, r client.Reader, h *retentionv1.LegalHold) (map[string][]string, error) {
	var s corev1.Secret
	switch err := r.Get(ctx, types.NamespacedName{Namespace: h.Namespace, Name: DerivedSecretName(h)}, &s); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading Secret %q: %w", DerivedSecretName(h), err)
	}
	if !OwnedBy(&s, h) {
		return nil, nil
	}
	out := map[string][]string{}
	for k, v := range s.Data {
		if vs := SplitValues(string(v)); len(vs) > 0 {
			out[k] = vs
		}
	}
	return out, nil
}

// OwnedBy reports whether the Secret is owned by the hold (by UID).
func OwnedBy(s *corev1.Secret, h *retentionv1.LegalHold) bool {
	for _, ref := range s.OwnerReferences {
		if ref.UID == h.UID && h.UID != "" {
			return true
		}
	}
	return false
}

// Named returns the identities the hold names (type → values), inline and
// in the subjects Secret if there is one. Secret values are
// newline-separated.
func Named(ctx context.Context, r client.Reader, h *retentionv1.LegalHold) (map[string][]string, error) {
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

// For computes the effect of holds on one collection at now. It fails with
// ErrNotDerived while an active hold on subjects that applies is new to the
// LegalHold controller.
func For(ctx context.Context, r client.Reader, all []retentionv1.LegalHold, dataset string, c *retentionv1.Collection, now time.Time) (Effect, error) {
	var e Effect
	for i := range all {
		h := &all[i]
		if Phase(h, now) != retentionv1.HoldActive || !Applies(h, dataset, c) {
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
		if !Derivation(h) {
			return e, fmt.Errorf("LegalHold %q: %w", h.Name, ErrNotDerived)
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
