package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// TableRef names a table. An empty Schema means public.
type TableRef struct {
	Schema string
	Table  string
}

func (r TableRef) norm() TableRef {
	if r.Schema == "" {
		r.Schema = "public"
	}
	return r
}

func (r TableRef) String() string { return r.norm().Schema + "." + r.Table }

// CycleError reports tables whose foreign keys refer to each other in a
// cycle, so no order deletes every child before its parent. It wraps
// datastore.ErrInvalid.
type CycleError struct {
	Tables []TableRef // the cycle, each referring to the next and the last to the first
}

func (e *CycleError) Error() string {
	names := make([]string, len(e.Tables))
	for i, t := range e.Tables {
		names[i] = t.String()
	}
	return fmt.Sprintf("%v: foreign keys form a cycle: %s -> %s", datastore.ErrInvalid, strings.Join(names, " -> "), names[0])
}

func (e *CycleError) Unwrap() error { return datastore.ErrInvalid }

// OrderForDeletion orders tables so that every table comes before the
// tables its foreign keys refer to: children before parents, the order in
// which rows can be deleted without violating a constraint. fks holds each
// table's foreign keys as Describe reports them (CollectionInfo.ForeignKeys).
// References to tables outside the list and self-references are ignored.
// Among tables free to go next, the input order is kept, so the result is
// deterministic. A cycle is reported as a *CycleError naming its tables.
func OrderForDeletion(tables []TableRef, fks map[TableRef][]datastore.ForeignKey) ([]TableRef, error) {
	idx := make(map[TableRef]int, len(tables))
	for i, t := range tables {
		if _, dup := idx[t.norm()]; !dup {
			idx[t.norm()] = i
		}
	}
	// parents[i]: tables i refers to; children[j]: how many distinct tables
	// refer to j and are not placed yet.
	parents := make([][]int, len(tables))
	children := make([]int, len(tables))
	for ref, keys := range fks {
		i, ok := idx[ref.norm()]
		if !ok {
			continue
		}
		for _, fk := range keys {
			schema := fk.RefSchema
			if schema == "" {
				schema = ref.norm().Schema
			}
			j, ok := idx[TableRef{Schema: schema, Table: fk.RefTable}]
			if !ok || j == i || slices.Contains(parents[i], j) {
				continue
			}
			parents[i] = append(parents[i], j)
			children[j]++
		}
	}
	placed := make([]bool, len(tables))
	out := make([]TableRef, 0, len(idx))
	for len(out) < len(idx) {
		next := -1
		for i := range tables {
			if !placed[i] && idx[tables[i].norm()] == i && children[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			return nil, &CycleError{Tables: findCycle(tables, placed, parents)}
		}
		placed[next] = true
		out = append(out, tables[next])
		for _, j := range parents[next] {
			children[j]--
		}
	}
	return out, nil
}

// findCycle returns a cycle among the unplaced tables. When no table is free
// to go next, every unplaced table is referred to by another unplaced one, so
// walking from a table to one that refers to it never stops and must repeat.
func findCycle(tables []TableRef, placed []bool, parents [][]int) []TableRef {
	referrer := make([]int, len(tables))
	for i := range referrer {
		referrer[i] = -1
	}
	start := -1
	for i := range tables {
		if placed[i] {
			continue
		}
		for _, j := range parents[i] {
			if !placed[j] && referrer[j] < 0 {
				referrer[j] = i
			}
		}
		if start < 0 {
			start = i
		}
	}
	seen := map[int]int{}
	var path []int
	for at := start; at >= 0; at = referrer[at] {
		if pos, ok := seen[at]; ok {
			path = path[pos:]
			break
		}
		seen[at] = len(path)
		path = append(path, at)
	}
	// path runs from parent to referring child; report child to parent.
	slices.Reverse(path)
	out := make([]TableRef, len(path))
	for i, p := range path {
		out[i] = tables[p]
	}
	return out
}

// DeletionOrder describes each collection and returns them children first
// (see OrderForDeletion), from the foreign keys of the live schema.
func (d *Driver) DeletionOrder(ctx context.Context, cols []datastore.Collection) (_ []datastore.Collection, err error) {
	defer d.lockWait(&err)
	refs := make([]TableRef, len(cols))
	byRef := make(map[TableRef][]datastore.Collection, len(cols))
	fks := make(map[TableRef][]datastore.ForeignKey, len(cols))
	for i, c := range cols {
		key, err := keyOf("order collections", c)
		if err != nil {
			return nil, err
		}
		t, err := d.cached(ctx, key)
		if err != nil {
			return nil, err
		}
		refs[i] = TableRef{Schema: key.schema, Table: key.name}
		byRef[refs[i]] = append(byRef[refs[i]], c)
		fks[refs[i]] = t.fks
	}
	order, err := OrderForDeletion(refs, fks)
	if err != nil {
		return nil, err
	}
	// Several collections may live in one table: keep them together, in
	// input order.
	out := make([]datastore.Collection, 0, len(cols))
	for _, r := range order {
		out = append(out, byRef[r]...)
	}
	return out, nil
}
