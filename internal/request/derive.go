package request

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/derive"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/identity"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/owned"
)

// SubjectSecretName is the request's own Secret of derived identities.
func SubjectSecretName(dr *retentionv1.DeletionRequest) string { return dr.Name + "-subject" }

// Derivation is the subject's identities after derivation.
type Derivation struct {
	// Identities are the named identities with the derived ones.
	Identities map[string][]string
	// How says, per derived type, from which types and collection it was
	// derived (no values).
	How map[string]string
	// Secret names the request's Secret that keeps the derived values (""
	// when nothing is kept).
	Secret string
	// Created: the stores were read and Secret created by this call.
	Created bool
}

// Derive returns the subject's identities with those derived from the
// stores. Once something is derived it is kept in the request's Secret
// (SubjectSecretName, owned by the request from its creation) and the stores
// are not read again: the condition IdentitiesDerived on the request says
// that the Secret exists. Nothing is derived once the erasure has been
// queued, nor when deriving cannot change the erasure.
func (p *Planner) Derive(ctx context.Context, dr *retentionv1.DeletionRequest, datasets []retentionv1.Dataset, identities map[string][]string, now time.Time) (Derivation, error) {
	key := types.NamespacedName{Namespace: dr.Namespace, Name: SubjectSecretName(dr)}
	none := Derivation{Identities: identities, How: map[string]string{}}
	stored := meta.IsStatusConditionTrue(dr.Status.Conditions, retentionv1.ConditionIdentitiesDerived)
	if !stored {
		if dr.Status.Phase == retentionv1.RequestQueued || dr.Status.Phase == retentionv1.RequestRunning {
			// Nothing was derived before the erasure started: the
			// identities stay as they were, whatever the stores hold now.
			return none, nil
		}
		needed, err := p.derivationNeeded(ctx, dr, datasets, identity.Types(identities), now)
		if err != nil || !needed {
			return none, err
		}
	}
	var s corev1.Secret
	switch err := p.Reader.Get(ctx, key, &s); {
	case err == nil:
		if !owned.By(&s, dr) {
			return Derivation{}, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Secret %s exists but is not owned by this request; Lethe keeps derived identities there", key.Name))
		}
		out, how, err := derive.MergeStored(identities, &s)
		if err != nil {
			return Derivation{}, err
		}
		return Derivation{Identities: out, How: how, Secret: key.Name}, nil
	case !apierrors.IsNotFound(err):
		return Derivation{}, err
	case stored:
		return Derivation{}, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Secret %s with the identities derived for this request is gone; recreate the request", key.Name))
	}

	out, how, _, err := p.stores().Derive(ctx, datasets, identities, derive.RequestBounds)
	if err != nil {
		return Derivation{}, err
	}
	if len(how) == 0 {
		return Derivation{Identities: out, How: how}, nil // nothing derived: nothing to keep
	}
	// Owned by the request from its creation: removed with it (garbage
	// collector) and by ttlSecondsAfterFinished.
	s = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: dr.Namespace, Name: key.Name, Labels: map[string]string{retentionv1.LabelDeletionRequest: dr.Name, retentionv1.LabelSecretConsent: "true"},
			OwnerReferences: []metav1.OwnerReference{owned.Reference(dr, "DeletionRequest")}},
		Data: map[string][]byte{},
	}
	for t := range how {
		s.Data[t] = []byte(strings.Join(out[t], "\n"))
	}
	b, err := json.Marshal(how)
	if err != nil {
		return Derivation{}, err
	}
	s.Annotations = map[string]string{derive.AnnotationDerivedFrom: string(b)}
	if err := p.Client.Create(ctx, &s); err != nil {
		return Derivation{}, fmt.Errorf("keeping derived identities in Secret %s: %w", key.Name, err)
	}
	return Derivation{Identities: out, How: how, Secret: key.Name, Created: true}, nil
}

// derivationNeeded says whether reading the stores for more identities can
// change the erasure: a derivable type reaches a collection the named types
// do not, or is held by a collection other than the linking ones it would be
// read from (rows that carry only that identity), or a LegalHold on subjects
// may name the subject by it. Otherwise the stores are not read and nothing
// is kept.
func (p *Planner) derivationNeeded(ctx context.Context, dr *retentionv1.DeletionRequest, datasets []retentionv1.Dataset, given map[string]bool, now time.Time) (bool, error) {
	how := derive.Derivable(datasets, given)
	if len(how) == 0 {
		return false, nil
	}
	var list retentionv1.LegalHoldList
	if err := p.Client.List(ctx, &list, client.InNamespace(dr.Namespace)); err != nil {
		return false, err
	}
	for i := range list.Items {
		if holds.HasSubjects(&list.Items[i]) && holds.Phase(&list.Items[i], now) == retentionv1.HoldActive {
			return true, nil
		}
	}
	all := maps.Clone(given)
	for t := range how {
		all[t] = true
	}
	planGiven, _, err1 := Plan(dr, datasets, given, nil)
	planAll, _, err2 := Plan(dr, datasets, all, how)
	if err1 != nil || err2 != nil || len(planGiven) != len(planAll) {
		return true, nil
	}
	links := map[*retentionv1.Collection]bool{}
	for _, l := range derive.Links(datasets) {
		links[l.Collection] = true
	}
	for i := range datasets {
		for ci := range datasets[i].Spec.Collections {
			c := &datasets[i].Spec.Collections[ci]
			if links[c] {
				continue
			}
			for _, id := range c.Identities {
				if how[string(id.Type)] != "" {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// LedgerIdentities are the request's identities with the derived ones kept
// in its Secret, so a restored backup can be checked for records keyed by a
// derived identity too (the ledger holds keyed digests only).
func (p *Planner) LedgerIdentities(ctx context.Context, dr *retentionv1.DeletionRequest) (map[string][]string, error) {
	identities, err := p.Identities(ctx, dr)
	if err != nil {
		return nil, err
	}
	if !meta.IsStatusConditionTrue(dr.Status.Conditions, retentionv1.ConditionIdentitiesDerived) {
		return identities, nil
	}
	var s corev1.Secret
	switch err := p.Reader.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: SubjectSecretName(dr)}, &s); {
	case apierrors.IsNotFound(err):
		return identities, nil
	case err != nil:
		return nil, err
	case !owned.By(&s, dr):
		return identities, nil
	}
	out, _, err := derive.MergeStored(identities, &s)
	return out, err
}
