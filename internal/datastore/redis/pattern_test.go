package redis

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

func TestParsePatternRejectsAmbiguity(t *testing.T) {
	for _, p := range []string{
		"", "session:{user_id}*", "*:{user_id}:x", "a:{tenant}{user_id}", "a:{User}", "a:{user_id", "a:user_id}", "a}{b",
	} {
		if _, err := parsePattern(p); !errors.Is(err, datastore.ErrInvalid) {
			t.Errorf("parsePattern(%q) = %v, want ErrInvalid", p, err)
		}
	}
	for _, p := range []string{"session:{user_id}:*", "profile:{user_id}", "t:{tenant}:u:{user_id}:*:x", "plain:*", "cart.{user_id}.v1"} {
		if _, err := parsePattern(p); err != nil {
			t.Errorf("parsePattern(%q): %v", p, err)
		}
	}
}

func TestPatternParseKeys(t *testing.T) {
	cases := []struct {
		pattern, key string
		want         []string // nil: not in the collection
	}{
		{"session:{user_id}:*", "session:1:abc", []string{"1"}},
		{"session:{user_id}:*", "session:12:abc", []string{"12"}},
		{"session:{user_id}:*", "session:1:a:b", []string{"1"}},
		{"session:{user_id}:*", "session::x", nil},
		{"session:{user_id}:*", "session:1", nil},
		{"session:{user_id}:*", "sessions:1:x", nil},
		{"profile:{user_id}", "profile:a:b", []string{"a:b"}},
		{"t:{tenant}:u:{user_id}:*:x", "t:acme:u:7:q:r:x", []string{"acme", "7"}},
		{"t:{tenant}:u:{user_id}:*:x", "t:acme:u:7:x", nil},
		{"t:{tenant}:u:{user_id}:*:x", "t:acme:u:7::x", []string{"acme", "7"}},
		{"a:{user_id}:b*c*d", "a:1:bXcYd", []string{"1"}},
		{"a:{user_id}:b*c*d", "a:1:bcd", []string{"1"}},
		{"a:{user_id}:b*c*d", "a:1:bdc", nil},
		{"a:{user_id}:b*c*d", "a:1:bcdcd", []string{"1"}},
		{"{user_id}:x:{user_id}", "1:x:1", []string{"1", "1"}},
		{"{user_id}:x:{user_id}", "2:x:1", nil},
	}
	for _, c := range cases {
		p, err := parsePattern(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := p.Values(c.key, nil)
		if c.want == nil {
			if ok {
				t.Errorf("%s: %q parsed as %q, want no match", c.pattern, c.key, got)
			}
			continue
		}
		if !ok || !slices.Equal(got, c.want) {
			t.Errorf("%s: %q parsed as %q (%v), want %q", c.pattern, c.key, got, ok, c.want)
		}
	}
}

func TestGlobEscapesValues(t *testing.T) {
	p, err := parsePattern("s:{user_id}:*")
	if err != nil {
		t.Fatal(err)
	}
	got := p.glob(map[string]string{"user_id": `a*b?c[d]e\f`})
	if want := `s:a\*b\?c\[d\]e\\f:*`; got != want {
		t.Errorf("glob = %q, want %q", got, want)
	}
	if got := p.glob(nil); got != "s:*:*" {
		t.Errorf("glob(nil) = %q", got)
	}
}

func TestCheckValue(t *testing.T) {
	p, _ := parsePattern("s:{user_id}:*")
	if err := p.Check("user_id", "a:b"); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("value with the delimiter: %v", err)
	}
	if err := p.Check("user_id", ""); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("empty value: %v", err)
	}
	if err := p.Check("user_id", "a*?[]\\b"); err != nil {
		t.Errorf("glob metacharacters are fine: %v", err)
	}
}

func TestConservativeHeldMatcher(t *testing.T) {
	p, _ := parsePattern("s:{user_id}:*")
	m := p.HeldGlob("user_id", "a:b")
	if !m.Match("s:a:b:x") || m.Match("s:a:c:x") {
		t.Error("held matcher for a value with the delimiter")
	}
}

func TestParseTimestamp(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1700000000":                time.Unix(1700000000, 0),
		"1700000000.25":             time.Unix(1700000000, 250000000),
		" 1700000000 ":              time.Unix(1700000000, 0),
		"2023-11-14T22:13:20Z":      time.Unix(1700000000, 0),
		"2023-11-14T23:13:20+01:00": time.Unix(1700000000, 0),
		"-1.5":                      time.Unix(-2, 500000000),
	} {
		got, ok := parseTimestamp(in)
		if !ok || !got.Equal(want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "abc", "1.2.3", "0x10", "1e9", "NaN", "."} {
		if _, ok := parseTimestamp(in); ok {
			t.Errorf("parseTimestamp(%q) accepted", in)
		}
	}
}

func TestBounds(t *testing.T) {
	if got := scoreBound(time.Unix(1700000000, 0)); got != "(1700000000" {
		t.Errorf("scoreBound = %q", got)
	}
	if got := scoreBound(time.Unix(1700000000, 500000000)); got != "(1700000000.5" {
		t.Errorf("scoreBound = %q", got)
	}
	if got, _ := minStreamID(time.UnixMilli(1700000000123)); got != "1700000000123-0" {
		t.Errorf("minStreamID = %q", got)
	}
	if got, _ := minStreamID(time.UnixMilli(1700000000123).Add(time.Microsecond)); got != "1700000000124-0" {
		t.Errorf("minStreamID rounds up: %q", got)
	}
}
