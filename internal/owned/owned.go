// Package owned creates and removes what Lethe owns: every object Lethe
// creates carries a controller reference to the object that needs it, set in
// the create call, so it never exists without its owner. The garbage
// collector removes it with the owner, and Lethe's own cleanup deletes only
// what a reference of the owner's UID marks as its own.
package owned

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Reference makes owner (a Lethe object of this kind) the controller of an
// object Lethe creates. BlockOwnerDeletion stays unset: with the API
// server's OwnerReferencesPermissionEnforcement it would need update on the
// owner's finalizers subresource, which config/rbac does not grant.
func Reference(owner client.Object, kind string) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: retentionv1.GroupVersion.String(),
		Kind:       kind,
		Name:       owner.GetName(),
		UID:        owner.GetUID(),
		Controller: new(true),
	}
}

// By reports whether o carries an owner reference to owner (by UID: a
// namesake created later does not own it).
func By(o metav1.Object, owner metav1.Object) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.UID == owner.GetUID() {
			return true
		}
	}
	return false
}

// DeleteSecret deletes a Secret only if owner owns it: a Secret of the same
// name that Lethe did not create (an admin's billing-subject beside a
// request named billing) is never touched. The UID precondition keeps a
// Secret recreated meanwhile. r reads the Secret (uncached), c deletes it.
func DeleteSecret(ctx context.Context, c client.Client, r client.Reader, owner client.Object, name string) error {
	var s corev1.Secret
	if err := r.Get(ctx, types.NamespacedName{Namespace: owner.GetNamespace(), Name: name}, &s); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !By(&s, owner) {
		return nil
	}
	err := c.Delete(ctx, &s, client.Preconditions{UID: &s.UID})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
