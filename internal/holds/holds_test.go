package holds_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/holds"
)

func hold(name string, uid string, subjects ...retentionv1.SubjectIdentity) retentionv1.LegalHold {
	return retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: k8stypes.UID(uid)},
		Spec:       retentionv1.LegalHoldSpec{Subjects: subjects},
	}
}

func secret(name string, owner *retentionv1.LegalHold, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	if owner != nil {
		s.OwnerReferences = []metav1.OwnerReference{{APIVersion: retentionv1.GroupVersion.String(), Kind: "LegalHold", Name: owner.Name, UID: owner.UID}}
	}
	return s
}

// derived marks a hold as looked at by the LegalHold controller.
func derived(h *retentionv1.LegalHold, generation int64) {
	h.Status.Conditions = append(h.Status.Conditions, metav1.Condition{Type: retentionv1.ConditionIdentitiesDerived,
		Status: metav1.ConditionTrue, Reason: "IdentitiesDerived", ObservedGeneration: generation})
}

func reader(objs ...client.Object) client.Reader {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	_ = retentionv1.AddToScheme(scheme)
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
}

// A hold holds the identities it names and those derived into its own
// Secret; a Secret of that name it does not own adds nothing.
func TestSubjectsIncludeDerivedIdentities(t *testing.T) {
	h := hold("case-21", "uid-21", retentionv1.SubjectIdentity{Type: "user_id", Value: "21"})
	other := hold("other", "uid-other")
	cases := []struct {
		name    string
		objects []client.Object
		want    map[string][]string
	}{
		{"nothing derived yet", nil, map[string][]string{"user_id": {"21"}}},
		{"derived email", []client.Object{secret("case-21-derived", &h, map[string]string{"email": "b@example.net\na@example.net\n"})},
			map[string][]string{"user_id": {"21"}, "email": {"a@example.net", "b@example.net"}}},
		{"derived value also named", []client.Object{secret("case-21-derived", &h, map[string]string{"user_id": "21\n22"})},
			map[string][]string{"user_id": {"21", "22"}}},
		{"not owned by the hold", []client.Object{secret("case-21-derived", &other, map[string]string{"email": "x@example.net"})},
			map[string][]string{"user_id": {"21"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := holds.Subjects(context.Background(), reader(tc.objects...), &h)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Subjects = %v, want %v", got, tc.want)
			}
			for k, vs := range tc.want {
				if !slices.Equal(got[k], vs) {
					t.Errorf("Subjects[%s] = %v, want %v", k, got[k], vs)
				}
			}
		})
	}
}

// For excludes derived identities in every collection the hold applies to,
// and nothing of a hold that has ended.
func TestForHoldsDerivedIdentities(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	active := hold("case-21", "uid-21", retentionv1.SubjectIdentity{Type: "user_id", Value: "21"})
	active.Generation = 2
	derived(&active, 2)
	released := hold("old-case", "uid-old", retentionv1.SubjectIdentity{Type: "user_id", Value: "7"})
	released.Spec.Released = true
	r := reader(
		secret("case-21-derived", &active, map[string]string{"email": "holly@example.net"}),
		secret("old-case-derived", &released, map[string]string{"email": "gone@example.net"}),
	)
	newsletter := &retentionv1.Collection{Name: "newsletter", Identities: []retentionv1.IdentityField{{Type: "email", Field: "email"}}}
	e, err := holds.For(context.Background(), r, []retentionv1.LegalHold{active, released}, "mail", newsletter, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.Held["email"], []string{"holly@example.net"}) || !slices.Equal(e.Held["user_id"], []string{"21"}) || !slices.Equal(e.By, []string{"case-21"}) || e.Blocked != "" {
		t.Errorf("effect = %+v", e)
	}
	// Changed since the LegalHold controller derived: nothing in its scope
	// may run until it has derived again.
	stale := active.DeepCopy()
	stale.Generation = 3
	if _, err := holds.For(context.Background(), r, []retentionv1.LegalHold{*stale}, "mail", newsletter, now); !errors.Is(err, holds.ErrNotDerived) {
		t.Errorf("a hold not yet derived for its generation: err %v, want ErrNotDerived", err)
	}
	// Scoped to another Dataset: no effect here.
	active.Spec.Datasets = []retentionv1.ObjectName{"crm"}
	if e, err = holds.For(context.Background(), r, []retentionv1.LegalHold{active}, "mail", newsletter, now); err != nil || len(e.Held) != 0 {
		t.Errorf("out of scope: %+v, %v", e, err)
	}
}
