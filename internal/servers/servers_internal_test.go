package servers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartFailureCarriesLogTailAndDetectsPortCollision(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "server.log")
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	g := NewGroup(dir)
	defer g.Close()
	p, err := g.start(procSpec{
		name: "fake", path: sh, dir: dir, logPath: logPath,
		args: []string{"-c", "echo booting; echo 'bind: Address already in use' >&2; exit 3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = g.waitReady(context.Background(), p, func(context.Context) error { return errors.New("not listening") })
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

func TestSweepStaleRemovesOnlyDirsOfDeadProcesses(t *testing.T) {
	const dirPrefix = "lethe-testharness-"
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
	SweepStale(parent, dirPrefix)
	for d, wantExist := range map[string]bool{dead: false, alive: true, unrelated: true} {
		_, err := os.Stat(d)
		if exists := err == nil; exists != wantExist {
			t.Errorf("%s exists = %v, want %v", filepath.Base(d), exists, wantExist)
		}
	}
}

func TestCloseStopsEveryServerAndRefusesNewOnes(t *testing.T) {
	dir := t.TempDir()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	g := NewGroup(dir)
	var ps []*process
	for i := range 2 {
		p, err := g.start(procSpec{
			name: fmt.Sprintf("sleeper %d", i), path: sh, dir: dir, logPath: filepath.Join(dir, "sleeper.log"),
			// The child sleep shares the group: Close must reach it too.
			args: []string{"-c", "sleep 300 & wait"}, stopSig: syscall.SIGTERM,
		})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	g.Close()
	for _, p := range ps {
		if !p.exited() {
			t.Errorf("%s still runs after Close", p.name)
		}
		// The killed sleep is reaped by init a moment later.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err := syscall.Kill(-p.cmd.Process.Pid, 0)
			if errors.Is(err, syscall.ESRCH) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("process group of %s still has members after Close (%v)", p.name, err)
				break
			}
		}
	}
	if _, err := g.start(procSpec{name: "late", path: sh, dir: dir, logPath: filepath.Join(dir, "late.log"), args: []string{"-c", "true"}}); !errors.Is(err, errClosed) {
		t.Errorf("start after Close = %v, want errClosed", err)
	}
	if _, err := g.serverDir("late"); !errors.Is(err, errClosed) {
		t.Errorf("serverDir after Close = %v, want errClosed", err)
	}
}
