package request

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/outcome"
)

var created = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, retentionv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
}

func ids(types ...string) []retentionv1.IdentityField {
	var out []retentionv1.IdentityField
	for _, t := range types {
		out = append(out, retentionv1.IdentityField{Type: retentionv1.IdentityType(t), Field: retentionv1.Identifier(t)})
	}
	return out
}

// app: users (user_id, email) owns orders (user_id) by reference; sessions
// hold only an email.
func app() retentionv1.Dataset {
	return retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", Generation: 1},
		Spec: retentionv1.DatasetSpec{Collections: []retentionv1.Collection{
			{Name: "users", Identities: ids("user_id", "email"), PrimaryKey: []retentionv1.Identifier{"user_id"},
				Fields: []retentionv1.DataField{{Name: "email", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyRedact}}}},
			{Name: "orders", Identities: ids("user_id"),
				References: []retentionv1.Reference{{Field: "user_id", Collection: "users", TargetField: "user_id"}}},
			{Name: "sessions", Identities: ids("email")},
		}}}
}

func TestTimeline(t *testing.T) {
	wait := func(s string) *retentionv1.WaitDuration { w := retentionv1.WaitDuration(s); return &w }
	cases := []struct {
		name      string
		spec      retentionv1.DeletionRequestSpec
		notBefore time.Duration
		deadline  time.Time
		wantErr   string
	}{
		{"defaults", retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonOther}, 0, created.AddDate(0, 0, 30), ""},
		{"account cancellation: 48h review", retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonAccountCancellation}, 48 * time.Hour, created.AddDate(0, 0, 30), ""},
		{"a review window given", retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonAccountCancellation, ReviewWindow: wait("2d")}, 48 * time.Hour, created.AddDate(0, 0, 30), ""},
		{"no window given", retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonAccountCancellation, ReviewWindow: wait("0h")}, 0, created.AddDate(0, 0, 30), ""},
		{"a minor's data: never a window", retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonMinor, ReviewWindow: wait("7d")}, 0, created.AddDate(0, 0, 30), ""},
		{"a deadline given", retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonOther, Deadline: "1mo"}, 0, created.AddDate(0, 1, 0), ""},
		{"an invalid window", retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonOther, ReviewWindow: wait("soon")}, 0, time.Time{}, "reviewWindow"},
		{"an invalid deadline", retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonOther, Deadline: "0d"}, 0, time.Time{}, "deadline"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dr := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(created)}, Spec: tc.spec}
			notBefore, deadline, err := Timeline(dr)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one about %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || !notBefore.Equal(created.Add(tc.notBefore)) || !deadline.Equal(tc.deadline) {
				t.Errorf("Timeline = %s, %s, %v; want %s, %s", notBefore, deadline, err, created.Add(tc.notBefore), tc.deadline)
			}
		})
	}
}

func TestIdentities(t *testing.T) {
	secret := func(name string, marked bool, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: map[string][]byte{}}
		if marked {
			s.Labels = map[string]string{retentionv1.LabelSecretConsent: "true"}
		}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	inline := []retentionv1.SubjectIdentity{{Type: "user_id", Value: "21"}, {Type: "email", Value: "b@example.net"}, {Type: "user_id", Value: "21"}}
	cases := []struct {
		name    string
		inline  []retentionv1.SubjectIdentity
		ref     string
		secrets []client.Object
		want    map[string][]string
		stall   bool
		missing bool
	}{
		{"inline, distinct", inline, "", nil, map[string][]string{"user_id": {"21"}, "email": {"b@example.net"}}, false, false},
		{"with the identity Secret, sorted", inline, "ada", []client.Object{secret("ada", true, map[string]string{"email": "a@example.net\n\n c@example.net "})},
			map[string][]string{"user_id": {"21"}, "email": {"a@example.net", "b@example.net", "c@example.net"}}, false, false},
		{"a value with a control character", []retentionv1.SubjectIdentity{{Type: "email", Value: "a\x00b"}}, "", nil, nil, true, false},
		{"a Secret key that is no identity type", nil, "ada", []client.Object{secret("ada", true, map[string]string{"E-Mail": "a@example.net"})}, nil, true, false},
		{"a Secret not marked for Lethe", nil, "ada", []client.Object{secret("ada", false, map[string]string{"email": "a@example.net"})}, nil, false, true},
		{"a missing Secret", nil, "ada", nil, nil, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, tc.secrets...)
			p := &Planner{Client: c, Reader: c}
			dr := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ada"},
				Spec: retentionv1.DeletionRequestSpec{Subject: retentionv1.Subject{Identities: tc.inline}}}
			if tc.ref != "" {
				dr.Spec.Subject.IdentitiesSecretRef = &retentionv1.SecretReference{Name: tc.ref}
			}
			got, err := p.Identities(context.Background(), dr)
			switch {
			case tc.stall:
				if st := outcome.AsStall(err); st == nil || st.Reason != retentionv1.ReasonInvalidIdentity || strings.Contains(st.Msg, "a\x00b") {
					t.Errorf("err %v, want an InvalidIdentity stall without the value", err)
				}
			case tc.missing:
				if !errors.Is(err, connect.ErrSecretNotFound) {
					t.Errorf("err %v, want ErrSecretNotFound", err)
				}
			case err != nil || !maps.EqualFunc(got, tc.want, slices.Equal):
				t.Errorf("Identities = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestDatasets(t *testing.T) {
	ds := func(name string, labels map[string]string) *retentionv1.Dataset {
		return &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: labels}}
	}
	c := newClient(t, ds("shop", map[string]string{"tier": "gold"}), ds("billing", map[string]string{"tier": "gold"}), ds("cache", nil),
		&retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "elsewhere"}})
	cases := []struct {
		name  string
		scope *retentionv1.ErasureScope
		want  []string
		stall bool
	}{
		{"the namespace, sorted", nil, []string{"billing", "cache", "shop"}, false},
		{"by name", &retentionv1.ErasureScope{Datasets: []retentionv1.ObjectName{"shop", "missing"}}, []string{"shop"}, false},
		{"by label", &retentionv1.ErasureScope{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}}, []string{"billing", "shop"}, false},
		{"both", &retentionv1.ErasureScope{Datasets: []retentionv1.ObjectName{"shop", "cache"}, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}}, []string{"shop"}, false},
		{"an invalid selector", &retentionv1.ErasureScope{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Near"}}}}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &Planner{Client: c, Reader: c}
			got, err := p.Datasets(context.Background(), &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Spec: retentionv1.DeletionRequestSpec{Scope: tc.scope}})
			if tc.stall {
				if st := outcome.AsStall(err); st == nil || st.Reason != retentionv1.ReasonInvalidSpec {
					t.Errorf("err %v, want an InvalidSpec stall", err)
				}
				return
			}
			var names []string
			for _, d := range got {
				names = append(names, d.Name)
			}
			if err != nil || !slices.Equal(names, tc.want) {
				t.Errorf("Datasets = %v, %v; want %v", names, err, tc.want)
			}
		})
	}
}

func TestUnvalidatedAndInvalid(t *testing.T) {
	ds := func(gen, observed, condGen int64, status metav1.ConditionStatus, reason string) retentionv1.Dataset {
		d := retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Name: "app", Generation: gen}}
		d.Status.ObservedGeneration = observed
		if reason != "" {
			d.Status.Conditions = []metav1.Condition{{Type: retentionv1.ConditionReady, Status: status, Reason: reason, Message: "why", ObservedGeneration: condGen}}
		}
		return d
	}
	cases := []struct {
		name        string
		ds          retentionv1.Dataset
		unvalidated bool
		invalid     string
	}{
		{"validated and Ready", ds(2, 2, 2, metav1.ConditionTrue, retentionv1.ReasonValidated), false, ""},
		{"never looked at", ds(1, 0, 0, "", ""), true, ""},
		{"an older generation validated", ds(2, 1, 1, metav1.ConditionTrue, retentionv1.ReasonValidated), true, ""},
		{"waiting for its store", ds(1, 1, 1, metav1.ConditionFalse, retentionv1.ReasonDataStoreNotReady), true, "DataStoreNotReady: why"},
		{"a missing table", ds(1, 1, 1, metav1.ConditionFalse, retentionv1.ReasonCollectionNotFound), false, "CollectionNotFound: why"},
		{"an anonymization that cannot work", ds(1, 1, 1, metav1.ConditionFalse, retentionv1.ReasonInvalidAnonymization), false, "InvalidAnonymization: why"},
	}
	for _, tc := range cases {
		all := []retentionv1.Dataset{tc.ds}
		if got := Unvalidated(all) != ""; got != tc.unvalidated {
			t.Errorf("%s: unvalidated %v, want %v", tc.name, got, tc.unvalidated)
		}
		if _, why := Invalid(all); why != tc.invalid {
			t.Errorf("%s: invalid %q, want %q", tc.name, why, tc.invalid)
		}
	}
}

func TestApprovalRequiredBy(t *testing.T) {
	ds := func(name string, approval bool) retentionv1.Dataset {
		return retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: retentionv1.DatasetSpec{RequireApproval: approval}}
	}
	datasets := []retentionv1.Dataset{ds("shop", true), ds("billing", true), ds("cache", false)}
	cases := []struct {
		planned []string
		want    []string
	}{
		{nil, nil},
		{[]string{"cache"}, nil},
		{[]string{"shop", "cache"}, []string{"shop"}},
		{[]string{"shop", "billing"}, []string{"billing", "shop"}},
	}
	for _, tc := range cases {
		var plan []retentionv1.PlannedCollection
		for _, d := range tc.planned {
			plan = append(plan, retentionv1.PlannedCollection{Dataset: d, Collection: "c"})
		}
		if got := ApprovalRequiredBy(datasets, plan); !slices.Equal(got, tc.want) {
			t.Errorf("planned %v: %v, want %v", tc.planned, got, tc.want)
		}
	}
}

// A fallback an earlier preflight decided stays with the collection; counts
// stay with theirs when the plan is made again.
func TestPlanKeepsFallbacksAndCounts(t *testing.T) {
	datasets := []retentionv1.Dataset{app()}
	dr := &retentionv1.DeletionRequest{}
	plan, steps, err := Plan(dr, datasets, map[string]bool{"user_id": true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range plan {
		got = append(got, p.Collection+":"+string(p.Action))
	}
	if !slices.Equal(got, []string{"orders:Delete", "users:Delete"}) || len(steps) != 1 || len(steps[0].Ops) != 2 {
		t.Fatalf("plan %v, %d steps", got, len(steps))
	}

	seven := int64(7)
	dr.Status.Plan = []retentionv1.PlannedCollection{
		{Dataset: "app", Collection: "users", Action: retentionv1.ActionAnonymize, Fallback: "referenced by invoices", Matched: &seven},
	}
	plan, steps, err = Plan(dr, datasets, map[string]bool{"user_id": true, "email": true}, map[string]string{"email": "user_id via users"})
	if err != nil {
		t.Fatal(err)
	}
	KeepCounts(dr.Status.Plan, plan)
	byName := map[string]retentionv1.PlannedCollection{}
	for _, p := range plan {
		byName[p.Collection] = p
	}
	users := byName["users"]
	if users.Action != retentionv1.ActionAnonymize || users.Fallback != "referenced by invoices" || users.Matched == nil || *users.Matched != 7 {
		t.Errorf("users: %+v", users)
	}
	if _, ok := byName["sessions"]; !ok || byName["orders"].Matched != nil {
		t.Errorf("plan %+v", plan)
	}
	for _, s := range steps {
		for i, op := range s.Ops {
			if string(op.Collection) == "users" && op.Action != retentionv1.ActionAnonymize {
				t.Errorf("step %d runs %s on users, not the fallback", i, op.Action)
			}
		}
	}
}

func TestInvalidOperation(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("connection reset"), false},
		{datastore.ErrInvalid, true},
		{engine.ErrInvalid, true},
		{errors.Join(errors.New("counting"), datastore.ErrInvalid), true},
		{datastore.ErrUnavailable, false},
	} {
		if got := InvalidOperation(tc.err); got != tc.want {
			t.Errorf("InvalidOperation(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
