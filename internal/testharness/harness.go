package testharness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// readyTimeout bounds how long a started server may take to accept
	// connections. Servers are ready in about a second on an idle machine;
	// on a loaded shared one (load 25 on 2 cores) ten seconds were seen, so
	// the bound is generous: it only matters when something is wrong.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds a graceful stop before SIGKILL.
	stopTimeout = 5 * time.Second
	// startAttempts is how often a start is retried when the free port we
	// picked was taken by someone else in between.
	startAttempts = 3
	// dirPrefix names the per-process temp directory; the pid follows it so
	// a later run can remove directories of dead processes.
	dirPrefix = "lethe-testharness-"
)

var (
	mainCalled atomic.Bool

	mu       sync.Mutex
	closed   bool
	procs    []*process
	baseDir  string   // per-process temp dir holding every server's dir
	extras   []string // files outside baseDir to remove at shutdown
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
		ps := procs
		procs = nil
		dir := baseDir
		files := extras
		mu.Unlock()

		var wg sync.WaitGroup
		for _, p := range ps {
			wg.Add(1)
			go func() { defer wg.Done(); p.stop() }()
		}
		wg.Wait()
		for _, f := range files {
			_ = os.Remove(f)
		}
		if dir != "" {
			if err := os.RemoveAll(dir); err != nil {
				fmt.Fprintf(os.Stderr, "testharness: removing %s: %v\n", dir, err)
			}
		}
	})
}

// removeAtShutdown registers a file outside the temp directory for removal.
func removeAtShutdown(path string) {
	mu.Lock()
	defer mu.Unlock()
	extras = append(extras, path)
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

// serverDir creates a fresh directory for one server under the per-process
// temp directory, creating that one (and sweeping stale ones) first.
func serverDir(name string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if closed {
		return "", errors.New("the test harness is shutting down")
	}
	if baseDir == "" {
		parent := tempParent()
		sweepStale(parent)
		d, err := os.MkdirTemp(parent, fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
		if err != nil {
			return "", err
		}
		// Servers running as another user (PostgreSQL as "postgres") must
		// be able to traverse it.
		if err := os.Chmod(d, 0o711); err != nil {
			return "", err
		}
		baseDir = d
	}
	return os.MkdirTemp(baseDir, name+"-")
}

// tempParent is os.TempDir unless one of its ancestors is not traversable by
// other users (TMPDIR under /root, say), in which case it is /tmp.
func tempParent() string {
	d := os.TempDir()
	for p := d; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if p == filepath.Dir(p) {
			return d
		}
	}
}

// sweepStale removes directories left by test processes that died without
// cleaning up (killed by go test -timeout, say). Only directories of this
// user whose process no longer exists are removed.
func sweepStale(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), dirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue
		}
		stale := filepath.Join(parent, e.Name())
		removeOrphanedShm(stale)
		_ = os.RemoveAll(stale)
	}
}

// removeOrphanedShm removes the small System V shared memory segment of a
// PostgreSQL server that was SIGKILLed (its postmaster.pid names it), which
// would otherwise stay until reboot.
func removeOrphanedShm(dir string) {
	pidFiles, _ := filepath.Glob(filepath.Join(dir, "postgres-*", "data", "postmaster.pid"))
	for _, pf := range pidFiles {
		b, err := os.ReadFile(pf)
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		if len(lines) < 7 {
			continue
		}
		f := strings.Fields(lines[6]) // "shmkey shmid"
		if len(f) != 2 {
			continue
		}
		key, err1 := strconv.ParseInt(f[0], 10, 64)
		id, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			continue
		}
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil || int64(desc.Perm.Key) != key {
			continue // gone already, or the id now belongs to someone else
		}
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
}

// process is one running server.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	stopSig syscall.Signal
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// procSpec describes how to run a server.
type procSpec struct {
	name    string   // for messages: "PostgreSQL"
	path    string   // binary
	args    []string // arguments
	dir     string   // working directory
	logPath string   // stdout and stderr are appended here
	env     []string // nil: the test's environment
	cred    *syscall.Credential
	stopSig syscall.Signal // graceful stop signal; SIGKILL follows after stopTimeout
}

// startProcess starts a long-running server and registers it for shutdown.
// It runs in its own process group (so a terminal's Ctrl-C reaches the test
// binary only, which then stops the servers in order) with SIGKILL as its
// parent-death signal (so a test binary that is killed takes it along).
func startProcess(s procSpec) (*process, error) {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(s.path, s.args...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: s.cred,
	}
	p := &process{name: s.name, cmd: cmd, logPath: s.logPath, stopSig: s.stopSig, done: make(chan struct{})}

	mu.Lock()
	defer mu.Unlock()
	if closed {
		return nil, errors.New("the test harness is shutting down")
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", s.path, err)
	}
	procs = append(procs, p)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop stops the process group gracefully, then kills it.
func (p *process) stop() {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	sig := p.stopSig
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived the leader (backends of a killed postmaster).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// unregisterAndStop stops a process that failed to become ready.
func (p *process) unregisterAndStop() {
	mu.Lock()
	for i, q := range procs {
		if q == p {
			procs = append(procs[:i], procs[i+1:]...)
			break
		}
	}
	mu.Unlock()
	p.stop()
}

// waitReady polls probe until it succeeds, the process exits or readyTimeout
// passes. On failure the process is stopped and the error carries the tail
// of its log.
func (p *process) waitReady(probe func(ctx context.Context) error) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		if p.exited() {
			return &startError{what: p.name + " exited during startup", err: p.waitErr, logPath: p.logPath}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = probe(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.unregisterAndStop()
			return &startError{what: fmt.Sprintf("%s not ready after %v", p.name, readyTimeout), err: last, logPath: p.logPath}
		}
		select {
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startError is a failed start, with the server's log tail.
type startError struct {
	what    string
	err     error
	logPath string
}

func (e *startError) Error() string {
	msg := e.what
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	if e.logPath != "" {
		msg += "\n--- last lines of " + e.logPath + " ---\n" + logTail(e.logPath, 30)
	}
	return msg
}

func (e *startError) Unwrap() error { return e.err }

// portInUse reports whether a start failed because its port was taken.
func (e *startError) portInUse() bool {
	return strings.Contains(strings.ToLower(logTail(e.logPath, 50)), "address already in use")
}

// startWithRetry runs start with fresh free ports until it succeeds or fails
// for a reason other than a port collision.
func startWithRetry[T any](start func(port int) (T, error)) (T, error) {
	var zero T
	var err error
	for range startAttempts {
		var port int
		port, err = freePort()
		if err != nil {
			return zero, err
		}
		var v T
		v, err = start(port)
		if err == nil {
			return v, nil
		}
		var se *startError
		if !errors.As(err, &se) || !se.portInUse() {
			return zero, err
		}
	}
	return zero, err
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the last n lines of a file.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// runLogged runs a short-lived command (initdb, mariadb-install-db) with its
// output appended to logPath; the error carries the log tail.
func runLogged(name string, cmd *exec.Cmd, logPath string) error {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "+ %s\n", strings.Join(cmd.Args, " "))
	if cmd.Stdout != nil {
		cmd.Stdout = io.MultiWriter(cmd.Stdout, logf)
	} else {
		cmd.Stdout = logf
	}
	cmd.Stderr = logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Run(); err != nil {
		return &startError{what: name + " failed", err: err, logPath: logPath}
	}
	return nil
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
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

// lookBinary finds the first existing executable among names in PATH and
// then among the given absolute paths.
func lookBinary(names []string, paths ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// cleanEnv is the test's environment without variables that would make a
// server read a developer's configuration.
func cleanEnv(dropPrefixes ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		drop := false
		for _, p := range dropPrefixes {
			if strings.HasPrefix(kv, p) {
				drop = true
				break
			}
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C", "LANG=C")
}
