package demo

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lethe-dev/lethe/controllers"
)

// manager is the Lethe manager running in the demo's process, wired as
// main.go wires it (the same controllers, the same datastore drivers), with
// its logs in a file.
type manager struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// openLog sends controller-runtime's and client-go's logs (envtest's and
// the manager's) to a file instead of the terminal.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	logger := zap.New(zap.WriteTo(f), zap.UseDevMode(false))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	// go-redis logs dial retries (the demo's probes, the driver's) itself.
	redis.SetLogger(redisLog{logger.WithName("go-redis")})
	return f, nil
}

type redisLog struct{ l logr.Logger }

func (r redisLog) Printf(_ context.Context, format string, args ...any) {
	r.l.Info(fmt.Sprintf(format, args...))
}

// startManager starts the manager; it logs to f and closes f when it stops.
func startManager(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, f *os.File) (*manager, error) {
	logPath := f.Name()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		LeaderElection:         false,
		// A second run in the same process (the smoke test) registers the
		// controllers again.
		Controller: config.Controller{SkipNameValidation: ptr(true)},
		Client:     client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return nil, err
	}
	// The key of the subject digests in status, receipts and the erasure
	// ledger (main.go reads it from a mounted Secret): a fresh one for a
	// throwaway cluster.
	deps := controllers.NewDeps(mgr, []byte(randomHex(32)))
	pool := deps.Pool
	// The defaults of main.go's flags.
	opts := controllers.Options{DataStoreConcurrency: 2, PolicyConcurrency: 2, PurgeJobConcurrency: 4, PurgeJobSlice: 10 * time.Second}
	if err := controllers.Setup(mgr, deps, opts); err != nil {
		return nil, fmt.Errorf("setting up the controllers: %w", err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	m := &manager{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		defer pool.Close()
		m.err = mgr.Start(mctx)
	}()
	select {
	case <-mgr.Elected(): // no leader election: closed once the manager runs
		return m, nil
	case <-m.done:
		return nil, fmt.Errorf("the manager stopped at once: %w (see %s)", m.err, logPath)
	case <-ctx.Done():
		m.stop()
		return nil, ctx.Err()
	case <-time.After(time.Minute):
		m.stop()
		return nil, fmt.Errorf("the manager did not start within a minute (see %s)", logPath)
	}
}

// stop stops the manager gracefully: in-flight reconciles finish.
func (m *manager) stop() {
	m.cancel()
	<-m.done
}

func ptr[T any](v T) *T { return &v }
