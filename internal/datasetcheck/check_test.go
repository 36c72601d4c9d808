package datasetcheck

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore/fake"
)

func dataset(collections ...retentionv1.Collection) *retentionv1.Dataset {
	return &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "shop"},
		Spec: retentionv1.DatasetSpec{DataStoreRef: retentionv1.LocalObjectReference{Name: "db"}, Collections: collections}}
}

func users(field string) retentionv1.Collection {
	return retentionv1.Collection{Name: "users", Identities: []retentionv1.IdentityField{{Type: "email", Field: retentionv1.Identifier(field)}}}
}

// Check reads the live store: what is missing is named, most serious first,
// and a clean Dataset has no verdict and one identity path per collection.
func TestCheck(t *testing.T) {
	store := &retentionv1.DataStore{Spec: retentionv1.DataStoreSpec{Type: retentionv1.DataStorePostgreSQL}}
	d := fake.New().Insert("users", fake.Record{Key: "1", Fields: map[string]string{"email": "a@example.com"}})
	cases := []struct {
		name       string
		ds         *retentionv1.Dataset
		wantReason string
		wantIn     string
	}{
		{"valid", dataset(users("email")), "", ""},
		{"missing field", dataset(users("mail")), retentionv1.ReasonFieldNotFound, "mail"},
		{"missing collection before missing field", dataset(users("mail"),
			retentionv1.Collection{Name: "orders", Identities: []retentionv1.IdentityField{{Type: "email", Field: "email"}}}),
			retentionv1.ReasonCollectionNotFound, "orders"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := Check(context.Background(), tc.ds, store, d)
			if v.Transient != nil {
				t.Fatalf("transient error: %v", v.Transient)
			}
			reason, msg := v.Verdict()
			if reason != tc.wantReason || !strings.Contains(msg, tc.wantIn) {
				t.Fatalf("verdict %q %q, want %q containing %q", reason, msg, tc.wantReason, tc.wantIn)
			}
			if tc.wantReason == "" && len(v.Graph) == 0 {
				t.Fatal("a valid Dataset reported no identity path")
			}
		})
	}
}

// Verdict lists at most five problems, the most serious reason first.
func TestVerdictOrderAndLimit(t *testing.T) {
	v := &Result{}
	v.Add(retentionv1.ReasonInvalidAnonymization, "a")
	for i := range 6 {
		v.Add(retentionv1.ReasonFieldNotFound, "field %d", i)
	}
	v.Add(retentionv1.ReasonInvalidSpec, "spec")
	reason, msg := v.Verdict()
	if reason != retentionv1.ReasonInvalidSpec || !strings.HasPrefix(msg, "spec; field 0") || !strings.HasSuffix(msg, "and 3 more") {
		t.Fatalf("verdict %q %q", reason, msg)
	}
}
