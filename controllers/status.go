package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// statusWriter is the one way a reconciler writes status: it remembers the
// object as read (or as last written), and write sends one merge patch of
// what changed since, or nothing when nothing did. A reconciler computes the
// whole status first, then writes once.
//
// With an optimistic lock (locked), a writer holding an outdated view can
// never overwrite newer status; on a conflict (an unrelated metadata change,
// such as an annotation) it reads the object's resourceVersion again and
// writes this reconcile's status with retry.RetryOnConflict. That is right
// because each kind has one status writer, its controller, and one worker
// per object at a time.
type statusWriter[T client.Object] struct {
	c        client.Client
	reader   client.Reader
	previous T
	locked   bool
}

// newStatusWriter remembers obj as read.
func newStatusWriter[T client.Object](c client.Client, obj T) *statusWriter[T] {
	return &statusWriter[T]{c: c, previous: obj.DeepCopyObject().(T)}
}

// newLockedStatusWriter is newStatusWriter with an optimistic lock; reader
// reads the object again on a conflict (the uncached API reader, so the
// retry sees the newest resourceVersion).
func newLockedStatusWriter[T client.Object](c client.Client, reader client.Reader, obj T) *statusWriter[T] {
	w := newStatusWriter(c, obj)
	w.reader, w.locked = reader, true
	return w
}

// write patches obj's status if it changed. obj's metadata is refreshed from
// the server's answer; its status is left as computed.
func (w *statusWriter[T]) write(ctx context.Context, obj T) error {
	data, err := client.MergeFrom(w.previous).Data(obj)
	if err != nil {
		return fmt.Errorf("computing the status patch: %w", err)
	}
	if string(data) == "{}" {
		return nil
	}
	sent := obj.DeepCopyObject().(T)
	if !w.locked {
		if err := w.c.Status().Patch(ctx, sent, client.MergeFrom(w.previous)); err != nil {
			return fmt.Errorf("writing %T status: %w", obj, err)
		}
	} else {
		err := w.c.Status().Patch(ctx, sent, client.MergeFromWithOptions(w.previous, client.MergeFromWithOptimisticLock{}))
		if apierrors.IsConflict(err) {
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				fresh := obj.DeepCopyObject().(T)
				if err := w.reader.Get(ctx, client.ObjectKeyFromObject(obj), fresh); err != nil {
					return err
				}
				sent = obj.DeepCopyObject().(T)
				sent.SetResourceVersion(fresh.GetResourceVersion())
				return w.c.Status().Update(ctx, sent)
			})
		}
		if err != nil {
			return fmt.Errorf("writing %T status: %w", obj, err)
		}
	}
	obj.SetResourceVersion(sent.GetResourceVersion())
	obj.SetGeneration(sent.GetGeneration())
	obj.SetAnnotations(sent.GetAnnotations())
	obj.SetLabels(sent.GetLabels())
	w.previous = obj.DeepCopyObject().(T)
	return nil
}

// readyChanged returns obj's Ready condition if its status or reason differs
// from before's: the moment for an event.
func readyChanged(before, obj retentionv1.Object) *metav1.Condition {
	now := meta.FindStatusCondition(obj.GetConditions(), retentionv1.ConditionReady)
	if now == nil {
		return nil
	}
	was := meta.FindStatusCondition(before.GetConditions(), retentionv1.ConditionReady)
	if was != nil && was.Status == now.Status && was.Reason == now.Reason {
		return nil
	}
	return now
}

// eventType is Normal for a condition that is True, Warning otherwise.
func eventType(c *metav1.Condition) string {
	if c.Status == metav1.ConditionTrue {
		return corev1.EventTypeNormal
	}
	return corev1.EventTypeWarning
}
