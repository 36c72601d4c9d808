package engine

import (
	"fmt"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
)

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
	// err is set on a declared reference whose target field cannot be
	// resolved; following it is an error.
	err error
}

// String is the edge as collection.field → collection.field, marked when it
// is a discovered foreign key.
func (e Edge) String() string {
	s := e.From + "." + e.Field + " → " + e.To + "." + e.ToField
	if e.Kind == EdgeForeignKey {
		s += " (foreign key)"
	}
	return s
}

// Graph is a Dataset's identity graph: for each collection, the edges
// leading out of it towards its parents. Declared references come from the
// spec, foreign keys from status.foreignKeys; a foreign key on a field that
// a declared reference of the same collection already covers is dropped
// (declared references win), as is one naming a collection the spec no
// longer declares.
type Graph struct {
	ds  *retentionv1.Dataset
	out map[string][]Edge
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
			e := Edge{From: string(c.Name), Field: string(ref.Field), To: string(ref.Collection), ToField: string(ref.TargetField), Kind: EdgeDeclared}
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
		if fk.Collection == fk.TargetCollection || declared[[2]string{fk.Collection, fk.Field}] {
			continue
		}
		if _, ok := Collection(ds, retentionv1.Identifier(fk.Collection)); !ok {
			continue
		}
		if _, ok := Collection(ds, retentionv1.Identifier(fk.TargetCollection)); !ok {
			continue
		}
		g.out[fk.Collection] = append(g.out[fk.Collection], Edge{From: fk.Collection, Field: fk.Field, To: fk.TargetCollection, ToField: fk.TargetField, Kind: EdgeForeignKey})
	}
	return g
}

// Parents returns the edges leading out of a collection.
func (g *Graph) Parents(name string) []Edge { return g.out[name] }

// Path finds how a collection reaches one that holds one of the given
// identity types: nil when it holds one itself; otherwise the shortest chain
// of declared references, or, when declared references lead nowhere, the
// shortest chain of references and discovered foreign keys. It wraps
// ErrNoPath when there is none.
func (g *Graph) Path(from *retentionv1.Collection, hasType func(string) bool) ([]Edge, error) {
	holds := func(c *retentionv1.Collection) bool {
		for _, id := range c.Identities {
			if hasType(string(id.Type)) {
				return true
			}
		}
		return false
	}
	if holds(from) {
		return nil, nil
	}
	for _, withFK := range []bool{false, true} {
		path, err := g.search(from, holds, withFK)
		if err != nil || path != nil {
			return path, err
		}
	}
	return nil, fmt.Errorf("%w: collection %s holds none of the subject's identity types and no reference or foreign key leads to one that does", ErrNoPath, from.Name)
}

func (g *Graph) search(from *retentionv1.Collection, holds func(*retentionv1.Collection) bool, withFK bool) ([]Edge, error) {
	type node struct {
		name string
		path []Edge
	}
	seen := map[string]bool{string(from.Name): true}
	queue := []node{{name: string(from.Name)}}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, e := range g.out[n.name] {
			if e.Kind == EdgeForeignKey && !withFK {
				continue
			}
			if seen[e.To] {
				continue
			}
			if e.err != nil {
				return nil, e.err
			}
			seen[e.To] = true
			path := append(append([]Edge(nil), n.path...), e)
			parent, _ := Collection(g.ds, retentionv1.Identifier(e.To))
			if holds(parent) {
				return path, nil
			}
			queue = append(queue, node{name: e.To, path: path})
		}
	}
	return nil, nil
}

// Hops converts a path into the driver's hops.
func Hops(ds *retentionv1.Dataset, storeType retentionv1.DataStoreType, path []Edge) ([]datastore.Hop, error) {
	if len(path) == 0 {
		return nil, nil
	}
	hops := make([]datastore.Hop, 0, len(path))
	for _, e := range path {
		parent, ok := Collection(ds, retentionv1.Identifier(e.To))
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

// depths ranks collections for children-first ordering: a collection's
// depth is one more than the deepest of its parents along declared
// references and discovered foreign keys; cycles are cut where they close.
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
