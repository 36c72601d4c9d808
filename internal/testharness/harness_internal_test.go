package testharness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

func TestStartFailureCarriesLogTailAndDetectsPortCollision(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "server.log")
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProcess(procSpec{
		name: "fake", path: sh, dir: dir, logPath: logPath,
		args: []string{"-c", "echo booting; echo 'bind: Address already in use' >&2; exit 3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = p.waitReady(func(context.Context) error { return errors.New("not listening") })
	var se *startError
	if !errors.As(err, &se) {
		t.Fatalf("waitReady = %v, want a *startError", err)
	}
	msg := err.Error()
	for _, want := range []string{"fake exited during startup", "exit status 3", "booting", "Address already in use"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if !se.portInUse() {
		t.Errorf("port collision not detected in %q", msg)
	}
}

func TestStartWithRetryRetriesOnlyPortCollisions(t *testing.T) {
	dir := t.TempDir()
	inUse := filepath.Join(dir, "in-use.log")
	if err := os.WriteFile(inUse, []byte("FATAL: could not bind: Address already in use\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.log")
	if err := os.WriteFile(other, []byte("FATAL: bad config\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	calls := 0
	got, err := startWithRetry(func(port int) (int, error) {
		calls++
		if calls < startAttempts {
			return 0, &startError{what: "collision", logPath: inUse}
		}
		return port, nil
	})
	if err != nil || got == 0 || calls != startAttempts {
		t.Fatalf("startWithRetry = %d, %v after %d calls; want a port after %d calls", got, err, calls, startAttempts)
	}

	calls = 0
	_, err = startWithRetry(func(int) (int, error) {
		calls++
		return 0, &startError{what: "broken", logPath: other}
	})
	if err == nil || calls != 1 {
		t.Fatalf("startWithRetry = %v after %d calls; want the error after 1 call", err, calls)
	}
}

func TestUniqueNameIsValidForDatabasesAndBuckets(t *testing.T) {
	t.Run("Some Test/with spaces & UPPER-case_and_a_very_long_name_that_goes_on_and_on_and_on", func(t *testing.T) {
		db := uniqueName(t, "lethe", '_', 63)
		if !regexp.MustCompile(`^lethe_[0-9]+_[a-z0-9_]*[a-z0-9]$`).MatchString(db) || len(db) > 63 {
			t.Errorf("database name %q", db)
		}
		bucket := uniqueName(t, "lethe", '-', 63)
		if !regexp.MustCompile(`^lethe-[0-9]+-[a-z0-9-]*[a-z0-9]$`).MatchString(bucket) || len(bucket) > 63 {
			t.Errorf("bucket name %q", bucket)
		}
		if uniqueName(t, "lethe", '_', 63) == db {
			t.Errorf("two calls returned %q", db)
		}
	})
}

func TestSweepStaleRemovesOnlyDirsOfDeadProcesses(t *testing.T) {
	parent := t.TempDir()
	// A process that has exited: its pid is free (until reused).
	deadPid := 0
	for range 5 {
		cmd := exec.Command("true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(cmd.Process.Pid, 0); errors.Is(err, syscall.ESRCH) {
			deadPid = cmd.Process.Pid
			break
		}
	}
	if deadPid == 0 {
		t.Fatal("could not find the pid of an exited process")
	}
	dead := filepath.Join(parent, fmt.Sprintf("%s%d-123", dirPrefix, deadPid))
	alive := filepath.Join(parent, fmt.Sprintf("%s%d-456", dirPrefix, os.Getppid()))
	unrelated := filepath.Join(parent, "something-else")
	for _, d := range []string{dead, alive, unrelated} {
		if err := os.MkdirAll(filepath.Join(d, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sweepStale(parent)
	for d, wantExist := range map[string]bool{dead: false, alive: true, unrelated: true} {
		_, err := os.Stat(d)
		if exists := err == nil; exists != wantExist {
			t.Errorf("%s exists = %v, want %v", filepath.Base(d), exists, wantExist)
		}
	}
}
