package notify

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func recipient(name string, types []retentionv1.IdentityType, datasets []retentionv1.ObjectName, cats []retentionv1.Category) *retentionv1.Recipient {
	return &retentionv1.Recipient{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: retentionv1.RecipientSpec{
		IdentityTypes: types, Datasets: datasets, Categories: cats,
	}}
}

func TestIdentitiesOnlyOfTheTypesReceived(t *testing.T) {
	subject := map[string][]string{"email": {"b@example.com", "a@example.com"}, "user_id": {"42"}, "phone": {"+4912345"}}
	for _, tc := range []struct {
		types []retentionv1.IdentityType
		want  map[string][]string
	}{
		{[]retentionv1.IdentityType{"email"}, map[string][]string{"email": {"a@example.com", "b@example.com"}}},
		{[]retentionv1.IdentityType{"user_id", "device_id"}, map[string][]string{"user_id": {"42"}}},
		{[]retentionv1.IdentityType{"device_id"}, nil},
	} {
		got := Identities(recipient("r", tc.types, nil, nil), subject)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("types %v: %v, want %v", tc.types, got, tc.want)
		}
	}
}

func TestDatasetsOfTheRecipient(t *testing.T) {
	shop := &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: retentionv1.DatasetSpec{Collections: []retentionv1.Collection{
		{Name: "users", Categories: []retentionv1.Category{"contact"}},
		{Name: "orders", Fields: []retentionv1.DataField{{Name: "address", Categories: []retentionv1.Category{"location"}}}},
		{Name: "logs"},
	}}}
	crm := &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Name: "crm"}}
	datasets := map[string]*retentionv1.Dataset{"shop": shop, "crm": crm}
	plan := func(steps ...[2]string) []retentionv1.PlannedCollection {
		var out []retentionv1.PlannedCollection
		for _, s := range steps {
			out = append(out, retentionv1.PlannedCollection{Dataset: s[0], Collection: s[1]})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		datasets []retentionv1.ObjectName
		cats     []retentionv1.Category
		plan     []retentionv1.PlannedCollection
		want     []string
	}{
		{"named dataset in the plan", []retentionv1.ObjectName{"crm"}, nil, plan([2]string{"crm", "leads"}, [2]string{"shop", "logs"}), []string{"crm"}},
		{"named dataset not in the plan", []retentionv1.ObjectName{"crm"}, nil, plan([2]string{"shop", "users"}), []string{}},
		{"collection category", nil, []retentionv1.Category{"contact"}, plan([2]string{"shop", "users"}), []string{"shop"}},
		{"field category", nil, []retentionv1.Category{"location"}, plan([2]string{"shop", "orders"}), []string{"shop"}},
		{"category of a collection not erased", nil, []retentionv1.Category{"contact"}, plan([2]string{"shop", "logs"}), []string{}},
		{"both", []retentionv1.ObjectName{"crm"}, []retentionv1.Category{"location"}, plan([2]string{"crm", "leads"}, [2]string{"shop", "orders"}), []string{"crm", "shop"}},
	} {
		got := Datasets(recipient("r", []retentionv1.IdentityType{"email"}, tc.datasets, tc.cats), tc.plan, datasets)
		if len(got) == 0 && len(tc.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBuildIsCanonicalAndDocumented(t *testing.T) {
	completed := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	dr := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "erase-ada", UID: "4f1c"},
		Spec: retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonSubjectRequest},
		Status: retentionv1.DeletionRequestStatus{
			CompletionTime: &metav1.Time{Time: completed}, DeadlineTime: &metav1.Time{Time: completed.Add(24 * time.Hour)},
			Receipt: &retentionv1.Receipt{SHA256: "abc"},
		}}
	r := recipient("analytics", []retentionv1.IdentityType{"email"}, nil, nil)
	ids := map[string][]string{"user_id": {"42"}, "email": {"ada@example.com"}}
	a, err := Build(dr, r, []string{"shop"}, ids)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Build(dr, r, []string{"shop"}, map[string][]string{"email": {"ada@example.com"}, "user_id": {"42"}})
	if !bytes.Equal(a, b) {
		t.Fatalf("the same notice built twice differs:\n%s\n%s", a, b)
	}
	// The body documented in docs/user-guide.md, "The erasure notice".
	want := `{"type":"erasure.completed","timestamp":"2030-01-02T03:04:05Z","data":{"requestId":"4f1c","namespace":"shop","name":"erase-ada","reason":"SubjectRequest","deadline":"2030-01-03T03:04:05Z","recipient":"analytics","datasets":["shop"],"identities":{"email":["ada@example.com"],"user_id":["42"]},"receiptSha256":"abc","acknowledge":"Response"}}`
	if string(a) != want {
		t.Fatalf("body\n%s\nwant\n%s", a, want)
	}
	var n Notice
	if err := json.Unmarshal(a, &n); err != nil || n.Type != TypeErasureCompleted {
		t.Fatalf("round trip: %v %+v", err, n)
	}
	first, again, other := NoticeID("4f1c", "analytics"), NoticeID("4f1c", "analytics"), NoticeID("4f1c", "crm")
	if first != again || first == other {
		t.Fatal("NoticeID must be stable per request and recipient, and differ between recipients")
	}
}
