package keytemplate

import (
	"errors"
	"slices"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
)

func TestParseErrorsNameTheKind(t *testing.T) {
	for _, c := range []struct {
		k    Kind
		raw  string
		want string
	}{
		{Pattern, "", "invalid operation: empty key pattern"},
		{Prefix, "", "invalid operation: empty object prefix"},
		{Prefix, "/a/{user_id}", "invalid operation: object prefix starts with /"},
		{Pattern, "a:{user_id", "invalid operation: key pattern has an unmatched '{'"},
		{Prefix, "a/user_id}/", "invalid operation: object prefix has an unmatched '}'"},
		{Pattern, "a:{tenant}{user_id}", "invalid operation: key pattern has placeholders {tenant}{user_id} with nothing between them; keys would be ambiguous"},
		{Prefix, "a/{tenant}{user_id}/", "invalid operation: object prefix has placeholders {tenant}{user_id} with nothing between them"},
		{Pattern, "s:{user_id}*", "invalid operation: key pattern has a '*' right after {user_id}; user 1 could not be told from user 12"},
		{Pattern, "*:{user_id}", "invalid operation: key pattern has a '*' before a placeholder; keys would be ambiguous"},
	} {
		_, err := Parse(c.k, c.raw)
		if !errors.Is(err, datastore.ErrInvalid) || err.Error() != c.want {
			t.Errorf("Parse(%s, %q) = %v, want %s", c.k, c.raw, err, c.want)
		}
	}
	if _, err := Parse(Prefix, "a/*/{user_id}/"); err != nil {
		t.Errorf("a '*' is literal in a prefix: %v", err)
	}
}

func TestValuesByKind(t *testing.T) {
	pat, _ := Parse(Pattern, "s:{user_id}")
	pre, _ := Parse(Prefix, "s:{user_id}")
	if got, ok := pat.Values("s:a/b", nil); !ok || !slices.Equal(got, []string{"a/b"}) {
		t.Errorf("a pattern's last value takes the rest of the key: %q %v", got, ok)
	}
	if got, ok := pre.Values("s:a/b", nil); !ok || !slices.Equal(got, []string{"a"}) {
		t.Errorf("a prefix's value ends at '/': %q %v", got, ok)
	}
	if _, ok := pat.Values("s:", nil); ok {
		t.Error("empty value")
	}
}

func TestSelection(t *testing.T) {
	tpl, _ := Parse(Pattern, "t:{tenant}:u:{user_id}:*")
	if _, err := tpl.Select(map[string][]string{"user_id": {"a:b"}}, nil); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("subject value with the delimiter: %v", err)
	}
	sel, err := tpl.Select(map[string][]string{"user_id": {"1", "2", "a"}, "email": {"x@y"}}, map[string][]string{"tenant": {"held"}, "user_id": {"2", "a:b"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Subjects) != 1 || !sel.Held.Has("tenant", "held") {
		t.Fatalf("subjects %v held %v", sel.Subjects, sel.Held)
	}
	for key, want := range map[string]bool{
		"t:acme:u:1:x":   true,
		"t:acme:u:2:x":   false, // held user
		"t:held:u:1:x":   false, // held tenant
		"t:acme:u:3:x":   false, // not a subject
		"t:acme:u:a:x":   true,
		"t:acme:u:a:b:x": false, // user a, but could be the held a:b
	} {
		vals, ok := tpl.Values(key, nil)
		if got := ok && sel.Selects(key, vals); got != want {
			t.Errorf("%s: selected %v, want %v", key, got, want)
		}
	}
}
