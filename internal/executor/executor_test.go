package executor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/fake"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/outcome"
)

// Every case runs a job over an in-memory store of 1000 events, 437 of them
// expired, deleted 100 records a batch (5 batches) unless it says otherwise.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  retentionv1.Mode // default Enforce
		steps func() []engine.Step
		// setup programs the store and the harness before the first slice.
		setup func(h *harness, d *fake.Driver)
		// check runs after h.drive returned err.
		check func(t *testing.T, h *harness, d *fake.Driver, err error)
	}{{
		name:  "success over several slices bounded by batches",
		setup: func(h *harness, _ *fake.Driver) { h.maxBatches = 2 },
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			mustNot(t, err)
			wantProgress(t, h, executor.Started, executor.Yielded, executor.Yielded, executor.Completed)
			wantDeleted(t, h, d, 437)
			wantNoneExpired(t, d)
			op := h.written.Operations[0]
			if op.Phase != retentionv1.PurgeJobSucceeded || op.Batches != 5 || op.Matched != 437 {
				t.Errorf("operation status %+v", op)
			}
			// A checkpoint per slice that ran batches (the clock stands
			// still: no checkpoint interval passes).
			if h.checkpoints != 3 {
				t.Errorf("%d checkpoints, want 3", h.checkpoints)
			}
			if op.Cursor == "" || strings.Contains(op.Cursor, "00437") {
				t.Errorf("cursor %q is not sealed", op.Cursor)
			}
		},
	}, {
		name: "success over several slices bounded by time",
		setup: func(h *harness, _ *fake.Driver) {
			// Every clock reading is a second later: a 3s slice runs 3 batches.
			h.tick, h.sliceTime = time.Second, 3*time.Second
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			mustNot(t, err)
			wantProgress(t, h, executor.Started, executor.Yielded, executor.Completed)
			wantDeleted(t, h, d, 437)
		},
	}, {
		name: "dry run counts and changes nothing",
		mode: retentionv1.ModeDryRun,
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			mustNot(t, err)
			wantProgress(t, h, executor.DryRunCompleted)
			st := h.job.Status
			if st.Matched != 437 || st.StartTime == nil || st.Operations[0].Phase != retentionv1.PurgeJobSucceeded {
				t.Errorf("dry run status %+v", st)
			}
			if d.Calls("Execute") != 0 || left(d) != 1000 || h.seals.saves != 0 || h.checkpoints != 0 {
				t.Errorf("a dry run acted: %d batches, %d records left, %d seals, %d checkpoints", d.Calls("Execute"), left(d), h.seals.saves, h.checkpoints)
			}
		},
	}, {
		name: "safety limit maxRows stops before any change",
		setup: func(h *harness, _ *fake.Driver) {
			h.job.Spec.Safety = &retentionv1.SafetyLimits{MaxRows: new(int64(50))}
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			st := wantStall(t, err, retentionv1.ReasonSafetyLimitExceeded)
			if !strings.Contains(st.Msg, "437 records, more than safety.maxRows 50") {
				t.Errorf("message %q", st.Msg)
			}
			wantUntouched(t, h, d)
			if h.job.Status.Matched != 437 {
				t.Errorf("matched %d, want 437", h.job.Status.Matched)
			}
			// Released, it proceeds.
			h.job.Annotations[retentionv1.AnnotationReleaseSafetyLimit] = "true"
			mustNot(t, h.drive(context.Background()))
			wantDeleted(t, h, d, 437)
		},
	}, {
		name: "safety limit maxPercent stops before any change",
		setup: func(h *harness, _ *fake.Driver) {
			h.job.Spec.Safety = &retentionv1.SafetyLimits{MaxPercent: new(int32(40))}
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			st := wantStall(t, err, retentionv1.ReasonSafetyLimitExceeded)
			if !strings.Contains(st.Msg, "437 of 1000 records (43%) of collection events") {
				t.Errorf("message %q", st.Msg)
			}
			wantUntouched(t, h, d)
		},
	}, {
		name: "interrupted after changes, resumed from the checkpoint",
		setup: func(_ *harness, d *fake.Driver) {
			d.Fail("Execute", 3, fake.ErrConstraint)
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			var interrupted *executor.InterruptedError
			if !errors.As(err, &interrupted) || !errors.Is(err, datastore.ErrInvalid) {
				t.Fatalf("error %v, want an InterruptedError keeping its cause", err)
			}
			st := wantStall(t, err, retentionv1.ReasonInterrupted)
			if !strings.Contains(st.Msg, "Stopped after changing records") || !strings.Contains(st.Msg, "events (200 deleted, 0 anonymized so far)") {
				t.Errorf("message %q", st.Msg)
			}
			if h.written.Deleted != 200 || left(d) != 800 {
				t.Fatalf("checkpoint says %d deleted, store has %d left", h.written.Deleted, left(d))
			}
			h.restart()
			mustNot(t, h.drive(context.Background()))
			wantDeleted(t, h, d, 437)
			wantNoneExpired(t, d)
			if d.Calls("Execute") != 6 {
				t.Errorf("%d batches, want 2 + 1 failed + 3 after the resume", d.Calls("Execute"))
			}
		},
	}, {
		name: "invalid operation before any change fails the job",
		setup: func(_ *harness, d *fake.Driver) {
			d.Fail("Execute", 1, fake.ErrConstraint)
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			wantFailed(t, err)
			if left(d) != 1000 || h.job.Status.Deleted != 0 {
				t.Errorf("records changed: %d left", left(d))
			}
		},
	}, {
		name: "missing collection fails the job when counting",
		setup: func(h *harness, _ *fake.Driver) {
			h.steps[0].Op.Collection.Name = "ghost"
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			wantFailed(t, err)
			if !errors.Is(err, datastore.ErrNotFound) || d.Calls("Execute") != 0 || h.job.Status.StartTime != nil {
				t.Errorf("error %v, %d batches, started %v", err, d.Calls("Execute"), h.job.Status.StartTime)
			}
		},
	}, {
		name: "datastore unavailable mid-run is transient",
		setup: func(_ *harness, d *fake.Driver) {
			d.Fail("Execute", 2, fake.ErrUnavailable)
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			wantTransient(t, err, datastore.ErrUnavailable)
			h.restart()
			mustNot(t, h.drive(context.Background()))
			wantDeleted(t, h, d, 437)
		},
	}, {
		name: "lock timeout on the first batch is transient",
		setup: func(_ *harness, d *fake.Driver) {
			d.Fail("Execute", 1, fake.ErrLockTimeout)
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			wantTransient(t, err, datastore.ErrUnavailable)
			h.restart()
			mustNot(t, h.drive(context.Background()))
			wantDeleted(t, h, d, 437)
		},
	}, {
		name: "datastore unavailable when counting is transient",
		setup: func(_ *harness, d *fake.Driver) {
			d.Fail("Count", 1, fake.ErrUnavailable)
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			wantTransient(t, err, datastore.ErrUnavailable)
			wantUntouched(t, h, d)
		},
	}, {
		name: "checkpoint write failure aborts the slice; the lost batches are recounted",
		setup: func(h *harness, _ *fake.Driver) {
			h.maxBatches, h.failCheckpoint = 2, 2
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			var abort *executor.AbortError
			if !errors.As(err, &abort) {
				t.Fatalf("error %v, want an AbortError", err)
			}
			// Batches 3 and 4 committed; their checkpoint was lost.
			if h.written.Deleted != 200 || left(d) != 600 {
				t.Fatalf("checkpoint says %d deleted, store has %d left", h.written.Deleted, left(d))
			}
			h.restart()
			mustNot(t, h.drive(context.Background()))
			// Resumed from the last checkpoint, every expired record goes;
			// the batches whose checkpoint was lost are not redone but
			// recounted, so the totals are exact and verified.
			wantNoneExpired(t, d)
			if left(d) != 563 || h.job.Status.Deleted != 437 || h.written.Deleted != 437 || h.written.Recounted != 200 {
				t.Errorf("%d records left (want 563), %d counted deleted (want 437), %d recounted (want 200)", left(d), h.job.Status.Deleted, h.written.Recounted)
			}
			if len(h.recounts) != 1 || h.recounts[0] != 200 {
				t.Errorf("recounts %v, want [200]", h.recounts)
			}
			wantVerified(t, h, true)
		},
	}, {
		name: "collection under a hold is skipped",
		setup: func(h *harness, d *fake.Driver) {
			h.steps[0].BlockedBy = "audit"
			h.steps = append(h.steps, sessions(d))
			h.job = jobFor(retentionv1.ModeEnforce, h.steps...)
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			mustNot(t, err)
			ops := h.written.Operations
			if ops[0].Phase != retentionv1.OperationHeld || ops[0].Matched != 0 || ops[1].Phase != retentionv1.PurgeJobSucceeded {
				t.Errorf("operations %+v", ops)
			}
			if left(d) != 1000 || len(d.Records("sessions")) != 0 || h.job.Status.Deleted != 30 {
				t.Errorf("%d events left (want all), %d sessions left, %d deleted", left(d), len(d.Records("sessions")), h.job.Status.Deleted)
			}
		},
	}, {
		name: "held subjects are kept and counted",
		setup: func(h *harness, _ *fake.Driver) {
			h.steps[0].Op.Held = map[string][]string{"user_id": {"7"}}
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			mustNot(t, err)
			// user 7 has records 7, 17, …, 437: 44 of the expired ones.
			if st := h.job.Status; st.Held != 44 || st.Operations[0].Held != 44 || st.Matched != 393 || st.Deleted != 393 {
				t.Errorf("held %d (operation %d), matched %d, deleted %d", st.Held, st.Operations[0].Held, st.Matched, st.Deleted)
			}
			if left(d) != 1000-393 {
				t.Errorf("%d records left", left(d))
			}
		},
	}, {
		name: "preflight stops before any change when a record outside refers to one deleted",
		setup: func(_ *harness, d *fake.Driver) {
			d.Insert("orders", fake.Record{Key: "o1", Fields: map[string]string{"event_id": "00001"}})
			d.Reference(fake.Reference{Name: "orders_event_fk", From: "orders", Field: "event_id", To: "events"})
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			st := wantStall(t, err, retentionv1.ReasonReferencedOutsideErasure)
			if !strings.Contains(st.Msg, "1 records of orders refer to records of collection events") || !strings.Contains(st.Msg, "orders_event_fk") {
				t.Errorf("message %q", st.Msg)
			}
			wantUntouched(t, h, d)
		},
	}, {
		name: "store without foreign keys runs no preflight and seals nothing",
		setup: func(h *harness, d *fake.Driver) {
			d.Insert("orders", fake.Record{Key: "o1", Fields: map[string]string{"event_id": "00001"}})
			d.Reference(fake.Reference{Name: "orders_event_fk", From: "orders", Field: "event_id", To: "events"})
			h.driver = d.Plain()
			h.steps[0].Op.Subjects = map[string][]string{"user_id": {"3"}}
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			mustNot(t, err)
			if d.Calls("Blockers") != 0 || d.Calls("Keys") != 0 || h.job.Status.SealedKeys != 0 {
				t.Errorf("preflight %d, keys %d, sealed %d", d.Calls("Blockers"), d.Calls("Keys"), h.job.Status.SealedKeys)
			}
			wantDeleted(t, h, d, 44) // user 3's expired records
		},
	}, {
		name: "subject keys are sealed before the first change",
		setup: func(h *harness, _ *fake.Driver) {
			h.steps[0].Op.Cutoff = nil
			h.steps[0].Op.Subjects = map[string][]string{"user_id": {"3"}}
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			mustNot(t, err)
			if h.seals.saves != 1 || h.job.Status.SealedKeys != 100 {
				t.Fatalf("%d saves, %d keys sealed, want 1 and 100", h.seals.saves, h.job.Status.SealedKeys)
			}
			sealed, err := executor.Sealed(context.Background(), &h.job.Status, h.seals)
			if err != nil || len(sealed["events"]) != 100 || sealed["events"][0][0] != "00003" {
				t.Errorf("sealed keys %v, %v", len(sealed["events"]), err)
			}
			wantDeleted(t, h, d, 100)
		},
	}, {
		name: "keys the store cannot seal fail the job before any change",
		setup: func(h *harness, d *fake.Driver) {
			h.steps[0].Op.Subjects = map[string][]string{"user_id": {"3"}}
			d.Fail("Keys", 1, fake.ErrConstraint)
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			wantFailed(t, err)
			wantUntouched(t, h, d)
		},
	}, {
		name: "sealed keys that cannot be saved are transient",
		setup: func(h *harness, _ *fake.Driver) {
			h.steps[0].Op.Subjects = map[string][]string{"user_id": {"3"}}
			h.seals.saveErr = errors.New("the API server is unavailable")
		},
		check: func(t *testing.T, h *harness, d *fake.Driver, err error) {
			wantTransient(t, err, nil)
			wantUntouched(t, h, d)
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d := events(1000, 437)
			steps := []engine.Step{deleteExpired(100)}
			mode := tc.mode
			if mode == "" {
				mode = retentionv1.ModeEnforce
			}
			h := newHarness(t, d, jobFor(mode, steps...), steps...)
			if tc.setup != nil {
				tc.setup(h, d)
			}
			tc.check(t, h, d, h.drive(context.Background()))
		})
	}
}

// A hold placed while a job runs takes effect at the next slice: the rest
// of the operation is skipped, what was done stays counted.
func TestRunHoldPlacedWhileRunning(t *testing.T) {
	d := events(1000, 437)
	steps := []engine.Step{deleteExpired(100)}
	h := newHarness(t, d, jobFor(retentionv1.ModeEnforce, steps...), steps...)
	h.maxBatches = 1
	for _, want := range []executor.Progress{executor.Started, executor.Yielded} {
		if p, err := h.slice(context.Background()); err != nil || p != want {
			t.Fatalf("slice: %v %v, want %v", p, err, want)
		}
	}
	h.steps[0].BlockedBy = "audit"
	checkpoints := h.checkpoints
	if p, err := h.slice(context.Background()); err != nil || p != executor.Completed {
		t.Fatalf("slice: %v %v, want Completed", p, err)
	}
	if op := h.written.Operations[0]; op.Phase != retentionv1.OperationHeld || op.Deleted != 100 || h.checkpoints != checkpoints+1 {
		t.Errorf("operation %+v after %d checkpoints", op, h.checkpoints-checkpoints)
	}
	if left(d) != 900 {
		t.Errorf("%d records left, want 900", left(d))
	}
}

// A cancelled reconcile (the manager shutting down) stops before the next
// batch without a verdict on the job.
func TestRunCancelled(t *testing.T) {
	d := events(1000, 437)
	steps := []engine.Step{deleteExpired(100)}
	h := newHarness(t, d, jobFor(retentionv1.ModeEnforce, steps...), steps...)
	if p, err := h.slice(context.Background()); err != nil || p != executor.Started {
		t.Fatalf("slice: %v %v, want Started", p, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.slice(ctx)
	var abort *executor.AbortError
	if !errors.As(err, &abort) || !errors.Is(err, context.Canceled) || d.Calls("Execute") != 0 || h.checkpoints != 0 {
		t.Errorf("error %v, %d batches and %d checkpoints after cancelling", err, d.Calls("Execute"), h.checkpoints)
	}
}

// A cursor in status that does not open is an invalid job: failed before
// any change, interrupted after.
func TestRunCursorThatDoesNotOpen(t *testing.T) {
	for _, changed := range []bool{false, true} {
		d := events(1000, 437)
		steps := []engine.Step{deleteExpired(100)}
		h := newHarness(t, d, jobFor(retentionv1.ModeEnforce, steps...), steps...)
		h.maxBatches = 1
		if _, err := h.slice(context.Background()); err != nil {
			t.Fatal(err)
		}
		if changed {
			if _, err := h.slice(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		h.job.Status.Operations[0].Cursor = "not a sealed cursor"
		_, err := h.slice(context.Background())
		var failed *executor.FailedError
		var interrupted *executor.InterruptedError
		if changed && !errors.As(err, &interrupted) || !changed && !errors.As(err, &failed) {
			t.Errorf("changed %v: error %v", changed, err)
		}
	}
}

// sessions is a second collection of 30 expired records, and the step
// deleting them.
func sessions(d *fake.Driver) engine.Step {
	for i := range 30 {
		d.Insert("sessions", fake.Record{Key: fmt.Sprintf("s%02d", i), Time: base.Add(-time.Hour)})
	}
	s := deleteExpired(100)
	s.Op.Collection = datastore.Collection{Name: "sessions"}
	return s
}

func mustNot(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantProgress(t *testing.T, h *harness, want ...executor.Progress) {
	t.Helper()
	if len(h.progress) != len(want) {
		t.Fatalf("slices %v, want %v", h.progress, want)
	}
	for i := range want {
		if h.progress[i] != want[i] {
			t.Fatalf("slices %v, want %v", h.progress, want)
		}
	}
}

// wantDeleted checks that exactly the expired records went and the job
// counted them.
func wantDeleted(t *testing.T, h *harness, d *fake.Driver, n int) {
	t.Helper()
	if left(d) != 1000-n || h.job.Status.Deleted != int64(n) || h.written.Deleted != int64(n) {
		t.Errorf("%d records left (want %d), %d deleted (checkpoint %d), want %d", left(d), 1000-n, h.job.Status.Deleted, h.written.Deleted, n)
	}
}

// wantNoneExpired checks that no expired event is left.
func wantNoneExpired(t *testing.T, d *fake.Driver) {
	t.Helper()
	for _, r := range d.Records("events") {
		if r.Time.Before(base) {
			t.Fatalf("expired record %s left", r.Key)
		}
	}
}

// wantUntouched checks that nothing changed and the job did not start.
func wantUntouched(t *testing.T, h *harness, d *fake.Driver) {
	t.Helper()
	if d.Calls("Execute") != 0 || left(d) != 1000 || h.job.Status.StartTime != nil || h.seals.saves != 0 {
		t.Errorf("%d batches, %d records left, started %v, %d seals", d.Calls("Execute"), left(d), h.job.Status.StartTime, h.seals.saves)
	}
}

func wantStall(t *testing.T, err error, reason string) *outcome.StallError {
	t.Helper()
	st := outcome.AsStall(err)
	if st == nil || st.Reason != reason {
		t.Fatalf("error %v, want a stall %s", err, reason)
	}
	return st
}

func wantFailed(t *testing.T, err error) {
	t.Helper()
	var failed *executor.FailedError
	if !errors.As(err, &failed) || outcome.AsStall(err) != nil {
		t.Fatalf("error %v, want a FailedError", err)
	}
}

// wantTransient checks that err is neither a verdict on the job nor an
// abort, and is class (when not nil).
func wantTransient(t *testing.T, err, class error) {
	t.Helper()
	var failed *executor.FailedError
	var abort *executor.AbortError
	if err == nil || errors.As(err, &failed) || errors.As(err, &abort) || outcome.AsStall(err) != nil || outcome.AsWait(err) != nil ||
		class != nil && !errors.Is(err, class) {
		t.Fatalf("error %v, want a transient error", err)
	}
}
