package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/owned"
	"github.com/lethe-dev/lethe/internal/request"
)

// expire deletes a finished request after ttlSecondsAfterFinished, with the
// Secrets it owns (<request>-subject, and the identity Secret if the request
// owns it; never a Secret it does not own) and its PurgeJobs; a coalesced
// PurgeJob, which erased other requests too, goes with the last of them
// (releaseJobs). Only the ledger's digests remain. Before the TTL it returns
// how long is left.
func (r *DeletionRequestReconciler) expire(ctx context.Context, dr *retentionv1.DeletionRequest, now time.Time) (time.Duration, error) {
	if dr.Spec.TTLSecondsAfterFinished == nil || dr.Status.CompletionTime == nil {
		return 0, nil
	}
	at := dr.Status.CompletionTime.Add(time.Duration(*dr.Spec.TTLSecondsAfterFinished) * time.Second)
	if wait := at.Sub(now); wait > 0 {
		return wait, nil
	}
	secrets := []string{request.SubjectSecretName(dr), noticesSecretName(dr)}
	if ref := dr.Spec.Subject.IdentitiesSecretRef; ref != nil {
		secrets = append(secrets, ref.Name)
	}
	for _, name := range secrets {
		if err := owned.DeleteSecret(ctx, r.Client, r.APIReader, dr, name); err != nil {
			return 0, err
		}
	}
	var jobs retentionv1.PurgeJobList
	if err := r.List(ctx, &jobs, client.InNamespace(dr.Namespace), client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(labels.Set{retentionv1.LabelDeletionRequest: dr.Name})}); err != nil {
		return 0, err
	}
	for i := range jobs.Items {
		if err := r.deleteJob(ctx, &jobs.Items[i]); err != nil {
			return 0, err
		}
	}
	if err := r.Delete(ctx, dr, client.Preconditions{UID: &dr.UID}); client.IgnoreNotFound(err) != nil {
		return 0, err
	}
	log.FromContext(ctx).Info("DeletionRequest removed after its TTL; the ledger entry remains", "subject", digest.Short(dr.Status.SubjectDigest))
	// Its deletion reconciles it again (releaseJobs); this spares the wait.
	return 0, r.releaseJobs(ctx, client.ObjectKeyFromObject(dr))
}

// releaseJobs runs when a request is gone (deleted by its TTL or by hand):
// each coalesced PurgeJob that named it is deleted, with its subjects
// Secret, once no request it names exists any more. A job still running is
// left to finish; its end reconciles its requests, which brings this back.
func (r *DeletionRequestReconciler) releaseJobs(ctx context.Context, req types.NamespacedName) error {
	var list retentionv1.PurgeJobList
	if err := r.List(ctx, &list, client.InNamespace(req.Namespace), client.MatchingFields{jobRequestIndex: req.Name}); err != nil {
		return err
	}
	for i := range list.Items {
		job := &list.Items[i]
		if job.Status.Phase == retentionv1.PurgeJobRunning || !job.DeletionTimestamp.IsZero() {
			continue
		}
		live := false
		for _, name := range jobRequests(job) {
			var other retentionv1.DeletionRequest
			err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: name}, &other)
			if err == nil && other.DeletionTimestamp.IsZero() {
				live = true
				break
			}
			if client.IgnoreNotFound(err) != nil {
				return err
			}
		}
		if live {
			continue
		}
		if err := r.deleteJob(ctx, job); err != nil {
			return err
		}
		log.FromContext(ctx).Info("Coalesced PurgeJob removed with the last of its DeletionRequests", "purgeJob", job.Name)
	}
	return nil
}

// deleteJob deletes a PurgeJob and the subjects Secret it owns. The garbage
// collector would remove the Secret with the job too; deleting it here does
// not depend on it.
func (r *DeletionRequestReconciler) deleteJob(ctx context.Context, job *retentionv1.PurgeJob) error {
	if ref := job.Spec.SubjectsSecretRef; ref != nil {
		if err := owned.DeleteSecret(ctx, r.Client, r.APIReader, job, ref.Name); err != nil {
			return err
		}
	}
	r.Coalescer.Forget(job.Namespace, job.Name)
	return client.IgnoreNotFound(r.Delete(ctx, job, client.Preconditions{UID: &job.UID}))
}
