package executor_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/executor"
)

// A sequence of measured batches → the sizes that follow them. Target
// 200ms: while fewer than ten batches have been compared with their
// prediction, batches aim at 120ms (60%).
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
		name: "after a batch over the target, growth waits for two batches within it",
		// 1000 in 400ms: 300. 300 in 10ms: calm once, stays. Again: the
		// smoothed 125µs a record would take 960, at most doubled: 600.
		batches: []batch{{-1, 400 * ms}, {-1, 10 * ms}, {-1, 10 * ms}},
		sizes:   []int{1000, 300, 300, 600},
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

// The aim follows how much slower than predicted the last 100 full
// batches ran: 60% of the target until ten have been compared, then one
// over 1.1 times the largest ratio, between 20% and 75% of the target.
// Target 200ms; a steady store of 10µs a record, and chosen batches
// slower by a factor.
func TestBatchSizerAim(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name    string
		factors []float64 // each batch's duration over the steady store's
		aim     time.Duration
	}{
		{"nothing measured", nil, 120 * ms},
		{"nine batches compared: not trusted yet", steady(10), 120 * ms},
		{"ten steady batches: 75%", steady(11), 150 * ms},
		{"one batch 1.5× slower than predicted", append(steady(20), 1.5), 121 * ms},
		{"one batch 3× slower (over the target)", append(steady(20), 3), 61 * ms},
		{"one batch 10× slower: at least 20%", append(steady(20), 10), 40 * ms},
		{"a slow batch 99 batches ago still counts", append(append(steady(20), 1.5), steady(99)...), 121 * ms},
		{"a slow batch 100 batches ago is forgotten", append(append(steady(20), 1.5), steady(100)...), 150 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := executor.NewBatchSizer(executor.BatchSizing{})
			for _, f := range tc.factors {
				n := s.Size()
				s.Observe(n, int64(n), time.Duration(float64(n)*f)*10*time.Microsecond)
			}
			if got := s.Aim(); got.Round(ms) != tc.aim {
				t.Errorf("aim %v, want %v", got, tc.aim)
			}
		})
	}
}

func steady(n int) []float64 {
	f := make([]float64, n)
	for i := range f {
		f[i] = 1
	}
	return f
}

// Simulated stores whose batch takes overhead + n × perRow × noise, the
// noise log-normal with σ, times spike in a share of the batches: the p99
// of the batch durations (after the first 50 of 3,000) stays within the
// target, and the median batch stays large (an idle store's batches last
// 75% of the target).
func TestBatchSizerNoisyStore(t *testing.T) {
	const target = 200 * time.Millisecond
	for _, tc := range []struct {
		name          string
		sigma         float64
		spikes, spike float64
		medianAtLeast int // records; 40,000 take the whole target
	}{
		{"idle", 0.02, 0, 1, 29000},
		{"σ 0.1", 0.1, 0, 1, 26000},
		{"σ 0.2", 0.2, 0, 1, 19000},
		{"σ 0.3", 0.3, 0, 1, 14000},
		{"σ 0.4", 0.4, 0, 1, 10000},
		{"2× spikes in 5% of the batches", 0.1, 0.05, 2, 15000},
		{"3× spikes in 2% of the batches", 0.1, 0.02, 3, 11000},
		{"3× spikes in 1% of the batches", 0.05, 0.01, 3, 11000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			s := executor.NewBatchSizer(executor.BatchSizing{})
			const perRow, overhead = 5 * time.Microsecond, 2 * time.Millisecond
			var ds []time.Duration
			var ns []int
			for i := range 3000 {
				n := s.Size()
				f := math.Exp(tc.sigma * r.NormFloat64())
				if r.Float64() < tc.spikes {
					f *= tc.spike
				}
				d := overhead + time.Duration(float64(n)*float64(perRow)*f)
				s.Observe(n, int64(n), d)
				if i >= 50 {
					ds = append(ds, d)
					ns = append(ns, n)
				}
			}
			slices.Sort(ds)
			slices.Sort(ns)
			p99, median := ds[len(ds)*99/100], ns[len(ns)/2]
			t.Logf("p50 %v, p99 %v, max %v, median batch %d", ds[len(ds)/2].Round(time.Millisecond), p99.Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond), median)
			if p99 > target {
				t.Errorf("p99 batch %v, over the target %v", p99, target)
			}
			if median < tc.medianAtLeast {
				t.Errorf("median batch %d records, want at least %d", median, tc.medianAtLeast)
			}
		})
	}
}

// A simulated store whose batch takes overhead + n × perRow: on an idle
// store the size converges to where a batch takes about 75% of the target;
// when the store slows down five times, the next batch is back within the
// target and batches aim at 20% of it (the slow batch ran five times slower
// than predicted) until it is 100 batches old, then at 75% again; when the
// store recovers, the size grows back. No batch after the first few exceeds
// the target.
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
	// 150ms at 5µs a record, less the overhead: about 29,400.
	if n < 28000 || n > 30000 || d < 140*time.Millisecond {
		t.Errorf("idle: converged to %d records in %v, want about 29,400 in about 150ms", n, d)
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
	// 40ms at 25µs a record, less the overhead: about 1,480.
	if n < 1400 || n > 1600 {
		t.Errorf("loaded: converged to %d records, want about 1,480", n)
	}
	for i := range 100 {
		if n, d = batch(); d > target {
			t.Errorf("loaded batch %d: %d records took %v, over the target", i, n, d)
		}
	}
	// 150ms: about 5,900.
	if n < 5500 || n > 6000 {
		t.Errorf("loaded, the slow batch forgotten: %d records, want about 5,900", n)
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
