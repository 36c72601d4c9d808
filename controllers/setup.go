package controllers

import (
	"fmt"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/coalesce"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/all"
	"github.com/lethe-dev/lethe/internal/ledger"
)

// Options tune the controllers.
type Options struct {
	// Parallel reconciles per controller.
	DataStoreConcurrency int
	DatasetConcurrency   int
	LegalHoldConcurrency int
	PolicyConcurrency    int
	RequestConcurrency   int
	PurgeJobConcurrency  int
	// PurgeJobSlice bounds the time one PurgeJob reconcile executes batches
	// before checkpointing and yielding (default 10s).
	PurgeJobSlice time.Duration
	// PurgeJobBatchesPerSlice bounds the batches per reconcile (0: no bound).
	PurgeJobBatchesPerSlice int
	// CoalesceWindow is how long ready DeletionRequests gather before one
	// PurgeJob erases them together (default 200ms); CoalesceMaxSubjects
	// bounds how many (default 500; 1 disables coalescing).
	CoalesceWindow      time.Duration
	CoalesceMaxSubjects int
	// LegalHoldRecheck is how often an active hold re-reads its subjects
	// Secret and derives their further identities again (default 5m).
	LegalHoldRecheck time.Duration
	// NetworkPolicy says where DataStores may connect
	// (--datastore-allowed-networks, --datastore-denied-networks); nil
	// keeps the pool's, by default datastore.DefaultNetworkPolicy.
	NetworkPolicy *datastore.NetworkPolicy
}

// CacheOptions are the manager's cache options for --watch-namespaces: a
// comma-separated list of namespaces to watch, or empty for all. With a list,
// every watch, list and cached read is namespaced, so the manager needs only
// Roles in those namespaces (config/rbac-namespaced), no ClusterRole.
func CacheOptions(namespaces string) cache.Options {
	opts := cache.Options{}
	for _, ns := range strings.Split(namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			if opts.DefaultNamespaces == nil {
				opts.DefaultNamespaces = map[string]cache.Config{}
			}
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// Setup registers every controller with the manager.
func Setup(mgr ctrl.Manager, deps Deps, o Options) error {
	if len(deps.DigestKey) < 32 {
		return fmt.Errorf("a digest key of at least 32 bytes is required (it keys subject digests and seals cursors)")
	}
	if o.NetworkPolicy != nil && deps.Pool != nil {
		deps.Pool.Network = o.NetworkPolicy
	}
	healthChanges := watchHealth(&deps)
	if err := (&DataStoreReconciler{Deps: deps, HealthChanges: healthChanges}).SetupWithManager(mgr, o.DataStoreConcurrency); err != nil {
		return err
	}
	if err := (&DatasetReconciler{Deps: deps}).SetupWithManager(mgr, o.DatasetConcurrency); err != nil {
		return err
	}
	if err := (&LegalHoldReconciler{Deps: deps, RecheckInterval: o.LegalHoldRecheck}).SetupWithManager(mgr, o.LegalHoldConcurrency); err != nil {
		return err
	}
	if err := (&RetentionPolicyReconciler{Deps: deps}).SetupWithManager(mgr, o.PolicyConcurrency); err != nil {
		return err
	}
	coalescer := coalesce.New(deps.Client, deps.DigestKey)
	coalescer.Window, coalescer.MaxSubjects = o.CoalesceWindow, o.CoalesceMaxSubjects
	if err := (&DeletionRequestReconciler{Deps: deps, Coalescer: coalescer, Ledger: ledger.NewWriter(deps.Client, deps.APIReader)}).SetupWithManager(mgr, o.RequestConcurrency); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("purgejob").
		For(&retentionv1.PurgeJob{}, builder.WithPredicates(specOrMetadataChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(o.PurgeJobConcurrency, 1)}).
		Complete(&PurgeJobReconciler{Deps: deps, SliceDuration: o.PurgeJobSlice, MaxBatchesPerSlice: o.PurgeJobBatchesPerSlice})
}

// NewDeps wires what the reconcilers share from a manager: its clients, an
// event recorder and a pool of drivers for every datastore type. Close the
// pool (deps.Pool.Close) when the manager stops.
func NewDeps(mgr ctrl.Manager, digestKey []byte) Deps {
	return Deps{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("lethe"),
		Pool:      &connect.Pool{Reader: mgr.GetAPIReader(), Open: all.Open},
		DigestKey: digestKey,
	}
}
