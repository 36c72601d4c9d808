package s3

import (
	"errors"
	"slices"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
)

func TestParsePrefix(t *testing.T) {
	for _, p := range []string{"", "/x/{user_id}/", "a/{user_id}{email}/", "a/{User}/", "a/{user_id", "a/user_id}/"} {
		if _, err := parsePrefix(p); !errors.Is(err, datastore.ErrInvalid) {
			t.Errorf("parsePrefix(%q) = %v, want ErrInvalid", p, err)
		}
	}
	p, err := parsePrefix("t/{tenant}/u/{user_id}/")
	if err != nil {
		t.Fatal(err)
	}
	if p.static != "t/" || !slices.Equal(p.Types(), []string{"tenant", "user_id"}) {
		t.Errorf("static %q types %q", p.static, p.Types())
	}
	if got := p.listPrefix("acme"); got != "t/acme/u/" {
		t.Errorf("listPrefix = %q", got)
	}
}

func TestPrefixParseKeys(t *testing.T) {
	cases := []struct {
		prefix, key string
		want        []string
	}{
		{"uploads/{user_id}/", "uploads/1/a.jpg", []string{"1"}},
		{"uploads/{user_id}/", "uploads/12/a.jpg", []string{"12"}},
		{"uploads/{user_id}/", "uploads/1", nil},
		{"uploads/{user_id}/", "uploads//a", nil},
		{"uploads/{user_id}", "uploads/1/a.jpg", []string{"1"}},
		{"uploads/{user_id}", "uploads/12", []string{"12"}},
		{"avatars/{user_id}.png", "avatars/1.png", []string{"1"}},
		{"avatars/{user_id}.png", "avatars/12.png", []string{"12"}},
		{"avatars/{user_id}.png", "avatars/1/x.png", nil},
		{"avatars/{user_id}.png", "avatars/1.jpg", nil},
		{"t/{tenant}/u/{user_id}/", "t/acme/u/7/f", []string{"acme", "7"}},
		{"t/{tenant}/u/{user_id}/", "t/acme/v/7/f", nil},
		{"{user_id}/x/{user_id}/", "1/x/1/f", []string{"1", "1"}},
		{"{user_id}/x/{user_id}/", "1/x/2/f", nil},
	}
	for _, c := range cases {
		p, err := parsePrefix(c.prefix)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := p.Values(c.key, nil)
		if c.want == nil {
			if ok {
				t.Errorf("%s: %q parsed as %q, want no match", c.prefix, c.key, got)
			}
			continue
		}
		if !ok || !slices.Equal(got, c.want) {
			t.Errorf("%s: %q parsed as %q (%v), want %q", c.prefix, c.key, got, ok, c.want)
		}
	}
}

func TestCheckValue(t *testing.T) {
	p, _ := parsePrefix("avatars/{user_id}.png")
	for _, v := range []string{"", "a/b", "..", ".", "a..b", "x\x00", "a\nb", "1.5"} {
		if err := p.Check("user_id", v); !errors.Is(err, datastore.ErrInvalid) {
			t.Errorf("checkValue(%q) = %v, want ErrInvalid", v, err)
		}
	}
	for _, v := range []string{"1", "a*b", "[x]", "a b", "a%20b", "a+b", "é", `a\b`, "user@example_com"} {
		if err := p.Check("user_id", v); err != nil {
			t.Errorf("checkValue(%q) = %v", v, err)
		}
	}
}

func TestHeldMatcher(t *testing.T) {
	p, _ := parsePrefix("t/{tenant}/u/{user_id}/")
	m := p.HeldGlob("user_id", "a/b")
	if !m.Match("t/x/u/a/b/f") || m.Match("t/x/u/a/c/f") {
		t.Error("held matcher")
	}
}
