// Package replay matches the records of a restored store against the
// erasure ledger (internal/ledger): which subjects, erased after the backup
// was taken, the restore brought back.
//
// The ledger holds, for every completed erasure, the keyed digest
// (digest.Identity) of every identity erased, named or derived. A replay
// digests each identity value it reads from the store with the same key and
// type and looks it up. A value whose digest an entry completed at or after
// the backup time lists belongs to a subject the restore resurrected: it is
// erased again. A value whose digest only entries completed before the
// backup time list is not: that erasure happened before the backup was
// taken, so the backup cannot hold the erased records, and a record
// matching it was written after the erasure (the person came back and
// signed up again): it is legitimate and kept. Such matches are only
// counted.
//
// An entry is replayed only in the Datasets it erased (ledger.Entry.Datasets;
// an entry written before the ledger recorded them counts for every
// Dataset): a record of the subject in a Dataset the erasure did not reach
// was not erased then and is not erased now.
//
// Values are held in memory only, as long as the replay needs them to
// build the re-erasures; nothing here logs or returns them except Subjects.
package replay

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/ledger"
)

// Index is the ledger split at the backup time, keyed by "type=digest".
type Index struct {
	entries []ledger.Entry
	after   map[string][]int // entries completed at or after the backup time
	before  map[string][]int // entries completed before it
	// After counts the entries completed at or after the backup time,
	// Before those completed before it.
	After, Before int
}

// NewIndex indexes the ledger entries around the backup time. An entry
// completed at the backup time, or whose completion time cannot be read,
// counts as after it: when in doubt the subject is erased again rather than
// left resurrected. Entries are taken in the order given; a request name
// listed twice (the same ledger key in two shards) keeps both.
func NewIndex(entries []ledger.Entry, backup time.Time) *Index {
	x := &Index{entries: entries, after: map[string][]int{}, before: map[string][]int{}}
	for i, e := range entries {
		at, err := time.Parse(time.RFC3339, e.Completed)
		into := x.after
		if err == nil && at.Before(backup.Truncate(time.Second)) {
			into = x.before
			x.Before++
		} else {
			x.After++
		}
		for _, id := range e.Identities {
			if !slices.Contains(into[id], i) {
				into[id] = append(into[id], i)
			}
		}
	}
	return x
}

// reached reports whether entry i erased in dataset (an entry without
// Datasets, written before the ledger recorded them, reached every one).
func (x *Index) reached(i int, dataset string) bool {
	ds := x.entries[i].Datasets
	return ds == nil || slices.Contains(ds, dataset)
}

// Matcher collects, for the entries after the backup time, the values found
// in the store whose digests they list.
type Matcher struct {
	key []byte
	x   *Index
	// found: entry index → identity type → values found.
	found map[int]map[string]map[string]bool
	// before: entries before the backup time a value matched.
	before map[int]bool
}

// NewMatcher matches values under the manager's digest key.
func NewMatcher(key []byte, x *Index) *Matcher {
	return &Matcher{key: key, x: x, found: map[int]map[string]map[string]bool{}, before: map[int]bool{}}
}

// Add matches one record of a Dataset (identity type → value, as a store's
// scan returns it) and reports whether any of its values belongs to a
// subject erased in that Dataset at or after the backup time: the record is
// to be erased again.
func (m *Matcher) Add(dataset string, record map[string]string) bool {
	hit := false
	for typ, v := range record {
		id := typ + "=" + digest.Identity(m.key, typ, v)
		for _, i := range m.x.after[id] {
			if !m.x.reached(i, dataset) {
				continue
			}
			byType := m.found[i]
			if byType == nil {
				byType = map[string]map[string]bool{}
				m.found[i] = byType
			}
			if byType[typ] == nil {
				byType[typ] = map[string]bool{}
			}
			byType[typ][v] = true
			hit = true
		}
		for _, i := range m.x.before[id] {
			if m.x.reached(i, dataset) {
				m.before[i] = true
			}
		}
	}
	return hit
}

// BeforeBackup is how many entries completed before the backup time a
// record matched: subjects erased before the backup whose identity is in
// the store again, kept (see the package doc).
func (m *Matcher) BeforeBackup() int { return len(m.before) }

// Subject is one subject to erase again: the ledger entries (request names)
// it was erased by, the identity values found in the store, by type,
// sorted, and the Datasets those erasures reached (sorted; nil: any, an
// entry written before the ledger recorded them). Entries that share a
// found value are one subject.
type Subject struct {
	Entries    []string
	Identities map[string][]string
	Datasets   []string
}

// Subjects groups what was found into subjects, in a stable order (by
// their first entry). Two entries one of whose found values is the same
// are one subject: the same person erased twice, or a re-erasure of an
// earlier replay.
func (m *Matcher) Subjects() []Subject {
	idx := slices.Sorted(maps.Keys(m.found))
	parent := map[int]int{}
	var find func(int) int
	find = func(i int) int {
		if p, ok := parent[i]; ok && p != i {
			r := find(p)
			parent[i] = r
			return r
		}
		parent[i] = i
		return i
	}
	owner := map[string]int{}
	for _, i := range idx {
		find(i)
		for typ, vs := range m.found[i] {
			for v := range vs {
				k := typ + "\x00" + v
				if j, ok := owner[k]; ok {
					a, b := find(i), find(j)
					if a != b {
						parent[max(a, b)] = min(a, b)
					}
				} else {
					owner[k] = i
				}
			}
		}
	}
	groups := map[int]*Subject{}
	var roots []int
	for _, i := range idx {
		r := find(i)
		s := groups[r]
		if s == nil {
			s = &Subject{Identities: map[string][]string{}, Datasets: []string{}}
			groups[r] = s
			roots = append(roots, r)
		}
		e := m.x.entries[i]
		s.Entries = append(s.Entries, e.Request)
		if e.Datasets == nil || s.Datasets == nil {
			s.Datasets = nil
		} else {
			s.Datasets = append(s.Datasets, e.Datasets...)
		}
		for typ, vs := range m.found[i] {
			for v := range vs {
				if !slices.Contains(s.Identities[typ], v) {
					s.Identities[typ] = append(s.Identities[typ], v)
				}
			}
		}
	}
	out := make([]Subject, 0, len(roots))
	slices.Sort(roots)
	for _, r := range roots {
		s := groups[r]
		slices.Sort(s.Entries)
		s.Entries = slices.Compact(s.Entries)
		if s.Datasets != nil {
			slices.Sort(s.Datasets)
			s.Datasets = slices.Compact(s.Datasets)
		}
		for _, vs := range s.Identities {
			slices.Sort(vs)
		}
		out = append(out, *s)
	}
	return out
}

// ChildName is the name of the DeletionRequest that erases s again for the
// replay named replay: the replay's name (shortened) and a hash of the
// ledger entries, so a replay that runs again names the same subject the
// same way. At most 48 characters, a valid label value too (PurgeJobs label
// their requests by name).
func ChildName(replay string, s Subject) string {
	h := sha256.Sum256([]byte(replay + "\x00" + strings.Join(s.Entries, "\x00")))
	prefix := replay
	if len(prefix) > 30 {
		prefix = strings.TrimRight(prefix[:30], "-.")
	}
	return prefix + "-" + hex.EncodeToString(h[:])[:12]
}

// ValueCount is how many values s holds, of every type.
func (s Subject) ValueCount() int {
	n := 0
	for _, vs := range s.Identities {
		n += len(vs)
	}
	return n
}
