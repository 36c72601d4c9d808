package executor_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/fake"
	"github.com/lethe-dev/lethe/internal/executor"
)

// timed is the fake store noting the harness's time of every batch.
type timed struct {
	*fake.Driver
	h     *harness
	times []time.Time
}

func (d *timed) Execute(ctx context.Context, op datastore.Operation, cursor string) (datastore.Batch, error) {
	d.times = append(d.times, d.h.now)
	return d.Driver.Execute(ctx, op, cursor)
}

// A store's maxBatchesPerSecond spaces the batches of every job against it,
// waiting at batch boundaries within the slice. Each case runs jobs of 5
// batches (1000 events, 437 expired, 100 a batch) on one clock that only
// the throttle's waits advance.
func TestThrottle(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name string
		// perSecond is the store's limit; jobs run one after the other,
		// each its own store key when separate is set.
		perSecond int32
		jobs      int
		separate  bool
		sliceTime time.Duration
		// sleeps are the waits of each job; progress the last job's slices.
		sleeps   [][]time.Duration
		progress []executor.Progress
	}{{
		name:      "no limit, no waits",
		perSecond: 0, jobs: 1,
		sleeps:   [][]time.Duration{nil},
		progress: []executor.Progress{executor.Started, executor.Completed},
	}, {
		name:      "5 a second: 200ms apart",
		perSecond: 5, jobs: 1,
		sleeps:   [][]time.Duration{{200 * ms, 200 * ms, 200 * ms, 200 * ms}},
		progress: []executor.Progress{executor.Started, executor.Completed},
	}, {
		name:      "jobs against one store share its limit",
		perSecond: 5, jobs: 2,
		sleeps:   [][]time.Duration{{200 * ms, 200 * ms, 200 * ms, 200 * ms}, {200 * ms, 200 * ms, 200 * ms, 200 * ms, 200 * ms}},
		progress: []executor.Progress{executor.Started, executor.Completed},
	}, {
		name:      "jobs against different stores do not",
		perSecond: 5, jobs: 2, separate: true,
		sleeps:   [][]time.Duration{{200 * ms, 200 * ms, 200 * ms, 200 * ms}, {200 * ms, 200 * ms, 200 * ms, 200 * ms}},
		progress: []executor.Progress{executor.Started, executor.Completed},
	}, {
		// A turn after the deadline: wait until the deadline and yield;
		// the next slice waits the rest.
		name:      "the wait ends at the slice's deadline",
		perSecond: 2, jobs: 1, sliceTime: 300 * ms,
		// Batches at 0, 500, 1000, 1500 and 2000ms; slices end at 300, 600,
		// 900, 1200, 1500 (with no wait left: the turn is after it) and 1800.
		sleeps: [][]time.Duration{{300 * ms, 200 * ms, 100 * ms, 300 * ms, 100 * ms, 200 * ms, 300 * ms, 300 * ms, 200 * ms}},
		progress: []executor.Progress{executor.Started,
			executor.Yielded, executor.Yielded, executor.Yielded, executor.Yielded, executor.Yielded, executor.Yielded, executor.Completed},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var throttles executor.Throttles
			now := base.Add(time.Hour)
			for i := range tc.jobs {
				d := &timed{Driver: events(1000, 437)}
				h := newHarness(t, d, jobFor("", deleteExpired(100)), deleteExpired(100))
				d.h, h.now, h.sliceTime = h, now, tc.sliceTime
				key := "shop/db"
				if tc.separate {
					key += string(rune('a' + i))
				}
				h.limiter = throttles.For(key, tc.perSecond, h.now)
				mustNot(t, h.drive(context.Background()))
				wantDeleted(t, h, d.Driver, 437)
				if !slices.Equal(h.sleeps, tc.sleeps[i]) {
					t.Errorf("job %d waited %v, want %v", i, h.sleeps, tc.sleeps[i])
				}
				if tc.perSecond > 0 {
					// Spaced by the limit, and by no more: the first to
					// the last batch of 5 takes 4 intervals.
					interval := time.Second / time.Duration(tc.perSecond)
					if span := d.times[len(d.times)-1].Sub(d.times[0]); len(d.times) != 5 || span != 4*interval {
						t.Errorf("job %d: %d batches over %v, want 5 over %v", i, len(d.times), span, 4*interval)
					}
					for b := 1; b < len(d.times); b++ {
						if gap := d.times[b].Sub(d.times[b-1]); gap < interval {
							t.Errorf("job %d: batches %d and %d %v apart", i, b-1, b, gap)
						}
					}
				}
				if i == tc.jobs-1 {
					wantProgress(t, h, tc.progress...)
				}
				now = h.now
			}
		})
	}
}

// A cancelled reconcile ends the throttle's wait: the slice aborts after
// the batch it did, which was checkpointed.
func TestThrottleCancelled(t *testing.T) {
	d := events(1000, 437)
	h := newHarness(t, d, jobFor("", deleteExpired(100)), deleteExpired(100))
	var throttles executor.Throttles
	h.limiter = throttles.For("shop/db", 1, h.now)
	h.sleepErr = context.Canceled
	err := h.drive(context.Background())
	var abort *executor.AbortError
	if !errors.As(err, &abort) || !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want an abort for the cancelled context", err)
	}
	if d.Calls("Execute") != 1 || h.written.Operations[0].Batches != 1 || len(h.sleeps) != 1 {
		t.Errorf("%d batches run, %d checkpointed, %d waits; want 1 of each", d.Calls("Execute"), h.written.Operations[0].Batches, len(h.sleeps))
	}
}

// For keeps one limiter per store, follows a changed limit and drops it at 0.
func TestThrottlesFor(t *testing.T) {
	var throttles executor.Throttles
	now := base
	a := throttles.For("shop/db", 5, now)
	if a == nil || a.Limit() != 5 || a.Burst() != 1 {
		t.Fatalf("limiter %+v, want 5/s with a burst of 1", a)
	}
	if b := throttles.For("shop/db", 10, now); b != a || b.Limit() != 10 {
		t.Errorf("a changed limit gave limiter %p at %v, want %p at 10", b, b.Limit(), a)
	}
	if other := throttles.For("shop/other", 10, now); other == a {
		t.Error("two stores share a limiter")
	}
	if off := throttles.For("shop/db", 0, now); off != nil {
		t.Errorf("limit 0 gave %+v, want no limiter", off)
	}
	if again := throttles.For("shop/db", 5, now); again == a {
		t.Error("a limit set again reused the limiter dropped at 0")
	}
}
