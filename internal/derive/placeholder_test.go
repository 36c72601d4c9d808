package derive

import (
	"testing"

	"github.com/lethe-dev/lethe/internal/mask"
)

// Values an anonymization strategy wrote (it leaves them unchanged) are
// placeholders shared by many people, never a subject's identity.
func TestPlaceholderValuesAreNotIdentities(t *testing.T) {
	is := placeholderOf([]mask.Strategy{
		{Kind: mask.Kind("Redact")},
		{Kind: mask.Kind("Fixed"), Replacement: "[removed]"},
		{Kind: mask.Kind("PartialMask"), KeepFirst: 3, KeepLast: 4},
	})
	for v, want := range map[string]bool{
		"****************":    true,  // a redacted email
		"[removed]":           true,  // a fixed replacement
		"138****1234":         true,  // a partially masked phone
		"ming@example.com":    false, // a real email
		"13812341234":         false, // a real phone
		"+86 138 0013 8000":   false,
		"alt.100271@exam.net": false,
	} {
		if got := is(v); got != want {
			t.Errorf("placeholder(%q) = %v, want %v", v, got, want)
		}
	}
	if placeholderOf(nil)("****") {
		t.Error("without strategies nothing is a placeholder")
	}
}
