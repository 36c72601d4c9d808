package executor_test

import (
	"context"
	"slices"
	"testing"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/executor"
)

// A sequence of measured batches → the sizes that follow them. Target
// 200ms: batches aim at 120ms (60%).
func TestBatchSizerSequence(t *testing.T) {
	const ms = time.Millisecond
	type batch struct {
		affected int64 // -1: the whole batch
		d        time.Duration
	}
	for _, tc := range []struct {
		name    string
		cfg     executor.BatchSizing
		batches []batch
		sizes   []int // the first size, then the size after each batch
	}{{
		name:    "fast full batches double the size",
		batches: []batch{{-1, 10 * ms}, {-1, 20 * ms}, {-1, 40 * ms}},
		sizes:   []int{1000, 2000, 4000, 8000},
	}, {
		name: "growth stops at the aim (120ms)",
		// 1000 records in 60ms: 60µs each, so 2000 take 120ms: the aim.
		batches: []batch{{-1, 60 * ms}, {-1, 120 * ms}, {-1, 120 * ms}},
		sizes:   []int{1000, 2000, 2000, 2000},
	}, {
		name: "over the target: proportional decrease at once",
		// 1000 in 400ms: shrink to 1000 × 120/400.
		batches: []batch{{-1, 400 * ms}},
		sizes:   []int{1000, 300},
	}, {
		name: "between the aim and the target: gentle decrease",
		// 1000 in 150ms (150µs each, smoothed with nothing before it):
		// 120ms takes 800.
		batches: []batch{{-1, 150 * ms}},
		sizes:   []int{1000, 800},
	}, {
		name: "short batches never grow the size, may shrink it",
		// 100 of 1000 in 5ms says nothing of 1000; 100 in 1s does.
		batches: []batch{{100, 5 * ms}, {0, 1 * ms}, {100, time.Second}},
		sizes:   []int{1000, 1000, 1000, 120},
	}, {
		name: "smoothed: one fast batch after slow ones grows the size a little",
		// 120µs a record (1000 stays), then 1000 in 24ms (24µs): smoothed
		// 72µs → 1666, not the 2000 the last batch alone would allow.
		batches: []batch{{-1, 120 * ms}, {-1, 24 * ms}},
		sizes:   []int{1000, 1000, 1666},
	}, {
		name:    "clamped to the maximum",
		cfg:     executor.BatchSizing{Max: 3000},
		batches: []batch{{-1, 1 * ms}, {-1, 1 * ms}, {-1, 1 * ms}},
		sizes:   []int{1000, 2000, 3000, 3000},
	}, {
		name:    "a maximum below the start size starts there",
		cfg:     executor.BatchSizing{Max: 500},
		batches: []batch{{-1, 1 * ms}},
		sizes:   []int{500, 500},
	}, {
		name:    "clamped to the minimum",
		cfg:     executor.BatchSizing{Min: 400},
		batches: []batch{{-1, 10 * time.Second}},
		sizes:   []int{1000, 400},
	}, {
		name:    "a minimum above the start size starts there",
		cfg:     executor.BatchSizing{Min: 5000, Max: 10000},
		batches: []batch{{-1, 10 * ms}},
		sizes:   []int{5000, 10000},
	}, {
		name: "a shorter target makes smaller batches",
		cfg:  executor.BatchSizing{Target: 50 * ms},
		// 1000 in 10ms: 10µs each; the aim is 30ms: 3000, at most doubled.
		batches: []batch{{-1, 10 * ms}, {-1, 20 * ms}, {-1, 30 * ms}},
		sizes:   []int{1000, 2000, 3000, 3000},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := executor.NewBatchSizer(tc.cfg)
			got := []int{s.Size()}
			for _, b := range tc.batches {
				n := s.Size()
				a := b.affected
				if a < 0 {
					a = int64(n)
				}
				s.Observe(n, a, b.d)
				got = append(got, s.Size())
			}
			if !slices.Equal(got, tc.sizes) {
				t.Errorf("sizes %v, want %v", got, tc.sizes)
			}
		})
	}
}

// A simulated store whose batch takes overhead + n × perRow: on an idle
// store the size converges to where a batch takes about the aim; when the
// store slows down five times, the next batch is back within the target;
// when it recovers, the size grows back. No batch after the first few
// exceeds the target.
func TestBatchSizerConverges(t *testing.T) {
	const target = 200 * time.Millisecond
	s := executor.NewBatchSizer(executor.BatchSizing{})
	perRow := 5 * time.Microsecond
	const overhead = 3 * time.Millisecond
	batch := func() (int, time.Duration) {
		n := s.Size()
		d := overhead + time.Duration(n)*perRow
		s.Observe(n, int64(n), d)
		return n, d
	}
	var n int
	var d time.Duration
	for i := range 20 {
		n, d = batch()
		if d > target {
			t.Fatalf("idle batch %d: %d records took %v, over the target", i, n, d)
		}
	}
	// 120ms at 5µs a record, less the overhead: about 23,400.
	if n < 20000 || n > 24000 || d < 100*time.Millisecond {
		t.Errorf("idle: converged to %d records in %v, want about 23,400 in about 120ms", n, d)
	}
	perRow *= 5 // the store is loaded
	if n, d = batch(); d <= target {
		t.Fatalf("the first slow batch took %v, want over the target", d)
	}
	for i := range 20 {
		if n, d = batch(); d > target {
			t.Errorf("loaded batch %d: %d records took %v, over the target", i, n, d)
		}
	}
	if n < 4000 || n > 4800 {
		t.Errorf("loaded: converged to %d records, want about 4,700", n)
	}
	perRow /= 5
	for range 10 {
		n, _ = batch()
	}
	if n < 20000 {
		t.Errorf("recovered: %d records a batch, want back above 20,000", n)
	}
}

// BatchSizers keep one sizer per key across calls (slices, jobs), and a
// changed configuration applies to the learned size.
func TestBatchSizersFor(t *testing.T) {
	var sizers executor.BatchSizers
	a := sizers.For("shop/db/events/delete", executor.BatchSizing{})
	a.Observe(a.Size(), int64(a.Size()), time.Millisecond)
	if got := sizers.For("shop/db/events/delete", executor.BatchSizing{}).Size(); got != 2000 {
		t.Errorf("the same key again: size %d, want the learned 2000", got)
	}
	if got := sizers.For("shop/db/orders/delete", executor.BatchSizing{}).Size(); got != executor.StartBatchSize {
		t.Errorf("another key: size %d, want %d", got, executor.StartBatchSize)
	}
	if got := sizers.For("shop/db/events/delete", executor.BatchSizing{Max: 1500}).Size(); got != 1500 {
		t.Errorf("a lowered maximum: size %d, want 1500", got)
	}
}

// sizes is the fake store noting the batch size of every Execute call.
type sizes struct {
	datastore.Driver
	got []int
}

func (d *sizes) Execute(ctx context.Context, op datastore.Operation, cursor string) (datastore.Batch, error) {
	d.got = append(d.got, op.BatchSize)
	return d.Driver.Execute(ctx, op, cursor)
}

// A Run with a Sizer sets each batch's size from it and feeds it the
// batch's duration: a fast store's batches double; without one, the step's
// fixed size is used.
func TestRunAdaptiveBatches(t *testing.T) {
	for _, adaptive := range []bool{true, false} {
		d := &sizes{Driver: events(10000, 9000)}
		h := newHarness(t, d, jobFor("", deleteExpired(500)), deleteExpired(500))
		var sizers executor.BatchSizers
		var keys []string
		for range 100 {
			run := h.run()
			if adaptive {
				run.Sizer = func(op datastore.Operation) *executor.BatchSizer {
					keys = append(keys, op.Collection.Name)
					return sizers.For("db/"+op.Collection.Name, executor.BatchSizing{Target: time.Hour})
				}
			}
			p, err := run.Slice(context.Background())
			mustNot(t, err)
			if p == executor.Started {
				h.job.Status.Phase = retentionv1.PurgeJobRunning
			}
			if p == executor.Completed {
				break
			}
		}
		if got := h.job.Status.Deleted; got != 9000 {
			t.Fatalf("adaptive %v: deleted %d, want 9000", adaptive, got)
		}
		want := []int{500, 500, 500}
		if adaptive {
			want = []int{1000, 2000, 4000, 8000}
			if len(keys) != 4 || keys[0] != "events" {
				t.Errorf("Sizer asked for %v, want events once a batch", keys)
			}
		}
		if got := d.got; !slices.Equal(got[:min(len(got), len(want))], want) || (adaptive && len(got) != len(want)) {
			t.Errorf("adaptive %v: batch sizes %v, want %v…", adaptive, got, want)
		}
	}
}
