package digest

import (
	"strings"
	"testing"
)

func TestSealOpenRoundTripAndHidesTheCursor(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	cursor := `{"k":["ada@example.org"]}`
	sealed, err := Seal(key, cursor)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "ada") || !strings.HasPrefix(sealed, "sealed:") {
		t.Fatalf("sealed cursor shows its content: %s", sealed)
	}
	got, err := Open(key, sealed)
	if err != nil || got != cursor {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := Open([]byte("another-key-0123456789abcdef0123"), sealed); err == nil {
		t.Fatal("a cursor opened under another key")
	}
	if s, _ := Seal(key, ""); s != "" {
		t.Fatal("an empty cursor must stay empty")
	}
}

func TestDigestsAreKeyedAndCanonical(t *testing.T) {
	k1, k2 := []byte("key-one-0123456789abcdef01234567"), []byte("key-two-0123456789abcdef01234567")
	a := Subject(k1, map[string][]string{"email": {"a@x", "b@x"}, "user_id": {"7"}})
	b := Subject(k1, map[string][]string{"user_id": {"7"}, "email": {"b@x", "a@x"}})
	if a != b {
		t.Error("the subject digest depends on the order identities are listed in")
	}
	if a == Subject(k2, map[string][]string{"email": {"a@x", "b@x"}, "user_id": {"7"}}) {
		t.Error("the subject digest does not depend on the key")
	}
	if Identity(k1, "email", "a@x") == Identity(k1, "phone", "a@x") {
		t.Error("the identity digest ignores the type")
	}
}
