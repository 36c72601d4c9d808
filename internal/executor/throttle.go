package executor

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Throttles are the batch rate limits of a manager's stores
// (DataStore spec.limits.maxBatchesPerSecond): one limiter per store,
// shared by every Run against it. The zero value is ready to use.
type Throttles struct {
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// For is the limiter of the store named key at perSecond batches a second,
// or nil when perSecond is not positive (no throttle). A changed limit
// applies from now on. The limiter has a burst of one: batches are spaced
// evenly, at most perSecond in any second.
func (t *Throttles) For(key string, perSecond int32, now time.Time) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if perSecond <= 0 {
		delete(t.limiters, key)
		return nil
	}
	limit := rate.Limit(perSecond)
	l := t.limiters[key]
	switch {
	case l == nil:
		if t.limiters == nil {
			t.limiters = map[string]*rate.Limiter{}
		}
		l = rate.NewLimiter(limit, 1)
		t.limiters[key] = l
	case l.Limit() != limit:
		l.SetLimitAt(now, limit)
	}
	return l
}

// throttle waits, at a batch boundary, for the next batch's turn under
// Run.Limiter. It reports false when that turn falls after the slice's
// deadline: it then waits until the deadline, gives the turn back, and the
// slice yields. A cancelled ctx ends the wait with its error.
func (r *Run) throttle(ctx context.Context, deadline time.Time) (bool, error) {
	if r.Limiter == nil {
		return true, nil
	}
	now := r.now()
	res := r.Limiter.ReserveN(now, 1)
	wait := res.DelayFrom(now)
	if wait == 0 {
		return true, nil
	}
	if turn := now.Add(wait); turn.After(deadline) {
		res.CancelAt(now)
		return false, r.sleep(ctx, deadline.Sub(now))
	}
	if err := r.sleep(ctx, wait); err != nil {
		res.CancelAt(r.now())
		return false, err
	}
	return true, nil
}

// sleep waits d (Run.Sleep, or a timer) unless ctx is done first.
func (r *Run) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
