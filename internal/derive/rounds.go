package derive

import (
	"maps"
	"slices"
	"strings"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// maxRounds bounds the chain email → user_id → account_id….
const maxRounds = 4

// Link is a collection that links identity types: a SQL table with two or
// more identity fields.
type Link struct {
	Dataset    *retentionv1.Dataset
	Collection *retentionv1.Collection
}

// Links returns the linking collections of the Datasets (key patterns and
// prefixes never link: their placeholders are not fields to read).
func Links(datasets []retentionv1.Dataset) []Link {
	var out []Link
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
				out = append(out, Link{Dataset: ds, Collection: c})
			}
		}
	}
	return out
}

// rounds runs the derivation order on types only (see the package doc) and
// returns, per derived type, "<from types> via <collection>". lookup, when
// set, reads the values and may leave a type underived; commit, when set,
// runs after each round that found something, so the values found become
// the next round's inputs.
func rounds(links []Link, known map[string]bool, lookup func(l Link, from []string, want string) (bool, error), commit func()) (map[string]string, error) {
	known = maps.Clone(known)
	how := map[string]string{}
	for round := 0; round < maxRounds; round++ {
		found := map[string]string{}
		for _, l := range links {
			var from []string
			for _, id := range l.Collection.Identities {
				if id.Field != "" && known[string(id.Type)] && !slices.Contains(from, string(id.Type)) {
					from = append(from, string(id.Type))
				}
			}
			if len(from) == 0 {
				continue
			}
			slices.Sort(from)
			for _, id := range l.Collection.Identities {
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
					found[t] = strings.Join(from, ", ") + " via " + string(l.Collection.Name)
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

// Derivable is what planning shows before the stores are read: which
// identity types the given ones may lead to, and how.
func Derivable(datasets []retentionv1.Dataset, given map[string]bool) map[string]string {
	how, _ := rounds(Links(datasets), given, nil, nil)
	return how
}
