package executor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/holds"
	"github.com/lethe-dev/lethe/internal/outcome"
)

func TestClassify(t *testing.T) {
	unchanged := &retentionv1.PurgeJobStatus{Operations: []retentionv1.OperationStatus{{Collection: "events", Phase: retentionv1.PurgeJobRunning}}}
	changed := &retentionv1.PurgeJobStatus{Deleted: 5, Operations: []retentionv1.OperationStatus{
		{Collection: "orders", Phase: retentionv1.PurgeJobSucceeded, Deleted: 3, Batches: 1},
		{Collection: "events", Phase: retentionv1.PurgeJobRunning, Deleted: 2, Batches: 1},
	}}
	dropped := &retentionv1.PurgeJobStatus{Operations: []retentionv1.OperationStatus{{Collection: "events", Batches: 1, PartitionsDropped: 1}}}
	stall := outcome.Stall(retentionv1.ReasonSafetyLimitExceeded, "too many")
	abort := &executor.AbortError{Err: errors.New("conflict")}
	unavailable := fmt.Errorf("pg: %w", datastore.ErrUnavailable)
	for _, tc := range []struct {
		name   string
		status *retentionv1.PurgeJobStatus
		err    error
		want   string // nil, same, stall:<reason>, interrupted, wait:<reason>, failed
	}{
		{"nil", unchanged, nil, "nil"},
		{"a stall stays a stall", changed, stall, "same"},
		{"an abort stays an abort", changed, abort, "same"},
		{"transient stays transient", changed, unavailable, "same"},
		{"authentication is the caller's to judge", unchanged, datastore.ErrAuthentication, "same"},
		{"invalid before any change fails", unchanged, fmt.Errorf("%w: bad field", engine.ErrInvalid), "failed"},
		{"driver invalid before any change fails", unchanged, datastore.ErrInvalid, "failed"},
		{"not found before any change fails", unchanged, datastore.ErrNotFound, "failed"},
		{"invalid after changes interrupts", changed, datastore.ErrInvalid, "interrupted"},
		{"not found after changes interrupts", changed, datastore.ErrNotFound, "interrupted"},
		{"a dropped partition is a change", dropped, engine.ErrInvalid, "interrupted"},
		{"a hold not derived yet waits", changed, fmt.Errorf("hold h: %w", holds.ErrNotDerived), "wait:" + retentionv1.ReasonWaitingForLegalHold},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := executor.Classify(tc.status, tc.err)
			var failed *executor.FailedError
			var interrupted *executor.InterruptedError
			switch {
			case tc.want == "nil":
				if got != nil {
					t.Fatalf("got %v", got)
				}
			case tc.want == "same":
				if got != tc.err { //nolint:errorlint // the very same error, not one wrapping it
					t.Fatalf("got %v, want %v unchanged", got, tc.err)
				}
			case tc.want == "failed":
				if !errors.As(got, &failed) || !errors.Is(got, tc.err) || got.Error() != tc.err.Error() {
					t.Fatalf("got %v, want a FailedError", got)
				}
			case tc.want == "interrupted":
				st := outcome.AsStall(got)
				if !errors.As(got, &interrupted) || st == nil || st.Reason != retentionv1.ReasonInterrupted || !errors.Is(got, tc.err) {
					t.Fatalf("got %v, want an InterruptedError", got)
				}
			default:
				w := outcome.AsWait(got)
				if w == nil || "wait:"+w.Reason != tc.want || w.After <= 0 {
					t.Fatalf("got %v, want %s", got, tc.want)
				}
			}
			// Classifying again changes nothing.
			if again := executor.Classify(tc.status, got); again != got { //nolint:errorlint // the very same error
				t.Errorf("classified twice: %v, then %v", got, again)
			}
		})
	}
}

func TestInterruptedSaysWhatWasDone(t *testing.T) {
	status := &retentionv1.PurgeJobStatus{Deleted: 5, Operations: []retentionv1.OperationStatus{
		{Collection: "orders", Phase: retentionv1.PurgeJobSucceeded, Deleted: 3, Batches: 1},
		{Collection: "events", Phase: retentionv1.PurgeJobRunning, Deleted: 2, Batches: 1},
		{Collection: "audit", Phase: retentionv1.OperationHeld},
	}}
	got := executor.Classify(status, fmt.Errorf("%w: undefined column", datastore.ErrNotFound)).Error()
	want := "Stopped after changing records: not found in datastore: undefined column; done: orders (3 deleted, 0 anonymized), audit (0 deleted, 0 anonymized); not done: events (2 deleted, 0 anonymized so far). Fix the cause: the job retries every 30s and resumes where it stopped"
	if got != want {
		t.Errorf("message\n%s\nwant\n%s", got, want)
	}
}

func TestSealed(t *testing.T) {
	ctx := context.Background()
	// A job that sealed nothing reads nothing.
	if keys, err := executor.Sealed(ctx, &retentionv1.PurgeJobStatus{}, &memSeals{}); keys != nil || err != nil {
		t.Errorf("nothing sealed: %v %v", keys, err)
	}
	// What cannot be decoded is invalid.
	_, err := executor.Sealed(ctx, &retentionv1.PurgeJobStatus{SealedKeys: 1}, &memSeals{data: []byte("not gzip")})
	if !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("garbage: %v", err)
	}
	// A store that lost them says so.
	gone := outcome.Stall(retentionv1.ReasonSecretNotFound, "gone")
	if _, err := executor.Sealed(ctx, &retentionv1.PurgeJobStatus{SealedKeys: 1}, lostSeals{gone}); !errors.Is(err, gone) {
		t.Errorf("lost: %v", err)
	}
}

type lostSeals struct{ err error }

func (l lostSeals) Save(context.Context, []byte) error   { return l.err }
func (l lostSeals) Load(context.Context) ([]byte, error) { return nil, l.err }
