package controllers

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/backups"
)

// backups shows, on a completed erasure, when the last backup that may
// still hold the erased records expires (status.backupsExpireTime, from the
// spec.backups.retention of the DataStores of the plan, internal/backups)
// and the condition BackupsExpired; it returns how long until that
// condition turns True (0 when it will not change by itself). A Dataset or
// DataStore gone since counts as one that declares nothing.
func (r *DeletionRequestReconciler) backups(ctx context.Context, dr *retentionv1.DeletionRequest, now time.Time) (time.Duration, error) {
	var stores []backups.Store
	seen := map[string]bool{}
	for _, p := range dr.Status.Plan {
		if seen[p.Dataset] {
			continue
		}
		seen[p.Dataset] = true
		var ds retentionv1.Dataset
		if err := r.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: p.Dataset}, &ds); err != nil {
			if client.IgnoreNotFound(err) != nil {
				return 0, err
			}
			stores = append(stores, backups.Store{Name: "of Dataset " + p.Dataset})
			continue
		}
		name := string(ds.Spec.DataStoreRef.Name)
		var store retentionv1.DataStore
		if err := r.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: name}, &store); err != nil {
			if client.IgnoreNotFound(err) != nil {
				return 0, err
			}
			stores = append(stores, backups.Store{Name: name})
			continue
		}
		s := backups.Store{Name: name}
		if store.Spec.Backups != nil {
			s.Retention = string(store.Spec.Backups.Retention)
		}
		stores = append(stores, s)
	}
	expiry, unknown, err := backups.Expiry(dr.Status.CompletionTime.Time, stores)
	if err != nil {
		return 0, err
	}
	dr.Status.BackupsExpireTime = nil
	if len(unknown) == 0 {
		dr.Status.BackupsExpireTime = &metav1.Time{Time: expiry}
	}
	status, reason, msg, wait := backups.Condition(expiry, unknown, now)
	retentionv1.SetCondition(dr, retentionv1.ConditionBackupsExpired, status, reason, msg)
	return wait, nil
}
