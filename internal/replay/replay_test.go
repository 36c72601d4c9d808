package replay

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/ledger"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func entry(name, completed string, ids ...string) ledger.Entry {
	e := ledger.Entry{Request: name, Completed: completed}
	for _, id := range ids {
		typ, v, _ := strings.Cut(id, "=")
		e.Identities = append(e.Identities, typ+"="+digest.Identity(key, typ, v))
	}
	return e
}

func TestMatch(t *testing.T) {
	backup := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	entries := []ledger.Entry{
		entry("ada", "2026-03-02T00:00:00Z", "email=ada@example.com", "user_id=1"),
		entry("bob", "2026-03-01T12:00:00Z", "email=bob@example.com"), // at the backup time: after
		entry("old", "2026-02-01T00:00:00Z", "email=old@example.com", "user_id=9"),
		entry("ada-again", "2026-03-05T00:00:00Z", "user_id=1"), // the same person: one subject
		entry("bad-time", "yesterday", "email=eve@example.com"), // unreadable: after
		entry("cy", "2026-03-03T00:00:00Z", "email=cy@example.com"),
	}
	cases := []struct {
		name    string
		records []map[string]string
		hits    int
		want    string
		before  int
	}{
		{"nothing found", []map[string]string{{"email": "zed@example.com", "user_id": "5"}}, 0, "[]", 0},
		{"named and derived values of one subject, and the same person erased twice",
			[]map[string]string{{"email": "ada@example.com", "user_id": "1"}, {"user_id": "1"}, {"user_id": "2"}},
			2, "[{[ada ada-again] map[email:[ada@example.com] user_id:[1]] []}]", 0},
		{"a value is matched with its type only", []map[string]string{{"user_id": "ada@example.com"}}, 0, "[]", 0},
		{"at the backup time and an unreadable time count as after",
			[]map[string]string{{"email": "bob@example.com"}, {"email": "eve@example.com"}},
			2, "[{[bob] map[email:[bob@example.com]] []} {[bad-time] map[email:[eve@example.com]] []}]", 0},
		{"erased before the backup: kept, counted",
			[]map[string]string{{"email": "old@example.com"}, {"user_id": "9"}}, 0, "[]", 1},
		{"only the values the ledger lists, not the record's others",
			[]map[string]string{{"email": "cy@example.com", "user_id": "77"}}, 1, "[{[cy] map[email:[cy@example.com]] []}]", 0},
		{"case and spaces matter: values are matched exactly",
			[]map[string]string{{"email": "Ada@example.com"}, {"email": "ada@example.com "}}, 0, "[]", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := NewIndex(entries, backup)
			if x.After != 5 || x.Before != 1 {
				t.Fatalf("after %d before %d", x.After, x.Before)
			}
			m := NewMatcher(key, x)
			hits := 0
			for _, r := range c.records {
				if m.Add("app", r) {
					hits++
				}
			}
			got := fmt.Sprint(m.Subjects())
			if hits != c.hits || got != c.want || m.BeforeBackup() != c.before {
				t.Fatalf("hits %d subjects %s before %d; want %d %s %d", hits, got, m.BeforeBackup(), c.hits, c.want, c.before)
			}
		})
	}
}

// Another key (another manager) matches nothing.
func TestOtherKeyMatchesNothing(t *testing.T) {
	x := NewIndex([]ledger.Entry{entry("ada", "2026-03-02T00:00:00Z", "email=ada@example.com")}, time.Time{})
	m := NewMatcher([]byte("another key of thirty-two bytes!"), x)
	if m.Add("app", map[string]string{"email": "ada@example.com"}) {
		t.Fatal("matched under another key")
	}
}

func TestChildName(t *testing.T) {
	s := Subject{Entries: []string{"a", "b"}}
	n := ChildName(strings.Repeat("r", 29)+"-.x-long-replay-name", s)
	if len(n) > 48 || strings.Contains(n, "-.") || n != ChildName(strings.Repeat("r", 29)+"-.x-long-replay-name", s) {
		t.Fatalf("ChildName = %q", n)
	}
	if ChildName("r", s) == ChildName("r", Subject{Entries: []string{"a"}}) || ChildName("r", s) == ChildName("q", s) {
		t.Fatal("names collide")
	}
}

// An entry is replayed only in the Datasets it erased; an entry of the
// ledger before it recorded Datasets, in every one.
func TestMatchInTheDatasetsErased(t *testing.T) {
	billing := entry("ada", "2026-03-02T00:00:00Z", "user_id=1")
	billing.Datasets = []string{"billing"}
	old := entry("bob", "2026-03-02T00:00:00Z", "user_id=2")
	before := entry("cy", "2026-02-01T00:00:00Z", "user_id=3")
	before.Datasets = []string{"billing"}
	m := NewMatcher(key, NewIndex([]ledger.Entry{billing, old, before}, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)))
	if m.Add("app", map[string]string{"user_id": "1"}) || m.Add("app", map[string]string{"user_id": "3"}) || m.BeforeBackup() != 0 {
		t.Fatal("matched in a Dataset the erasure did not reach")
	}
	if !m.Add("billing", map[string]string{"user_id": "1"}) || !m.Add("app", map[string]string{"user_id": "2"}) || m.Add("billing", map[string]string{"user_id": "3"}) || m.BeforeBackup() != 1 {
		t.Fatal("not matched where the erasure reached")
	}
	if got := fmt.Sprintf("%v", m.Subjects()); got != "[{[ada] map[user_id:[1]] [billing]} {[bob] map[user_id:[2]] []}]" {
		t.Fatalf("subjects %s", got)
	}
	if m.Subjects()[1].Datasets != nil {
		t.Fatal("an entry without Datasets must leave the subject's scope open (nil)")
	}
}
