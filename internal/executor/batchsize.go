package executor

import (
	"sync"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Adaptive batch sizes (DataStore spec.limits.targetBatchDuration,
// minBatchSize, maxBatchSize). A PurgeJob without spec.batchSize runs
// adaptive batches: each batch's size follows the measured duration of the
// batches before it, so that on an idle store batches grow to the size
// where a purge is about as efficient as one unbounded statement, and on a
// loaded store (where the same batch takes longer) they shrink until a batch
// transaction again lasts about the target. A job with spec.batchSize runs
// batches of that fixed size.
const (
	// DefaultTargetBatchDuration is the batch duration aimed at when the
	// DataStore does not set one.
	DefaultTargetBatchDuration = 200 * time.Millisecond
	// DefaultMinBatchSize and DefaultMaxBatchSize bound adaptive batches
	// when the DataStore does not.
	DefaultMinBatchSize = 100
	DefaultMaxBatchSize = 100_000
	// StartBatchSize is the first adaptive batch of an operation nothing
	// has been learned about (clamped to the bounds): the former fixed
	// default, safe on any store.
	StartBatchSize = 1000

	// The aim of a batch is a share of the target that shrinks as batches
	// grow less predictable: the slowest batches, not the typical one, must
	// stay within the target. Each full batch's time per record is compared
	// with the smoothed time per record the sizer predicted it at (the
	// batch was sized to last the aim at that rate, so it lasted the aim
	// times the ratio). The share is one over margin times the largest
	// ratio of the last window full batches, within [minShare, maxShare]:
	// were the ratios independent, the next batch would exceed the largest
	// of the last 100 one time in 101, and the margin keeps that below one
	// in a hundred (tested on simulated stores with log-normal noise and
	// spikes, internal/executor/batchsize_test.go). A store whose batches
	// ran up to 1.5 times slower than predicted gets batches aimed at 61%
	// of the target; one as steady as an idle server, at 75%. While fewer
	// than trustAfter ratios are known the share is at most startShare.
	window     = 100
	margin     = 1.1
	maxShare   = 0.75
	minShare   = 0.2
	startShare = 0.6
	trustAfter = 10
	// growAfter is how many full batches in a row within the target it
	// takes to grow again after a batch over the target (the first batches
	// of an operation grow at once, as after growAfter calm ones).
	growAfter = 2
	// growth bounds how fast a batch grows: at most doubled from one batch
	// to the next (multiplicative increase), so one unusually fast batch
	// cannot make the next one take many times the target.
	growth = 2.0
	// smoothing is the weight of the newest batch in the smoothed time
	// per record (an exponentially weighted moving average): a fast batch
	// among slow ones grows the size only a little.
	smoothing = 0.5
	// partial: a batch that touched fewer records than this share of its
	// size says little about the time per record (the last batch of an
	// operation, or sparse matches): it may shrink the size, never grow it.
	partial = 0.5
)

// BatchSizing bounds adaptive batches: Target is the batch duration aimed
// at, Min and Max the smallest and largest batch. Zero fields take the
// defaults.
type BatchSizing struct {
	Target   time.Duration
	Min, Max int
}

// withDefaults fills zero fields with the defaults and orders the bounds.
func (c BatchSizing) withDefaults() BatchSizing {
	if c.Target <= 0 {
		c.Target = DefaultTargetBatchDuration
	}
	if c.Max <= 0 {
		c.Max = DefaultMaxBatchSize
	}
	if c.Min <= 0 {
		c.Min = min(DefaultMinBatchSize, c.Max)
	}
	if c.Max < c.Min { // the API refuses it; keep the smaller bound
		c.Max = c.Min
	}
	return c
}

func (c BatchSizing) clamp(n float64) int {
	return int(min(max(n, float64(c.Min)), float64(c.Max)))
}

// BatchSizer is the adaptive batch size of one operation (one collection
// and action of one store), learned across slices and jobs. It is safe for
// concurrent use.
type BatchSizer struct {
	mu     sync.Mutex
	cfg    BatchSizing
	size   int
	perRow time.Duration // smoothed duration per record; 0 until measured
	// ratios is a ring of the last window ratios of measured to
	// predicted time per record of full batches; n how many were seen.
	ratios [window]float64
	n      int
	// calm counts the full batches in a row within the target.
	calm int
}

// NewBatchSizer starts at StartBatchSize within cfg's bounds.
func NewBatchSizer(cfg BatchSizing) *BatchSizer {
	s := &BatchSizer{}
	s.configure(cfg)
	return s
}

// configure applies (possibly changed) bounds and target.
func (s *BatchSizer) configure(cfg BatchSizing) {
	s.cfg = cfg.withDefaults()
	if s.size == 0 {
		s.size = StartBatchSize
		s.calm = growAfter
	}
	s.size = s.cfg.clamp(float64(s.size))
}

// Size is the size of the next batch.
func (s *BatchSizer) Size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Aim is the batch duration the sizer aims at now: the target times a
// share that shrinks as the measured batches spread.
func (s *BatchSizer) Aim() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(s.aim())
}

func (s *BatchSizer) aim() float64 {
	share := maxShare
	if s.n < trustAfter {
		share = startShare
	}
	if s.n > 0 {
		q := 0.0
		for _, r := range s.ratios[:min(s.n, window)] {
			q = max(q, r)
		}
		share = max(min(share, 1/(margin*q)), minShare)
	}
	return float64(s.cfg.Target) * share
}

// Observe feeds the measured duration of a batch of size records that
// touched affected of them, and sets the next size:
//
//   - a full batch (at least half its size touched) after an earlier one
//     notes how much slower its time per record was than the smoothed
//     one: the largest of the last 100 ratios sets the aim (see window);
//   - a batch over the target shrinks the size at once in proportion
//     (size × aim / d), whatever it touched, and takes its time per
//     record as the new smoothed one;
//   - a full batch within the target updates the smoothed time per record;
//     the next size is what the aim takes at that time: smaller at once,
//     larger only after growAfter such batches in a row since the last one
//     over the target, at most twice the batch's size and never above
//     what the latest batch alone would allow;
//   - a short batch within the target changes nothing.
//
// The result is clamped to [Min, Max].
func (s *BatchSizer) Observe(size int, affected int64, d time.Duration) {
	if size <= 0 || d <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	row := float64(d) / float64(size)
	full := float64(affected) >= partial*float64(size)
	if full && s.perRow > 0 {
		s.ratios[s.n%window] = row / float64(s.perRow)
		s.n++
	}
	aim := s.aim()
	if d > s.cfg.Target {
		// Over the target: proportional decrease from the batch that ran,
		// and forget the smoothed rate, which was too optimistic.
		s.size = s.cfg.clamp(float64(size) * aim / float64(d))
		s.perRow = time.Duration(row)
		s.calm = 0
		return
	}
	if !full {
		return
	}
	s.calm++
	if s.perRow == 0 {
		s.perRow = time.Duration(row)
	} else {
		s.perRow = time.Duration(smoothing*row + (1-smoothing)*float64(s.perRow))
	}
	next := aim / max(float64(s.perRow), 1)
	// The latest batch alone: never grow past what it allows, so a
	// store that slowed down is not outvoted by the average.
	next = min(next, max(aim/row, float64(size)), float64(size)*growth)
	if next > float64(s.size) && s.calm < growAfter {
		next = float64(s.size)
	}
	s.size = s.cfg.clamp(next)
}

// BatchSizers keep the learned batch sizes of a manager's operations, one
// BatchSizer per key (the store, collection and action), so a job resumes
// each slice, and the next job on the same collection starts, at the size
// learned before. The zero value is ready to use.
type BatchSizers struct {
	mu     sync.Mutex
	sizers map[string]*BatchSizer
}

// For is the sizer of key with cfg's bounds (a changed cfg applies from
// now on).
func (b *BatchSizers) For(key string, cfg BatchSizing) *BatchSizer {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sizers[key]
	if s == nil {
		if b.sizers == nil {
			b.sizers = map[string]*BatchSizer{}
		}
		s = &BatchSizer{}
		b.sizers[key] = s
	}
	s.mu.Lock()
	s.configure(cfg)
	s.mu.Unlock()
	return s
}

// sizer is the adaptive sizer of op (Run.Sizer), or nil for a fixed size.
func (r *Run) sizer(op datastore.Operation) *BatchSizer {
	if r.Sizer == nil {
		return nil
	}
	return r.Sizer(op)
}
