package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/schedule"
)

// DataStoreReconciler probes each DataStore on change and periodically, and
// reports Ready with the server version.
type DataStoreReconciler struct {
	Deps
}

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datastores,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datastores/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datastores/finalizers,verbs=update

// Reconcile probes the store and records the result.
func (r *DataStoreReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var ds retentionv1.DataStore
	if err := r.Get(ctx, req.NamespacedName, &ds); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !ds.DeletionTimestamp.IsZero() {
		r.Pool.Forget(req.NamespacedName)
		return reconcile.Result{}, nil
	}
	before := ds.DeepCopy()
	interval := probeInterval(&ds)

	info, err := r.probe(ctx, &ds)
	now := metav1.NewTime(r.now())
	ds.Status.LastProbeTime = &now
	ds.Status.ObservedGeneration = ds.Generation
	up := metrics.DataStoreUp.WithLabelValues(ds.Namespace, ds.Name, string(ds.Spec.Type))
	var result reconcile.Result
	switch {
	case err == nil:
		up.Set(1)
		ds.Status.ServerVersion = info.Version
		retentionv1.MarkReady(&ds, retentionv1.ReasonConnected, fmt.Sprintf("Connected to %s %s", ds.Spec.Type, info.Version))
		result.RequeueAfter = interval
	case errors.Is(err, connect.ErrSecretNotFound):
		up.Set(0)
		retentionv1.MarkStalled(&ds, retentionv1.ReasonSecretNotFound, err.Error())
		result.RequeueAfter = interval // a Secret created later is noticed on the next probe
	case errors.Is(err, datastore.ErrAuthentication):
		up.Set(0)
		retentionv1.MarkStalled(&ds, retentionv1.ReasonAuthenticationFailed, "The datastore refused the credentials of the referenced Secret")
		result.RequeueAfter = interval
	default:
		up.Set(0)
		retentionv1.MarkNotReady(&ds, retentionv1.ReasonConnectionFailed, fmt.Sprintf("Cannot connect: %v", err))
		result.RequeueAfter = min(interval, 30*time.Second)
	}
	if err := r.Status().Patch(ctx, &ds, client.MergeFrom(before)); err != nil {
		return reconcile.Result{}, err
	}
	return result, nil
}

func (r *DataStoreReconciler) probe(ctx context.Context, ds *retentionv1.DataStore) (datastore.ServerInfo, error) {
	d, err := r.Pool.Get(ctx, ds)
	if err != nil {
		return datastore.ServerInfo{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := d.Probe(ctx)
	if err != nil {
		// Reopen on the next probe: the pool may hold a broken connection.
		r.Pool.Forget(types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name})
	}
	return info, err
}

func probeInterval(ds *retentionv1.DataStore) time.Duration {
	d, err := schedule.ParseTimeout(string(ds.Spec.ProbeInterval))
	if err != nil || d < time.Second {
		return 5 * time.Minute
	}
	return d
}
