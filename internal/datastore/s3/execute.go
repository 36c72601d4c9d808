package s3

import (
	"context"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/lethe-dev/lethe/internal/datastore"
)

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
