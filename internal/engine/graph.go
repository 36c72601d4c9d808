package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/erasure"
)

// Hops converts a path of the identity graph (internal/erasure) into the
// driver's hops.
func Hops(ds *retentionv1.Dataset, storeType retentionv1.DataStoreType, path []erasure.Edge) ([]datastore.Hop, error) {
	if len(path) == 0 {
		return nil, nil
	}
	hops := make([]datastore.Hop, 0, len(path))
	for _, e := range path {
		parent, ok := erasure.Collection(ds, retentionv1.Identifier(e.To))
		if !ok {
			return nil, fmt.Errorf("%w: collection %s refers to unknown collection %s", ErrInvalid, e.From, e.To)
		}
		pc, err := ToDriver(storeType, parent)
		if err != nil {
			return nil, err
		}
		hops = append(hops, datastore.Hop{Field: e.Field, Parent: pc, ParentField: e.ToField})
	}
	return hops, nil
}

// PathsHops converts every path of a Reach into the driver's hops.
func PathsHops(ds *retentionv1.Dataset, storeType retentionv1.DataStoreType, r erasure.Reach) ([][]datastore.Hop, error) {
	out := make([][]datastore.Hop, 0, len(r.Paths))
	for _, p := range r.Paths {
		h, err := Hops(ds, storeType, p)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// SubjectPaths finds how a collection's records belong to the subjects:
// every owning path to a collection holding one of their identity types
// (see erasure.Graph.Owned). Planning, counting, execution and
// verification all resolve paths here, from the same Dataset.
func SubjectPaths(ds *retentionv1.Dataset, storeType retentionv1.DataStoreType, c *retentionv1.Collection, subjects map[string][]string) ([][]datastore.Hop, error) {
	r, err := erasure.NewGraph(ds).Owned(c, func(t string) bool { return len(subjects[t]) > 0 })
	if err != nil {
		return nil, err
	}
	return PathsHops(ds, storeType, r)
}

// HeldPaths finds every owning path from a collection to one holding a
// held identity type: a hold protects a person's records, which are the
// records their identities reach through owning references (the same
// reading erasure uses, so a hold keeps exactly what an erasure of that
// person would take). Only SQL stores follow references; elsewhere it is
// empty, as it is when nothing leads to a held type.
func HeldPaths(ds *retentionv1.Dataset, storeType retentionv1.DataStoreType, c *retentionv1.Collection, held map[string][]string) ([][]datastore.Hop, error) {
	if storeType != retentionv1.DataStorePostgreSQL && storeType != retentionv1.DataStoreMySQL {
		return nil, nil
	}
	r, err := erasure.NewGraph(ds).Owned(c, func(t string) bool { return len(held[t]) > 0 })
	if errors.Is(err, erasure.ErrNoPath) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return PathsHops(ds, storeType, r)
}

// SubjectOperation is the driver's view of one erasure operation for these
// subjects: the collection, every owning path to their identities, and the
// fields an Anonymize action rewrites (strategies without a key: for
// counting and preflight, never for execution).
func SubjectOperation(ds *retentionv1.Dataset, storeType retentionv1.DataStoreType, op retentionv1.Operation, subjects map[string][]string) (datastore.Operation, error) {
	c, ok := erasure.Collection(ds, op.Collection)
	if !ok {
		return datastore.Operation{}, fmt.Errorf("%w: collection %s is not in Dataset %s", ErrInvalid, op.Collection, ds.Name)
	}
	dc, err := ToDriver(storeType, c)
	if err != nil {
		return datastore.Operation{}, err
	}
	paths, err := SubjectPaths(ds, storeType, c, subjects)
	if err != nil {
		return datastore.Operation{}, err
	}
	o := datastore.Operation{Collection: dc, Delete: op.Action == retentionv1.ActionDelete, Subjects: subjects, Paths: paths}
	for _, f := range op.Fields {
		o.Fields = append(o.Fields, datastore.FieldMask{Field: string(f.Name), Strategy: Strategy(f.Anonymization, nil)})
	}
	return o, nil
}

// DescribeBlocker says, for status and events, which records would be left
// referring to which: "2 records of public.orders refer to records of
// collection quotes this erasure would delete (foreign key
// orders_quote_id_fkey on quote_id, ON DELETE NO ACTION)". Counts and
// names only, never values.
func DescribeBlocker(b datastore.Blocker) string {
	return fmt.Sprintf("%d records of %s refer to records of collection %s this erasure would delete (foreign key %s on %s, ON DELETE %s); declare whenReferenced: Anonymize on %s, or erase the referring records first",
		b.Rows, b.Table, b.Collection, b.Constraint, strings.Join(b.Columns, ", "), b.OnDelete, b.Collection)
}

// Preflight proves, before the first change, that a Dataset's erasure of
// these subjects can run to the end: no record outside it (in any table of
// the store) may be left referring, by a foreign key, to a record it
// deletes. A collection that declares whenReferenced: Anonymize is
// switched to Anonymize (s.FallBack) and everything is checked again, since
// its kept records still refer to their own parents. It returns a message
// naming the first key that stops the erasure ("" when none does). It
// reads the store only.
func Preflight(ctx context.Context, ref datastore.Referrers, s *erasure.Step, storeType retentionv1.DataStoreType, subjects map[string][]string) (string, error) {
	for range len(s.Ops) + 1 {
		ops := make([]datastore.Operation, 0, len(s.Ops))
		for _, op := range s.Ops {
			o, err := SubjectOperation(s.Dataset, storeType, op, subjects)
			if err != nil {
				return "", err
			}
			ops = append(ops, o)
		}
		blockers, err := ref.Blockers(ctx, ops)
		if err != nil || len(blockers) == 0 {
			return "", err
		}
		switched := map[string]bool{}
		for _, b := range blockers {
			if switched[b.Collection] {
				continue // another key blocking the same collection
			}
			oi := slices.IndexFunc(s.Ops, func(o retentionv1.Operation) bool { return string(o.Collection) == b.Collection })
			c, _ := erasure.Collection(s.Dataset, retentionv1.Identifier(b.Collection))
			if oi < 0 || c.WhenReferenced != retentionv1.WhenReferencedAnonymize || s.Ops[oi].Action != retentionv1.ActionDelete {
				return fmt.Sprintf("Stopped before any change: %s in Dataset %s; nothing was changed", DescribeBlocker(b), s.Dataset.Name), nil
			}
			if err := s.FallBack(oi, "Anonymize instead of Delete: "+DescribeBlocker(b)); err != nil {
				return "", err
			}
			switched[b.Collection] = true
		}
	}
	return "", fmt.Errorf("%w: Dataset %s: the whenReferenced fallbacks do not settle", ErrInvalid, s.Dataset.Name)
}
