package erasure

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// cpuByProcess sums user+system CPU time of this machine's processes by
// command name (kube-apiserver, etcd, postgres, erasure.test, ...), from
// /proc. The difference of two samples says where a burst's CPU went.
func cpuByProcess() map[string]time.Duration {
	out := map[string]time.Duration{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range dirs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(raw)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		name := s[open+1 : closing]
		f := strings.Fields(s[closing+1:])
		if len(f) < 13 {
			continue
		}
		// Fields after the name: state(0) ... utime(11) stime(12), in clock
		// ticks (100 per second on Linux).
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[name] += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return out
}

// logCPU reports the CPU milliseconds per request each process spent
// between two samples, biggest first (processes that ended in between, such
// as PostgreSQL backends that closed, are not counted).
func logCPU(b *testing.B, n int, before, after map[string]time.Duration, wall time.Duration) {
	type use struct {
		name string
		d    time.Duration
	}
	var uses []use
	var total time.Duration
	for name, d := range after {
		if delta := d - before[name]; delta > 0 {
			uses = append(uses, use{name, delta})
			total += delta
		}
	}
	slices.SortFunc(uses, func(a, b use) int { return int(b.d - a.d) })
	var parts []string
	for i, u := range uses {
		if i == 6 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s=%.2f", u.name, float64(u.d.Microseconds())/1000/float64(n)))
	}
	b.Logf("CPU ms per request (%.0f%% of 2 cores over %.1fs): %s", 100*total.Seconds()/(2*wall.Seconds()), wall.Seconds(), strings.Join(parts, " "))
}

// apiserverProfile fetches a CPU profile of kube-apiserver covering the next
// `seconds` seconds into dir/apiserver.pprof (LETHE_BENCH_PPROF_DIR), to see
// what the API server spends a burst on: `go tool pprof -top FILE`.
func apiserverProfile(b *testing.B, dir string, seconds int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		rt, err := rest.TransportFor(env.Config)
		if err != nil {
			b.Logf("pprof: %v", err)
			return
		}
		resp, err := (&http.Client{Transport: rt}).Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(env.Config.Host, "/"), seconds))
		if err != nil {
			b.Logf("pprof: %v", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(dir, "apiserver.pprof"))
		if err != nil {
			b.Logf("pprof: %v", err)
			return
		}
		defer f.Close()
		if _, err := f.ReadFrom(resp.Body); err != nil {
			b.Logf("pprof: %v", err)
		}
	}()
	return done
}

// logSize reports how big a completed request is as stored (every status
// write sends, validates, stores and fans out all of it), and which parts
// make it so.
func logSize(b *testing.B, ns, name string) {
	var u unstructured.Unstructured
	u.SetGroupVersionKind(retentionv1.GroupVersion.WithKind("DeletionRequest"))
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &u); err != nil {
		b.Logf("size: %v", err)
		return
	}
	size := func(v any) int { raw, _ := json.Marshal(v); return len(raw) }
	status, _ := u.Object["status"].(map[string]any)
	parts := []string{fmt.Sprintf("total=%d", size(u.Object)), fmt.Sprintf("managedFields=%d", size(u.GetManagedFields()))}
	for _, k := range []string{"conditions", "plan", "receipt"} {
		parts = append(parts, fmt.Sprintf("status.%s=%d", k, size(status[k])))
	}
	b.Logf("completed request, JSON bytes: %s", strings.Join(parts, " "))
	if dir := os.Getenv("LETHE_BENCH_PPROF_DIR"); dir != "" {
		raw, _ := json.MarshalIndent(u.Object, "", "  ")
		_ = os.WriteFile(filepath.Join(dir, "deletionrequest.json"), raw, 0o644)
	}
}
