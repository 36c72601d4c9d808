// Package ha runs the manager binary as a platform team would for high
// availability: several replicas with leader election against a real
// kube-apiserver. It checks that only one holds the Lease, that SIGTERM (a
// rolling update) hands the Lease over at once, and that kill -9 hands it
// over once the lease expires.
package ha

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lethe-dev/lethe/internal/testenv"
)

const (
	leaseName = "lethe.retention.lethe.dev"
	namespace = "lethe-ha"
	// Short leases keep the kill -9 case quick; the retry period is the
	// manager's default.
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
	// A candidate tries to acquire every retryPeriod to 2.2 × retryPeriod
	// (client-go's JitterFactor 1.2).
	maxRetryWait = retryPeriod * 22 / 10
)

// manager is one running manager process.
type manager struct {
	name string
	cmd  *exec.Cmd

	mu       sync.Mutex
	acquired time.Time // when it logged that it acquired the Lease
	log      strings.Builder
	exited   chan struct{}
	exitedAt time.Time
}

func (m *manager) acquiredAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acquired
}

func (m *manager) logs() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.String()
}

func TestLeaderElectionHandsOver(t *testing.T) {
	started := time.Now()
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	dir := t.TempDir()
	binary := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", binary, env.Root)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubeconfig, err := env.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane started and manager built in %s", time.Since(started).Round(time.Millisecond))

	var all []*manager
	t.Cleanup(func() {
		for _, m := range all {
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
		if t.Failed() {
			for _, m := range all {
				t.Logf("log of %s:\n%s", m.name, tail(m.logs(), 4000))
			}
		}
	})
	start := func(name string) *manager {
		m := startManager(t, binary, kubeconfig, name)
		all = append(all, m)
		return m
	}

	a := start("a")
	waitAcquired(t, a, 30*time.Second)
	holderA := holder(t, env.Client)
	b := start("b")
	waitLogged(t, b, "Attempting to acquire leader lease", 30*time.Second)
	// b is a candidate: it must not take the Lease while a renews it.
	time.Sleep(leaseDuration + time.Second)
	if !b.acquiredAt().IsZero() || holder(t, env.Client) != holderA {
		t.Fatalf("b acquired the Lease while a held it (holder %q, a was %q)", holder(t, env.Client), holderA)
	}

	// SIGTERM: a stops its controllers, releases the Lease and exits; b
	// takes over at its next try.
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExited(t, a, 30*time.Second)
	waitAcquired(t, b, 10*time.Second)
	handover := b.acquiredAt().Sub(a.exitedAt)
	t.Logf("SIGTERM: a exited, b acquired the Lease %s later", handover.Round(time.Millisecond))
	if handover > 2*time.Second {
		t.Errorf("after SIGTERM of the leader the Lease was handed over %s after it exited; want at most 2s", handover)
	}
	if h := holder(t, env.Client); h == holderA || h == "" {
		t.Errorf("Lease holder after SIGTERM is %q; want b, not a (%q)", h, holderA)
	}
	if !strings.Contains(a.logs(), "Stopping and waiting for leader election runnables") {
		t.Logf("a did not log its orderly stop")
	}

	// kill -9: nothing releases the Lease; c takes over when it expires.
	c := start("c")
	waitLogged(t, c, "Attempting to acquire leader lease", 30*time.Second)
	time.Sleep(time.Second)
	holderB := holder(t, env.Client)
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitExited(t, b, 10*time.Second)
	// c saw the last renewal at most one try after it happened and acquires
	// at its first try after that sighting plus the lease duration.
	bound := leaseDuration + 2*maxRetryWait
	waitAcquired(t, c, bound+5*time.Second)
	takeover := c.acquiredAt().Sub(killed)
	t.Logf("kill -9: c acquired the Lease %s after b was killed (lease duration %s, bound %s)", takeover.Round(time.Millisecond), leaseDuration, bound)
	if takeover > bound {
		t.Errorf("after kill -9 of the leader the Lease was handed over after %s; want at most %s", takeover, bound)
	}
	if h := holder(t, env.Client); h == holderB || h == holderA || h == "" {
		t.Errorf("Lease holder after kill -9 is %q; want c", h)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExited(t, c, 30*time.Second)
	if h := holder(t, env.Client); h != "" {
		t.Errorf("Lease holder after the last manager stopped is %q; want it released", h)
	}
	t.Logf("whole test took %s", time.Since(started).Round(time.Millisecond))
}

// startManager runs the manager binary with leader election in namespace,
// digesting with a throwaway key, without metrics or probe listeners.
func startManager(t *testing.T, binary, kubeconfig, name string) *manager {
	t.Helper()
	cmd := exec.Command(binary,
		"--leader-elect",
		"--leader-election-namespace="+namespace,
		"--leader-election-lease-duration="+leaseDuration.String(),
		"--leader-election-renew-deadline="+renewDeadline.String(),
		"--leader-election-retry-period="+retryPeriod.String(),
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
	)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "LETHE_DIGEST_KEY="+strings.Repeat("k", 32))
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	m := &manager{name: name, cmd: cmd, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			now := time.Now()
			m.mu.Lock()
			m.log.WriteString(line + "\n")
			if m.acquired.IsZero() && strings.Contains(line, "Successfully acquired lease") {
				m.acquired = now
			}
			m.mu.Unlock()
		}
	}()
	go func() {
		_ = cmd.Wait()
		m.mu.Lock()
		m.exitedAt = time.Now()
		m.mu.Unlock()
		_ = pw.Close()
		close(m.exited)
	}()
	return m
}

func waitAcquired(t *testing.T, m *manager, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for m.acquiredAt().IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("manager %s did not acquire the Lease within %s", m.name, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitLogged(t *testing.T, m *manager, what string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(m.logs(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("manager %s did not log %q within %s", m.name, what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitExited(t *testing.T, m *manager, timeout time.Duration) {
	t.Helper()
	select {
	case <-m.exited:
	case <-time.After(timeout):
		t.Fatalf("manager %s did not exit within %s", m.name, timeout)
	}
}

// holder is the Lease's holderIdentity ("" when released or absent).
func holder(t *testing.T, c client.Client) string {
	t.Helper()
	var l coordinationv1.Lease
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: leaseName}, &l); err != nil {
		t.Fatalf("reading the Lease: %v", err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("…%s", s[len(s)-n:])
}
