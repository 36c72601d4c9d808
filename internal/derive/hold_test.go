package derive

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Requests stop beyond the bound (an identity shared by several people);
// holds keep the first values and say the type was cut.
func TestMergeDerived(t *testing.T) {
	none := func(string) bool { return false }
	redacted := func(v string) bool { return strings.Trim(v, "*") == "" }
	cases := []struct {
		name        string
		have, found []string
		placeholder func(string) bool
		max         int
		want        []string
		over        bool
	}{
		{"first values", nil, []string{"b", "a", "b"}, none, 8, []string{"a", "b"}, false},
		{"merged with earlier links", []string{"a", "c"}, []string{"b", "c"}, none, 8, []string{"a", "b", "c"}, false},
		{"placeholders dropped", nil, []string{"****", "a"}, redacted, 8, []string{"a"}, false},
		{"only placeholders", []string{"a"}, []string{"****"}, redacted, 8, []string{"a"}, false},
		{"exactly the bound", nil, []string{"1", "2", "3"}, none, 3, []string{"1", "2", "3"}, false},
		{"over the bound: the first kept", []string{"1"}, []string{"4", "3", "2"}, none, 3, []string{"1", "2", "3"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			have := slices.Clone(tc.have)
			got, over := mergeDerived(have, tc.found, tc.placeholder, tc.max)
			if !slices.Equal(got, tc.want) || over != tc.over {
				t.Errorf("mergeDerived = %v, over %v; want %v, over %v", got, over, tc.want, tc.over)
			}
			if !slices.Equal(have, tc.have) {
				t.Errorf("the earlier values were modified: %v", have)
			}
		})
	}
}

// The hold's Secret keeps only derived types, within a byte bound; types cut
// are reported.
func TestDerivedSecretData(t *testing.T) {
	identities := map[string][]string{
		"user_id": {"21"},                             // named: not stored
		"email":   {"a@example.net", "b@example.net"}, // 14 bytes each with the separator
		"phone":   {"+1-555-0100"},
	}
	how := map[string]string{"email": "user_id via users", "phone": "user_id via users"}
	data, cut := secretData(identities, how, 1<<10)
	if len(cut) != 0 || string(data["email"]) != "a@example.net\nb@example.net" || string(data["phone"]) != "+1-555-0100" || data["user_id"] != nil {
		t.Errorf("data %q, cut %v", data, cut)
	}
	data, cut = secretData(identities, how, 20)
	if !slices.Equal(cut, []string{"email", "phone"}) || string(data["email"]) != "a@example.net" || data["phone"] != nil {
		t.Errorf("bounded: data %q, cut %v", data, cut)
	}
}

// The condition names types, counts and sources, never values, and says
// when the bounds cut a type.
func TestDerivationMessage(t *testing.T) {
	d := HoldDerivation{How: map[string]string{"email": "user_id via users"}, Counts: map[string]int{"email": 1}, Secret: "case-21-derived"}
	reason, msg := d.Message()
	if reason != retentionv1.ReasonIdentitiesDerived || msg != "Holding derived identities too: email (1 value) from user_id via users; the values are kept in Secret case-21-derived" {
		t.Errorf("%s: %q", reason, msg)
	}
	d.Counts["email"], d.Truncated = MaxHoldValues, []string{"email"}
	if reason, msg = d.Message(); reason != retentionv1.ReasonDerivationLimit || !strings.Contains(msg, "More values of email") {
		t.Errorf("%s: %q", reason, msg)
	}
	if reason, _ = (HoldDerivation{Secret: "x"}).Message(); reason != retentionv1.ReasonNothingDerived {
		t.Errorf("nothing derived: %s", reason)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		AnnotationDerivedFrom: `{"email":"user_id via users"}`, annotationTruncated: "email"}},
		Data: map[string][]byte{"email": []byte("a\nb\n")}}
	got, err := stored(s)
	if err != nil || got.Counts["email"] != 2 || got.How["email"] != "user_id via users" || !slices.Equal(got.Truncated, []string{"email"}) {
		t.Errorf("stored = %+v, %v", got, err)
	}
}

// The inputs digest changes with the named identities and the Datasets'
// generations, not with their order.
func TestDerivationInputs(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	ds := func(name string, gen int64) retentionv1.Dataset {
		return retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Name: name, UID: "uid-" + "x", Generation: gen}}
	}
	named := map[string][]string{"user_id": {"21"}}
	base := inputs(key, named, []retentionv1.Dataset{ds("a", 1), ds("b", 1)})
	if got := inputs(key, named, []retentionv1.Dataset{ds("b", 1), ds("a", 1)}); got != base {
		t.Error("the order of Datasets changed the digest")
	}
	if inputs(key, named, []retentionv1.Dataset{ds("a", 2), ds("b", 1)}) == base {
		t.Error("a Dataset's new generation did not change the digest")
	}
	if inputs(key, map[string][]string{"user_id": {"22"}}, []retentionv1.Dataset{ds("a", 1), ds("b", 1)}) == base {
		t.Error("other named identities did not change the digest")
	}
	if len(base) != 32 {
		t.Errorf("digest %q: want 16 bytes in hex", base)
	}
}
