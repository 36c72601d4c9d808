package controllers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
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
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=datasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// FinalizerInUse keeps a DataStore while Datasets use it.
const FinalizerInUse = "retention.lethe.dev/in-use"

// SetupWithManager registers the DataStore controller. It reconciles on spec,
// metadata and deletion changes (not on its own status writes; probes are
// periodic), and when a Dataset starts or stops using a store.
func (r *DataStoreReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	if err := indexDatasetsByDataStore(mgr); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("datastore").
		For(&retentionv1.DataStore{}, builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{},
			predicate.AnnotationChangedPredicate{}, deletionOrFinalizersChanged()))).
		Watches(&retentionv1.Dataset{}, storeOfDataset{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(concurrency, 1)}).
		Complete(r)
}

func deletionOrFinalizersChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero() ||
				!slices.Equal(e.ObjectOld.GetFinalizers(), e.ObjectNew.GetFinalizers())
		},
	}
}

// storeOfDataset enqueues the DataStore a Dataset uses when the Dataset is
// created or deleted, and both stores when its dataStoreRef changes. Status
// updates of Datasets are ignored.
type storeOfDataset struct{}

var _ handler.EventHandler = storeOfDataset{}

func (storeOfDataset) enqueue(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
	if d, ok := o.(*retentionv1.Dataset); ok {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: string(d.Spec.DataStoreRef.Name)}})
	}
}

func (h storeOfDataset) Create(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.enqueue(q, e.Object)
}

func (h storeOfDataset) Update(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	o, ok1 := e.ObjectOld.(*retentionv1.Dataset)
	n, ok2 := e.ObjectNew.(*retentionv1.Dataset)
	if ok1 && ok2 && o.Spec.DataStoreRef != n.Spec.DataStoreRef {
		h.enqueue(q, o)
		h.enqueue(q, n)
	}
}

func (h storeOfDataset) Delete(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.enqueue(q, e.Object)
}

func (storeOfDataset) Generic(context.Context, event.GenericEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}

// Reconcile keeps the in-use finalizer, probes the store and records the
// result.
func (r *DataStoreReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var ds retentionv1.DataStore
	if err := r.Get(ctx, req.NamespacedName, &ds); err != nil {
		if apierrors.IsNotFound(err) {
			r.Pool.Forget(req.NamespacedName) // deleted before it ever had the finalizer
			metrics.ForgetDataStore(req.Namespace, req.Name)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	users, err := r.datasetsUsing(ctx, &ds)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !ds.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &ds, users)
	}
	if !controllerutil.ContainsFinalizer(&ds, FinalizerInUse) {
		patch := client.MergeFromWithOptions(ds.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(&ds, FinalizerInUse)
		if err := r.Patch(ctx, &ds, patch); err != nil {
			return reconcile.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}
	status := newStatusWriter(r.Client, &ds)
	before := status.previous
	ds.Status.Datasets = int32(len(users))
	interval := probeInterval(&ds)

	info, err := r.probe(ctx, &ds)
	now := metav1.NewTime(r.now())
	ds.Status.LastProbeTime = &now
	ds.Status.ObservedGeneration = ds.Generation
	// One series per store: drop one left by an earlier type.
	for _, t := range []retentionv1.DataStoreType{retentionv1.DataStorePostgreSQL, retentionv1.DataStoreMySQL, retentionv1.DataStoreRedis, retentionv1.DataStoreS3} {
		if t != ds.Spec.Type {
			metrics.DataStoreUp.DeleteLabelValues(ds.Namespace, ds.Name, string(t))
		}
	}
	up := metrics.DataStoreUp.WithLabelValues(ds.Namespace, ds.Name, string(ds.Spec.Type))
	var result reconcile.Result
	switch {
	case err == nil:
		up.Set(1)
		ds.Status.ServerVersion = versionText(info.Version)
		retentionv1.MarkReady(&ds, retentionv1.ReasonConnected, fmt.Sprintf("Connected to %s %s", ds.Spec.Type, ds.Status.ServerVersion))
		result.RequeueAfter = interval
	case connect.SecretReason(err) != "":
		// SecretNotFound, SecretNotMarked or InvalidSecret: the message
		// names the Secret and the key, never anything read from it.
		up.Set(0)
		retentionv1.MarkStalled(&ds, connect.SecretReason(err), err.Error())
		result.RequeueAfter = interval // a Secret created or labelled later is noticed on the next probe
	case datastore.TLSVerificationProblem(err) != "":
		up.Set(0)
		retentionv1.MarkStalled(&ds, retentionv1.ReasonTLSVerificationFailed, fmt.Sprintf(
			"The server's certificate was refused: %s. No credentials were sent. Set caBundleSecretRef to the CA that signed it, or tls: Require to connect without verifying (insecure)",
			datastore.TLSVerificationProblem(err)))
		result.RequeueAfter = interval
	case errors.Is(err, datastore.ErrNotAllowed):
		// Refused before any connection; only a new host, a name that
		// resolves elsewhere or a new policy (a manager restart) changes
		// that: checked again at the probe interval, not retried.
		up.Set(0)
		retentionv1.MarkStalled(&ds, retentionv1.ReasonNetworkNotAllowed, notAllowedMessage(err))
		result.RequeueAfter = interval
	case errors.Is(err, datastore.ErrAuthentication):
		up.Set(0)
		retentionv1.MarkStalled(&ds, retentionv1.ReasonAuthenticationFailed, "The datastore refused the credentials of the referenced Secret")
		result.RequeueAfter = interval
	case errors.Is(err, datastore.ErrSettings):
		// Found before connecting: the message is Lethe's own.
		up.Set(0)
		retentionv1.MarkNotReady(&ds, retentionv1.ReasonConnectionFailed, "Cannot connect: "+err.Error())
		result.RequeueAfter = min(interval, 30*time.Second)
	default:
		// Fixed words for the error's class: a driver's error can quote
		// whatever answered at the address (a banner, another protocol's
		// reply), and the status must not reflect it.
		up.Set(0)
		retentionv1.MarkNotReady(&ds, retentionv1.ReasonConnectionFailed, fmt.Sprintf("Cannot connect to %s at %s: %s; retrying",
			ds.Spec.Type, storeAddress(&ds), datastore.ConnectionProblem(err)))
		result.RequeueAfter = min(interval, 30*time.Second)
	}
	r.markTLS(&ds, before)
	if d := windowStatus(&ds, r.now()); d > 0 && (result.RequeueAfter == 0 || d < result.RequeueAfter) {
		result.RequeueAfter = d
	}
	if err := status.write(ctx, &ds); err != nil {
		return reconcile.Result{}, err
	}
	return result, nil
}

// markTLS sets TLSVerified: False with a Warning event when the DataStore
// explicitly connects without verifying the server (tls Disable or Require).
func (r *DataStoreReconciler) markTLS(ds, before *retentionv1.DataStore) {
	switch ds.Spec.TLS {
	case retentionv1.TLSDisable, retentionv1.TLSRequire:
		msg := "tls: Disable: credentials and data travel in clear to whoever answers at the address"
		if ds.Spec.TLS == retentionv1.TLSRequire {
			msg = "tls: Require: the connection is encrypted but the server's certificate is not verified; whoever answers at the address receives the credentials"
		}
		retentionv1.SetCondition(ds, retentionv1.ConditionTLSVerified, metav1.ConditionFalse, retentionv1.ReasonInsecureConnection, msg)
		if c := findCondition(before.Status.Conditions, retentionv1.ConditionTLSVerified); c == nil || c.Reason != retentionv1.ReasonInsecureConnection || c.Message != msg {
			r.Recorder.Eventf(ds, nil, "Warning", retentionv1.ReasonInsecureConnection, "Connect", "%s", msg)
		}
	default:
		retentionv1.SetCondition(ds, retentionv1.ConditionTLSVerified, metav1.ConditionTrue, retentionv1.ReasonTLSVerified,
			"TLS with the server's certificate verified (tls VerifyFull) before credentials are sent")
	}
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

// storeAddress is where the DataStore points, as its spec says.
func storeAddress(ds *retentionv1.DataStore) string {
	if ds.Spec.S3 != nil && ds.Spec.S3.Endpoint != "" {
		return ds.Spec.S3.Endpoint
	}
	if ds.Spec.Type == retentionv1.DataStoreS3 {
		return "the AWS endpoint"
	}
	if ds.Spec.Port != nil {
		return net.JoinHostPort(ds.Spec.Host, strconv.Itoa(int(*ds.Spec.Port)))
	}
	return ds.Spec.Host
}

// versionText keeps of a server's version what looks like one (letters,
// digits, spaces and . _ + ~ ( ) : / -, at most 64 characters, up to the
// first other character): a status shows nothing else a server sent.
func versionText(v string) string {
	for i, r := range v {
		ok := r < 128 && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune(" ._+~():/-", r))
		if !ok || i >= 64 {
			v = v[:i]
			break
		}
	}
	if v = strings.TrimSpace(v); v == "" {
		return "(unknown version)"
	}
	return v
}

func probeInterval(ds *retentionv1.DataStore) time.Duration {
	d, err := schedule.ParseTimeout(string(ds.Spec.ProbeInterval))
	if err != nil || d < time.Second {
		return 5 * time.Minute
	}
	return d
}

// datasetsUsing returns the names of the Datasets that use a DataStore,
// sorted.
func (r *DataStoreReconciler) datasetsUsing(ctx context.Context, ds *retentionv1.DataStore) ([]string, error) {
	var list retentionv1.DatasetList
	if err := r.List(ctx, &list, client.InNamespace(ds.Namespace), client.MatchingFields{DatasetDataStoreIndex: ds.Name}); err != nil {
		// Without the index (a manager wired without SetupWithManager), list
		// the namespace and filter.
		if err := r.List(ctx, &list, client.InNamespace(ds.Namespace)); err != nil {
			return nil, fmt.Errorf("listing Datasets of DataStore %s: %w", ds.Name, err)
		}
	}
	names := make([]string, 0, len(list.Items))
	for _, d := range list.Items {
		if string(d.Spec.DataStoreRef.Name) == ds.Name {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// finalize lets a deleted DataStore go once no Dataset uses it; until then
// it keeps the finalizer and says why (Ready=False, reason InUse). A Dataset
// deletion triggers the next attempt.
func (r *DataStoreReconciler) finalize(ctx context.Context, ds *retentionv1.DataStore, users []string) (reconcile.Result, error) {
	key := types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}
	if !controllerutil.ContainsFinalizer(ds, FinalizerInUse) {
		r.Pool.Forget(key)
		metrics.ForgetDataStore(ds.Namespace, ds.Name)
		return reconcile.Result{}, nil
	}
	if len(users) > 0 {
		status := newStatusWriter(r.Client, ds)
		before := status.previous
		ds.Status.ObservedGeneration = ds.Generation
		ds.Status.Datasets = int32(len(users))
		shown := users[:min(len(users), 3)]
		msg := fmt.Sprintf("Deletion waits: %d Datasets use this DataStore (%s", len(users), strings.Join(shown, ", "))
		if len(users) > len(shown) {
			msg += ", …"
		}
		msg += "); delete them or point them at another DataStore"
		retentionv1.SetCondition(ds, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonInUse, msg)
		retentionv1.RemoveCondition(ds, retentionv1.ConditionReconciling)
		retentionv1.RemoveCondition(ds, retentionv1.ConditionStalled)
		if err := status.write(ctx, ds); err != nil {
			return reconcile.Result{}, err
		}
		if c := findCondition(before.Status.Conditions, retentionv1.ConditionReady); c == nil || c.Reason != retentionv1.ReasonInUse {
			r.Recorder.Eventf(ds, nil, "Warning", retentionv1.ReasonInUse, "Delete", "%s", msg)
		}
		return reconcile.Result{}, nil
	}
	r.Pool.Forget(key)
	metrics.ForgetDataStore(ds.Namespace, ds.Name)
	patch := client.MergeFromWithOptions(ds.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(ds, FinalizerInUse)
	if err := r.Patch(ctx, ds, patch); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	return reconcile.Result{}, nil
}
