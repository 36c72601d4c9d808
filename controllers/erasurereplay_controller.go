package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/owned"
	"github.com/lethe-dev/lethe/internal/replay"
	"github.com/lethe-dev/lethe/internal/request"
)

// ErasureReplayReconciler replays the erasure ledger against a DataStore
// restored from a backup (docs/design.md §13): gates (backup time, DataStore,
// Datasets) → scan (erasurereplay_scan.go: every identity field of every
// collection, in paced pages, digested and matched against the ledger,
// internal/replay) → one DeletionRequest per subject found, which erases it
// again through the normal path (plan, review, approval, derivation, legal
// holds, verification, receipt, ledger) → the replay's own receipt, summed
// from theirs (erasurereplay_status.go).
type ErasureReplayReconciler struct {
	Deps
	// ProgressInterval bounds the time between two status writes of a scan
	// (default 5s).
	ProgressInterval time.Duration
}

// +kubebuilder:rbac:groups=retention.lethe.dev,resources=erasurereplays,verbs=get;list;watch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=erasurereplays/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=retention.lethe.dev,resources=deletionrequests,verbs=create

// SetupWithManager registers the controller; it owns the DeletionRequests
// it creates, whose progress brings the replay back.
func (r *ErasureReplayReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("erasurereplay").
		For(&retentionv1.ErasureReplay{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&retentionv1.DeletionRequest{}).
		Watches(&retentionv1.DataStore{}, handler.EnqueueRequestsFromMapFunc(r.waiting)).
		Watches(&retentionv1.Dataset{}, handler.EnqueueRequestsFromMapFunc(r.waiting)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(r)
}

// waiting maps a changed DataStore or Dataset to the replays of its
// namespace that have not started erasing (one waiting for it to be Ready
// goes on at once).
func (r *ErasureReplayReconciler) waiting(ctx context.Context, o client.Object) []reconcile.Request {
	var list retentionv1.ErasureReplayList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, er := range list.Items {
		if er.Status.Phase == "" || er.Status.Phase == retentionv1.ReplayPending {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&er)})
		}
	}
	return out
}

// childTTL is the ttlSecondsAfterFinished of a re-erasure: long enough for
// the replay to read its receipt, then it goes with its Secrets, and its
// ledger entry remains.
const childTTL = int32(3600)

// Reconcile gets the replay, computes its status, writes it once. The
// replay is read from the API server, not the cache: its status is its
// progress (the phase, the re-erasures already counted), and a reconcile
// queued right after a status write must not act on the state before it
// (scan again, or count a re-erasure twice). Replays are few; one read each
// costs nothing.
func (r *ErasureReplayReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var er retentionv1.ErasureReplay
	if err := r.APIReader.Get(ctx, req.NamespacedName, &er); err != nil {
		return outcome.Result(client.IgnoreNotFound(err), 0)
	}
	if !er.DeletionTimestamp.IsZero() {
		return outcome.Result(nil, 0)
	}
	w := newStatusWriter(r.Client, &er)
	next, err := r.reconcile(ctx, &er, w)
	if se := outcome.AsStall(err); se != nil {
		retentionv1.MarkStalled(&er, se.Reason, se.Msg)
	} else if we := outcome.AsWait(err); we != nil {
		retentionv1.MarkReconciling(&er, we.Reason, we.Msg)
	}
	res, err := outcome.Result(err, next)
	if werr := w.write(ctx, &er); werr != nil {
		return reconcile.Result{}, errors.Join(err, werr)
	}
	return res, err
}

// reconcile: finished → gates → scan → re-erase → receipt.
func (r *ErasureReplayReconciler) reconcile(ctx context.Context, er *retentionv1.ErasureReplay, w *statusWriter[*retentionv1.ErasureReplay]) (time.Duration, error) {
	er.Status.ObservedGeneration = er.Generation
	switch er.Status.Phase {
	case retentionv1.ReplayCompleted, retentionv1.ReplayFailed:
		return 0, nil
	case "":
		er.Status.Phase = retentionv1.ReplayPending
		retentionv1.MarkReconciling(er, retentionv1.ReasonProgressing, "Checking the DataStore and its Datasets")
	}
	now := r.now()
	if er.Status.Phase == retentionv1.ReplayErasing {
		// The re-erasures run on their own: follow them, whatever the
		// DataStore's state now.
		return r.erasing(ctx, er, now)
	}

	// Gates: the backup time, the DataStore, its Datasets.
	if er.Spec.BackupTime.After(now.Add(time.Minute)) {
		return 0, outcome.Stall(retentionv1.ReasonInvalidSpec, "spec.backupTime is in the future: give the time the restored backup was taken")
	}
	store, datasets, err := r.scope(ctx, er)
	if err != nil {
		return time.Minute, err
	}

	// Scan, then re-erase.
	subjects, err := r.scan(ctx, er, w, store, datasets, now)
	if err != nil || subjects == nil {
		return time.Minute, err
	}
	if er.Spec.DryRun || len(*subjects) == 0 {
		return 0, r.complete(ctx, er, now)
	}
	if err := r.createChildren(ctx, er, datasets, *subjects); err != nil {
		return time.Minute, err
	}
	er.Status.Phase = retentionv1.ReplayErasing
	return r.erasing(ctx, er, now)
}

// scope resolves the DataStore and the Datasets to scan: every Dataset of
// the namespace on the DataStore, or those of spec.datasets, each of which
// must be on it. Only objects of the replay's own namespace are read.
func (r *ErasureReplayReconciler) scope(ctx context.Context, er *retentionv1.ErasureReplay) (*retentionv1.DataStore, []retentionv1.Dataset, error) {
	var store retentionv1.DataStore
	if err := r.Get(ctx, types.NamespacedName{Namespace: er.Namespace, Name: string(er.Spec.DataStore)}, &store); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, outcome.Stall(retentionv1.ReasonDataStoreNotReady, fmt.Sprintf("DataStore %s not found in namespace %s", er.Spec.DataStore, er.Namespace))
		}
		return nil, nil, err
	}
	if !retentionv1.IsReady(&store) {
		return nil, nil, outcome.Wait(30*time.Second, retentionv1.ReasonDataStoreNotReady, fmt.Sprintf("Waiting for DataStore %s to be Ready", store.Name))
	}
	var list retentionv1.DatasetList
	if err := r.List(ctx, &list, client.InNamespace(er.Namespace)); err != nil {
		return nil, nil, err
	}
	var out []retentionv1.Dataset
	for _, name := range er.Spec.Datasets {
		i := slices.IndexFunc(list.Items, func(d retentionv1.Dataset) bool { return d.Name == string(name) })
		if i < 0 {
			return nil, nil, outcome.Stall(retentionv1.ReasonDatasetNotFound, fmt.Sprintf("Dataset %s not found in namespace %s", name, er.Namespace))
		}
		if string(list.Items[i].Spec.DataStoreRef.Name) != store.Name {
			return nil, nil, outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("Dataset %s is on DataStore %s, not %s: a replay scans the restored DataStore only", name, list.Items[i].Spec.DataStoreRef.Name, store.Name))
		}
	}
	for _, ds := range list.Items {
		if string(ds.Spec.DataStoreRef.Name) == store.Name && (len(er.Spec.Datasets) == 0 || slices.Contains(er.Spec.Datasets, retentionv1.ObjectName(ds.Name))) {
			out = append(out, ds)
		}
	}
	slices.SortFunc(out, func(a, b retentionv1.Dataset) int { return strings.Compare(a.Name, b.Name) })
	if len(out) == 0 {
		return nil, nil, outcome.Stall(retentionv1.ReasonDatasetNotFound, fmt.Sprintf("No Dataset of namespace %s is on DataStore %s: there is nothing to scan", er.Namespace, store.Name))
	}
	if len(out) > 64 {
		return nil, nil, outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("DataStore %s has %d Datasets, more than one re-erasure may cover (64): list at most 64 in spec.datasets and replay the rest in another ErasureReplay", store.Name, len(out)))
	}
	if name := request.Unvalidated(out); name != "" {
		return nil, nil, outcome.Wait(10*time.Second, retentionv1.ReasonProgressing, fmt.Sprintf("Waiting for Dataset %s to be checked against its store", name))
	}
	if name, why := request.Invalid(out); name != "" {
		return nil, nil, outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("Dataset %s is not Ready (%s); fix it and the replay continues", name, why))
	}
	return &store, out, nil
}

// createChildren creates, for each subject found, its identity Secret
// (owned by the replay, which deletes it once the re-erasure finished) and
// a DeletionRequest (owned by the replay) that erases it again in the
// scanned Datasets its original erasures reached. Names are stable (replay.ChildName): a replay that
// scans again after a restart finds what it already created.
func (r *ErasureReplayReconciler) createChildren(ctx context.Context, er *retentionv1.ErasureReplay, datasets []retentionv1.Dataset, subjects []replay.Subject) error {
	er.Status.Requests = nil
	for _, s := range subjects {
		// The scanned Datasets the erasures reached (all of them for a
		// ledger entry that does not say).
		var scope []retentionv1.ObjectName
		for _, ds := range datasets {
			if s.Datasets == nil || slices.Contains(s.Datasets, ds.Name) {
				scope = append(scope, retentionv1.ObjectName(ds.Name))
			}
		}
		name := replay.ChildName(er.Name, s)
		labels := map[string]string{"app.kubernetes.io/managed-by": "lethe", retentionv1.LabelErasureReplay: er.Name}
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: er.Namespace, Name: name + "-identities",
				Labels:          map[string]string{"app.kubernetes.io/managed-by": "lethe", retentionv1.LabelErasureReplay: er.Name, retentionv1.LabelSecretConsent: "true"},
				OwnerReferences: []metav1.OwnerReference{owned.Reference(er, "ErasureReplay")}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{},
		}
		for typ, vs := range s.Identities {
			secret.Data[typ] = []byte(strings.Join(vs, "\n"))
		}
		if err := r.Create(ctx, secret); apierrors.IsAlreadyExists(err) {
			// Ours from a scan before a restart, or someone else's under a
			// predictable name: only ours may name the subject to erase.
			var existing corev1.Secret
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(secret), &existing); err != nil {
				return err
			}
			if !owned.By(&existing, er) {
				return outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("Secret %s is not this replay's: delete it, or this replay and create another", secret.Name))
			}
		} else if err != nil {
			return fmt.Errorf("creating the identity Secret of re-erasure %s: %w", name, err)
		}
		ttl, window := childTTL, retentionv1.WaitDuration("0h")
		dr := &retentionv1.DeletionRequest{
			ObjectMeta: metav1.ObjectMeta{Namespace: er.Namespace, Name: name, Labels: labels,
				Annotations:     map[string]string{retentionv1.LabelErasureReplay: er.Name},
				OwnerReferences: []metav1.OwnerReference{owned.Reference(er, "ErasureReplay")}},
			Spec: retentionv1.DeletionRequestSpec{
				Subject:                 retentionv1.Subject{IdentitiesSecretRef: &retentionv1.SecretReference{Name: secret.Name}},
				Reason:                  retentionv1.ReasonOther,
				Scope:                   &retentionv1.ErasureScope{Datasets: scope},
				ReviewWindow:            &window,
				TTLSecondsAfterFinished: &ttl,
			},
		}
		if err := r.Create(ctx, dr); err != nil && !apierrors.IsAlreadyExists(err) {
			if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
				return outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("The re-erasure %s could not be created: %v", name, apierrors.ReasonForError(err)))
			}
			return fmt.Errorf("creating re-erasure %s: %w", name, err)
		}
		er.Status.Requests = append(er.Status.Requests, retentionv1.ReplayRequest{
			Name: name, SubjectDigest: digest.Subject(r.DigestKey, s.Identities), Entries: s.Entries, Phase: retentionv1.RequestPending,
		})
	}
	er.Status.SubjectsErased = int32(len(er.Status.Requests))
	log.FromContext(ctx).Info("Re-erasures created", "subjects", len(subjects))
	r.Recorder.Eventf(er, nil, "Normal", retentionv1.ReasonErasing, "Replay", "Erasing %d subjects again, one DeletionRequest each", len(subjects))
	retentionv1.MarkReconciling(er, retentionv1.ReasonErasing, fmt.Sprintf("Erasing %d subjects again", len(subjects)))
	return nil
}

// erasing follows the re-erasures: their phases and receipts into the
// status, each identity Secret deleted once its request finished; when all
// have, the replay completes (or fails if one failed).
func (r *ErasureReplayReconciler) erasing(ctx context.Context, er *retentionv1.ErasureReplay, now time.Time) (time.Duration, error) {
	finished, failed := 0, 0
	var waiting []string
	for i := range er.Status.Requests {
		rq := &er.Status.Requests[i]
		if rq.Phase != retentionv1.RequestCompleted && rq.Phase != retentionv1.RequestFailed {
			var dr retentionv1.DeletionRequest
			key := types.NamespacedName{Namespace: er.Namespace, Name: rq.Name}
			err := r.Get(ctx, key, &dr)
			if apierrors.IsNotFound(err) {
				// Created moments ago, the cache may not have it yet.
				err = r.APIReader.Get(ctx, key, &dr)
			}
			switch {
			case apierrors.IsNotFound(err):
				// Gone before it finished (deleted by hand): not erased.
				rq.Phase = retentionv1.RequestFailed
			case err != nil:
				return 0, err
			case !owned.By(&dr, er):
				return 0, outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("DeletionRequest %s is not this replay's: delete it, or this replay and create another", rq.Name))
			default:
				rq.Phase = dr.Status.Phase
				if rq.Phase == "" {
					rq.Phase = retentionv1.RequestPending
				}
				if rc := dr.Status.Receipt; rc != nil && dr.Status.Phase == retentionv1.RequestCompleted {
					rq.ReceiptSHA256 = rc.SHA256
					rq.Rows = 0
					for _, e := range rc.Entries {
						rq.Rows += e.Rows
					}
					addErased(er, rc.Entries)
				}
			}
		}
		switch rq.Phase {
		case retentionv1.RequestCompleted, retentionv1.RequestFailed:
			if err := owned.DeleteSecret(ctx, r.Client, r.APIReader, er, rq.Name+"-identities"); err != nil {
				return 0, err
			}
			finished++
			if rq.Phase == retentionv1.RequestFailed {
				failed++
			}
		default:
			waiting = append(waiting, rq.Name+" ("+string(rq.Phase)+")")
		}
	}
	er.Status.RecordsErased = 0
	for _, rq := range er.Status.Requests {
		er.Status.RecordsErased += rq.Rows
	}
	if len(waiting) > 0 {
		if len(waiting) > 5 {
			waiting = append(waiting[:5], "…")
		}
		retentionv1.MarkReconciling(er, retentionv1.ReasonErasing, fmt.Sprintf("%d of %d re-erasures finished; waiting for %s", finished, len(er.Status.Requests), strings.Join(waiting, ", ")))
		return time.Minute, nil
	}
	if failed > 0 {
		er.Status.Phase = retentionv1.ReplayFailed
		er.Status.CompletionTime = &metav1.Time{Time: now}
		msg := fmt.Sprintf("%d of %d re-erasures failed; see their DeletionRequests (status.requests)", failed, len(er.Status.Requests))
		r.Recorder.Eventf(er, nil, "Warning", retentionv1.ReasonReErasureFailed, "Replay", "%s", msg)
		return 0, outcome.Stall(retentionv1.ReasonReErasureFailed, msg)
	}
	return 0, r.complete(ctx, er, now)
}

// addErased adds a re-erasure's receipt entries to the collections' erased
// counts (a collection of a Dataset the scan listed, or a new row).
func addErased(er *retentionv1.ErasureReplay, entries []retentionv1.ReceiptEntry) {
	for _, e := range entries {
		i := slices.IndexFunc(er.Status.Collections, func(c retentionv1.ReplayCollection) bool {
			return c.Dataset == e.Dataset && c.Collection == e.Collection
		})
		if i < 0 {
			er.Status.Collections = append(er.Status.Collections, retentionv1.ReplayCollection{Dataset: e.Dataset, Collection: e.Collection})
			i = len(er.Status.Collections) - 1
		}
		er.Status.Collections[i].Erased += e.Rows
		if e.Rows > 0 {
			er.Status.Collections[i].Action = e.Action
		}
	}
}
