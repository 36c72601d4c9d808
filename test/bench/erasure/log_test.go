package erasure

import (
	"io"
	"os"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// logDiscard keeps the benchmark's output to its results; LETHE_BENCH_LOG=1
// shows the test process's log on stderr.
func logDiscard() logr.Logger {
	if os.Getenv("LETHE_BENCH_LOG") != "" {
		return zap.New(zap.WriteTo(os.Stderr))
	}
	return logr.Discard()
}

// managerLog is where the manager process logs: nowhere, or stderr with
// LETHE_BENCH_LOG=1.
func managerLog() io.Writer {
	if os.Getenv("LETHE_BENCH_LOG") != "" {
		return os.Stderr
	}
	return nil
}
