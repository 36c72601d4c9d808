package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/outcome"
	"github.com/lethe-dev/lethe/internal/owned"
)

// sealedKeysField is the key of the sealed-keys Secret holding them (the
// executor's encoding: gzip-compressed JSON, collection → key tuples).
const sealedKeysField = "keys.json.gz"

// sealedName is the Secret holding a job's sealed keys.
func sealedName(job *retentionv1.PurgeJob) string { return job.Name + "-sealed" }

// sealedSecret keeps a job's sealed keys (executor.SealStore) in the Secret
// <job>-sealed, owned by the job from its creation and removed as soon as
// the job no longer needs it. A Secret of that name that the job does not
// own is never used nor touched: someone else made it.
type sealedSecret struct {
	c      client.Client
	reader client.Reader // uncached: Secrets are never watched
	job    *retentionv1.PurgeJob
}

// Save creates the Secret. One left by an earlier start that crashed after
// sealing and before its checkpoint (nothing was changed since) is replaced.
func (s *sealedSecret) Save(ctx context.Context, data []byte) error {
	job := s.job
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Namespace: job.Namespace, Name: sealedName(job), Labels: map[string]string{retentionv1.LabelSealedKeys: job.Name, retentionv1.LabelSecretConsent: "true"},
		OwnerReferences: []metav1.OwnerReference{owned.Reference(job, "PurgeJob")},
	}, Data: map[string][]byte{sealedKeysField: data}}
	err := s.c.Create(ctx, secret)
	if apierrors.IsAlreadyExists(err) {
		if err := s.drop(ctx); err != nil {
			return err
		}
		err = s.c.Create(ctx, secret)
	}
	if err != nil {
		return fmt.Errorf("sealing the keys of the records to erase: %w", err)
	}
	return nil
}

// Load reads the Secret.
func (s *sealedSecret) Load(ctx context.Context) ([]byte, error) {
	var secret corev1.Secret
	if err := s.reader.Get(ctx, types.NamespacedName{Namespace: s.job.Namespace, Name: sealedName(s.job)}, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, outcome.Stall(retentionv1.ReasonSecretNotFound, fmt.Sprintf("Secret %s with the keys sealed before the first change is gone; the job cannot resume exactly", sealedName(s.job)))
		}
		return nil, err
	}
	if !metav1.IsControlledBy(&secret, s.job) {
		return nil, outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("Secret %s was not created by this PurgeJob; Lethe does not use it", sealedName(s.job)))
	}
	return secret.Data[sealedKeysField], nil
}

// dropIfUnused removes the job's sealed keys when it finishes (identities
// of a kind: they go as soon as the job no longer needs them). A job that
// started without sealing any has none.
func (s *sealedSecret) dropIfUnused(ctx context.Context) error {
	if s.job.Status.SealedKeys == 0 && s.job.Status.StartTime != nil {
		return nil
	}
	return s.drop(ctx)
}

// drop deletes the Secret if the job owns it; one it does not own is a
// stall (InvalidSpec).
func (s *sealedSecret) drop(ctx context.Context) error {
	var secret corev1.Secret
	switch err := s.reader.Get(ctx, types.NamespacedName{Namespace: s.job.Namespace, Name: sealedName(s.job)}, &secret); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading sealed keys: %w", err)
	case !metav1.IsControlledBy(&secret, s.job):
		return outcome.Stall(retentionv1.ReasonInvalidSpec, fmt.Sprintf("Secret %s exists but was not created by this PurgeJob; Lethe neither uses nor deletes it. Rename or remove it", sealedName(s.job)))
	}
	if err := s.c.Delete(ctx, &secret, client.Preconditions{UID: &secret.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing sealed keys: %w", err)
	}
	return nil
}
