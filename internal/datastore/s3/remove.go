package s3

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/lethe-dev/lethe/internal/datastore"
)

const (
	// deleteChunk is the most keys one DeleteObjects request may carry.
	deleteChunk = 1000
	// deleteParallel is how many DeleteObjects requests one batch has in
	// flight at once; minDeleteChunk the fewest keys worth a request of their
	// own.
	deleteParallel = 4
	minDeleteChunk = 100
)

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
