// Package erasure plans the erasure of data subjects across a Dataset: the
// identity graph of its collections (declared references and discovered
// foreign keys, each read as Owned or PointsTo), every owning path from a
// collection to the subject's identities, children-first order, and the plan
// of a DeletionRequest (which collections, which action, reached how). It
// reads only API objects; the stores are read by internal/engine and the
// drivers. Everything here is pure and tested in tables.
package erasure

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// ErrInvalid marks a Dataset or request that cannot be planned as written;
// retrying cannot help.
var ErrInvalid = errors.New("invalid erasure plan")

// ErrNoPath: a collection holds none of the subject's identity types and no
// owning reference leads to one that does (it is not the subject's data).
var ErrNoPath = fmt.Errorf("%w: no path to the subject's identities", ErrInvalid)

// MaxPaths bounds the owning paths from one collection; a Dataset with more
// is refused rather than planned into statements nobody can review.
const MaxPaths = 32

// maxDepth bounds a path's length (hops).
const maxDepth = 8

// EdgeKind says where an edge of the identity graph comes from.
type EdgeKind string

const (
	// EdgeDeclared is a reference declared in the Dataset's spec.
	EdgeDeclared EdgeKind = "reference"
	// EdgeForeignKey is a foreign key the Dataset controller found in the
	// live schema (status.foreignKeys).
	EdgeForeignKey EdgeKind = "foreign key"
)

// Edge says that From.Field refers to To.ToField (child → parent).
type Edge struct {
	From, Field, To, ToField string
	Kind                     EdgeKind
	// Owned: From's records belong to the subject of the To record they
	// refer to (erased with it). Otherwise they only point at it.
	Owned bool
	// err is set on a declared reference whose target field cannot be
	// resolved; following it is an error.
	err error
	// composite: a foreign key of several columns (Field and ToField are
	// comma-separated). It orders erasure but is never followed as a path.
	composite bool
}

// String is the edge as collection.field → collection.field, marked with
// its origin and reading when it is not a declared owning reference.
func (e Edge) String() string {
	s := e.From + "." + e.Field + " → " + e.To + "." + e.ToField
	var marks []string
	if e.Kind == EdgeForeignKey {
		marks = append(marks, "foreign key")
	}
	if !e.Owned {
		marks = append(marks, "points to")
	} else if e.Kind == EdgeForeignKey {
		marks = append(marks, "owned")
	}
	if len(marks) > 0 {
		s += " (" + strings.Join(marks, ", ") + ")"
	}
	return s
}

// Graph is a Dataset's identity graph: for each collection, the edges
// leading out of it towards its parents. Declared references come from the
// spec (Owned unless they say PointsTo), foreign keys from
// status.foreignKeys (PointsTo: the safe reading, since a foreign key says
// that a row points at another, not whose it is). A foreign key on a field
// that a declared reference of the same collection covers is dropped
// (declared references win), as is one naming a collection the spec no
// longer declares.
type Graph struct {
	ds  *retentionv1.Dataset
	out map[string][]Edge
}

// Collection finds a collection of a Dataset by name.
func Collection(ds *retentionv1.Dataset, name retentionv1.Identifier) (*retentionv1.Collection, bool) {
	for i := range ds.Spec.Collections {
		if ds.Spec.Collections[i].Name == name {
			return &ds.Spec.Collections[i], true
		}
	}
	return nil, false
}

// NewGraph builds the identity graph of a Dataset.
func NewGraph(ds *retentionv1.Dataset) *Graph {
	g := &Graph{ds: ds, out: map[string][]Edge{}}
	declared := map[[2]string]bool{}
	for i := range ds.Spec.Collections {
		c := &ds.Spec.Collections[i]
		for _, ref := range c.References {
			declared[[2]string{string(c.Name), string(ref.Field)}] = true
		}
	}
	// A discovered foreign key can supply the target field a declared
	// reference leaves implicit.
	fkTarget := map[[3]string]string{}
	for _, fk := range ds.Status.ForeignKeys {
		fkTarget[[3]string{fk.Collection, fk.Field, fk.TargetCollection}] = fk.TargetField
	}
	for i := range ds.Spec.Collections {
		c := &ds.Spec.Collections[i]
		for _, ref := range c.References {
			e := Edge{From: string(c.Name), Field: string(ref.Field), To: string(ref.Collection), ToField: string(ref.TargetField), Kind: EdgeDeclared,
				Owned: ref.Ownership != retentionv1.OwnershipPointsTo}
			parent, ok := Collection(ds, ref.Collection)
			switch {
			case !ok:
				e.err = fmt.Errorf("%w: collection %s refers to unknown collection %s", ErrInvalid, c.Name, ref.Collection)
			case e.ToField != "":
			case len(parent.PrimaryKey) == 1:
				e.ToField = string(parent.PrimaryKey[0])
			case fkTarget[[3]string{e.From, e.Field, e.To}] != "":
				e.ToField = fkTarget[[3]string{e.From, e.Field, e.To}]
			default:
				e.err = fmt.Errorf("%w: reference %s.%s → %s needs targetField (or a single-column primaryKey on %s)", ErrInvalid, c.Name, ref.Field, parent.Name, parent.Name)
			}
			g.out[e.From] = append(g.out[e.From], e)
		}
	}
	for _, fk := range ds.Status.ForeignKeys {
		if declared[[2]string{fk.Collection, fk.Field}] {
			continue
		}
		composite := strings.Contains(fk.Field, ",")
		if _, ok := Collection(ds, retentionv1.Identifier(fk.Collection)); !ok {
			continue
		}
		if _, ok := Collection(ds, retentionv1.Identifier(fk.TargetCollection)); !ok {
			continue
		}
		g.out[fk.Collection] = append(g.out[fk.Collection], Edge{From: fk.Collection, Field: fk.Field, To: fk.TargetCollection, ToField: fk.TargetField, Kind: EdgeForeignKey,
			Owned: fk.Ownership == retentionv1.OwnershipOwned && !composite, composite: composite})
	}
	return g
}

// Parents returns the edges leading out of a collection.
func (g *Graph) Parents(name string) []Edge { return g.out[name] }

// Reach says how a collection reaches a subject: directly through its own
// identity fields, and through every path of edges to a collection that
// holds one of the subject's identity types. The subject's records are the
// union of all of them.
type Reach struct {
	Direct bool
	Paths  [][]Edge
}

// Empty is true when nothing reaches the subject.
func (r Reach) Empty() bool { return !r.Direct && len(r.Paths) == 0 }

// holdsType reports whether a collection holds one of the types itself.
func holdsType(c *retentionv1.Collection, hasType func(string) bool) bool {
	for _, id := range c.Identities {
		if hasType(string(id.Type)) {
			return true
		}
	}
	return false
}

// Owned finds how a collection's records belong to a subject: its own
// identity fields and every simple path of owning edges that ends at a
// collection holding one of the types (a path passing such a collection
// also yields its prefix, so the union is exact whatever the path's
// length). It wraps ErrNoPath when nothing reaches the subject.
func (g *Graph) Owned(from *retentionv1.Collection, hasType func(string) bool) (Reach, error) {
	r, err := g.reach(from, hasType)
	if err == nil && r.Empty() {
		return r, fmt.Errorf("%w: collection %s holds none of the subject's identity types and no owning reference leads to one that does", ErrNoPath, from.Name)
	}
	return r, err
}

func (g *Graph) reach(from *retentionv1.Collection, hasType func(string) bool) (Reach, error) {
	r := Reach{Direct: holdsType(from, hasType)}
	onPath := map[string]bool{string(from.Name): true}
	var path []Edge
	var walk func(name string) error
	walk = func(name string) error {
		for _, e := range g.out[name] {
			if !e.Owned || onPath[e.To] || e.From == e.To || e.composite {
				continue
			}
			if e.err != nil {
				return e.err
			}
			parent, ok := Collection(g.ds, retentionv1.Identifier(e.To))
			if !ok {
				continue
			}
			if len(path) >= maxDepth {
				return fmt.Errorf("%w: collection %s: a chain of references longer than %d hops", ErrInvalid, from.Name, maxDepth)
			}
			path = append(path, e)
			if holdsType(parent, hasType) {
				r.Paths = append(r.Paths, slices.Clone(path))
				if len(r.Paths) > MaxPaths {
					return fmt.Errorf("%w: collection %s is reached through more than %d paths of references; mark some references PointsTo", ErrInvalid, from.Name, MaxPaths)
				}
			}
			onPath[e.To] = true
			err := walk(e.To)
			delete(onPath, e.To)
			path = path[:len(path)-1]
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(string(from.Name)); err != nil {
		return Reach{}, err
	}
	return r, nil
}

// PathString is a path as its hops, comma-separated.
func PathString(p []Edge) string {
	parts := make([]string, 0, len(p))
	for _, e := range p {
		parts = append(parts, e.String())
	}
	return strings.Join(parts, ", ")
}

// depths ranks collections for children-first ordering: a collection's
// depth is one more than the deepest of its parents along every edge
// (owning or not: a foreign key constrains the order either way); cycles
// are cut where they close.
func (g *Graph) depths() map[retentionv1.Identifier]int {
	depth := map[retentionv1.Identifier]int{}
	var visit func(name string, onPath map[string]bool) int
	visit = func(name string, onPath map[string]bool) int {
		if d, ok := depth[retentionv1.Identifier(name)]; ok {
			return d
		}
		if _, ok := Collection(g.ds, retentionv1.Identifier(name)); !ok || onPath[name] {
			return 0
		}
		onPath[name] = true
		d := 0
		for _, e := range g.out[name] {
			if e.From == e.To {
				continue
			}
			d = max(d, visit(e.To, onPath)+1)
		}
		delete(onPath, name)
		depth[retentionv1.Identifier(name)] = d
		return d
	}
	for i := range g.ds.Spec.Collections {
		visit(string(g.ds.Spec.Collections[i].Name), map[string]bool{})
	}
	return depth
}

// OrderChildrenFirst orders operations so that a collection referring to
// another (child → parent, by the Dataset's references and the foreign keys
// discovered in the live schema) comes first; the order is otherwise stable.
// Cycles keep their declared order where they close.
func OrderChildrenFirst(ds *retentionv1.Dataset, ops []retentionv1.Operation) []retentionv1.Operation {
	depth := NewGraph(ds).depths()
	out := slices.Clone(ops)
	// Deeper collections (further from the root parents) first.
	slices.SortStableFunc(out, func(a, b retentionv1.Operation) int {
		return depth[b.Collection] - depth[a.Collection]
	})
	return out
}
