// Package hostile applies mistaken and hostile manifests to Lethe as a
// namespace user would: a user with edit rights on Lethe's kinds and no
// rights on Secrets, against a real kube-apiserver and real PostgreSQL,
// MariaDB, Redis and S3 stores holding sentinel tables, keys and objects.
// Each case is either rejected at admission (the message is asserted) or
// accepted and then Stalled with a reason (asserted), with the manager binary
// running under the shipped namespaced Role (config/rbac-namespaced) and
// --watch-namespaces; after all cases the sentinels' checksums are unchanged.
package hostile

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/testharness"
)

var env *testenv.Env

// managerLogs keeps everything the manager process logs (and what
// controller-runtime and client-go log in the test process), so the suite
// can prove the manager never met a "forbidden".
var managerLogs testenv.Logs

func TestMain(m *testing.M) {
	logger := zap.New(zap.WriteTo(io.Writer(&managerLogs)), zap.UseDevMode(false))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := testharness.Run(m)
	_ = env.Stop()
	if code != 0 {
		// The manager's log explains a stalled case that was not expected.
		logs := managerLogs.String()
		if len(logs) > 20000 {
			logs = "…" + logs[len(logs)-20000:]
		}
		fmt.Fprintln(os.Stderr, "manager log (tail):\n"+strings.TrimSpace(logs))
	}
	os.Exit(code)
}

func ctx() context.Context { return context.Background() }
