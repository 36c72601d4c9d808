package datastore

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestLockTimeoutClass proves a lock timeout is ErrLockTimeout and still
// ErrUnavailable (retry later), that LockWait names the limit in the
// message of the *Error it finds (also through wrapping), and leaves other
// errors alone.
func TestLockTimeoutClass(t *testing.T) {
	e := &Error{Driver: "postgres", Op: `count on "t"`, Kind: KindLockTimeout, Reason: "lock timeout", SQLState: "55P03"}
	wrapped := fmt.Errorf("step: %w", e)
	if err := LockWait(wrapped, 500*time.Millisecond); err != wrapped { //nolint:errorlint // the same error, not an equal one
		t.Fatalf("LockWait returned another error: %v", err)
	}
	for _, class := range []error{ErrLockTimeout, ErrUnavailable} {
		if !errors.Is(wrapped, class) {
			t.Errorf("not %v: %v", class, wrapped)
		}
	}
	want := `postgres: count on "t": lock wait timed out: lock not granted within lockTimeout 500ms (SQLSTATE 55P03)`
	if got := e.Error(); got != want {
		t.Errorf("message\n got %s\nwant %s", got, want)
	}
	other := &Error{Driver: "postgres", Op: "x", Kind: KindStatementTimeout, Reason: "statement timeout"}
	if LockWait(other, time.Second); other.Reason != "statement timeout" || errors.Is(other, ErrLockTimeout) {
		t.Errorf("a statement timeout was changed or classed as a lock timeout: %v", other)
	}
}
