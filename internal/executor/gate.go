package executor

import (
	"context"
	"fmt"
	"time"
)

// A Pause keeps a running job from its next batch: the job waits at a
// batch boundary, never inside a transaction, and resumes exactly where it
// stopped once every gate lets it through.
type Pause struct {
	// Reason is the reason of the job's Throttled condition (or Suspended:
	// see api/v1alpha1/purgejob_consts.go).
	Reason string
	// Message says why, with the measured value and the limit. It never
	// carries personal data.
	Message string
	// Until is when the gate opens by itself (the start of a DataStore's
	// next window); zero when that is not known in advance.
	Until time.Time
	// Retry is how long the controller waits before asking again; 0 means
	// DefaultPauseRetry (and, with Until set, no later than Until).
	Retry time.Duration
}

// DefaultPauseRetry is how long a paused job waits before its gates are
// asked again when the Pause does not say.
const DefaultPauseRetry = 5 * time.Second

// String is the pause's reason and message.
func (p *Pause) String() string { return fmt.Sprintf("%s: %s", p.Reason, p.Message) }

// After is how long the controller waits before the next slice asks the
// gates again: Retry (DefaultPauseRetry when 0), and no later than Until.
func (p *Pause) After(now time.Time) time.Duration {
	d := p.Retry
	if d <= 0 {
		d = DefaultPauseRetry
	}
	if !p.Until.IsZero() {
		if u := p.Until.Sub(now); u < d {
			d = max(u, time.Millisecond)
		}
	}
	return d
}

// A Gate is asked before every batch of a started job whether the batch
// may run: nil lets it through, a Pause stops the slice at this boundary.
// An error is sorted as any other error of the slice (Classify). Gates are
// asked in order; the first Pause wins.
type Gate func(ctx context.Context) (*Pause, error)

// gate asks Run.Gates, in order, whether the next batch may run.
func (r *Run) gate(ctx context.Context) (*Pause, error) {
	for _, g := range r.Gates {
		p, err := g(ctx)
		if err != nil || p != nil {
			return p, err
		}
	}
	return nil, nil
}
