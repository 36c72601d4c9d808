package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
	c      client.Client
	reader client.Reader
	before T
	locked bool
}

// newStatusWriter remembers obj as read.
func newStatusWriter[T client.Object](c client.Client, obj T) *statusWriter[T] {
	return &statusWriter[T]{c: c, before: obj.DeepCopyObject().(T)}
}

// newLockedStatusWriter is newStatusWriter with an optimistic lock; reader
// reads the object again on a conflict (the uncached API reader, so the
// retry sees the newest resourceVersion).
func newLockedStatusWriter[T client.Object](c client.Client, reader client.Reader, obj T) *statusWriter[T] {
	w := newStatusWriter(c, obj)
	w.reader, w.locked = reader, true
	return w
}

// Before is the object as it was read or last written.
func (w *statusWriter[T]) Before() T { return w.before }

// write patches obj's status if it changed. obj's metadata is refreshed from
// the server's answer; its status is left as computed.
func (w *statusWriter[T]) write(ctx context.Context, obj T) error {
	data, err := client.MergeFrom(w.before).Data(obj)
	if err != nil {
		return fmt.Errorf("computing the status patch: %w", err)
	}
	if string(data) == "{}" {
		return nil
	}
	sent := obj.DeepCopyObject().(T)
	if !w.locked {
		if err := w.c.Status().Patch(ctx, sent, client.MergeFrom(w.before)); err != nil {
			return fmt.Errorf("writing %T status: %w", obj, err)
		}
	} else {
		err := w.c.Status().Patch(ctx, sent, client.MergeFromWithOptions(w.before, client.MergeFromWithOptimisticLock{}))
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
	w.before = obj.DeepCopyObject().(T)
	return nil
}
