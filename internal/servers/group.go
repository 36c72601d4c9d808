package servers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
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
)

// errClosed is a start after Close.
var errClosed = errors.New("the servers are shutting down")

// Group is the servers started in one directory. It is safe for concurrent
// use.
type Group struct {
	dir string

	mu     sync.Mutex
	closed bool
	procs  []*process
	extras []string // files outside dir to remove at Close
}

// NewGroup returns a Group whose servers live below dir, which must exist
// (and, when running as root, be traversable by the postgres user).
func NewGroup(dir string) *Group { return &Group{dir: dir} }

// Dir is the Group's directory.
func (g *Group) Dir() string { return g.dir }

// Close stops every server, all at once, each with its graceful signal and
// then SIGKILL, and removes the files the Group made outside its directory.
// It leaves the directory to its owner. Nothing starts after Close; a second
// Close does nothing.
func (g *Group) Close() {
	g.mu.Lock()
	g.closed = true
	ps, files := g.procs, g.extras
	g.procs, g.extras = nil, nil
	g.mu.Unlock()

	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
	for _, f := range files {
		_ = os.Remove(f)
	}
}

// serverDir creates a fresh directory for one server.
func (g *Group) serverDir(name string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return "", errClosed
	}
	return os.MkdirTemp(g.dir, name+"-")
}

// removeAtClose registers a file outside the directory for removal.
func (g *Group) removeAtClose(path string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.extras = append(g.extras, path)
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
	env     []string // nil: the caller's environment
	cred    *syscall.Credential
	stopSig syscall.Signal // graceful stop signal; SIGKILL follows after stopTimeout
}

// start starts a long-running server and registers it for Close. It runs
// in its own process group with SIGKILL as its parent-death signal.
func (g *Group) start(s procSpec) (*process, error) {
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

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errClosed
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", s.path, err)
	}
	g.procs = append(g.procs, p)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// unregisterAndStop stops a process that failed to become ready.
func (g *Group) unregisterAndStop(p *process) {
	g.mu.Lock()
	for i, q := range g.procs {
		if q == p {
			g.procs = append(g.procs[:i], g.procs[i+1:]...)
			break
		}
	}
	g.mu.Unlock()
	p.stop()
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
	pgid := p.cmd.Process.Pid
	if !p.exited() {
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
	}
	// Children that outlived the leader (backends of a killed postmaster).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// waitReady polls probe until it succeeds, the process exits, ctx ends or
// readyTimeout passes. On failure the process is stopped and the error
// carries the tail of its log.
func (g *Group) waitReady(ctx context.Context, p *process, probe func(ctx context.Context) error) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		if p.exited() {
			return &startError{what: p.name + " exited during startup", err: p.waitErr, logPath: p.logPath}
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last := probe(pctx)
		cancel()
		if last == nil {
			return nil
		}
		if ctx.Err() != nil {
			g.unregisterAndStop(p)
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			g.unregisterAndStop(p)
			return &startError{what: fmt.Sprintf("%s not ready after %v", p.name, readyTimeout), err: last, logPath: p.logPath}
		}
		select {
		case <-p.done:
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}
