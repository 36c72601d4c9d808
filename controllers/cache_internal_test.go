package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func TestCacheTransformStripsWhatNoControllerReads(t *testing.T) {
	dr := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{
		Name:          "r",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
		Annotations: map[string]string{
			lastApplied:                       `{"apiVersion":"retention.lethe.dev/v1alpha1"}`,
			retentionv1.AnnotationApprovedBy:  "bob",
			retentionv1.AnnotationRequestedBy: "alice",
		},
	}}
	out, err := CacheOptions("").DefaultTransform(dr)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*retentionv1.DeletionRequest)
	if got.ManagedFields != nil {
		t.Errorf("managedFields kept: %v", got.ManagedFields)
	}
	if _, ok := got.Annotations[lastApplied]; ok || got.Annotations[retentionv1.AnnotationApprovedBy] != "bob" || got.Annotations[retentionv1.AnnotationRequestedBy] != "alice" {
		t.Errorf("annotations %v; want Lethe's kept and only the last-applied configuration removed", got.Annotations)
	}
	// Tombstones of deleted objects pass through.
	tomb := toolscache.DeletedFinalStateUnknown{Key: "ns/r", Obj: dr}
	if out, err := cacheTransform(tomb); err != nil || out.(toolscache.DeletedFinalStateUnknown).Key != "ns/r" {
		t.Errorf("tombstone: %v %v", out, err)
	}
	if CacheOptions("a,b").DefaultTransform == nil {
		t.Error("namespaced cache options lost the transform")
	}
}
