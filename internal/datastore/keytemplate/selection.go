package keytemplate

import (
	"fmt"
	"slices"
)

// Sets are identity values by identity type.
type Sets map[string]map[string]struct{}

// Has reports whether v is among the values of typ.
func (s Sets) Has(typ, v string) bool {
	_, ok := s[typ][v]
	return ok
}

func (s Sets) add(typ, v string) {
	if s[typ] == nil {
		s[typ] = map[string]struct{}{}
	}
	s[typ][v] = struct{}{}
}

// Selection is what an operation selects of a template's keys by the
// identities their placeholders hold.
type Selection struct {
	types []string
	// Subjects are the subjects' values of the types the template has a
	// placeholder for; nil when the operation does not select by subject.
	Subjects Sets
	// Held are the held values of those types.
	Held      Sets
	heldGlobs []Glob
}

// Select compiles the subjects (nil: no subject filter) and the held
// identities of an operation for t; identity types t has no placeholder
// for are left out. A subject value Check refuses is an error; a held value
// Check refuses is also matched with HeldGlob, so a hold wins any
// ambiguity.
func (t *Template) Select(subjects, held map[string][]string) (*Selection, error) {
	types := t.Types()
	s := &Selection{types: types, Held: Sets{}}
	for typ, vs := range held {
		if !slices.Contains(types, typ) {
			continue // the template cannot hold this identity
		}
		for _, v := range vs {
			if v == "" {
				continue
			}
			s.Held.add(typ, v)
			if t.Check(typ, v) != nil {
				s.heldGlobs = append(s.heldGlobs, t.HeldGlob(typ, v))
			}
		}
	}
	if subjects == nil {
		return s, nil
	}
	s.Subjects = Sets{}
	for typ, vs := range subjects {
		if !slices.Contains(types, typ) {
			continue
		}
		s.Subjects[typ] = map[string]struct{}{}
		for _, v := range vs {
			if err := t.Check(typ, v); err != nil {
				return nil, fmt.Errorf("subject: %w", err)
			}
			s.Subjects.add(typ, v)
		}
	}
	return s, nil
}

// Selects reports whether key, whose placeholder values Values read as
// vals, belongs to one of the subjects (when there are subjects) and to no
// held identity.
func (s *Selection) Selects(key string, vals []string) bool {
	if s.Subjects != nil && !s.any(s.Subjects, vals) {
		return false
	}
	if s.any(s.Held, vals) {
		return false
	}
	for _, g := range s.heldGlobs {
		if g.Match(key) {
			return false
		}
	}
	return true
}

// any reports whether one of vals is in sets under its placeholder's type.
func (s *Selection) any(sets Sets, vals []string) bool {
	for i, v := range vals {
		if sets.Has(s.types[i], v) {
			return true
		}
	}
	return false
}
