package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/identity"
	"github.com/lethe-dev/lethe/internal/mask"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// Dataset reasons beyond the shared ones.

// DatasetDataStoreIndex is the cache index of Datasets by the name of the
// DataStore they use (spec.dataStoreRef.name).
const DatasetDataStoreIndex = "spec.dataStoreRef.name"

// DatasetReconciler validates each Dataset against its live store: every
// declared collection and field must exist; it reports the collections found
// and which collection is reachable from which identity type.
type DatasetReconciler struct {
	Deps
	// RecheckInterval is how soon a Dataset that is not Ready (missing table
	// or column, store not ready) is checked again: migrations may fix it
	// (default 2m).
	RecheckInterval time.Duration
	// ResyncInterval is how often a validated Dataset is checked again, so a
	// migration that drops a declared column is noticed (default 10m).
	ResyncInterval time.Duration
}

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datasets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datastores,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the Dataset controller. A Dataset is validated
// again when its DataStore becomes Ready (or stops being Ready).
func (r *DatasetReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	if err := indexDatasetsByDataStore(mgr); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("dataset").
		For(&retentionv1.Dataset{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&retentionv1.DataStore{}, handler.EnqueueRequestsFromMapFunc(r.datasetsOfStore),
			builder.WithPredicates(storeAvailabilityChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(concurrency, 1)}).
		Complete(r)
}

// indexed remembers the managers whose caches already index Datasets by
// DataStore: the Dataset and DataStore controllers both need the index, and
// registering it twice on one cache is an error.
var indexed sync.Map

func indexDatasetsByDataStore(mgr ctrl.Manager) error {
	if _, loaded := indexed.LoadOrStore(mgr, true); loaded {
		return nil
	}
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &retentionv1.Dataset{}, DatasetDataStoreIndex,
		func(o client.Object) []string {
			return []string{string(o.(*retentionv1.Dataset).Spec.DataStoreRef.Name)}
		})
	if err != nil {
		indexed.Delete(mgr)
		return fmt.Errorf("indexing Datasets by DataStore: %w", err)
	}
	return nil
}

// datasetsOfStore lists the Datasets that use a DataStore.
func (r *DatasetReconciler) datasetsOfStore(ctx context.Context, o client.Object) []reconcile.Request {
	return listRequests(ctx, r, &retentionv1.DatasetList{}, client.InNamespace(o.GetNamespace()), client.MatchingFields{DatasetDataStoreIndex: o.GetName()})
}

// storeAvailabilityChanged passes DataStore events that can change a
// Dataset's validation: creation, deletion, a spec change, the start of
// deletion and Ready turning True or False. Routine probes, which only move
// status.lastProbeTime, are filtered out.
func storeAvailabilityChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*retentionv1.DataStore)
			n, ok2 := e.ObjectNew.(*retentionv1.DataStore)
			if !ok1 || !ok2 {
				return true
			}
			return o.Generation != n.Generation ||
				o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero() ||
				retentionv1.IsReady(o) != retentionv1.IsReady(n)
		},
	}
}

func (r *DatasetReconciler) recheckInterval() time.Duration {
	if r.RecheckInterval > 0 {
		return r.RecheckInterval
	}
	return 2 * time.Minute
}

func (r *DatasetReconciler) resyncInterval() time.Duration {
	if r.ResyncInterval > 0 {
		return r.ResyncInterval
	}
	return 10 * time.Minute
}

// Reconcile reads top to bottom: get → gates (DataStore Ready) → validate
// (spec, then live schema) → status, written once.
func (r *DatasetReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var ds retentionv1.Dataset
	if err := r.Get(ctx, req.NamespacedName, &ds); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !ds.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	status := newStatusWriter(r.Client, &ds)
	read := status.previous
	next, err := r.validate(ctx, &ds)
	if werr := status.write(ctx, &ds); werr != nil {
		return reconcile.Result{}, werr
	}
	if c := readyChanged(read, &ds); c != nil {
		r.Recorder.Eventf(&ds, nil, eventType(c), c.Reason, "Validate", "%s", c.Message)
	}
	return outcome.Result(err, next)
}

// validate sets the Dataset's status and says when to look again.
func (r *DatasetReconciler) validate(ctx context.Context, ds *retentionv1.Dataset) (time.Duration, error) {
	ds.Status.ObservedGeneration = ds.Generation

	// Gate: the DataStore exists and is Ready.
	store, why, err := r.readyStore(ctx, ds)
	if err != nil {
		return 0, err
	}
	if store == nil {
		retentionv1.MarkNotReady(ds, retentionv1.ReasonDataStoreNotReady, why)
		return r.recheckInterval(), nil
	}
	driver, err := r.Pool.Get(ctx, store)
	if err != nil {
		reason, msg := classify(err)
		retentionv1.MarkNotReady(ds, reason, msg+"; retrying")
		return 0, fmt.Errorf("opening DataStore %s: %w", store.Name, err)
	}

	// Validate the spec, then every collection against the live store.
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v := validateDataset(dctx, ds, store, driver)
	if v.transient == nil {
		v.transient = r.checkHMACKey(ctx, ds, v)
	}
	if v.transient != nil {
		reason, msg := classify(v.transient)
		retentionv1.MarkNotReady(ds, reason, "Validation failed: "+msg+"; retrying")
		return 0, fmt.Errorf("validating Dataset against DataStore %s: %w", store.Name, v.transient)
	}
	ds.Status.Collections = v.collections
	ds.Status.IdentityGraph = v.graph
	ds.Status.ForeignKeys = v.foreignKeys
	if reason, msg := v.verdict(); reason != "" {
		// A missing table or column needs a human (or a migration): Stalled,
		// but checked again periodically since the schema can change.
		retentionv1.MarkStalled(ds, reason, msg)
		return r.recheckInterval(), outcome.Stall(reason, msg)
	}
	retentionv1.MarkReady(ds, retentionv1.ReasonValidated, fmt.Sprintf("%d collections validated against DataStore %s; %d identity paths",
		len(ds.Spec.Collections), store.Name, len(v.graph)))
	return r.resyncInterval(), nil
}

// checkHMACKey checks that the HMAC key Secret named by the Dataset exists
// and holds a long enough key, so a missing Secret shows now rather than in
// the middle of a run. It returns only errors that retrying may fix.
func (r *DatasetReconciler) checkHMACKey(ctx context.Context, ds *retentionv1.Dataset, v *validation) error {
	ref := ds.Spec.HMACKeySecretRef
	if ref == nil {
		return nil
	}
	key, err := connect.SecretKey(ctx, r.APIReader, ds.Namespace, *ref)
	switch {
	case errors.Is(err, connect.ErrSecretNotFound):
		v.add(connect.SecretReason(err), "hmacKeySecretRef: %v", err)
	case err != nil:
		return fmt.Errorf("reading the HMAC key Secret: %w", err)
	case len(key) < 16:
		v.add(retentionv1.ReasonInvalidSpec, "hmacKeySecretRef: the key in Secret %s is shorter than 16 bytes", ref.Name)
	}
	return nil
}

// readyStore returns the Dataset's DataStore when it is Ready, else nil and
// why not.
func (r *DatasetReconciler) readyStore(ctx context.Context, ds *retentionv1.Dataset) (*retentionv1.DataStore, string, error) {
	name := string(ds.Spec.DataStoreRef.Name)
	var store retentionv1.DataStore
	if err := r.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, &store); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Sprintf("DataStore %s not found", name), nil
		}
		return nil, "", err
	}
	switch {
	case !store.DeletionTimestamp.IsZero():
		return nil, fmt.Sprintf("DataStore %s is being deleted", name), nil
	case !retentionv1.IsReady(&store):
		msg := fmt.Sprintf("DataStore %s is not Ready", name)
		if c := findCondition(store.Status.Conditions, retentionv1.ConditionReady); c != nil && c.Reason != "" {
			msg += " (" + c.Reason + ")"
		}
		return nil, msg, nil
	}
	return &store, "", nil
}

// --- validation -------------------------------------------------------------

// problem is one thing wrong with a Dataset, by condition reason.
type problem struct{ reason, msg string }

// validation is the result of checking a Dataset against its store.
type validation struct {
	collections []retentionv1.CollectionStatus
	graph       []retentionv1.IdentityPath
	foreignKeys []retentionv1.DiscoveredReference
	problems    []problem
	// transient is an error retrying may fix (store unreachable); when set,
	// the rest is incomplete.
	transient error
}

// reasonOrder ranks reasons: the Ready reason is the first that has a problem.
var reasonOrder = []string{retentionv1.ReasonInvalidSpec, retentionv1.ReasonSecretNotFound, retentionv1.ReasonCollectionNotFound, retentionv1.ReasonFieldNotFound, retentionv1.ReasonPrimaryKeyNotUnique, retentionv1.ReasonInvalidAnonymization}

// verdict returns the Ready reason and message, or "" when all is well. The
// message lists up to five problems, most serious first.
func (v *validation) verdict() (string, string) {
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

func (v *validation) add(reason, format string, args ...any) {
	v.problems = append(v.problems, problem{reason: reason, msg: fmt.Sprintf(format, args...)})
}

// described is what validation learned of one collection.
type described struct {
	c     *retentionv1.Collection
	dc    datastore.Collection
	info  *datastore.CollectionInfo // nil when not found or not described
	found bool
	notes []string // per-collection messages for status
}

// validateDataset checks the spec, then describes every collection.
func validateDataset(ctx context.Context, ds *retentionv1.Dataset, store *retentionv1.DataStore, d datastore.Driver) *validation {
	v := &validation{}
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
		v.add(retentionv1.ReasonInvalidSpec, "strategy HMAC needs spec.hmacKeySecretRef")
	}
	if store.Spec.Type == retentionv1.DataStoreMySQL && engine.SystemSchema(string(store.Spec.Database)) {
		// The DataStore predates the admission rule: never describe (let
		// alone erase) the server's own tables.
		v.add(retentionv1.ReasonInvalidSpec, "DataStore %s connects to the system database %s; Lethe never works on system catalogs", store.Name, store.Spec.Database)
		for _, x := range order {
			v.collections = append(v.collections, retentionv1.CollectionStatus{Name: string(x.c.Name), Message: "not checked: system database"})
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
			v.add(retentionv1.ReasonCollectionNotFound, "collection %s: %s not found", x.c.Name, what)
		case errors.Is(err, datastore.ErrInvalid):
			x.notes = append(x.notes, err.Error())
			v.add(retentionv1.ReasonInvalidSpec, "collection %s: %v", x.c.Name, err)
		default:
			v.transient = err
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
		v.collections = append(v.collections, st)
	}
	v.foreignKeys = discoveredForeignKeys(order, store)
	v.graph = identityGraph(ds, v.foreignKeys)
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
func checkSpec(v *validation, x *described, storeType retentionv1.DataStoreType, byName map[string]*described) {
	c := x.c
	for _, ref := range c.References {
		if _, ok := byName[string(ref.Collection)]; !ok {
			v.add(retentionv1.ReasonInvalidSpec, "collection %s: reference %s refers to unknown collection %s", c.Name, ref.Field, ref.Collection)
		}
	}
	switch storeType {
	case retentionv1.DataStorePostgreSQL, retentionv1.DataStoreMySQL:
		if c.KeyPattern != "" || c.Prefix != "" {
			v.add(retentionv1.ReasonInvalidSpec, "collection %s: a %s store holds tables, not key patterns or prefixes", c.Name, storeType)
			return
		}
		for _, id := range c.Identities {
			if id.Field == "" {
				v.add(retentionv1.ReasonInvalidSpec, "collection %s: identity %s needs field", c.Name, id.Type)
			}
		}
	case retentionv1.DataStoreRedis, retentionv1.DataStoreS3:
		pattern, what := string(c.KeyPattern), "keyPattern"
		if storeType == retentionv1.DataStoreS3 {
			pattern, what = string(c.Prefix), "prefix"
		}
		if pattern == "" {
			v.add(retentionv1.ReasonInvalidSpec, "collection %s: a %s collection needs %s", c.Name, storeType, what)
			return
		}
		if c.Table != "" || c.Schema != "" {
			v.add(retentionv1.ReasonInvalidSpec, "collection %s: table and schema are only for SQL collections", c.Name)
		}
		declared := map[string]bool{}
		for _, id := range c.Identities {
			declared[string(id.Type)] = true
		}
		used, err := placeholders(pattern)
		if err != nil {
			v.add(retentionv1.ReasonInvalidSpec, "collection %s: %s: %v", c.Name, what, err)
			return
		}
		for _, p := range used {
			if !declared[p] {
				v.add(retentionv1.ReasonInvalidSpec, "collection %s: %s placeholder {%s} is not an identity type declared by the collection", c.Name, what, p)
			}
		}
		for _, id := range c.Identities {
			if id.Field == "" && !slices.Contains(used, string(id.Type)) {
				v.add(retentionv1.ReasonInvalidSpec, "collection %s: identity %s has no field and no {%s} placeholder in %s", c.Name, id.Type, id.Type, what)
			}
		}
	}
	dc, err := engine.ToDriver(storeType, c)
	if err != nil {
		v.add(retentionv1.ReasonInvalidSpec, "%s", strings.TrimPrefix(err.Error(), engine.ErrInvalid.Error()+": "))
		return
	}
	x.dc = dc
}

// placeholders returns the {identity_type} placeholders of a key pattern or
// prefix, in order, without repeats.
func placeholders(pattern string) ([]string, error) {
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
func checkFields(v *validation, x *described) {
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
			v.add(retentionv1.ReasonFieldNotFound, "field %s.%s not found", c.Name, f)
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
func checkPrimaryKey(v *validation, x *described, foldCase bool) {
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
	v.add(retentionv1.ReasonPrimaryKeyNotUnique, "collection %s: primaryKey (%s) is not backed by a primary key or unique index of the table (not partial, every column NOT NULL); batching by it would skip or repeat records: declare the table's real key or add a unique index",
		x.c.Name, strings.Join(cols, ", "))
}

// checkAnonymization finds, before any erasure or retention run, what would
// make anonymizing the collection fail or leave it identifying: a strategy
// on a primary-key or unique column (two anonymized records could collide,
// and the key is what batches resume by), Null on a NOT NULL column, a
// strategy that cannot write the column's type or length, and an identity
// field of an Anonymize collection without a strategy (its records would
// still identify the subject after erasure).
func checkAnonymization(v *validation, x *described) {
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
			v.add(retentionv1.ReasonInvalidAnonymization, "field %s.%s: %s", c.Name, f.Name, msg)
		}
		switch {
		case slices.Contains(pk, string(f.Name)):
			bad("is part of the primary key; a key column cannot be anonymized (delete the record instead, or anonymize other fields)")
			continue
		case col.Unique && f.Anonymize.Strategy != retentionv1.StrategyHMAC:
			bad("is part of a unique index; anonymized values would collide (use HMAC, which keeps distinct values distinct, or delete the record)")
			continue
		}
		s := engine.Strategy(*f.Anonymize, []byte("validation-key-0123456789abcdef0123"))
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
			v.add(retentionv1.ReasonInvalidAnonymization, "field %s.%s: identity %s of a collection erased by Anonymize needs an anonymize strategy, or its records would still identify the subject", c.Name, id.Field, id.Type)
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
func checkReferenceTargets(v *validation, order []*described, byName map[string]*described) {
	for _, x := range order {
		for _, ref := range x.c.References {
			t, ok := byName[string(ref.Collection)]
			if !ok || !t.found {
				continue // unknown collection or missing table: already reported
			}
			target := refTarget(ref, t)
			if target == "" {
				v.add(retentionv1.ReasonInvalidSpec, "collection %s: reference %s → %s needs targetField: %s has no single-column primary key",
					x.c.Name, ref.Field, ref.Collection, ref.Collection)
				continue
			}
			if _, ok := t.info.Columns[target]; !ok {
				t.notes = append(t.notes, "field "+target+" not found")
				v.add(retentionv1.ReasonFieldNotFound, "field %s.%s not found (target of reference %s.%s)", t.c.Name, target, x.c.Name, ref.Field)
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
