package request

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/holds"
)

func TestHolds(t *testing.T) {
	now := created.Add(time.Hour)
	derived := []metav1.Condition{{Type: retentionv1.ConditionIdentitiesDerived, Status: metav1.ConditionFalse, Reason: retentionv1.ReasonNothingDerived}}
	hold := func(name string, edit func(*retentionv1.LegalHold)) *retentionv1.LegalHold {
		h := &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
		h.Status.Conditions = derived
		edit(h)
		return h
	}
	onUser := func(v string) func(*retentionv1.LegalHold) {
		return func(h *retentionv1.LegalHold) {
			h.Spec.Subjects = []retentionv1.SubjectIdentity{{Type: "user_id", Value: v}}
		}
	}
	past := metav1.NewTime(now.Add(-time.Minute))
	plan := []retentionv1.PlannedCollection{{Dataset: "app", Collection: "orders"}, {Dataset: "app", Collection: "users"}}
	identities := map[string][]string{"user_id": {"21"}, "email": {"ada@example.com"}}
	cases := []struct {
		name       string
		holds      []client.Object
		want       []string
		unreadable string
		err        error
	}{
		{"none", nil, nil, "", nil},
		{"on the subject", []client.Object{hold("case-1", onUser("21"))}, []string{"case-1"}, "", nil},
		{"on someone else", []client.Object{hold("case-2", onUser("22"))}, nil, "", nil},
		{"on a derived identity", []client.Object{hold("case-3", func(h *retentionv1.LegalHold) {
			h.Spec.Subjects = []retentionv1.SubjectIdentity{{Type: "email", Value: "ada@example.com"}}
		})}, []string{"case-3"}, "", nil},
		{"a whole planned collection, sorted", []client.Object{
			hold("z-audit", func(h *retentionv1.LegalHold) { h.Spec.Collections = []retentionv1.Identifier{"orders"} }),
			hold("case-1", onUser("21")),
		}, []string{"case-1", "z-audit"}, "", nil},
		{"an unplanned collection", []client.Object{hold("audit", func(h *retentionv1.LegalHold) { h.Spec.Collections = []retentionv1.Identifier{"sessions"} })}, nil, "", nil},
		{"another Dataset", []client.Object{hold("audit", func(h *retentionv1.LegalHold) { h.Spec.Datasets = []retentionv1.ObjectName{"billing"} })}, nil, "", nil},
		{"released", []client.Object{hold("case-1", func(h *retentionv1.LegalHold) { onUser("21")(h); h.Spec.Released = true })}, nil, "", nil},
		{"expired", []client.Object{hold("case-1", func(h *retentionv1.LegalHold) { onUser("21")(h); h.Spec.ExpiresAt = &past })}, nil, "", nil},
		{"subjects Secret missing", []client.Object{hold("case-4", func(h *retentionv1.LegalHold) {
			h.Spec.SubjectsSecretRef = &retentionv1.SecretReference{Name: "case-4-subjects"}
		})}, nil, "case-4", nil},
		{"not derived yet", []client.Object{hold("case-5", func(h *retentionv1.LegalHold) { onUser("22")(h); h.Status.Conditions = nil })}, nil, "", holds.ErrNotDerived},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, tc.holds...)
			p := &Planner{Client: c, Reader: c}
			got, err := p.Holds(context.Background(), "ns", plan, []retentionv1.Dataset{app()}, identities, now)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got.By, tc.want) || got.Unreadable != tc.unreadable || (got.Unreadable != "") != (got.Why != nil) {
				t.Errorf("Holds = %+v, %v; want %v, unreadable %q", got, err, tc.want, tc.unreadable)
			}
		})
	}
}
