package controllers

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// statusClient is a fake API server that counts status writes and can
// answer the first N of them with a conflict.
func statusClient(t *testing.T, conflicts int, objs ...client.Object) (client.Client, *int) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := retentionv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	writes := 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(objs...).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				writes++
				if conflicts > 0 {
					conflicts--
					return apierrors.NewConflict(schema.GroupResource{Resource: "datasets"}, obj.GetName(), nil)
				}
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				writes++
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
		}).Build()
	return c, &writes
}

func TestStatusWriterWritesOnlyChanges(t *testing.T) {
	ctx := context.Background()
	ds := &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "shop"}}
	c, writes := statusClient(t, 0, ds)
	var got retentionv1.Dataset
	if err := c.Get(ctx, client.ObjectKeyFromObject(ds), &got); err != nil {
		t.Fatal(err)
	}
	w := newStatusWriter(c, &got)
	if err := w.write(ctx, &got); err != nil || *writes != 0 {
		t.Fatalf("unchanged status: err %v, %d writes, want none", err, *writes)
	}
	retentionv1.MarkReady(&got, retentionv1.ReasonValidated, "ok")
	if err := w.write(ctx, &got); err != nil || *writes != 1 {
		t.Fatalf("changed status: err %v, %d writes, want 1", err, *writes)
	}
	if err := w.write(ctx, &got); err != nil || *writes != 1 {
		t.Fatalf("written again unchanged: err %v, %d writes, want still 1", err, *writes)
	}
	var stored retentionv1.Dataset
	if err := c.Get(ctx, client.ObjectKeyFromObject(ds), &stored); err != nil {
		t.Fatal(err)
	}
	if !retentionv1.IsReady(&stored) {
		t.Fatalf("stored conditions %+v, want Ready", stored.Status.Conditions)
	}
}

func TestLockedStatusWriterRetriesConflicts(t *testing.T) {
	ctx := context.Background()
	ds := &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "shop"}}
	c, writes := statusClient(t, 1, ds)
	var got retentionv1.Dataset
	if err := c.Get(ctx, client.ObjectKeyFromObject(ds), &got); err != nil {
		t.Fatal(err)
	}
	w := newLockedStatusWriter(c, c, &got)
	retentionv1.MarkStalled(&got, retentionv1.ReasonFieldNotFound, "no column")
	if err := w.write(ctx, &got); err != nil {
		t.Fatalf("write after a conflict: %v", err)
	}
	if *writes != 2 {
		t.Fatalf("%d writes, want 2 (the conflict, then the retry)", *writes)
	}
	var stored retentionv1.Dataset
	if err := c.Get(ctx, client.ObjectKeyFromObject(ds), &stored); err != nil {
		t.Fatal(err)
	}
	if retentionv1.IsReady(&stored) || len(stored.Status.Conditions) == 0 {
		t.Fatalf("stored conditions %+v, want the stalled status", stored.Status.Conditions)
	}
}
