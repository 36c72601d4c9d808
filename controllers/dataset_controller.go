package controllers

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/lethe-dev/lethe/internal/datasetcheck"
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
	v := datasetcheck.Check(dctx, ds, store, driver)
	if v.Transient == nil {
		v.Transient = r.checkHMACKey(ctx, ds, v)
	}
	if v.Transient != nil {
		reason, msg := classify(v.Transient)
		retentionv1.MarkNotReady(ds, reason, "Validation failed: "+msg+"; retrying")
		return 0, fmt.Errorf("validating Dataset against DataStore %s: %w", store.Name, v.Transient)
	}
	ds.Status.Collections = v.Collections
	ds.Status.IdentityGraph = v.Graph
	ds.Status.ForeignKeys = v.ForeignKeys
	if reason, msg := v.Verdict(); reason != "" {
		// A missing table or column needs a human (or a migration): Stalled,
		// but checked again periodically since the schema can change.
		retentionv1.MarkStalled(ds, reason, msg)
		return r.recheckInterval(), outcome.Stall(reason, msg)
	}
	retentionv1.MarkReady(ds, retentionv1.ReasonValidated, fmt.Sprintf("%d collections validated against DataStore %s; %d identity paths",
		len(ds.Spec.Collections), store.Name, len(v.Graph)))
	return r.resyncInterval(), nil
}

// checkHMACKey checks that the HMAC key Secret named by the Dataset exists
// and holds a long enough key, so a missing Secret shows now rather than in
// the middle of a run. It returns only errors that retrying may fix.
func (r *DatasetReconciler) checkHMACKey(ctx context.Context, ds *retentionv1.Dataset, v *datasetcheck.Result) error {
	ref := ds.Spec.HMACKeySecretRef
	if ref == nil {
		return nil
	}
	key, err := connect.SecretKey(ctx, r.APIReader, ds.Namespace, *ref)
	switch {
	case errors.Is(err, connect.ErrSecretNotFound):
		v.Add(connect.SecretReason(err), "hmacKeySecretRef: %v", err)
	case err != nil:
		return fmt.Errorf("reading the HMAC key Secret: %w", err)
	case len(key) < 16:
		v.Add(retentionv1.ReasonInvalidSpec, "hmacKeySecretRef: the key in Secret %s is shorter than 16 bytes", ref.Name)
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
