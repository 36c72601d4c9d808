package testharness

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/servers"
)

// dirPrefix names the per-process temp directory; the pid follows it so a
// later run can remove directories of dead processes (servers.SweepStale).
const dirPrefix = "lethe-testharness-"

var (
	mainCalled atomic.Bool

	mu       sync.Mutex
	closed   bool
	group    *servers.Group // the servers of this test process, made on first use
	stopOnce sync.Once
)

// Main runs the tests of a package, then stops every server the harness
// started and removes their directories, and exits with m.Run's code. Call it
// from TestMain. SIGINT and SIGTERM also stop the servers before exiting.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit: it returns m.Run's code after stopping the
// servers, so a TestMain can stop what it started itself (a control plane)
// before exiting.
func Run(m *testing.M) int {
	mainCalled.Store(true)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "testharness: %v: stopping test servers\n", sig)
		shutdown()
		code := 1
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		os.Exit(code)
	}()
	code := m.Run()
	signal.Stop(sigs)
	shutdown()
	return code
}

// shutdown stops every server and removes the temp directory. It is
// idempotent; servers cannot be started afterwards.
func shutdown() {
	stopOnce.Do(func() {
		mu.Lock()
		closed = true
		g := group
		mu.Unlock()
		if g == nil {
			return
		}
		g.Close()
		if err := os.RemoveAll(g.Dir()); err != nil {
			fmt.Fprintf(os.Stderr, "testharness: removing %s: %v\n", g.Dir(), err)
		}
	})
}

// theGroup returns the Group of this test process, creating its temp
// directory (and sweeping those of dead test processes) on first use.
func theGroup() (*servers.Group, error) {
	mu.Lock()
	defer mu.Unlock()
	if closed {
		return nil, errors.New("the test harness is shutting down")
	}
	if group == nil {
		parent := servers.TempParent()
		servers.SweepStale(parent, dirPrefix)
		d, err := os.MkdirTemp(parent, fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
		if err != nil {
			return nil, err
		}
		// Servers running as another user (PostgreSQL as "postgres") must
		// be able to traverse it.
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, err
		}
		group = servers.NewGroup(d)
	}
	return group, nil
}

// requireMain fails the test when the package has no TestMain calling Main:
// without it the servers and their directories would outlive the tests.
func requireMain(tb testing.TB) {
	tb.Helper()
	if !mainCalled.Load() {
		tb.Fatalf("testharness: this package has no TestMain calling testharness.Main; add\n\n" +
			"\tfunc TestMain(m *testing.M) { testharness.Main(m) }\n\n" +
			"so the test servers are stopped and their directories removed when the tests end")
	}
}

// lazy starts a shared server once per test process and remembers the
// outcome, so a failed start fails every test that needs it without trying
// again (and waiting again).
type lazy[T any] struct {
	once sync.Once
	v    T
	err  error
	took time.Duration
}

func (l *lazy[T]) get(tb testing.TB, what string, start func() (T, error)) T {
	tb.Helper()
	started := false
	l.once.Do(func() {
		started = true
		t0 := time.Now()
		l.v, l.err = start()
		l.took = time.Since(t0)
	})
	if l.err != nil {
		tb.Fatalf("testharness: %s: %v", what, l.err)
	}
	if started {
		tb.Logf("testharness: %s ready in %v", what, l.took.Round(time.Millisecond))
	}
	return l.v
}

// orSet adds to a missing server's error how to use one that already runs.
func orSet(err error, variable string) error {
	var missing *servers.MissingError
	if errors.As(err, &missing) {
		return fmt.Errorf("%w (or set %s)", err, variable)
	}
	return err
}

// sequence numbers the databases and buckets handed out by this process.
var sequence atomic.Int64

// uniqueName returns a lower-case name made of prefix, a sequence number and
// as much of the test's name as fits in max characters, using only
// characters from [a-z0-9] and sep.
func uniqueName(tb testing.TB, prefix string, sep byte, max int) string {
	base := fmt.Sprintf("%s%c%d%c", prefix, sep, sequence.Add(1), sep)
	var b strings.Builder
	lastSep := true
	for _, r := range strings.ToLower(tb.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			lastSep = false
		case !lastSep:
			b.WriteByte(sep)
			lastSep = true
		}
	}
	name := base + b.String()
	if len(name) > max {
		name = name[:max]
	}
	return strings.TrimRight(name, string(sep))
}

// fmtEnvErr says which variable named a server that could not be used.
func fmtEnvErr(variable string, err error) error {
	return fmt.Errorf("using the server of %s: %w", variable, err)
}
