package managerproc_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/lethe-dev/lethe/internal/managerproc"
	"github.com/lethe-dev/lethe/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestManagerRunsUnderRBACAndStopsOnSIGTERM(t *testing.T) {
	cfg, err := env.ManagerConfig()
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.Logs
	m, err := managerproc.Start(context.Background(), managerproc.Options{Config: cfg, Log: &logs, Metrics: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	// Its controllers start workers once their caches synced, which needs
	// the list and watch rights of config/rbac.
	waitFor(t, "the manager's controllers to start workers", func() bool { return strings.Contains(logs.String(), "Starting workers") })
	mfs, err := m.Gather(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mfs["controller_runtime_active_workers"]; !ok {
		t.Errorf("the manager exports no controller_runtime_active_workers")
	}
	if err := m.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-m.Done():
	default:
		t.Fatal("the process still runs after Stop")
	}
	if !strings.Contains(logs.String(), `"starting manager"`) {
		t.Errorf("the log lacks main.go's \"starting manager\":\n%s", logs.String())
	}
	if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
		t.Errorf("the manager under config/rbac met a forbidden:\n%s", logs.String())
	}
	if resp, err := http.Get(m.MetricsURL); err == nil {
		resp.Body.Close()
		t.Errorf("metrics still served after Stop")
	}
}

// The kubeconfig carries the identity of the rest.Config: a user without
// rights is refused, where the admin would not be.
func TestManagerRunsAsTheConfigsUser(t *testing.T) {
	cfg, err := env.UserConfig("nobody-in-particular")
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.Logs
	m, err := managerproc.Start(context.Background(), managerproc.Options{Config: cfg, Log: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	waitFor(t, "a forbidden in the log", func() bool {
		return strings.Contains(logs.String(), `User \"nobody-in-particular\" cannot list`)
	})
}

func TestStartFailsWithTheManagersWords(t *testing.T) {
	cfg, err := env.ManagerConfig()
	if err != nil {
		t.Fatal(err)
	}
	_, err = managerproc.Start(context.Background(), managerproc.Options{Config: cfg, Args: []string{"--datastore-allowed-networks=not-a-network"}})
	if err == nil || !strings.Contains(err.Error(), "exited during startup") || !strings.Contains(err.Error(), "invalid --datastore-allowed-networks") {
		t.Fatalf("Start = %v, want an error quoting the manager's log", err)
	}
}

func TestStartRefusesWhatAKubeconfigCannotCarry(t *testing.T) {
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return rt }
	if _, err := managerproc.Start(context.Background(), managerproc.Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "WrapTransport") {
		t.Fatalf("Start = %v, want a refusal of WrapTransport", err)
	}
}
