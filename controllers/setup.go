package controllers

import (
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Options tune the controllers.
type Options struct {
	// Parallel reconciles per controller.
	DataStoreConcurrency int
	PolicyConcurrency    int
	RequestConcurrency   int
	PurgeJobConcurrency  int
	// PurgeJobSlice bounds the time one PurgeJob reconcile executes batches
	// before checkpointing and yielding (default 10s).
	PurgeJobSlice time.Duration
	// PurgeJobBatchesPerSlice bounds the batches per reconcile (0: no bound).
	PurgeJobBatchesPerSlice int
}

// Setup registers every controller with the manager.
func Setup(mgr ctrl.Manager, deps Deps, o Options) error {
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("datastore").
		For(&retentionv1.DataStore{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(o.DataStoreConcurrency, 1)}).
		Complete(&DataStoreReconciler{Deps: deps}); err != nil {
		return err
	}
	if err := (&RetentionPolicyReconciler{Deps: deps}).SetupWithManager(mgr, o.PolicyConcurrency); err != nil {
		return err
	}
	if err := (&DeletionRequestReconciler{Deps: deps}).SetupWithManager(mgr, o.RequestConcurrency); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("purgejob").
		For(&retentionv1.PurgeJob{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(o.PurgeJobConcurrency, 1)}).
		Complete(&PurgeJobReconciler{Deps: deps, SliceDuration: o.PurgeJobSlice, MaxBatchesPerSlice: o.PurgeJobBatchesPerSlice})
}
