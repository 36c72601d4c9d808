// Package datasetcheck validates a Dataset against its live store: the spec
// first (references, placeholders, strategies), then every declared
// collection and field as the driver describes it (existence, primary keys,
// anonymizations that can apply), and from that the foreign keys found in
// the store and the identity graph. It returns what the Dataset's status
// shows; the Dataset controller (controllers/dataset_controller.go) only
// writes it.
package datasetcheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/identity"
	"github.com/lethe-dev/lethe/internal/mask"
)

// problem is one thing wrong with a Dataset, by condition reason.
type problem struct{ reason, msg string }

// Result is the result of checking a Dataset against its store.
type Result struct {
	Collections []retentionv1.CollectionStatus
	Graph       []retentionv1.IdentityPath
	ForeignKeys []retentionv1.DiscoveredReference
	problems    []problem
	// transient is an error retrying may fix (store unreachable); when set,
	// the rest is incomplete.
	Transient error
}

// reasonOrder ranks reasons: the Ready reason is the first that has a problem.
var reasonOrder = []string{retentionv1.ReasonInvalidSpec, retentionv1.ReasonSecretNotFound, retentionv1.ReasonCollectionNotFound, retentionv1.ReasonFieldNotFound, retentionv1.ReasonPrimaryKeyNotUnique, retentionv1.ReasonInvalidAnonymization}

// verdict returns the Ready reason and message, or "" when all is well. The
// message lists up to five problems, most serious first.
func (v *Result) Verdict() (string, string) {
	if len(v.problems) == 0 {
		return "", ""
	}
	sorted := slices.Clone(v.problems)
	slices.SortStableFunc(sorted, func(a, b problem) int {
		return slices.Index(reasonOrder, a.reason) - slices.Index(reasonOrder, b.reason)
	})
	msgs := make([]string, 0, 5)
	for i, p := range sorted {
		if i == 5 {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(sorted)-5))
			break
		}
		msgs = append(msgs, p.msg)
	}
	return sorted[0].reason, strings.Join(msgs, "; ")
}

// Add records a problem under a condition reason.
func (v *Result) Add(reason, format string, args ...any) {
	v.problems = append(v.problems, problem{reason: reason, msg: fmt.Sprintf(format, args...)})
}

// described is what Result learned of one collection.
type described struct {
	c     *retentionv1.Collection
	dc    datastore.Collection
	info  *datastore.CollectionInfo // nil when not found or not described
	found bool
	notes []string // per-collection messages for status
}

// Check checks the spec, then describes every collection.
func Check(ctx context.Context, ds *retentionv1.Dataset, store *retentionv1.DataStore, d datastore.Driver) *Result {
	v := &Result{}
	sql := store.Spec.Type == retentionv1.DataStorePostgreSQL || store.Spec.Type == retentionv1.DataStoreMySQL
	byName := map[string]*described{}
	order := make([]*described, 0, len(ds.Spec.Collections))
	for i := range ds.Spec.Collections {
		c := &ds.Spec.Collections[i]
		x := &described{c: c}
		byName[string(c.Name)] = x
		order = append(order, x)
	}

	// Spec checks that need no store.
	usesHMAC := false
	for _, x := range order {
		checkSpec(v, x, store.Spec.Type, byName)
		for _, f := range x.c.Fields {
			if f.Anonymize != nil && f.Anonymize.Strategy == retentionv1.StrategyHMAC {
				usesHMAC = true
			}
		}
	}
	if usesHMAC && ds.Spec.HMACKeySecretRef == nil {
		v.Add(retentionv1.ReasonInvalidSpec, "strategy HMAC needs spec.hmacKeySecretRef")
	}
	if store.Spec.Type == retentionv1.DataStoreMySQL && engine.SystemSchema(string(store.Spec.Database)) {
		// The DataStore predates the admission rule: never describe (let
		// alone erase) the server's own tables.
		v.Add(retentionv1.ReasonInvalidSpec, "DataStore %s connects to the system database %s; Lethe never works on system catalogs", store.Name, store.Spec.Database)
		for _, x := range order {
			v.Collections = append(v.Collections, retentionv1.CollectionStatus{Name: string(x.c.Name), Message: "not checked: system database"})
		}
		return v
	}

	// Live checks.
	for _, x := range order {
		if x.dc.Name == "" { // not convertible: already reported
			continue
		}
		probe := x.dc
		probe.PrimaryKey = nil // checked below, so a missing key column is reported as a field
		info, err := d.Describe(ctx, probe)
		switch {
		case err == nil:
			x.info, x.found = &info, true
		case errors.Is(err, datastore.ErrNotFound):
			what := notFoundWhat(store, x.dc)
			x.notes = append(x.notes, what+" not found")
			v.Add(retentionv1.ReasonCollectionNotFound, "collection %s: %s not found", x.c.Name, what)
		case errors.Is(err, datastore.ErrInvalid):
			x.notes = append(x.notes, err.Error())
			v.Add(retentionv1.ReasonInvalidSpec, "collection %s: %v", x.c.Name, err)
		default:
			v.Transient = err
			return v
		}
		if x.found && sql {
			checkFields(v, x)
			checkPrimaryKey(v, x, store.Spec.Type == retentionv1.DataStoreMySQL)
			checkAnonymization(v, x)
		}
	}
	if sql {
		checkReferenceTargets(v, order, byName)
	}

	for _, x := range order {
		st := retentionv1.CollectionStatus{Name: string(x.c.Name), Found: x.found, Message: strings.Join(x.notes, "; ")}
		if x.info != nil {
			st.EstimatedRows = &x.info.EstimatedRows
			st.Partitioned = x.info.Partitioned
		}
		v.Collections = append(v.Collections, st)
	}
	v.ForeignKeys = discoveredForeignKeys(order, store)
	v.Graph = identityGraph(ds, v.ForeignKeys)
	return v
}

func notFoundWhat(store *retentionv1.DataStore, dc datastore.Collection) string {
	switch store.Spec.Type {
	case retentionv1.DataStoreS3:
		if store.Spec.S3 != nil {
			return "bucket " + store.Spec.S3.Bucket
		}
		return "bucket"
	case retentionv1.DataStoreRedis:
		return "key pattern " + dc.Pattern
	case retentionv1.DataStorePostgreSQL:
		return "table " + dc.Schema + "." + dc.Table
	default:
		return "table " + dc.Table
	}
}

// checkSpec checks one collection against the store type and the rest of
// the Dataset, and converts it for the driver (x.dc stays empty when it
// cannot be).
func checkSpec(v *Result, x *described, storeType retentionv1.DataStoreType, byName map[string]*described) {
	c := x.c
	for _, ref := range c.References {
		if _, ok := byName[string(ref.Collection)]; !ok {
			v.Add(retentionv1.ReasonInvalidSpec, "collection %s: reference %s refers to unknown collection %s", c.Name, ref.Field, ref.Collection)
		}
	}
	switch storeType {
	case retentionv1.DataStorePostgreSQL, retentionv1.DataStoreMySQL:
		if c.KeyPattern != "" || c.Prefix != "" {
			v.Add(retentionv1.ReasonInvalidSpec, "collection %s: a %s store holds tables, not key patterns or prefixes", c.Name, storeType)
			return
		}
		for _, id := range c.Identities {
			if id.Field == "" {
				v.Add(retentionv1.ReasonInvalidSpec, "collection %s: identity %s needs field", c.Name, id.Type)
			}
		}
	case retentionv1.DataStoreRedis, retentionv1.DataStoreS3:
		pattern, what := string(c.KeyPattern), "keyPattern"
		if storeType == retentionv1.DataStoreS3 {
			pattern, what = string(c.Prefix), "prefix"
		}
		if pattern == "" {
			v.Add(retentionv1.ReasonInvalidSpec, "collection %s: a %s collection needs %s", c.Name, storeType, what)
			return
		}
		if c.Table != "" || c.Schema != "" {
			v.Add(retentionv1.ReasonInvalidSpec, "collection %s: table and schema are only for SQL collections", c.Name)
		}
		declared := map[string]bool{}
		for _, id := range c.Identities {
			declared[string(id.Type)] = true
		}
		used, err := Placeholders(pattern)
		if err != nil {
			v.Add(retentionv1.ReasonInvalidSpec, "collection %s: %s: %v", c.Name, what, err)
			return
		}
		for _, p := range used {
			if !declared[p] {
				v.Add(retentionv1.ReasonInvalidSpec, "collection %s: %s placeholder {%s} is not an identity type declared by the collection", c.Name, what, p)
			}
		}
		for _, id := range c.Identities {
			if id.Field == "" && !slices.Contains(used, string(id.Type)) {
				v.Add(retentionv1.ReasonInvalidSpec, "collection %s: identity %s has no field and no {%s} placeholder in %s", c.Name, id.Type, id.Type, what)
			}
		}
	}
	dc, err := engine.ToDriver(storeType, c)
	if err != nil {
		v.Add(retentionv1.ReasonInvalidSpec, "%s", strings.TrimPrefix(err.Error(), engine.ErrInvalid.Error()+": "))
		return
	}
	x.dc = dc
}

// placeholders returns the {identity_type} placeholders of a key pattern or
// prefix, in order, without repeats.
func Placeholders(pattern string) ([]string, error) {
	var out []string
	for rest := pattern; ; {
		open := strings.IndexByte(rest, '{')
		closeAt := strings.IndexByte(rest, '}')
		if open < 0 {
			if closeAt >= 0 {
				return nil, errors.New("unmatched '}'")
			}
			return out, nil
		}
		if closeAt < 0 || closeAt < open {
			return nil, errors.New("unmatched '{' or '}'")
		}
		name := rest[open+1 : closeAt]
		if name == "" || strings.IndexByte(name, '{') >= 0 || !identity.IsType(name) {
			return nil, fmt.Errorf("placeholder {%s} is not an identity type (lowercase letters, digits, underscores)", name)
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
		rest = rest[closeAt+1:]
	}
}

// checkFields checks that every declared field of a found SQL collection is
// a column of its table.
func checkFields(v *Result, x *described) {
	c := x.c
	seen := map[string]bool{}
	check := func(field retentionv1.Identifier) {
		f := string(field)
		if f == "" || seen[f] {
			return
		}
		seen[f] = true
		if _, ok := x.info.Columns[f]; !ok {
			x.notes = append(x.notes, "field "+f+" not found")
			v.Add(retentionv1.ReasonFieldNotFound, "field %s.%s not found", c.Name, f)
		}
	}
	if x.dc.TimestampSource == string(retentionv1.TimestampColumn) {
		check(c.TimestampField)
	}
	for _, id := range c.Identities {
		check(id.Field)
	}
	for _, f := range c.Fields {
		check(f.Name)
	}
	for _, pk := range c.PrimaryKey {
		check(pk)
	}
	for _, ref := range c.References {
		check(ref.Field)
	}
}

// checkPrimaryKey checks that a declared primaryKey is unique in the live
// table: some primary key or unique index (not partial, every column NOT
// NULL) is made of its columns. Keyset batches by a key that is not unique
// skip records (a purge that leaves expired rows) or repeat them (an
// anonymization that rewrites rows it did not count).
func checkPrimaryKey(v *Result, x *described, foldCase bool) {
	if len(x.c.PrimaryKey) == 0 {
		return
	}
	cols := make([]string, len(x.c.PrimaryKey))
	for i, k := range x.c.PrimaryKey {
		if _, ok := x.info.Columns[string(k)]; !ok {
			return // reported as FieldNotFound
		}
		cols[i] = string(k)
	}
	if datastore.CoversUniqueKey(cols, x.info.KeysNotNull(), foldCase) {
		return
	}
	x.notes = append(x.notes, "primaryKey is not unique")
	v.Add(retentionv1.ReasonPrimaryKeyNotUnique, "collection %s: primaryKey (%s) is not backed by a primary key or unique index of the table (not partial, every column NOT NULL); batching by it would skip or repeat records: declare the table's real key or add a unique index",
		x.c.Name, strings.Join(cols, ", "))
}

// checkAnonymization finds, before any erasure or retention run, what would
// make anonymizing the collection fail or leave it identifying: a strategy
// on a primary-key or unique column (two anonymized records could collide,
// and the key is what batches resume by), Null on a NOT NULL column, a
// strategy that cannot write the column's type or length, and an identity
// field of an Anonymize collection without a strategy (its records would
// still identify the subject after erasure).
func checkAnonymization(v *Result, x *described) {
	c := x.c
	pk := x.primaryKey()
	for _, f := range c.Fields {
		if f.Anonymize == nil {
			continue
		}
		col, ok := x.info.Columns[string(f.Name)]
		if !ok {
			continue // reported by checkFields
		}
		bad := func(format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			x.notes = append(x.notes, "field "+string(f.Name)+": "+msg)
			v.Add(retentionv1.ReasonInvalidAnonymization, "field %s.%s: %s", c.Name, f.Name, msg)
		}
		switch {
		case slices.Contains(pk, string(f.Name)):
			bad("is part of the primary key; a key column cannot be anonymized (delete the record instead, or anonymize other fields)")
			continue
		case col.Unique && f.Anonymize.Strategy != retentionv1.StrategyHMAC:
			bad("is part of a unique index; anonymized values would collide (use HMAC, which keeps distinct values distinct, or delete the record)")
			continue
		}
		s := engine.Strategy(*f.Anonymize, []byte("Result-key-0123456789abcdef0123"))
		if err := s.Validate(col.Mask); err != nil {
			bad("%s", strings.TrimPrefix(err.Error(), mask.ErrInvalidStrategy.Error()+": "))
		}
	}
	if (c.Action != retentionv1.ActionAnonymize && c.WhenReferenced != retentionv1.WhenReferencedAnonymize) || c.TraverseOnly {
		return
	}
	for _, id := range c.Identities {
		if id.Field == "" {
			continue
		}
		if !slices.ContainsFunc(c.Fields, func(f retentionv1.DataField) bool { return f.Name == id.Field && f.Anonymize != nil }) {
			x.notes = append(x.notes, "identity field "+string(id.Field)+" has no anonymize strategy")
			v.Add(retentionv1.ReasonInvalidAnonymization, "field %s.%s: identity %s of a collection erased by Anonymize needs an anonymize strategy, or its records would still identify the subject", c.Name, id.Field, id.Type)
		}
	}
}

// primaryKey is a collection's declared primary key, else the discovered one.
func (x *described) primaryKey() []string {
	if len(x.c.PrimaryKey) > 0 {
		out := make([]string, len(x.c.PrimaryKey))
		for i, k := range x.c.PrimaryKey {
			out[i] = string(k)
		}
		return out
	}
	if x.info != nil {
		return x.info.PrimaryKey
	}
	return nil
}

// refTarget is the field a reference points at: targetField, else the
// single-column primary key of the target ("" when there is none).
func refTarget(ref retentionv1.Reference, target *described) string {
	if ref.TargetField != "" {
		return string(ref.TargetField)
	}
	if pk := target.primaryKey(); len(pk) == 1 {
		return pk[0]
	}
	return ""
}

// checkReferenceTargets checks that each reference's target field exists.
func checkReferenceTargets(v *Result, order []*described, byName map[string]*described) {
	for _, x := range order {
		for _, ref := range x.c.References {
			t, ok := byName[string(ref.Collection)]
			if !ok || !t.found {
				continue // unknown collection or missing table: already reported
			}
			target := refTarget(ref, t)
			if target == "" {
				v.Add(retentionv1.ReasonInvalidSpec, "collection %s: reference %s → %s needs targetField: %s has no single-column primary key",
					x.c.Name, ref.Field, ref.Collection, ref.Collection)
				continue
			}
			if _, ok := t.info.Columns[target]; !ok {
				t.notes = append(t.notes, "field "+target+" not found")
				v.Add(retentionv1.ReasonFieldNotFound, "field %s.%s not found (target of reference %s.%s)", t.c.Name, target, x.c.Name, ref.Field)
			}
		}
	}
}

// --- identity graph ---------------------------------------------------------

// tableKey names a live table (MySQL: the database as its schema).
type tableKey struct{ schema, table string }

// collectionsByTable indexes the declared SQL collections by their table, so
// a foreign key's target table leads back to collection names.
func collectionsByTable(order []*described, store *retentionv1.DataStore) map[tableKey][]string {
	byTable := map[tableKey][]string{}
	for _, x := range order {
		if x.dc.Table == "" {
			continue
		}
		k := tableKey{x.dc.Schema, x.dc.Table}
		if store.Spec.Type == retentionv1.DataStoreMySQL {
			k.schema = string(store.Spec.Database)
		}
		byTable[k] = append(byTable[k], string(x.c.Name))
	}
	return byTable
}

// discoveredForeignKeys lists the foreign keys of the live schema between
// two declared collections. Erasure reads each as PointsTo (a foreign key
// says a record points at another, not whose it is) unless a declared
// reference on the same field says Owned; all of them order erasure
// children first. A composite key is listed with its columns joined by
// commas: it orders and blocks, but is never followed as a path.
func discoveredForeignKeys(order []*described, store *retentionv1.DataStore) []retentionv1.DiscoveredReference {
	byTable := collectionsByTable(order, store)
	var out []retentionv1.DiscoveredReference
	for _, x := range order {
		if x.info == nil {
			continue
		}
		for _, fk := range x.info.ForeignKeys {
			own := retentionv1.OwnershipPointsTo
			for _, ref := range x.c.References {
				if len(fk.Columns) == 1 && string(ref.Field) == fk.Columns[0] && ref.Ownership != retentionv1.OwnershipPointsTo {
					own = retentionv1.OwnershipOwned
				}
			}
			for _, parent := range byTable[tableKey{fk.RefSchema, fk.RefTable}] {
				out = append(out, retentionv1.DiscoveredReference{Collection: string(x.c.Name), Field: strings.Join(fk.Columns, ","), TargetCollection: parent,
					TargetField: strings.Join(fk.RefColumns, ","), Constraint: fk.Name, Ownership: own})
			}
		}
	}
	return out
}

// identityGraph lists, for each identity type declared anywhere in the
// Dataset, every collection that holds it directly and every owning path by
// which a collection reaches one that does (internal/erasure: the graph
// erasure plans with, declared references and the foreign keys found now).
func identityGraph(ds *retentionv1.Dataset, foreignKeys []retentionv1.DiscoveredReference) []retentionv1.IdentityPath {
	probe := ds.DeepCopy()
	probe.Status.ForeignKeys = foreignKeys
	g := erasure.NewGraph(probe)
	types := erasure.DeclaredTypes([]retentionv1.Dataset{*probe})
	sorted := make([]string, 0, len(types))
	for t := range types {
		sorted = append(sorted, t)
	}
	slices.Sort(sorted)
	var graph []retentionv1.IdentityPath
	for _, t := range sorted {
		for i := range probe.Spec.Collections {
			c := &probe.Spec.Collections[i]
			r, err := g.Owned(c, func(x string) bool { return x == t })
			if err != nil {
				continue // no path, or a reference already reported invalid
			}
			if r.Direct {
				graph = append(graph, retentionv1.IdentityPath{Identity: t, Collection: string(c.Name)})
			}
			for _, p := range r.Paths {
				via := make([]string, len(p))
				for k, e := range p {
					via[k] = e.String()
				}
				graph = append(graph, retentionv1.IdentityPath{Identity: t, Collection: string(c.Name), Via: via})
			}
		}
	}
	return graph
}
