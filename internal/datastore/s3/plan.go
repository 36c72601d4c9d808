package s3

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/keytemplate"
)

const (
	sourceLastModified = "LastModified"
	defaultBatch       = 1000
)

// plan is an Operation checked and compiled for this driver.
type plan struct {
	pre    *prefix
	cutoff *time.Time
	sel    *keytemplate.Selection // by subject and held identity
	batch  int

	// ranges are the listings the operation walks, in order: the static
	// prefix, or one prefix per subject value when the values fill the
	// first placeholder (rangeValue[i] is then range i's value).
	ranges     []string
	rangeValue []string
}

func newPlan(op datastore.Operation, total bool) (*plan, error) {
	c := op.Collection
	pre, err := parsePrefix(c.Pattern)
	if err != nil {
		return nil, err
	}
	if c.TimestampSource != "" && c.TimestampSource != sourceLastModified {
		return nil, fmt.Errorf("%w: s3: objects are dated by LastModified, not %s", datastore.ErrInvalid, c.TimestampSource)
	}
	if len(op.Paths) > 0 || len(op.HeldPaths) > 0 || len(op.Keys) > 0 {
		return nil, fmt.Errorf("%w: s3: collections cannot be reached through references (Via)", datastore.ErrInvalid)
	}
	if !total && !op.Delete {
		return nil, fmt.Errorf("%w: s3: objects cannot be anonymized, only deleted", datastore.ErrInvalid)
	}
	if !total && op.Cutoff == nil && op.Subjects == nil {
		return nil, fmt.Errorf("%w: s3: operation selects neither by age nor by subject", datastore.ErrInvalid)
	}
	p := &plan{pre: pre, batch: op.BatchSize, ranges: []string{pre.static}}
	if p.batch <= 0 {
		p.batch = defaultBatch
	}
	var subjects, held map[string][]string
	if !total {
		p.cutoff, subjects, held = op.Cutoff, op.Subjects, op.Held
	}
	if p.sel, err = pre.Select(subjects, held); err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	if p.sel.Subjects == nil {
		return p, nil
	}
	if len(p.sel.Subjects) == 0 {
		return nil, fmt.Errorf("%w: s3: the prefix has no placeholder for the subjects' identity types", datastore.ErrInvalid)
	}
	if first := pre.Types()[0]; len(p.sel.Subjects) == 1 && p.sel.Subjects[first] != nil {
		// The values fill the first placeholder: list each one's prefix
		// instead of the whole collection.
		vals := make([]string, 0, len(p.sel.Subjects[first]))
		for v := range p.sel.Subjects[first] {
			if !p.sel.Held.Has(first, v) {
				vals = append(vals, v)
			}
		}
		sort.Strings(vals)
		p.ranges, p.rangeValue = nil, vals
		for _, v := range vals {
			p.ranges = append(p.ranges, pre.listPrefix(v))
		}
	}
	return p, nil
}

// selects reports whether the object key, listed in range r, is in the
// collection, belongs to the subjects (if any) and is not held.
func (p *plan) selects(r int, key string, buf []string) ([]string, bool) {
	vals, ok := p.pre.Values(key, buf)
	if !ok {
		return vals, false
	}
	if p.rangeValue != nil && vals[0] != p.rangeValue[r] {
		return vals, false // another value's object under this range's prefix (user 12 under uploads/1)
	}
	return vals, p.sel.Selects(key, vals)
}

// Cursors are "<range>" (from the start of the range) or
// "<range>:<suffix>" (after the key range prefix + suffix, the last key
// listed that is still there). The suffix excludes the range's prefix, so
// a subject's cursor never holds the subject's identity value.
func (p *plan) parseCursor(cursor string) (int, string, error) {
	if cursor == "" {
		return 0, "", nil
	}
	rs, suffix, hasAfter := strings.Cut(cursor, ":")
	r, err := strconv.Atoi(rs)
	if err != nil || r < 0 || r > len(p.ranges) {
		return 0, "", fmt.Errorf("%w: s3: cursor does not belong to this operation", datastore.ErrInvalid)
	}
	if !hasAfter || r == len(p.ranges) {
		return r, "", nil
	}
	return r, p.ranges[r] + suffix, nil
}

func (p *plan) formatCursor(r int, after string) string {
	if after == "" || r >= len(p.ranges) {
		return strconv.Itoa(r)
	}
	return strconv.Itoa(r) + ":" + strings.TrimPrefix(after, p.ranges[r])
}
