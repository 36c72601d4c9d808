package derive

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// table is a fake SQL table: rows of identity type → value.
type table []map[string]string

// fakeStore answers lookups from tables by name, keeping a value only if
// every row holding it matches from (as datastore.IdentityLookup promises).
type fakeStore struct {
	datastore.Driver // not called
	tables           map[string]table
	lookups          int
}

func (f *fakeStore) Lookup(_ context.Context, c datastore.Collection, from map[string][]string, want string, limit int) ([]string, error) {
	f.lookups++
	if c.Table == "broken" {
		return nil, fmt.Errorf("%w: no such table", datastore.ErrNotFound)
	}
	matches := func(row map[string]string) bool {
		for t, vs := range from {
			if slices.Contains(vs, row[t]) {
				return true
			}
		}
		return false
	}
	var out []string
	for _, row := range f.tables[c.Table] {
		v := row[want]
		if v == "" || !matches(row) || slices.Contains(out, v) {
			continue
		}
		mine := true
		for _, other := range f.tables[c.Table] {
			if other[want] == v && !matches(other) {
				mine = false
			}
		}
		if mine {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

type drivers struct{ d datastore.Driver }

func (d drivers) Get(context.Context, *retentionv1.DataStore) (datastore.Driver, error) {
	return d.d, nil
}

func TestStoresDerive(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := retentionv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	store := &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pg"}, Spec: retentionv1.DataStoreSpec{Type: retentionv1.DataStorePostgreSQL}}
	users := retentionv1.Collection{Name: "users", Identities: idf("user_id", "email"),
		Fields: []retentionv1.DataField{{Name: "email", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyRedact}}}}
	accounts := retentionv1.Collection{Name: "accounts", Identities: idf("user_id", "account_id")}
	broken := retentionv1.Collection{Name: "broken", Identities: idf("user_id", "device")}
	dataset := func(cs ...retentionv1.Collection) []retentionv1.Dataset {
		return []retentionv1.Dataset{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"},
			Spec: retentionv1.DatasetSpec{DataStoreRef: retentionv1.LocalObjectReference{Name: "pg"}, Collections: cs}}}
	}
	tables := map[string]table{
		"users": {
			{"user_id": "40", "email": "grace@example.com"},
			{"user_id": "21", "email": "ada@example.com"},
			{"user_id": "21", "email": "ada@example.net"},
			{"user_id": "22", "email": "shared@example.com"},
			{"user_id": "23", "email": "shared@example.com"},
			{"user_id": "21", "email": "****************"}, // anonymized: a placeholder
			{"user_id": "30", "email": "many@example.com"},
			{"user_id": "31", "email": "many@example.com"},
		},
		"accounts": {{"user_id": "40", "account_id": "acc-4"}, {"user_id": "24", "account_id": "acc-2"}},
	}
	for i := range 10 { // an email shared by ten users
		tables["users"] = append(tables["users"], map[string]string{"user_id": fmt.Sprintf("u%d", i), "email": "family@example.com"})
	}
	cases := []struct {
		name      string
		datasets  []retentionv1.Dataset
		given     map[string][]string
		bounds    Bounds
		want      map[string][]string
		how       map[string]string
		truncated []string
		stall     string // reason of the expected stall
	}{
		{name: "chain through two rounds", datasets: dataset(users, accounts), bounds: RequestBounds,
			given: map[string][]string{"email": {"grace@example.com"}},
			want:  map[string][]string{"email": {"grace@example.com"}, "user_id": {"40"}, "account_id": {"acc-4"}},
			how:   map[string]string{"user_id": "email via users", "account_id": "user_id via accounts"}},
		{name: "the named type is never widened", datasets: dataset(users), bounds: RequestBounds,
			given: map[string][]string{"user_id": {"21"}, "email": {"ada@example.com"}},
			want:  map[string][]string{"user_id": {"21"}, "email": {"ada@example.com"}}, how: map[string]string{}},
		{name: "placeholders and other people's values are not derived", datasets: dataset(users), bounds: RequestBounds,
			given: map[string][]string{"user_id": {"21", "22"}},
			want:  map[string][]string{"user_id": {"21", "22"}, "email": {"ada@example.com", "ada@example.net"}},
			how:   map[string]string{"email": "user_id via users"}},
		{name: "nothing found", datasets: dataset(users), bounds: RequestBounds,
			given: map[string][]string{"user_id": {"99"}}, want: map[string][]string{"user_id": {"99"}}, how: map[string]string{}},
		{name: "a request stops at a shared identity", datasets: dataset(users), bounds: Bounds{Max: 3, Stop: true},
			given: map[string][]string{"email": {"family@example.com"}}, stall: retentionv1.ReasonDerivationLimit},
		{name: "a hold keeps the first values", datasets: dataset(users), bounds: Bounds{Max: 3},
			given:     map[string][]string{"email": {"family@example.com"}},
			want:      map[string][]string{"email": {"family@example.com"}, "user_id": {"u0", "u1", "u2"}},
			how:       map[string]string{"user_id": "email via users"},
			truncated: []string{"user_id"}},
		{name: "a lookup the store refuses", datasets: dataset(broken), bounds: RequestBounds,
			given: map[string][]string{"user_id": {"21"}}, stall: retentionv1.ReasonDerivationFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStore{tables: tables}
			s := Stores{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(store.DeepCopy()).Build(), Drivers: drivers{f}}
			given := map[string][]string{}
			for k, v := range tc.given {
				given[k] = slices.Clone(v)
			}
			out, how, truncated, err := s.Derive(context.Background(), tc.datasets, given, tc.bounds)
			if tc.stall != "" {
				if st := outcome.AsStall(err); st == nil || st.Reason != tc.stall {
					t.Fatalf("err %v, want a %s stall", err, tc.stall)
				}
				for _, vs := range tc.given {
					for _, v := range vs {
						if strings.Contains(err.Error(), v) {
							t.Errorf("the message shows %q: %v", v, err)
						}
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(out, tc.want, slices.Equal) || !maps.Equal(how, tc.how) || !slices.Equal(truncated, tc.truncated) {
				t.Errorf("Derive = %v, %v, truncated %v; want %v, %v, %v", out, how, truncated, tc.want, tc.how, tc.truncated)
			}
			if !maps.EqualFunc(given, tc.given, slices.Equal) {
				t.Errorf("the given identities were modified: %v", given)
			}
		})
	}
}

func TestMergeStored(t *testing.T) {
	secret := func(annotation string, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ada-subject"}, Data: map[string][]byte{}}
		if annotation != "" {
			s.Annotations = map[string]string{AnnotationDerivedFrom: annotation}
		}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	named := map[string][]string{"email": {"ada@example.com"}}
	cases := []struct {
		name   string
		secret *corev1.Secret
		want   map[string][]string
		how    map[string]string
		stall  bool
	}{
		{"derived types added", secret(`{"user_id":"email via users"}`, map[string]string{"user_id": "21\n 22 \n\n"}),
			map[string][]string{"email": {"ada@example.com"}, "user_id": {"21", "22"}}, map[string]string{"user_id": "email via users"}, false},
		{"merged with a named type, distinct", secret("", map[string]string{"email": "ada@example.com\nada@example.net"}),
			map[string][]string{"email": {"ada@example.com", "ada@example.net"}}, map[string]string{}, false},
		{"annotation not JSON", secret("{", nil), nil, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, how, err := MergeStored(named, tc.secret)
			if tc.stall {
				if st := outcome.AsStall(err); st == nil || st.Reason != retentionv1.ReasonDerivationFailed {
					t.Fatalf("err %v, want a DerivationFailed stall", err)
				}
				return
			}
			if err != nil || !maps.EqualFunc(out, tc.want, slices.Equal) || !maps.Equal(how, tc.how) {
				t.Errorf("MergeStored = %v, %v, %v; want %v, %v", out, how, err, tc.want, tc.how)
			}
			if len(named["email"]) != 1 {
				t.Errorf("the named identities were modified: %v", named)
			}
		})
	}
}
