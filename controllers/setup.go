package controllers

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/coalesce"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/all"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/ledger"
	"github.com/lethe-dev/lethe/internal/notify"
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
	// PurgeJobCheckpointInterval bounds the time between two status writes
	// of a running PurgeJob (default executor.DefaultCheckpointInterval, 5s).
	PurgeJobCheckpointInterval time.Duration
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
	// NotifyBackoff is the retry schedule of erasure notices to Recipients
	// (default notify.DefaultBackoff: 30s doubling up to 6h, with jitter);
	// NotifyTimeout bounds one attempt (default 10s).
	NotifyBackoff notify.Backoff
	NotifyTimeout time.Duration
}

// CacheOptions are the manager's cache options for --watch-namespaces: a
// comma-separated list of namespaces to watch, or empty for all. With a list,
// every watch, list and cached read is namespaced, so the manager needs only
// Roles in those namespaces (config/rbac-namespaced), no ClusterRole.
//
// Cached objects are stripped of what no controller reads (cacheTransform).
func CacheOptions(namespaces string) cache.Options {
	opts := cache.Options{DefaultTransform: cacheTransform}
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

// lastApplied is the annotation in which kubectl apply (client-side) keeps
// a whole copy of the object as last applied.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// cacheTransform strips from every object the informers cache what no
// controller reads: metadata.managedFields (server-side apply's field
// owners, often larger than the spec) and kubectl's last-applied
// configuration. With 10,000 objects that is a tenth of the manager's
// memory (test/bench/memory). Safe because the manager never writes a
// cached object back whole: it patches metadata and spec (a merge patch of
// two copies without these fields leaves them alone on the server) and
// updates only the status subresource, which ignores metadata.
func cacheTransform(in any) (any, error) {
	if o, ok := in.(metav1.Object); ok {
		o.SetManagedFields(nil)
		if a := o.GetAnnotations(); a != nil {
			if _, ok := a[lastApplied]; ok {
				delete(a, lastApplied)
				o.SetAnnotations(a)
			}
		}
	}
	return in, nil
}

// Setup registers every controller with the manager.
func Setup(mgr ctrl.Manager, deps Deps, o Options) error {
	if len(deps.DigestKey) < 32 {
		return fmt.Errorf("a digest key of at least 32 bytes is required (it keys subject digests and seals cursors)")
	}
	if o.NetworkPolicy != nil && deps.Pool != nil {
		deps.Pool.Network = o.NetworkPolicy
	}
	if deps.Throttles == nil {
		deps.Throttles = &executor.Throttles{}
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
	network := o.NetworkPolicy
	if network == nil && deps.Pool != nil {
		network = deps.Pool.Network
	}
	notifier := &notify.Client{Policy: network, Timeout: o.NotifyTimeout}
	backoff := o.NotifyBackoff
	if backoff.Base <= 0 {
		backoff = notify.DefaultBackoff
	}
	if err := (&DeletionRequestReconciler{Deps: deps, Coalescer: coalescer, Ledger: ledger.NewWriter(deps.Client, deps.APIReader), Notifier: notifier, NotifyBackoff: backoff}).SetupWithManager(mgr, o.RequestConcurrency); err != nil {
		return err
	}
	if err := (&RecipientReconciler{Deps: deps, Network: network}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&ErasureReplayReconciler{Deps: deps}).SetupWithManager(mgr); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("purgejob").
		For(&retentionv1.PurgeJob{}, builder.WithPredicates(specOrMetadataChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(o.PurgeJobConcurrency, 1)}).
		Complete(&PurgeJobReconciler{Deps: deps, SliceDuration: o.PurgeJobSlice, MaxBatchesPerSlice: o.PurgeJobBatchesPerSlice, CheckpointInterval: o.PurgeJobCheckpointInterval})
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
