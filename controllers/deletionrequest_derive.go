package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/mask"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// Identity derivation: a SQL collection that holds two identity types (users
// with user_id and email) links them, so a request naming only the email
// also reaches what is keyed by the user_id (a Redis pattern
// session:{user_id}:*, a table with only a user_id column). The derived
// values are personal data: they live only in the request's own Secret
// <request>-subject (owned by the request, removed with it and by
// ttlSecondsAfterFinished), never in status, events, logs or metrics.
const (

	// maxDerivedValues bounds the values derived for one identity type: more
	// means the identity the request names is shared (a family's phone) and
	// erasing them all would erase other people.
	maxDerivedValues = 8
	// maxDerivationRounds bounds the chain email → user_id → account_id….
	maxDerivationRounds = 4

	// annotationDerivedFrom on the subject Secret records, per derived type,
	// from which types and collection it was derived (no values).
	annotationDerivedFrom = "retention.lethe.dev/derived-from"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;delete

// subjectSecretName is the request's own Secret of derived identities.
func subjectSecretName(dr *retentionv1.DeletionRequest) string { return dr.Name + "-subject" }

// linking is a collection that links identity types: a SQL table with two or
// more identity fields.
type linking struct {
	ds *retentionv1.Dataset
	c  *retentionv1.Collection
}

func linkingCollections(datasets []retentionv1.Dataset) []linking {
	var out []linking
	for i := range datasets {
		ds := &datasets[i]
		for ci := range ds.Spec.Collections {
			c := &ds.Spec.Collections[ci]
			if c.KeyPattern != "" || c.Prefix != "" {
				continue
			}
			n := 0
			for _, id := range c.Identities {
				if id.Field != "" {
					n++
				}
			}
			if n >= 2 {
				out = append(out, linking{ds: ds, c: c})
			}
		}
	}
	return out
}

// derivationRounds runs the derivation order on types only: each round, every
// type not yet known that a linking collection holds beside a known type
// becomes known, from those types via that collection; a type is derived
// once, in the first round that reaches it (known types are never widened,
// so a shared phone number cannot pull in another person's user_id). lookup,
// when set, reads the values and may leave a type underived; commit, when
// set, runs after each round that found something, so the values found
// become the next round's inputs.
func derivationRounds(links []linking, known map[string]bool, lookup func(l linking, from []string, want string) (bool, error), commit func()) (map[string]string, error) {
	known = maps.Clone(known)
	how := map[string]string{}
	for round := 0; round < maxDerivationRounds; round++ {
		found := map[string]string{}
		for _, l := range links {
			var from []string
			for _, id := range l.c.Identities {
				if id.Field != "" && known[string(id.Type)] && !slices.Contains(from, string(id.Type)) {
					from = append(from, string(id.Type))
				}
			}
			if len(from) == 0 {
				continue
			}
			slices.Sort(from)
			for _, id := range l.c.Identities {
				t := string(id.Type)
				if id.Field == "" || known[t] {
					continue
				}
				ok := true
				if lookup != nil {
					var err error
					if ok, err = lookup(l, from, t); err != nil {
						return nil, err
					}
				}
				if ok && found[t] == "" {
					found[t] = strings.Join(from, ", ") + " via " + string(l.c.Name)
				}
			}
		}
		if len(found) == 0 {
			break
		}
		for t, h := range found {
			known[t] = true
			how[t] = h
		}
		if commit != nil {
			commit()
		}
	}
	return how, nil
}

// derivable is what planning shows before the stores are read: which
// identity types the given ones may lead to, and how.
func derivable(datasets []retentionv1.Dataset, given map[string]bool) map[string]string {
	how, _ := derivationRounds(linkingCollections(datasets), given, nil, nil)
	return how
}

// derive returns the subject's identities with those derived from the
// stores, and how each derived type was found. Once something is derived it
// is kept in the request's Secret and the stores are not read again, so
// verification, the receipt and a restarted manager see the same identities
// after the erasure has deleted the records they were read from. Nothing is
// derived once the erasure has been queued.
func (r *DeletionRequestReconciler) derive(ctx context.Context, dr *retentionv1.DeletionRequest, datasets []retentionv1.Dataset, identities map[string][]string) (map[string][]string, map[string]string, error) {
	key := types.NamespacedName{Namespace: dr.Namespace, Name: subjectSecretName(dr)}
	stored := meta.IsStatusConditionTrue(dr.Status.Conditions, retentionv1.ConditionIdentitiesDerived)
	if !stored {
		if dr.Status.Phase == retentionv1.RequestQueued || dr.Status.Phase == retentionv1.RequestRunning {
			// Nothing was derived before the erasure started: the
			// identities stay as they were, whatever the stores hold now.
			return identities, map[string]string{}, nil
		}
		needed, err := r.derivationNeeded(ctx, dr, datasets, identityTypes(identities))
		if err != nil || !needed {
			return identities, map[string]string{}, err
		}
	}
	var s corev1.Secret
	switch err := r.APIReader.Get(ctx, key, &s); {
	case err == nil:
		if !ownedBy(&s, dr) {
			return nil, nil, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Secret %s exists but is not owned by this request; Lethe keeps derived identities there", key.Name))
		}
		out, how, err := mergeStored(identities, &s)
		if err == nil {
			markDerived(dr, how, key.Name)
		}
		return out, how, err
	case !apierrors.IsNotFound(err):
		return nil, nil, err
	case stored:
		return nil, nil, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Secret %s with the identities derived for this request is gone; recreate the request", key.Name))
	}

	out, how, _, err := r.deriveFromStores(ctx, datasets, identities, requestBounds)
	if err != nil {
		return nil, nil, err
	}

	if len(how) == 0 {
		return out, how, nil // nothing derived: nothing to keep
	}
	// Owned by the request from its creation: removed with it (garbage
	// collector) and by ttlSecondsAfterFinished (expire).
	s = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: dr.Namespace, Name: key.Name, Labels: map[string]string{retentionv1.LabelDeletionRequest: dr.Name, retentionv1.LabelSecretConsent: "true"},
			OwnerReferences: []metav1.OwnerReference{ownerReference(dr, "DeletionRequest")}},
		Data: map[string][]byte{},
	}
	for t := range how {
		s.Data[t] = []byte(strings.Join(out[t], "\n"))
	}
	b, err := json.Marshal(how)
	if err != nil {
		return nil, nil, err
	}
	s.Annotations = map[string]string{annotationDerivedFrom: string(b)}
	if err := r.Create(ctx, &s); err != nil {
		return nil, nil, fmt.Errorf("keeping derived identities in Secret %s: %w", key.Name, err)
	}
	kinds := slices.Sorted(maps.Keys(how))
	markDerived(dr, how, key.Name)
	r.Recorder.Eventf(dr, nil, "Normal", retentionv1.ReasonIdentitiesDerived, "Derive", "Derived identity types %s from the stores; kept in Secret %s", strings.Join(kinds, ", "), key.Name)
	log.FromContext(ctx).Info("Derived identities", "subject", digest.Short(dr.Status.SubjectDigest), "types", kinds)
	return out, how, nil
}

// derivationBounds say how many values of one identity type a derivation
// keeps, and what more means.
type derivationBounds struct {
	// max values of one type are kept.
	max int
	// stop: more than max values of one type stop the derivation
	// (DerivationLimit). Without stop, the first max are kept and the type
	// is reported as truncated.
	stop bool
}

// requestBounds: a request erases what it derives, so an identity shared by
// more than maxDerivedValues subjects stops it (erasing them all would erase
// other people).
var requestBounds = derivationBounds{max: maxDerivedValues, stop: true}

// deriveFromStores reads the subject's further identities from the linking
// collections of datasets, round by round (derivationRounds): one read-only
// lookup per linking collection, keeping only values every record of which
// is the subject's (datastore.IdentityLookup) and never a placeholder that
// anonymization writes. It returns the given identities with the derived
// ones, how each derived type was found, and the types cut at bounds.max
// (only without bounds.stop). DeletionRequests and LegalHolds both derive
// here; the values it returns are personal data.
func (r *Deps) deriveFromStores(ctx context.Context, datasets []retentionv1.Dataset, identities map[string][]string, bounds derivationBounds) (map[string][]string, map[string]string, []string, error) {
	out := map[string][]string{}
	known := map[string]bool{}
	for t, vs := range identities {
		if len(vs) > 0 {
			out[t] = slices.Clone(vs)
			known[t] = true
		}
	}
	drivers := map[string]datastore.Driver{}
	storeTypes := map[string]retentionv1.DataStoreType{}
	derived := map[string][]string{}
	truncated := map[string]bool{}
	lookup := func(l linking, from []string, want string) (bool, error) {
		d, ok := drivers[l.ds.Name]
		if !ok {
			var store retentionv1.DataStore
			if err := r.Get(ctx, types.NamespacedName{Namespace: l.ds.Namespace, Name: string(l.ds.Spec.DataStoreRef.Name)}, &store); err != nil {
				return false, fmt.Errorf("deriving identities: DataStore of Dataset %s: %w", l.ds.Name, err)
			}
			var err error
			if d, err = r.Pool.Get(ctx, &store); err != nil {
				return false, fmt.Errorf("deriving identities: opening DataStore %s: %w", store.Name, err)
			}
			drivers[l.ds.Name], storeTypes[l.ds.Name] = d, store.Spec.Type
		}
		lk, ok := d.(datastore.IdentityLookup)
		if !ok {
			return false, nil // the store cannot look identities up
		}
		dc, err := engine.ToDriver(storeTypes[l.ds.Name], l.c)
		if err != nil {
			return false, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Deriving identities from collection %s of Dataset %s: %v", l.c.Name, l.ds.Name, err))
		}
		in := map[string][]string{}
		for _, t := range from {
			in[t] = out[t]
		}
		vals, err := lk.Lookup(ctx, dc, in, want, bounds.max+1)
		switch {
		case errors.Is(err, datastore.ErrInvalid) || errors.Is(err, datastore.ErrNotFound):
			return false, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Deriving %s from collection %s of Dataset %s: %v", want, l.c.Name, l.ds.Name, err))
		case err != nil:
			return false, fmt.Errorf("deriving %s from collection %s of Dataset %s: %w", want, l.c.Name, l.ds.Name, err)
		}
		placeholder, err := r.placeholders(ctx, l.ds, l.c, dc.IdentityFields[want])
		if err != nil {
			return false, err
		}
		if !slices.ContainsFunc(vals, func(v string) bool { return !placeholder(v) }) {
			return false, nil
		}
		merged, over := mergeDerived(derived[want], vals, placeholder, bounds.max)
		if over && bounds.stop {
			return false, outcome.Stall(retentionv1.ReasonDerivationLimit, fmt.Sprintf("Deriving identities found more than %d values of type %s (from %s via collection %s of Dataset %s): the identity the request names is shared by several subjects; name the subject's identities explicitly in a new request",
				bounds.max, want, strings.Join(from, ", "), l.c.Name, l.ds.Name))
		}
		if over {
			truncated[want] = true
		}
		derived[want] = merged
		return true, nil
	}
	// Values found in a round become the next round's inputs.
	commit := func() {
		for t, vs := range derived {
			out[t] = vs
		}
	}
	how, err := derivationRounds(linkingCollections(datasets), known, lookup, commit)
	if err != nil {
		return nil, nil, nil, err
	}
	return out, how, slices.Sorted(maps.Keys(truncated)), nil
}

// mergeDerived adds the values one lookup found for a type to those already
// derived for it: placeholders dropped, sorted, distinct, at most max of
// them (the first, in order); over says that there were more.
func mergeDerived(have, found []string, placeholder func(string) bool, max int) (merged []string, over bool) {
	merged = append(slices.Clone(have), slices.DeleteFunc(slices.Clone(found), placeholder)...)
	slices.Sort(merged)
	merged = slices.Compact(merged)
	if len(merged) > max {
		return merged[:max], true
	}
	return merged, false
}

// placeholders returns a test for values that anonymization wrote rather
// than a subject: a value that an idempotent strategy of the field (the
// Dataset's, or a retention rule's) leaves unchanged, such as a redacted
// email or a fixed replacement. Such values stand in many records, of many
// people, and are never derived.
func (r *Deps) placeholders(ctx context.Context, ds *retentionv1.Dataset, c *retentionv1.Collection, field string) (func(string) bool, error) {
	var strategies []mask.Strategy
	add := func(a retentionv1.Anonymization) {
		if a.Strategy != retentionv1.StrategyHMAC && a.Strategy != retentionv1.StrategyNull {
			strategies = append(strategies, engine.Strategy(a, nil))
		}
	}
	for _, f := range c.Fields {
		if string(f.Name) == field && f.Anonymize != nil {
			add(*f.Anonymize)
		}
	}
	var policies retentionv1.RetentionPolicyList
	if err := r.List(ctx, &policies, client.InNamespace(ds.Namespace)); err != nil {
		return nil, err
	}
	for _, p := range policies.Items {
		if string(p.Spec.DatasetRef.Name) != ds.Name {
			continue
		}
		for _, rule := range p.Spec.Rules {
			selected, err := engine.SelectCollections(ds, rule)
			if err != nil || !slices.ContainsFunc(selected, func(s *retentionv1.Collection) bool { return s.Name == c.Name }) {
				continue
			}
			for _, f := range rule.Fields {
				if string(f.Name) == field {
					add(f.Anonymization)
				}
			}
		}
	}
	return placeholderOf(strategies), nil
}

// placeholderOf reports a value that one of the strategies leaves unchanged.
func placeholderOf(strategies []mask.Strategy) func(string) bool {
	return func(v string) bool {
		for _, s := range strategies {
			for _, t := range []mask.ColumnType{mask.Text, mask.IP} {
				if out, err := s.Apply(v, mask.Column{Type: t}); err == nil && fmt.Sprint(out) == v {
					return true
				}
			}
		}
		return false
	}
}

// markDerived records, without values, that identities were derived and
// where they are kept: later passes (verification, the ledger, a restarted
// manager) read that Secret only when this condition says it exists.
func markDerived(dr *retentionv1.DeletionRequest, how map[string]string, secret string) {
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(how)) {
		parts = append(parts, t+" from "+how[t])
	}
	retentionv1.SetCondition(dr, retentionv1.ConditionIdentitiesDerived, metav1.ConditionTrue, retentionv1.ReasonIdentitiesDerived,
		fmt.Sprintf("Derived %s; the values are kept in Secret %s", strings.Join(parts, "; "), secret))
}

// derivationNeeded says whether reading the stores for more identities can
// change the erasure: a derivable type reaches a collection the named types
// do not, or is held by a collection other than the linking ones it would be
// read from (rows that carry only that identity), or a LegalHold on subjects
// may name the subject by it. Otherwise the stores are not read and nothing
// is kept.
func (r *DeletionRequestReconciler) derivationNeeded(ctx context.Context, dr *retentionv1.DeletionRequest, datasets []retentionv1.Dataset, given map[string]bool) (bool, error) {
	how := derivable(datasets, given)
	if len(how) == 0 {
		return false, nil
	}
	var list retentionv1.LegalHoldList
	if err := r.List(ctx, &list, client.InNamespace(dr.Namespace)); err != nil {
		return false, err
	}
	now := r.now()
	for i := range list.Items {
		if holds.HasSubjects(&list.Items[i]) && holds.Phase(&list.Items[i], now) == retentionv1.HoldActive {
			return true, nil
		}
	}
	all := maps.Clone(given)
	for t := range how {
		all[t] = true
	}
	planGiven, _, err1 := r.plan(dr, datasets, given, nil)
	planAll, _, err2 := r.plan(dr, datasets, all, how)
	if err1 != nil || err2 != nil || len(planGiven) != len(planAll) {
		return true, nil
	}
	links := map[*retentionv1.Collection]bool{}
	for _, l := range linkingCollections(datasets) {
		links[l.c] = true
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

// mergeStored adds the identities kept in the request's Secret.
func mergeStored(identities map[string][]string, s *corev1.Secret) (map[string][]string, map[string]string, error) {
	how := map[string]string{}
	if a := s.Annotations[annotationDerivedFrom]; a != "" {
		if err := json.Unmarshal([]byte(a), &how); err != nil {
			return nil, nil, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Secret %s: annotation %s is not valid JSON", s.Name, annotationDerivedFrom))
		}
	}
	out := map[string][]string{}
	for t, vs := range identities {
		out[t] = slices.Clone(vs)
	}
	for t, v := range s.Data {
		vs := append(out[t], holds.SplitValues(string(v))...)
		slices.Sort(vs)
		out[t] = slices.Compact(vs)
	}
	return out, how, nil
}

// identityTypes is the set of types with at least one value.
func identityTypes(identities map[string][]string) map[string]bool {
	out := map[string]bool{}
	for t, vs := range identities {
		if len(vs) > 0 {
			out[t] = true
		}
	}
	return out
}

// unvalidated names a Dataset whose current generation the Dataset
// controller has not yet checked against its live store ("" when all are):
// its foreign keys are unknown until then. A Dataset checked and found
// wanting (a missing table) counts as checked.
func unvalidated(datasets []retentionv1.Dataset) string {
	for i := range datasets {
		ds := &datasets[i]
		c := findCondition(ds.Status.Conditions, retentionv1.ConditionReady)
		if ds.Status.ObservedGeneration != ds.Generation || c == nil || c.ObservedGeneration != ds.Generation {
			return ds.Name
		}
		switch c.Reason {
		case retentionv1.ReasonValidated, retentionv1.ReasonCollectionNotFound, retentionv1.ReasonFieldNotFound, retentionv1.ReasonPrimaryKeyNotUnique, retentionv1.ReasonInvalidAnonymization, retentionv1.ReasonInvalidSpec, retentionv1.ReasonSecretNotFound:
		default:
			return ds.Name
		}
	}
	return ""
}

// invalid names a validated Dataset in scope that its validation found
// wanting (a missing table or column, an anonymization that cannot work),
// with the reason: an erasure planned on it could fail half-way or leave
// records identifying, so none starts ("" when all are Ready).
func invalid(datasets []retentionv1.Dataset) (string, string) {
	for i := range datasets {
		if c := findCondition(datasets[i].Status.Conditions, retentionv1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue {
			return datasets[i].Name, c.Reason + ": " + c.Message
		}
	}
	return "", ""
}

// ledgerIdentities are the request's identities with the derived ones kept
// in its Secret, so a restored backup can be checked for records keyed by a
// derived identity too (the ledger holds keyed digests only).
func (r *DeletionRequestReconciler) ledgerIdentities(ctx context.Context, dr *retentionv1.DeletionRequest) (map[string][]string, error) {
	identities, err := r.identities(ctx, dr)
	if err != nil {
		return nil, err
	}
	if !meta.IsStatusConditionTrue(dr.Status.Conditions, retentionv1.ConditionIdentitiesDerived) {
		return identities, nil
	}
	var s corev1.Secret
	switch err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: subjectSecretName(dr)}, &s); {
	case apierrors.IsNotFound(err):
		return identities, nil
	case err != nil:
		return nil, err
	case !ownedBy(&s, dr):
		return identities, nil
	}
	out, _, err := mergeStored(identities, &s)
	return out, err
}
