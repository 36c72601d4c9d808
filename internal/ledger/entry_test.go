package ledger

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/digest"
)

// A line written before Datasets existed reads as nil (any Dataset); a
// line of an erasure with nothing in scope as empty.
func TestDatasetsAbsentOrEmpty(t *testing.T) {
	old, err := ParseLine(`{"request":"a","subject":"s","identities":[],"receiptSHA256":"x","completed":"2026-01-01T00:00:00Z"}`)
	if err != nil || old.Datasets != nil {
		t.Fatalf("old line: %+v, %v", old, err)
	}
	at := metav1.Now()
	line, err := NewLine([]byte("k"), "b", &retentionv1.Receipt{CompletedAt: &at}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseLine(line)
	if err != nil || e.Datasets == nil || len(e.Datasets) != 0 {
		t.Fatalf("nothing in scope: %+v, %v (%s)", e, err, line)
	}
}

// A line verifies under the key that wrote it, and not once changed, nor
// under another key; a line without a MAC is unsigned.
func TestLineMAC(t *testing.T) {
	key := []byte("test-digest-key-0123456789abcdef0123")
	at := metav1.Now()
	line, err := NewLine(key, "ada", &retentionv1.Receipt{CompletedAt: &at, Entries: []retentionv1.ReceiptEntry{{Dataset: "billing"}}}, map[string][]string{"user_id": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseLine(line)
	if err != nil || !e.Signed() || !e.Verify(key) || e.Verify([]byte("another key of thirty-two bytes!")) {
		t.Fatalf("%+v, %v", e, err)
	}
	for _, forged := range []string{
		strings.Replace(line, `"datasets":["billing"]`, `"datasets":["billing","app"]`, 1),
		strings.Replace(line, `"datasets":["billing"]`, `"datasets":null`, 1),
		strings.Replace(line, `"request":"ada"`, `"request":"bob"`, 1),
	} {
		f, err := ParseLine(forged)
		if err != nil || forged == line || f.Verify(key) {
			t.Errorf("a changed line verifies: %s", forged)
		}
	}
	old, _ := ParseLine(`{"request":"a","subject":"s","identities":[],"receiptSHA256":"x","completed":"2026-01-01T00:00:00Z"}`)
	if old.Signed() || old.Verify(key) {
		t.Error("an unsigned line verifies")
	}
}

// A ledger line holds digests only: no identity value, whatever the types.
func TestNewLine(t *testing.T) {
	key := []byte("test-digest-key-0123456789abcdef0123")
	at := metav1.NewTime(time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600)))
	r := &retentionv1.Receipt{SubjectDigest: "hmac-sha256:subject", SHA256: "abc123", CompletedAt: &at,
		Entries: []retentionv1.ReceiptEntry{{Dataset: "shop", Collection: "users"}, {Dataset: "billing", Collection: "invoices"}, {Dataset: "shop", Collection: "orders"}}}
	cases := []struct {
		name       string
		identities map[string][]string
		want       []string
	}{
		{"none", nil, nil},
		{"named", map[string][]string{"user_id": {"usr_ada_1815"}},
			[]string{"user_id=" + digest.Identity(key, "user_id", "usr_ada_1815")}},
		{"named and derived, sorted", map[string][]string{"user_id": {"usr_ada_1815"}, "email": {"ada@example.com", "ada@example.net"}},
			slices.Sorted(slices.Values([]string{
				"user_id=" + digest.Identity(key, "user_id", "usr_ada_1815"),
				"email=" + digest.Identity(key, "email", "ada@example.com"),
				"email=" + digest.Identity(key, "email", "ada@example.net"),
			}))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line, err := NewLine(key, "ada", r, tc.identities)
			if err != nil {
				t.Fatal(err)
			}
			for _, vs := range tc.identities {
				for _, v := range vs {
					if strings.Contains(line, v) {
						t.Errorf("the line shows %q: %s", v, line)
					}
				}
			}
			var e Entry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			if e.Request != "ada" || e.Subject != r.SubjectDigest || e.Receipt != "abc123" || e.Completed != "2026-03-01T11:00:00Z" || !slices.Equal(e.Identities, tc.want) || !slices.Equal(e.Datasets, []string{"billing", "shop"}) {
				t.Errorf("entry %+v, identities want %v", e, tc.want)
			}
		})
	}
}
