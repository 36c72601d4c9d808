package derive

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/mask"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// Bounds say how many values of one identity type a derivation keeps, and
// what more means.
type Bounds struct {
	// Max values of one type are kept.
	Max int
	// Stop: more than Max values of one type stop the derivation
	// (DerivationLimit). Without Stop, the first Max are kept and the type
	// is reported as truncated.
	Stop bool
}

const (
	// MaxRequestValues bounds the values derived for one identity type of a
	// request: more means the identity the request names is shared (a
	// family's phone) and erasing them all would erase other people.
	MaxRequestValues = 8
	// MaxHoldValues bounds the values a hold keeps per derived type.
	MaxHoldValues = 1000
)

var (
	// RequestBounds: a request erases what it derives, so an identity shared
	// by more than MaxRequestValues subjects stops it.
	RequestBounds = Bounds{Max: MaxRequestValues, Stop: true}
	// HoldBounds: a hold keeps the first MaxHoldValues values of a type.
	HoldBounds = Bounds{Max: MaxHoldValues}
)

// Drivers opens a DataStore's driver (connect.Pool).
type Drivers interface {
	Get(ctx context.Context, ds *retentionv1.DataStore) (datastore.Driver, error)
}

// Stores reads identities from the stores of Datasets.
type Stores struct {
	// Client reads DataStores and RetentionPolicies (cached).
	Client client.Reader
	// Drivers opens the stores.
	Drivers Drivers
}

// Derive reads the subject's further identities from the linking collections
// of datasets, round by round (see the package doc). It returns the given
// identities with the derived ones, how each derived type was found ("<from
// types> via <collection>"), and the types cut at bounds.Max (only without
// bounds.Stop). A store that cannot run a lookup as specified, and more
// values than bounds.Max with bounds.Stop, are outcome.Stall errors
// (DerivationFailed, DerivationLimit). The values it returns are personal
// data.
func (s Stores) Derive(ctx context.Context, datasets []retentionv1.Dataset, identities map[string][]string, bounds Bounds) (map[string][]string, map[string]string, []string, error) {
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
	lookup := func(l Link, from []string, want string) (bool, error) {
		ds, c := l.Dataset, l.Collection
		d, ok := drivers[ds.Name]
		if !ok {
			var store retentionv1.DataStore
			if err := s.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: string(ds.Spec.DataStoreRef.Name)}, &store); err != nil {
				return false, fmt.Errorf("deriving identities: DataStore of Dataset %s: %w", ds.Name, err)
			}
			var err error
			if d, err = s.Drivers.Get(ctx, &store); err != nil {
				return false, fmt.Errorf("deriving identities: opening DataStore %s: %w", store.Name, err)
			}
			drivers[ds.Name], storeTypes[ds.Name] = d, store.Spec.Type
		}
		lk, ok := d.(datastore.IdentityLookup)
		if !ok {
			return false, nil // the store cannot look identities up
		}
		dc, err := engine.ToDriver(storeTypes[ds.Name], c)
		if err != nil {
			return false, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Deriving identities from collection %s of Dataset %s: %v", c.Name, ds.Name, err))
		}
		in := map[string][]string{}
		for _, t := range from {
			in[t] = out[t]
		}
		vals, err := lk.Lookup(ctx, dc, in, want, bounds.Max+1)
		switch {
		case errors.Is(err, datastore.ErrInvalid) || errors.Is(err, datastore.ErrNotFound):
			return false, outcome.Stall(retentionv1.ReasonDerivationFailed, fmt.Sprintf("Deriving %s from collection %s of Dataset %s: %v", want, c.Name, ds.Name, err))
		case err != nil:
			return false, fmt.Errorf("deriving %s from collection %s of Dataset %s: %w", want, c.Name, ds.Name, err)
		}
		placeholder, err := s.placeholders(ctx, ds, c, dc.IdentityFields[want])
		if err != nil {
			return false, err
		}
		if !slices.ContainsFunc(vals, func(v string) bool { return !placeholder(v) }) {
			return false, nil
		}
		merged, over := mergeDerived(derived[want], vals, placeholder, bounds.Max)
		if over && bounds.Stop {
			return false, outcome.Stall(retentionv1.ReasonDerivationLimit, fmt.Sprintf("Deriving identities found more than %d values of type %s (from %s via collection %s of Dataset %s): the identity the request names is shared by several subjects; name the subject's identities explicitly in a new request",
				bounds.Max, want, strings.Join(from, ", "), c.Name, ds.Name))
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
	how, err := rounds(Links(datasets), known, lookup, commit)
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
func (s Stores) placeholders(ctx context.Context, ds *retentionv1.Dataset, c *retentionv1.Collection, field string) (func(string) bool, error) {
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
	if err := s.Client.List(ctx, &policies, client.InNamespace(ds.Namespace)); err != nil {
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
