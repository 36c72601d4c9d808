package identity

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	cases := []struct {
		typ, value string
		wantErr    string // "" for valid
	}{
		{"user_id", "usr_ada_1815", ""},
		{"email", "ada@example.com", ""},
		{"e2", "x", ""},
		{"Email", "x", "is not an identity type"},
		{"_email", "x", "is not an identity type"},
		{"2fa", "x", "is not an identity type"},
		{"", "x", "is not an identity type"},
		{"user-id", "x", "is not an identity type"},
		{strings.Repeat("a", 63), "x", ""},
		{strings.Repeat("a", 64), "x", "is not an identity type"},
		{"email", "ada\x00@example.com", "control character"},
		{"email", "ada\n", "control character"},
		{"email", "\xff\xfe", "not valid UTF-8"},
	}
	for _, tc := range cases {
		err := Check(tc.typ, tc.value)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Check(%q): %v", tc.typ, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Check(%q) = %v, want an error with %q", tc.typ, err, tc.wantErr)
		case err != nil && tc.value != "" && strings.Contains(err.Error(), tc.value):
			t.Errorf("Check(%q): the error %q shows the value", tc.typ, err)
		}
	}
}

func TestTypesAndShared(t *testing.T) {
	ids := map[string][]string{"email": {"a@example.net"}, "phone": nil, "user_id": {"1", "2"}}
	got := Types(ids)
	if len(got) != 2 || !got["email"] || !got["user_id"] {
		t.Errorf("Types = %v", got)
	}
	cases := []struct {
		name string
		b    map[string][]string
		want bool
	}{
		{"same type and value", map[string][]string{"user_id": {"2"}}, true},
		{"same value, other type", map[string][]string{"account_id": {"1"}}, false},
		{"same type, other value", map[string][]string{"email": {"b@example.net"}}, false},
		{"empty", nil, false},
	}
	for _, tc := range cases {
		if got := Shared(ids, tc.b); got != tc.want {
			t.Errorf("%s: Shared = %v, want %v", tc.name, got, tc.want)
		}
	}
}
