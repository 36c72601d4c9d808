package health

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// A Tracker keeps the last health reading of each DataStore, shared by
// every job on it: a reading is taken at most once per check interval
// (concurrent jobs wait for the one in flight), the time a store spends
// unhealthy is counted (OnThrottled), and a change of verdict is announced
// (Notify) so that the DataStore's controller, the one writer of its
// status, shows it. Safe for concurrent use; the zero value is ready.
type Tracker struct {
	// Clock returns now; nil means time.Now.
	Clock func() time.Time
	// OnThrottled, when set, is told how long a store was unhealthy between
	// two readings, and why (the reason of the earlier one).
	OnThrottled func(key types.NamespacedName, reason string, d time.Duration)
	// Notify, when set, is told of a store whose verdict changed (healthy or
	// not, or the reason), or whose message changed (the measured value) at
	// most every messageRefresh. It must not block.
	Notify func(key types.NamespacedName)
	// MaxAccounted bounds the time counted between two readings (no job
	// asked in between: nothing was held back); default 10s.
	MaxAccounted time.Duration

	mu     sync.Mutex
	stores map[types.NamespacedName]*entry
}

type entry struct {
	verdict  Verdict
	at       time.Time     // when verdict was read
	reading  chan struct{} // closed when the reading in flight is done; nil when none
	notified Verdict       // the verdict last announced on Changes
	notedAt  time.Time
}

// State is a store's last reading.
type State struct {
	Verdict
	// At is when it was read.
	At time.Time
}

func (t *Tracker) now() time.Time {
	if t.Clock != nil {
		return t.Clock()
	}
	return time.Now()
}

// messageRefresh bounds how often a store whose verdict keeps its reason
// but changes its message (the measured value) is announced.
const messageRefresh = 15 * time.Second

// Check returns the store's verdict: the last reading if it is younger than
// interval (and than its Until), else a new one from read. Concurrent
// callers share one read.
func (t *Tracker) Check(ctx context.Context, key types.NamespacedName, interval time.Duration, read func(context.Context) Verdict) Verdict {
	for {
		t.mu.Lock()
		if t.stores == nil {
			t.stores = map[types.NamespacedName]*entry{}
		}
		e := t.stores[key]
		if e == nil {
			e = &entry{}
			t.stores[key] = e
		}
		now := t.now()
		valid := interval
		if u := e.verdict.Until; u > 0 {
			valid = min(valid, u)
		}
		if !e.at.IsZero() && now.Sub(e.at) < valid {
			v := e.verdict
			t.mu.Unlock()
			return v
		}
		if wait := e.reading; wait != nil {
			t.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return Verdict{Reason: retentionv1.ReasonHealthUnknown, Message: "The store's health could not be read: " + ctx.Err().Error()}
			}
		}
		done := make(chan struct{})
		e.reading = done
		t.mu.Unlock()

		v := read(ctx)

		t.mu.Lock()
		now = t.now()
		prev, prevAt := e.verdict, e.at
		e.verdict, e.at, e.reading = v, now, nil
		close(done)
		notify := prev.Healthy != v.Healthy || prev.Reason != v.Reason || e.notified.Reason != v.Reason ||
			(e.notified.Message != v.Message && now.Sub(e.notedAt) >= messageRefresh)
		if notify {
			e.notified, e.notedAt = v, now
		}
		t.mu.Unlock()

		if !prevAt.IsZero() && !prev.Healthy && t.OnThrottled != nil {
			limit := t.MaxAccounted
			if limit <= 0 {
				limit = 10 * time.Second
			}
			t.OnThrottled(key, prev.Reason, min(now.Sub(prevAt), limit))
		}
		if notify && t.Notify != nil {
			t.Notify(key)
		}
		return v
	}
}

// State returns a store's last reading; ok is false when none was taken
// (or t is nil).
func (t *Tracker) State(key types.NamespacedName) (State, bool) {
	if t == nil {
		return State{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.stores[key]
	if e == nil || e.at.IsZero() {
		return State{}, false
	}
	return State{Verdict: e.verdict, At: e.at}, true
}

// Forget drops a store's readings (the DataStore was deleted); nil t does
// nothing.
func (t *Tracker) Forget(key types.NamespacedName) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.stores, key)
}
