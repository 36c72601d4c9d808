package executor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/executor"
)

// A gate stops a running job at a batch boundary: nothing runs while it
// pauses, the progress so far is checkpointed with the pause recorded, and
// the job resumes exactly where it stopped. 1000 events, 437 expired, 100 a
// batch: the gate closes after the second batch and opens two slices later.
func TestGatePausesAtABatchBoundary(t *testing.T) {
	ctx := context.Background()
	d := events(1000, 437)
	job := jobFor(retentionv1.ModeEnforce, deleteExpired(100))
	h := newHarness(t, d, job, deleteExpired(100))
	closed, asked := false, 0
	h.gates = []executor.Gate{func(context.Context) (*executor.Pause, error) {
		asked++
		if closed {
			return &executor.Pause{Reason: retentionv1.ReasonReplicationLag, Message: "lag 12s over the limit 10s", Retry: time.Second}, nil
		}
		return nil, nil
	}}
	h.maxBatches = 2
	if p, err := h.slice(ctx); err != nil || p != executor.Started {
		t.Fatalf("first slice: %v, %v", p, err)
	}
	if asked != 0 {
		t.Fatalf("the gate was asked %d times before the job started; counting is not a change", asked)
	}
	if p, err := h.slice(ctx); err != nil || p != executor.Yielded {
		t.Fatalf("second slice: %v, %v", p, err)
	}
	closed = true
	for range 2 {
		before, checkpoints := left(d), h.checkpoints
		run := h.run()
		p, err := run.Slice(ctx)
		if err != nil || p != executor.Paused {
			t.Fatalf("paused slice: %v, %v", p, err)
		}
		if left(d) != before {
			t.Fatalf("a paused slice deleted %d records", before-left(d))
		}
		if run.Paused == nil || run.Paused.Reason != retentionv1.ReasonReplicationLag {
			t.Fatalf("Paused = %v", run.Paused)
		}
		if h.checkpoints != checkpoints+1 {
			t.Fatalf("a pause wrote %d checkpoints, want 1", h.checkpoints-checkpoints)
		}
		if got := run.Paused.After(h.now); got != time.Second {
			t.Fatalf("After = %v, want the pause's Retry", got)
		}
	}
	if len(h.pauses) != 2 || h.pauses[0].Message != "lag 12s over the limit 10s" {
		t.Fatalf("OnPause was told %v", h.pauses)
	}
	if h.batches != 2 || h.job.Status.Deleted != 200 || left(d) != 1000-200 {
		t.Fatalf("before the pause: %d batches, %d deleted, %d left", h.batches, h.job.Status.Deleted, left(d))
	}
	closed = false
	h.maxBatches = 0
	if err := h.drive(ctx); err != nil {
		t.Fatal(err)
	}
	if h.job.Status.Deleted != 437 || left(d) != 1000-437 {
		t.Fatalf("after resuming: %d deleted, %d left; want 437 and %d", h.job.Status.Deleted, left(d), 1000-437)
	}
}

// A gate that cannot tell is an error of the slice, not a pass: the batch
// does not run.
func TestGateErrorStopsTheSlice(t *testing.T) {
	ctx := context.Background()
	d := events(100, 50)
	job := jobFor(retentionv1.ModeEnforce, deleteExpired(10))
	h := newHarness(t, d, job, deleteExpired(10))
	h.gates = []executor.Gate{func(context.Context) (*executor.Pause, error) { return nil, errors.New("health unreadable") }}
	if _, err := h.slice(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.slice(ctx); err == nil {
		t.Fatal("a failing gate let the slice run")
	}
	if left(d) != 100 {
		t.Fatalf("%d records deleted past a failing gate", 100-left(d))
	}
}

// After waits Retry (DefaultPauseRetry when unset), and no later than Until.
func TestPauseAfter(t *testing.T) {
	now := base
	for _, tc := range []struct {
		p    executor.Pause
		want time.Duration
	}{
		{executor.Pause{}, executor.DefaultPauseRetry},
		{executor.Pause{Retry: 2 * time.Second}, 2 * time.Second},
		{executor.Pause{Retry: time.Minute, Until: now.Add(3 * time.Second)}, 3 * time.Second},
		{executor.Pause{Until: now.Add(time.Hour)}, executor.DefaultPauseRetry},
		{executor.Pause{Until: now.Add(-time.Second)}, time.Millisecond},
	} {
		if got := tc.p.After(now); got != tc.want {
			t.Errorf("%+v: After = %v, want %v", tc.p, got, tc.want)
		}
	}
}
