package erasure

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Request is what planning needs of a DeletionRequest.
type Request struct {
	// Types are the identity types the subject has values for (named, or
	// derived or derivable).
	Types map[string]bool
	// DerivedFrom says, for a derived type, from what (for via).
	DerivedFrom map[string]string
	// Overrides change a collection's action for this request.
	Overrides []retentionv1.ActionOverride
}

// Step is the planned erasure of one Dataset: its operations, children
// first, and the plan entries shown in status (aligned with Ops).
type Step struct {
	Dataset *retentionv1.Dataset
	Ops     []retentionv1.Operation
	Plan    []retentionv1.PlannedCollection
}

// Plan walks each Dataset's identity graph: every collection, not
// traverse-only, that holds one of the types itself or through every owning
// path of references, with its action (the request's override, else the
// collection's), children first. It fails (ErrInvalid) on what can never
// run: an Anonymize action without strategies.
func Plan(datasets []retentionv1.Dataset, req Request) ([]Step, error) {
	var steps []Step
	has := func(t string) bool { return req.Types[t] }
	for i := range datasets {
		ds := &datasets[i]
		g := NewGraph(ds)
		var ops []retentionv1.Operation
		via := map[retentionv1.Identifier]string{}
		reaches := map[retentionv1.Identifier]Reach{}
		for ci := range ds.Spec.Collections {
			c := &ds.Spec.Collections[ci]
			if c.TraverseOnly {
				continue
			}
			reach, err := g.Owned(c, has)
			if err != nil {
				if errorsIsNoPath(err) {
					continue // holds none of this subject's identities
				}
				return nil, err
			}
			op, err := Operation(ds, c, req.Overrides)
			if err != nil {
				return nil, err
			}
			ops = append(ops, op)
			via[c.Name] = DescribeReach(ds, c, reach, req.Types, req.DerivedFrom)
			reaches[c.Name] = reach
		}
		if len(ops) == 0 {
			continue
		}
		if err := checkUnlinked(ds, ops, reaches); err != nil {
			return nil, err
		}
		ops = OrderChildrenFirst(ds, ops)
		s := Step{Dataset: ds, Ops: ops}
		for order, op := range ops {
			s.Plan = append(s.Plan, retentionv1.PlannedCollection{Dataset: ds.Name, Collection: string(op.Collection), Action: op.Action, Order: int32(order), Via: via[op.Collection]})
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// checkUnlinked finds, before anything runs, the records an erasure would
// keep that still identify the subject afterwards: an anonymized record
// whose identity field keeps its value (no strategy), or whose owning
// reference keeps pointing at a record the erasure keeps identifying (a
// traverse-only collection, or one anonymized that stays linked in turn).
// Such an erasure could never be verified; it is refused with the field to
// fix (give the field a strategy, Null for a reference).
func checkUnlinked(ds *retentionv1.Dataset, ops []retentionv1.Operation, reaches map[retentionv1.Identifier]Reach) error {
	action := map[string]retentionv1.Action{}
	nulled := map[string]map[string]bool{}
	for _, op := range ops {
		action[string(op.Collection)] = op.Action
		nulled[string(op.Collection)] = map[string]bool{}
		for _, f := range op.Fields {
			nulled[string(op.Collection)][string(f.Name)] = true
		}
	}
	memo := map[string]bool{}
	var identifying func(name string, seen map[string]bool) bool
	identifying = func(name string, seen map[string]bool) bool {
		if v, ok := memo[name]; ok {
			return v
		}
		if seen[name] {
			return false
		}
		seen[name] = true
		c, ok := Collection(ds, retentionv1.Identifier(name))
		var v bool
		switch {
		case !ok:
		case c.TraverseOnly:
			v = true // kept as it is
		case action[name] == retentionv1.ActionAnonymize:
			for _, p := range reaches[c.Name].Paths {
				if !nulled[name][p[0].Field] && identifying(p[0].To, seen) {
					v = true
				}
			}
		}
		memo[name] = v
		return v
	}
	for _, op := range ops {
		if op.Action != retentionv1.ActionAnonymize {
			continue
		}
		c, _ := Collection(ds, op.Collection)
		name := string(op.Collection)
		for _, id := range c.Identities {
			if id.Field != "" && !nulled[name][string(id.Field)] {
				return fmt.Errorf("%w: field %s.%s: identity %s of a collection erased by Anonymize needs an anonymize strategy, or its records would still identify the subject", ErrInvalid, name, id.Field, id.Type)
			}
		}
		for _, p := range reaches[op.Collection].Paths {
			if !nulled[name][p[0].Field] && identifying(p[0].To, map[string]bool{}) {
				return fmt.Errorf("%w: field %s.%s: the anonymized records would stay linked to the subject through %s, which the erasure keeps; give %s.%s an anonymize strategy (Null), or erase %s",
					ErrInvalid, name, p[0].Field, PathString(p), name, p[0].Field, p[0].To)
			}
		}
	}
	return nil
}

// FallBack switches the oi-th operation to Anonymize, because records
// outside the erasure refer to the records it would delete (why, shown in
// status.plan[].fallback).
func (s *Step) FallBack(oi int, why string) error {
	c, _ := Collection(s.Dataset, s.Ops[oi].Collection)
	op, err := WithAction(s.Dataset, c, retentionv1.ActionAnonymize)
	if err != nil {
		return err
	}
	s.Ops[oi] = op
	s.Plan[oi].Action = op.Action
	s.Plan[oi].Fallback = why
	return nil
}

// Operation is the erasure operation of one collection: its action (the
// request's override, else the collection's, Delete by default) with the
// fields' strategies when it anonymizes.
func Operation(ds *retentionv1.Dataset, c *retentionv1.Collection, overrides []retentionv1.ActionOverride) (retentionv1.Operation, error) {
	action := c.Action
	if action == "" {
		action = retentionv1.ActionDelete
	}
	for _, o := range overrides {
		if string(o.Dataset) == ds.Name && o.Collection == c.Name {
			action = o.Action
		}
	}
	return WithAction(ds, c, action)
}

// WithAction is the erasure operation of a collection with the given action.
func WithAction(ds *retentionv1.Dataset, c *retentionv1.Collection, action retentionv1.Action) (retentionv1.Operation, error) {
	op := retentionv1.Operation{Collection: c.Name, Action: action, BySubject: true}
	if action == retentionv1.ActionAnonymize {
		for _, f := range c.Fields {
			if f.Anonymize != nil {
				op.Fields = append(op.Fields, retentionv1.FieldAnonymization{Name: f.Name, Anonymization: *f.Anonymize})
			}
		}
		if len(op.Fields) == 0 {
			return op, fmt.Errorf("%w: collection %s of Dataset %s is to be anonymized, but none of its fields has an anonymize strategy", ErrInvalid, c.Name, ds.Name)
		}
	}
	return op, nil
}

func errorsIsNoPath(err error) bool { return errors.Is(err, ErrNoPath) }

// DescribeReach says how the plan reaches a collection, for status.plan[].via:
// the identity types it holds itself, and each owning path to a collection
// that holds them ("a → b; identity: user_id"), joined by " | "; derived
// types say from what they were derived.
func DescribeReach(ds *retentionv1.Dataset, c *retentionv1.Collection, r Reach, have map[string]bool, derivedFrom map[string]string) string {
	var parts []string
	if r.Direct {
		parts = append(parts, identities(c, have, derivedFrom))
	}
	for _, p := range r.Paths {
		end := c
		if e, ok := Collection(ds, retentionv1.Identifier(p[len(p)-1].To)); ok {
			end = e
		}
		parts = append(parts, PathString(p)+"; "+identities(end, have, derivedFrom))
	}
	return strings.Join(parts, " | ")
}

func identities(c *retentionv1.Collection, have map[string]bool, derivedFrom map[string]string) string {
	var ids []string
	for _, id := range c.Identities {
		t := string(id.Type)
		if !have[t] || slices.Contains(ids, t) {
			continue
		}
		if h := derivedFrom[t]; h != "" {
			t += " (derived from " + h + ")"
		}
		ids = append(ids, t)
	}
	return "identity: " + strings.Join(ids, ", ")
}

// DeclaredTypes lists the identity types a Dataset declares (identity
// fields and key-pattern or prefix placeholders are both declared as
// identities).
func DeclaredTypes(datasets []retentionv1.Dataset) map[string]bool {
	out := map[string]bool{}
	for _, ds := range datasets {
		for _, c := range ds.Spec.Collections {
			for _, id := range c.Identities {
				out[string(id.Type)] = true
			}
		}
	}
	return out
}
