package redis

import (
	"fmt"
	"hash/maphash"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/keytemplate"
)

// Timestamp sources this driver understands.
const (
	sourceHashField      = "HashField"
	sourceSortedSetScore = "SortedSetScore"
	sourceStreamID       = "StreamID"
	sourceIdleTime       = "IdleTime"
)

// recordUnit is what one record of a collection is.
type recordUnit int

const (
	unitKeys    recordUnit = iota // whole keys
	unitMembers                   // sorted-set members
	unitEntries                   // stream entries
)

func recordUnitOf(source string) (recordUnit, error) {
	switch source {
	case "", sourceHashField, sourceIdleTime:
		return unitKeys, nil
	case sourceSortedSetScore:
		return unitMembers, nil
	case sourceStreamID:
		return unitEntries, nil
	}
	return 0, fmt.Errorf("%w: redis: timestamp source %q is not one Redis has (HashField, SortedSetScore, StreamID, IdleTime)", datastore.ErrInvalid, source)
}

const (
	defaultBatch = 1000
	maxScanCount = 1000
	// sparseScanCount is the largest COUNT, used when few keys match: about
	// a millisecond of server time per call.
	sparseScanCount = 10000
	// maxScanCalls bounds the SCAN calls of one batch, so a pattern that
	// matches few keys of a big keyspace still returns between batches.
	maxScanCalls = 64
)

// plan is an Operation checked and compiled for this driver.
type plan struct {
	pat    *pattern
	unit   recordUnit
	source string // timestamp source applied; "" without a cutoff
	cutoff time.Time
	field  string // HashField's field
	del    bool
	fields []datastore.FieldMask
	batch  int

	sel   *keytemplate.Selection // by subject and held identity
	match string                 // SCAN MATCH glob

	keyMode bool     // keys computed from the subjects, no SCAN
	keys    []string // key mode: one key per subject value, in value order
}

// newPlan compiles op. With total set the operation only names the
// collection (Total): no cutoff or subjects are needed.
func newPlan(op datastore.Operation, total bool) (*plan, error) {
	c := op.Collection
	pat, err := parsePattern(c.Pattern)
	if err != nil {
		return nil, err
	}
	unit, err := recordUnitOf(c.TimestampSource)
	if err != nil {
		return nil, err
	}
	p := &plan{pat: pat, unit: unit, del: op.Delete, fields: op.Fields, batch: op.BatchSize}
	if p.batch <= 0 {
		p.batch = defaultBatch
	}
	if len(op.Paths) > 0 || len(op.HeldPaths) > 0 || len(op.Keys) > 0 {
		return nil, fmt.Errorf("%w: redis: collections cannot be reached through references (Via)", datastore.ErrInvalid)
	}
	if !total && op.Cutoff == nil && op.Subjects == nil {
		return nil, fmt.Errorf("%w: redis: operation selects neither by age nor by subject", datastore.ErrInvalid)
	}
	if op.Cutoff != nil {
		p.cutoff = *op.Cutoff
		p.source = c.TimestampSource
		if p.source == "" {
			p.source = sourceHashField
		}
		if p.source == sourceHashField {
			if c.TimestampField == "" {
				return nil, fmt.Errorf("%w: redis: timestamp source HashField needs a timestamp field", datastore.ErrInvalid)
			}
			p.field = c.TimestampField
		}
	}
	if !op.Delete && !total {
		if len(op.Fields) == 0 {
			return nil, fmt.Errorf("%w: redis: anonymization without fields", datastore.ErrInvalid)
		}
		if unit != unitKeys {
			return nil, fmt.Errorf("%w: redis: only hash keys can be anonymized, not %s collections", datastore.ErrInvalid, c.TimestampSource)
		}
	}

	// Held identities are read back out of every key; values the unique
	// reading cannot produce are also matched the conservative way.
	var subjects map[string][]string
	if !total {
		subjects = op.Subjects
	}
	p.sel, err = pat.Select(subjects, op.Held)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	p.match = pat.glob(nil)
	if p.sel.Subjects == nil {
		return p, nil
	}
	if len(p.sel.Subjects) == 0 {
		return nil, fmt.Errorf("%w: redis: the key pattern has no placeholder for the subjects' identity types", datastore.ErrInvalid)
	}
	var (
		nvals    int
		oneType  string
		oneValue string
	)
	for typ, set := range p.sel.Subjects {
		nvals += len(set)
		for v := range set {
			oneType, oneValue = typ, v
		}
	}
	switch {
	case nvals == 0:
		p.keyMode = true // no values: nothing to do
	case !pat.HasWildcard() && len(pat.DistinctTypes()) == 1:
		// Every key is known: one per value, no SCAN.
		p.keyMode = true
		vals := make([]string, 0, nvals)
		for v := range p.sel.Subjects[oneType] {
			vals = append(vals, v)
		}
		sort.Strings(vals)
		for _, v := range vals {
			p.keys = append(p.keys, pat.key(v))
		}
	case nvals == 1:
		// One value: let the server match it.
		p.match = pat.glob(map[string]string{oneType: oneValue})
	}
	return p, nil
}

// selects reports whether key is in the collection, belongs to one of the
// subjects (when the plan has subjects) and is not held. buf is scratch
// space for the parsed values.
func (p *plan) selects(key string, buf []string) ([]string, bool) {
	vals, ok := p.pat.Values(key, buf)
	return vals, ok && p.sel.Selects(key, vals)
}

// Cursors: "s:<SCAN cursor>" or "k:<index of the next subject value>".
func (p *plan) parseCursor(cursor string) (uint64, error) {
	if cursor == "" {
		return 0, nil
	}
	want := "s:"
	if p.keyMode {
		want = "k:"
	}
	rest, ok := strings.CutPrefix(cursor, want)
	if !ok {
		return 0, fmt.Errorf("%w: redis: cursor does not belong to this operation", datastore.ErrInvalid)
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || (p.keyMode && n > uint64(len(p.keys))) {
		return 0, fmt.Errorf("%w: redis: malformed cursor", datastore.ErrInvalid)
	}
	return n, nil
}

func (p *plan) formatCursor(n uint64) string {
	if p.keyMode {
		return "k:" + strconv.FormatUint(n, 10)
	}
	return "s:" + strconv.FormatUint(n, 10)
}

// keySet remembers keys by a 64-bit hash, for Count's deduplication of keys
// SCAN returns twice.
type keySet struct {
	seed maphash.Seed
	m    map[uint64]struct{}
}

func newKeySet() *keySet { return &keySet{seed: maphash.MakeSeed(), m: map[uint64]struct{}{}} }

// add reports whether k is new.
func (s *keySet) add(k string) bool {
	h := maphash.String(s.seed, k)
	if _, ok := s.m[h]; ok {
		return false
	}
	s.m[h] = struct{}{}
	return true
}

// parseTimestamp reads a HashField value: Unix seconds (an integer or a
// decimal, exact to the nanosecond) or RFC 3339.
func parseTimestamp(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	whole, frac, hasFrac := strings.Cut(s, ".")
	neg := strings.HasPrefix(whole, "-")
	digits := strings.TrimPrefix(whole, "-")
	if allDigits(digits) && (!hasFrac || allDigits(frac)) {
		sec, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		var ns int64
		if hasFrac {
			if len(frac) > 9 {
				frac = frac[:9]
			}
			ns, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		}
		if neg {
			sec, ns = -sec, -ns
		}
		return time.Unix(sec, ns), true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// scoreBound renders the cutoff as an exclusive sorted-set score bound in
// Unix seconds: members with a score strictly less than it are selected.
func scoreBound(t time.Time) string {
	ns := t.UnixNano()
	sign := ""
	if ns < 0 {
		sign, ns = "-", -ns
	}
	sec, frac := ns/1e9, ns%1e9
	if frac == 0 {
		return "(" + sign + strconv.FormatInt(sec, 10)
	}
	f := strings.TrimRight(fmt.Sprintf("%09d", frac), "0")
	return "(" + sign + strconv.FormatInt(sec, 10) + "." + f
}

// minStreamID is the XTRIM MINID threshold: entries whose ID time (in whole
// milliseconds) is before the cutoff have IDs below it. ok is false when no
// entry can be that old.
func minStreamID(t time.Time) (string, bool) {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++ // round up: with a cutoff at 1000.5 ms, the entry of 1000 ms is older
	}
	if ms <= 0 {
		return "", false
	}
	return strconv.FormatInt(ms, 10) + "-0", true
}
