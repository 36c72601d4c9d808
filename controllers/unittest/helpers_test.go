package unittest_test

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/signature"
)

func create(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Delete(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

func hasCondition(job *retentionv1.PurgeJob, typ string, status metav1.ConditionStatus, reason string) bool {
	c := meta.FindStatusCondition(job.Status.Conditions, typ)
	return c != nil && c.Status == status && c.Reason == reason
}

// controllersSign signs a job as the manager does, with its subjects.
func controllersSign(job *retentionv1.PurgeJob, subjects map[string][]byte) error {
	return signature.Sign(digestKey, job, subjects)
}
