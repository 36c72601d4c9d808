package demo

import (
	"context"
	"fmt"
	"os"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// openLog opens the log file of a run. The manager (a process of its own,
// internal/managerproc) writes its log there, and so do controller-runtime
// and client-go in the demo's process (envtest's log, the go-redis dial
// retries of the demo's probes) instead of the terminal.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	logger := zap.New(zap.WriteTo(f), zap.UseDevMode(false))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	redis.SetLogger(redisLog{logger.WithName("go-redis")})
	return f, nil
}

type redisLog struct{ l logr.Logger }

func (r redisLog) Printf(_ context.Context, format string, args ...any) {
	r.l.Info(fmt.Sprintf(format, args...))
}
