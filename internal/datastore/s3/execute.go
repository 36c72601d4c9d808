package s3

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/keytemplate"
)

const (
	sourceLastModified = "LastModified"
	defaultBatch       = 1000
	// deleteChunk is the most keys one DeleteObjects request may carry.
	deleteChunk = 1000
	// deleteParallel is how many DeleteObjects requests one batch has in
	// flight at once; minDeleteChunk the fewest keys worth a request of their
	// own.
	deleteParallel = 4
	minDeleteChunk = 100
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

// versioned reports whether the bucket has, or had, versioning: then every
// version and delete marker must go.
func (d *Driver) versioned(ctx context.Context) (bool, error) {
	cfg, err := d.client.GetBucketVersioning(ctx, d.bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NotImplemented" {
			return false, nil
		}
		return false, classify("get bucket versioning", err)
	}
	return cfg.Status == "Enabled" || cfg.Status == "Suspended", nil
}

// walk lists range r after the key after, calling sel for each selected
// entry (an object, or one version or delete marker) and stopping at a key
// boundary once want entries were selected or maxListed were listed. kept is
// the last key listed that keeps something (or after); exhausted says the
// range ended.
func (d *Driver) walk(ctx context.Context, pl *plan, versioned bool, r int, after string, want, maxListed int, sel func(minio.ObjectInfo)) (kept string, exhausted bool, listed int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := minio.ListObjectsOptions{
		Prefix: pl.ranges[r], StartAfter: after, Recursive: true, WithVersions: versioned,
		MaxKeys: min(max(want, 100), 1000),
	}
	kept = after
	var (
		cur      string
		curKept  bool
		curSel   bool
		selected int
		buf      []string
	)
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, opts) {
		if obj.Err != nil {
			return kept, false, listed, classify("list", obj.Err)
		}
		if obj.Key != cur || listed == 0 {
			if curKept {
				kept = cur
			}
			if selected >= want || listed >= maxListed {
				return kept, false, listed, nil
			}
			cur, curKept = obj.Key, false
			buf, curSel = pl.selects(r, obj.Key, buf)
		}
		listed++
		if curSel && (pl.cutoff == nil || obj.LastModified.Before(*pl.cutoff)) {
			sel(obj)
			selected++
		} else {
			curKept = true
		}
	}
	if curKept {
		kept = cur
	}
	return kept, true, listed, nil
}

// Execute deletes one batch: about op.BatchSize objects (or versions) from
// the cursor on.
func (d *Driver) Execute(ctx context.Context, op datastore.Operation, cursor string) (datastore.Batch, error) {
	pl, err := newPlan(op, false)
	if err != nil {
		return datastore.Batch{Cursor: cursor}, err
	}
	r, after, err := pl.parseCursor(cursor)
	if err != nil {
		return datastore.Batch{Cursor: cursor}, err
	}
	versioned, err := d.versioned(ctx)
	if err != nil {
		return datastore.Batch{Cursor: cursor}, err
	}
	selected, r, after, err := d.gather(ctx, pl, versioned, r, after)
	if err != nil {
		return datastore.Batch{Cursor: cursor}, err
	}
	n, err := d.remove(ctx, selected, versioned)
	if err != nil {
		return datastore.Batch{Affected: n, Cursor: cursor}, err
	}
	if r >= len(pl.ranges) {
		return datastore.Batch{Affected: n, Done: true}, nil
	}
	return datastore.Batch{Affected: n, Cursor: pl.formatCursor(r, after)}, nil
}

// listParallel is how many per-value listings run at once.
const listParallel = 8

type walkResult struct {
	sel       []minio.ObjectInfo
	kept      string
	exhausted bool
	listed    int
	err       error
}

// gather lists from range r after the key after and returns about
// pl.batch selected entries and where the next batch starts. Per-value
// ranges are listed listParallel at a time; the results are used in order,
// and a range whose entries would overflow the batch is left for the next
// one (listed again then), so a batch exceeds pl.batch only when a single
// range has more than that, and then it stops inside that range.
func (d *Driver) gather(ctx context.Context, pl *plan, versioned bool, r int, after string) ([]minio.ObjectInfo, int, string, error) {
	var selected []minio.ObjectInfo
	maxListed := max(10*pl.batch, 1000)
	listed := 0
	for r < len(pl.ranges) && len(selected) < pl.batch && listed < maxListed {
		k := 1
		if after == "" {
			k = min(listParallel, len(pl.ranges)-r)
		}
		res := make([]walkResult, k)
		var wg sync.WaitGroup
		for i := range k {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := &res[i]
				start := ""
				if i == 0 {
					start = after
				}
				w.kept, w.exhausted, w.listed, w.err = d.walk(ctx, pl, versioned, r+i, start, pl.batch-len(selected), maxListed-listed,
					func(o minio.ObjectInfo) { w.sel = append(w.sel, o) })
			}()
		}
		wg.Wait()
		for _, w := range res {
			if w.err != nil {
				return nil, 0, "", w.err
			}
			if len(selected) > 0 && len(selected)+len(w.sel) > pl.batch {
				return selected, r, "", nil // this range starts the next batch
			}
			selected = append(selected, w.sel...)
			listed += w.listed
			if !w.exhausted {
				return selected, r, w.kept, nil
			}
			r, after = r+1, ""
			if len(selected) >= pl.batch || listed >= maxListed {
				return selected, r, "", nil
			}
		}
	}
	return selected, r, after, nil
}

// Count lists the whole operation and counts the records Execute would
// delete now (objects, or versions other than delete markers).
func (d *Driver) Count(ctx context.Context, op datastore.Operation) (int64, error) {
	pl, err := newPlan(op, false)
	if err != nil {
		return 0, err
	}
	return d.count(ctx, pl)
}

func (d *Driver) count(ctx context.Context, pl *plan) (int64, error) {
	versioned, err := d.versioned(ctx)
	if err != nil {
		return 0, err
	}
	var (
		total int64
		mu    sync.Mutex
		wg    sync.WaitGroup
		errs  = make([]error, len(pl.ranges))
		sem   = make(chan struct{}, listParallel)
	)
	for r := range pl.ranges {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var n int64
			_, _, _, errs[r] = d.walk(ctx, pl, versioned, r, "", 1<<62, 1<<62, func(o minio.ObjectInfo) {
				if !o.IsDeleteMarker {
					n++
				}
			})
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return total, nil
}

type entryKey struct{ key, version string }

// remove deletes the entries with DeleteObjects (at most 1,000 keys per
// request, four requests in flight) and returns how many records went
// (delete markers removed are not records). Failures are reported by count
// and error code, never by key.
func (d *Driver) remove(ctx context.Context, entries []minio.ObjectInfo, versioned bool) (int64, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	type outcome struct {
		deleted    int64
		failed     map[string]int // by error code
		markers    int            // delete markers created: the data is still there
		unanswered int
		other      string // error code of an answer that names no key
	}
	var (
		mu  sync.Mutex
		all = outcome{failed: map[string]int{}}
		wg  sync.WaitGroup
		sem = make(chan struct{}, deleteParallel)
	)
	// Split into up to deleteParallel requests in flight: servers work
	// through one DeleteObjects request key by key, so a batch of 1,000 goes
	// as four requests of 250 (but never requests of fewer than 100 keys).
	size := min(deleteChunk, max(minDeleteChunk, (len(entries)+deleteParallel-1)/deleteParallel))
	for i := 0; i < len(entries); i += size {
		part := entries[i:min(i+size, len(entries))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pending := make(map[entryKey]bool, len(part)) // → is a delete marker
			ch := make(chan minio.ObjectInfo, len(part))
			for _, o := range part {
				v := ""
				if versioned {
					v = o.VersionID
				}
				pending[entryKey{o.Key, v}] = o.IsDeleteMarker
				ch <- minio.ObjectInfo{Key: o.Key, VersionID: v}
			}
			close(ch)
			local := outcome{failed: map[string]int{}}
			for res := range d.client.RemoveObjectsWithResult(ctx, d.bucket, ch, minio.RemoveObjectsOptions{}) {
				k := entryKey{res.ObjectName, res.ObjectVersionID}
				marker, known := pending[k]
				if res.Err != nil {
					code := minio.ToErrorResponse(res.Err).Code
					if code == "" {
						code = "NoResponse"
					}
					if known {
						delete(pending, k)
						local.failed[code]++
					} else if local.other == "" {
						local.other = code // an unreadable answer: its keys count as unanswered
					}
					continue
				}
				if !known {
					continue
				}
				delete(pending, k)
				if !versioned && res.DeleteMarker {
					local.markers++ // versioning was enabled meanwhile
					continue
				}
				if !marker {
					local.deleted++
				}
			}
			local.unanswered = len(pending)
			mu.Lock()
			all.deleted += local.deleted
			all.markers += local.markers
			all.unanswered += local.unanswered
			if local.other != "" {
				all.other = local.other
			}
			for c, n := range local.failed {
				all.failed[c] += n
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	failed := 0
	for _, n := range all.failed {
		failed += n
	}
	if failed == 0 && all.markers == 0 && all.unanswered == 0 {
		return all.deleted, nil
	}
	var parts []string
	kind := datastore.ErrUnavailable
	codes := make([]string, 0, len(all.failed))
	for c := range all.failed {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s ×%d", c, all.failed[c]))
		if k := codeKind(c, 0); errors.Is(k, datastore.ErrAuthentication) || (errors.Is(k, datastore.ErrInvalid) && !errors.Is(kind, datastore.ErrAuthentication)) {
			kind = k
		}
	}
	if all.unanswered > 0 {
		parts = append(parts, fmt.Sprintf("no answer ×%d", all.unanswered))
		if all.other != "" {
			parts = append(parts, "answer error "+all.other)
		}
	}
	if all.markers > 0 {
		parts = append(parts, fmt.Sprintf("versioning turned on meanwhile, delete marker instead of deletion ×%d", all.markers))
	}
	return all.deleted, fmt.Errorf("s3: delete: %w: %d of %d entries not deleted (%s)", kind, failed+all.unanswered+all.markers, len(entries), strings.Join(parts, ", "))
}
