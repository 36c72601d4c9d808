package derive

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func idf(types ...string) []retentionv1.IdentityField {
	var out []retentionv1.IdentityField
	for _, t := range types {
		out = append(out, retentionv1.IdentityField{Type: retentionv1.IdentityType(t), Field: retentionv1.Identifier(t)})
	}
	return out
}

// Derivation chains through linking tables, derives each type once (known
// types are never widened), and ignores key patterns.
func TestDerivableTypes(t *testing.T) {
	datasets := []retentionv1.Dataset{
		{ObjectMeta: objectMeta("shop"), Spec: retentionv1.DatasetSpec{Collections: []retentionv1.Collection{
			{Name: "users", Identities: idf("user_id", "email", "phone")},
			{Name: "accounts", Identities: idf("user_id", "account_id")},
			{Name: "orders", Identities: idf("user_id")},
		}}},
		{ObjectMeta: objectMeta("cache"), Spec: retentionv1.DatasetSpec{Collections: []retentionv1.Collection{
			{Name: "sessions", KeyPattern: "session:{user_id}:{device}:*", Identities: []retentionv1.IdentityField{{Type: "user_id"}, {Type: "device"}}},
		}}},
	}
	got := Derivable(datasets, map[string]bool{"email": true})
	want := map[string]string{"user_id": "email via users", "phone": "email via users", "account_id": "user_id via accounts"}
	if len(got) != len(want) {
		t.Fatalf("Derivable %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Derivable[%s] = %q, want %q", k, got[k], v)
		}
	}
	// Naming the user_id derives the rest; the user_id itself is not widened.
	got = Derivable(datasets, map[string]bool{"user_id": true})
	if _, ok := got["user_id"]; ok || got["email"] != "user_id via users" || got["account_id"] != "user_id via accounts" {
		t.Errorf("Derivable from user_id: %v", got)
	}
	// A type no linking table holds derives nothing.
	if got := Derivable(datasets, map[string]bool{"device": true}); len(got) != 0 {
		t.Errorf("Derivable from device: %v", got)
	}
}

func objectMeta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
