package managerproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"

	"github.com/lethe-dev/lethe/internal/servers"
)

const (
	// readyTimeout bounds how long the manager may take to answer its
	// readiness probe: the process starts in well under a second, but a
	// loaded shared machine is slow.
	readyTimeout = time.Minute
	// stopTimeout bounds a graceful stop (in-flight reconciles finish;
	// controller-runtime itself gives up after 30s) before SIGKILL.
	stopTimeout = time.Minute
	// startAttempts is how often a start is retried when a probe or metrics
	// port picked free was taken in between.
	startAttempts = 3
)

// Options say how to run the manager.
type Options struct {
	// Config is the API server and the identity the manager uses; it is
	// written to a kubeconfig. Its QPS and Burst, when set, become
	// --kube-api-qps and --kube-api-burst.
	Config *rest.Config
	// DigestKey is passed as LETHE_DIGEST_KEY (at least 32 bytes); empty: a
	// random one.
	DigestKey []byte
	// Namespaces become --watch-namespaces (empty: every namespace).
	Namespaces []string
	// Args are further flags of main.go ("--purgejob-concurrency=4"); they
	// come last, so they win over the ones Start sets.
	Args []string
	// Log receives the manager's stdout and stderr (JSON log lines); nil
	// discards them.
	Log io.Writer
	// Metrics serves the Prometheus endpoint on a free loopback port
	// (Manager.MetricsURL); without it metrics are off.
	Metrics bool
}

// Manager is a running manager process.
type Manager struct {
	// MetricsURL is http://127.0.0.1:port/metrics with Options.Metrics, else "".
	MetricsURL string

	cmd      *exec.Cmd
	dir      string // holds the kubeconfig; removed by Stop
	tail     *tailBuffer
	done     chan struct{} // closed when the process has exited
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

// Start builds the manager if needed (Build), starts it and waits until it
// answers its readiness probe.
func Start(ctx context.Context, o Options) (*Manager, error) {
	if o.Config == nil {
		return nil, errors.New("managerproc: Options.Config is required")
	}
	bin, err := Build(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lethe-manager-")
	if err != nil {
		return nil, err
	}
	kubeconfig, err := writeKubeconfig(dir, o.Config)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	key := string(o.DigestKey)
	if key == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		key = hex.EncodeToString(b)
	}
	env := append(os.Environ(), "KUBECONFIG="+kubeconfig, "LETHE_DIGEST_KEY="+key)

	for attempt := 1; ; attempt++ {
		m, err := start(ctx, bin, dir, env, o)
		if err == nil {
			return m, nil
		}
		var se *startError
		if !errors.As(err, &se) || !se.portInUse() || attempt == startAttempts {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
}

// start runs the binary once, on fresh ports.
func start(ctx context.Context, bin, dir string, env []string, o Options) (*Manager, error) {
	probePort, err := servers.FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--leader-elect=false",
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		"--metrics-bind-address=0",
	}
	m := &Manager{dir: dir, tail: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	if o.Metrics {
		port, err := servers.FreePort()
		if err != nil {
			return nil, err
		}
		args[2] = "--metrics-bind-address=127.0.0.1:" + strconv.Itoa(port)
		m.MetricsURL = "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
	}
	if o.Config.QPS > 0 {
		args = append(args, "--kube-api-qps="+strconv.FormatFloat(float64(o.Config.QPS), 'f', -1, 32))
	}
	if o.Config.Burst > 0 {
		args = append(args, "--kube-api-burst="+strconv.Itoa(o.Config.Burst))
	}
	if len(o.Namespaces) > 0 {
		args = append(args, "--watch-namespaces="+strings.Join(o.Namespaces, ","))
	}
	args = append(args, o.Args...)

	out := io.Writer(m.tail)
	if o.Log != nil {
		out = io.MultiWriter(o.Log, m.tail)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: a terminal's Ctrl-C reaches the caller, which
	// stops the manager in order; a caller that is killed takes it along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	m.cmd = cmd
	go func() {
		m.waitErr = cmd.Wait()
		close(m.done)
	}()
	if err := m.waitReady(ctx, "http://127.0.0.1:"+strconv.Itoa(probePort)+"/readyz"); err != nil {
		m.kill()
		return nil, err
	}
	return m, nil
}

// waitReady polls the readiness probe until it answers 200, the process
// exits, ctx ends or readyTimeout passes.
func (m *Manager) waitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-m.done:
			return &startError{what: "the manager exited during startup", err: m.waitErr, tail: m.tail.String()}
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return &startError{what: fmt.Sprintf("the manager did not answer %s within %v", url, readyTimeout), tail: m.tail.String()}
		}
		select {
		case <-m.done:
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Pid is the manager's process id (for reading /proc/<pid>/status).
func (m *Manager) Pid() int { return m.cmd.Process.Pid }

// Done is closed when the process has exited.
func (m *Manager) Done() <-chan struct{} { return m.done }

// Stop stops the manager gracefully (SIGTERM: in-flight reconciles finish),
// killing it after a minute, and removes its kubeconfig. It returns an error
// when the manager exited on its own before, or did not exit cleanly.
// Later calls return the first outcome.
func (m *Manager) Stop() error {
	m.stopOnce.Do(func() {
		defer os.RemoveAll(m.dir)
		select {
		case <-m.done:
			exit := m.waitErr
			if exit == nil {
				exit = errors.New("exit status 0")
			}
			m.stopErr = fmt.Errorf("the manager had exited on its own (%w); last lines of its log:\n%s", exit, servers.Tail(m.tail.String(), 20))
			return
		default:
		}
		_ = syscall.Kill(m.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(stopTimeout):
			m.kill()
			m.stopErr = fmt.Errorf("the manager did not stop within %v of SIGTERM; killed it", stopTimeout)
			return
		}
		if m.waitErr != nil {
			m.stopErr = fmt.Errorf("the manager exited with %w on SIGTERM; last lines of its log:\n%s", m.waitErr, servers.Tail(m.tail.String(), 20))
		}
	})
	return m.stopErr
}

// Kill ends the manager at once (SIGKILL: no graceful stop, as when its
// node dies) and removes its kubeconfig. A manager that waits for caches
// it may not list does not stop on SIGTERM, so a test of that kills it.
func (m *Manager) Kill() {
	m.stopOnce.Do(func() {
		m.kill()
		_ = os.RemoveAll(m.dir)
		m.stopErr = errors.New("the manager was killed")
	})
}

// kill ends the process at once and waits for it.
func (m *Manager) kill() {
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.done
}

// startError is a failed start with the tail of the manager's output.
type startError struct {
	what string
	err  error
	tail string
}

func (e *startError) Error() string {
	msg := e.what
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg + "; last lines of its log:\n" + servers.Tail(e.tail, 30)
}

func (e *startError) Unwrap() error { return e.err }

// portInUse reports whether the manager could not bind a port.
func (e *startError) portInUse() bool {
	return strings.Contains(strings.ToLower(e.tail), "address already in use")
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
