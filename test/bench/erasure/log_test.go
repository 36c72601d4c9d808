package erasure

import (
	"os"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// logDiscard keeps the benchmark's output to its results; LETHE_BENCH_LOG=1
// shows the manager's log on stderr.
func logDiscard() logr.Logger {
	if os.Getenv("LETHE_BENCH_LOG") != "" {
		return zap.New(zap.WriteTo(os.Stderr))
	}
	return logr.Discard()
}
