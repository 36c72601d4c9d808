package request

import (
	"context"
	"maps"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/derive"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// lookupStore finds user 21's email in users, and counts its lookups.
type lookupStore struct {
	datastore.Driver // not called
	lookups          int
}

func (s *lookupStore) Lookup(_ context.Context, c datastore.Collection, from map[string][]string, want string, _ int) ([]string, error) {
	s.lookups++
	if c.Table == "users" && want == "email" && slices.Contains(from["user_id"], "21") {
		return []string{"ada@example.com"}, nil
	}
	return nil, nil
}

type drivers struct{ d datastore.Driver }

func (d drivers) Get(context.Context, *retentionv1.DataStore) (datastore.Driver, error) {
	return d.d, nil
}

func TestDerive(t *testing.T) {
	ds := app()
	ds.Spec.DataStoreRef = retentionv1.LocalObjectReference{Name: "pg"}
	usersOnly := ds.DeepCopy()
	usersOnly.Spec.Collections = usersOnly.Spec.Collections[:1]
	store := &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pg"}, Spec: retentionv1.DataStoreSpec{Type: retentionv1.DataStorePostgreSQL}}
	request := func(phase retentionv1.DeletionRequestPhase, derived bool) *retentionv1.DeletionRequest {
		dr := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ada", UID: "uid-ada"}}
		dr.Status.Phase = phase
		if derived {
			dr.Status.Conditions = []metav1.Condition{{Type: retentionv1.ConditionIdentitiesDerived, Status: metav1.ConditionTrue, Reason: retentionv1.ReasonIdentitiesDerived}}
		}
		return dr
	}
	kept := func(owner types.UID) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ada-subject",
			Annotations:     map[string]string{derive.AnnotationDerivedFrom: `{"email":"user_id via users"}`},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "retention.lethe.dev/v1alpha1", Kind: "DeletionRequest", Name: "ada", UID: owner}}},
			Data: map[string][]byte{"email": []byte("ada@example.com")}}
	}
	named := map[string][]string{"user_id": {"21"}}
	withEmail := map[string][]string{"user_id": {"21"}, "email": {"ada@example.com"}}
	cases := []struct {
		name     string
		dr       *retentionv1.DeletionRequest
		datasets []retentionv1.Dataset
		objs     []client.Object
		want     map[string][]string
		secret   string
		created  bool
		lookups  int
		stall    string
	}{
		{"read from the stores and kept", request(retentionv1.RequestPending, false), []retentionv1.Dataset{ds}, nil, withEmail, "ada-subject", true, 1, ""},
		{"kept before: the stores are not read", request(retentionv1.RequestPending, true), []retentionv1.Dataset{ds}, []client.Object{kept("uid-ada")}, withEmail, "ada-subject", false, 0, ""},
		{"queued before deriving: never", request(retentionv1.RequestQueued, false), []retentionv1.Dataset{ds}, nil, named, "", false, 0, ""},
		{"deriving changes nothing", request(retentionv1.RequestPending, false), []retentionv1.Dataset{*usersOnly}, nil, named, "", false, 0, ""},
		{"the kept Secret is gone", request(retentionv1.RequestRunning, true), []retentionv1.Dataset{ds}, nil, nil, "", false, 0, retentionv1.ReasonDerivationFailed},
		{"a Secret of that name not the request's", request(retentionv1.RequestPending, false), []retentionv1.Dataset{ds}, []client.Object{kept("uid-other")}, nil, "", false, 0, retentionv1.ReasonDerivationFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, append(tc.objs, store.DeepCopy())...)
			s := &lookupStore{}
			p := &Planner{Client: c, Reader: c, Drivers: drivers{s}}
			got, err := p.Derive(context.Background(), tc.dr, tc.datasets, named, created)
			if tc.stall != "" {
				if st := outcome.AsStall(err); st == nil || st.Reason != tc.stall {
					t.Fatalf("err %v, want a %s stall", err, tc.stall)
				}
				return
			}
			if err != nil || !maps.EqualFunc(got.Identities, tc.want, slices.Equal) || got.Secret != tc.secret || got.Created != tc.created || s.lookups != tc.lookups {
				t.Fatalf("Derive = %+v, %v after %d lookups; want %v in %q (created %v) after %d", got, err, s.lookups, tc.want, tc.secret, tc.created, tc.lookups)
			}
			if tc.secret != "" && got.How["email"] != "user_id via users" {
				t.Errorf("how: %v", got.How)
			}
			if tc.created {
				var sec corev1.Secret
				if err := c.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: tc.secret}, &sec); err != nil {
					t.Fatal(err)
				}
				if string(sec.Data["email"]) != "ada@example.com" || sec.Data["user_id"] != nil || len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != "uid-ada" ||
					sec.Labels[retentionv1.LabelSecretConsent] != "true" || sec.Annotations[derive.AnnotationDerivedFrom] != `{"email":"user_id via users"}` {
					t.Errorf("kept Secret %+v", sec)
				}
			}
		})
	}
}
