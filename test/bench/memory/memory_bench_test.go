// Package memory measures the manager's memory with many Lethe objects:
// 10,000 of all six kinds (LETHE_BENCH_OBJECTS), in namespaces of 100, with
// the statuses a busy cluster's history has (completed requests with
// receipts, finished runs), created in a real kube-apiserver before the
// manager binary starts under its shipped RBAC. It samples the process's
// VmRSS and VmHWM from /proc/<pid>/status while the manager lists,
// reconciles and settles, and reports the peak (VmHWM) and the steady RSS
// (the median over a 30 s window once the log has been quiet), with the Go
// heap in use from the manager's metrics. The target is under 150 MiB for
// both (LETHE_BENCH_RSS_LIMIT_MIB); more fails the benchmark.
//
//	go test ./test/bench/memory -run '^$' -bench . -benchtime 1x -timeout 30m
//
// LETHE_BENCH_PPROF=file.pb.gz saves a heap profile of the settled manager
// (served with --pprof-bind-address on a loopback port), for
// `go tool pprof -sample_index=inuse_space file.pb.gz`.
package memory

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/managerproc"
	"github.com/lethe-dev/lethe/internal/servers"
	"github.com/lethe-dev/lethe/internal/testenv"
)

const perNamespace = 100

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func BenchmarkManagerMemory10k(b *testing.B) {
	objects := envInt(b, "LETHE_BENCH_OBJECTS", 10000)
	limit := float64(envInt(b, "LETHE_BENCH_RSS_LIMIT_MIB", 150))
	env, err := testenv.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()

	started := time.Now()
	n := createObjects(b, env.Client, (objects+perNamespace-1)/perNamespace)
	b.Logf("created %d Lethe objects with their statuses in %s", n, time.Since(started).Round(time.Millisecond))

	cfg, err := env.ManagerConfig()
	if err != nil {
		b.Fatal(err)
	}
	var args []string
	pprofOut := os.Getenv("LETHE_BENCH_PPROF")
	pprofURL := ""
	if pprofOut != "" {
		port, err := servers.FreePort()
		if err != nil {
			b.Fatal(err)
		}
		args = append(args, "--pprof-bind-address=127.0.0.1:"+strconv.Itoa(port))
		pprofURL = "http://127.0.0.1:" + strconv.Itoa(port) + "/debug/pprof/heap"
	}
	logs := &lineCounter{}
	for i := 0; i < b.N; i++ {
		m, err := managerproc.Start(ctx, managerproc.Options{Config: cfg, Args: args, Log: logs, Metrics: true})
		if err != nil {
			b.Fatal(err)
		}
		s := newSampler(m.Pid())
		go s.run(200 * time.Millisecond)

		// Settle: the caches are filled and every object reconciled when
		// the log has been quiet for 15 s (at most 5 minutes).
		settle := time.Now()
		last, quietSince := logs.lines(), time.Now()
		for time.Since(settle) < 5*time.Minute && time.Since(quietSince) < 15*time.Second {
			time.Sleep(time.Second)
			if l := logs.lines(); l != last {
				last, quietSince = l, time.Now()
			}
		}
		settled := time.Since(settle)
		s.mark()
		time.Sleep(30 * time.Second)
		steady := s.steady()
		heap := heapInUse(b, m.MetricsURL)
		if pprofURL != "" {
			saveProfile(b, pprofURL, pprofOut)
		}
		peak := s.peak()
		s.stop()
		if err := m.Stop(); err != nil {
			b.Fatal(err)
		}
		b.Logf("manager: settled %s after start (%d log lines); RSS steady %.1f MiB, peak (VmHWM) %.1f MiB; Go heap in use %.1f MiB; %d samples",
			settled.Round(time.Second), logs.lines(), steady, peak, heap, s.count())
		b.ReportMetric(float64(n), "objects")
		b.ReportMetric(steady, "MiB-RSS-steady")
		b.ReportMetric(peak, "MiB-RSS-peak")
		b.ReportMetric(heap, "MiB-heap-inuse")
		if steady >= limit || peak >= limit {
			b.Errorf("the manager used %.1f MiB steady, %.1f MiB at peak with %d objects; the target is under %.0f MiB", steady, peak, n, limit)
		}
	}
}

// createObjects creates namespaces of perNamespace objects each: 1
// DataStore, 2 Datasets, 5 RetentionPolicies, 40 finished PurgeJobs, 47
// completed DeletionRequests with receipts and 5 LegalHolds.
func createObjects(b *testing.B, c client.Client, namespaces int) int {
	b.Helper()
	var created atomic.Int64
	work := make(chan int)
	errs := make(chan error, namespaces)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				k, err := fillNamespace(c, fmt.Sprintf("mem-%03d", i))
				created.Add(int64(k))
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < namespaces; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return int(created.Load())
}

func fillNamespace(c client.Client, ns string) (int, error) {
	ctx := context.Background()
	n := 0
	create := func(o client.Object, status func()) error {
		o.SetNamespace(ns)
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s/%s: %w", o, ns, o.GetName(), err)
		}
		n++
		if status != nil {
			status()
			if err := c.Status().Update(ctx, o); err != nil {
				return fmt.Errorf("status of %T %s/%s: %w", o, ns, o.GetName(), err)
			}
		}
		return nil
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return 0, err
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	ready := []metav1.Condition{{Type: retentionv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Succeeded", Message: "Erased 12 records in 2 collections of 1 Dataset", LastTransitionTime: now}}
	// The store's Secret does not exist: it stalls without connecting.
	if err := create(&retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: retentionv1.DataStoreSpec{
		Type: retentionv1.DataStorePostgreSQL, Host: "127.0.0.1", Port: ptr.To(int32(1)), Database: "shop", TLS: retentionv1.TLSDisable,
		CredentialsSecretRef: &retentionv1.SecretReference{Name: "db-credentials"},
	}}, nil); err != nil {
		return n, err
	}
	for d := 0; d < 2; d++ {
		if err := create(&retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d", d)}, Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{
				{Name: "users", PrimaryKey: []retentionv1.Identifier{"id"}, Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}},
				{Name: "events", PrimaryKey: []retentionv1.Identifier{"id"}, TimestampField: "created_at", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}},
					References: []retentionv1.Reference{{Field: "user_id", Collection: "users", TargetField: "id"}}},
			},
		}}, nil); err != nil {
			return n, err
		}
	}
	for p := 0; p < 5; p++ {
		if err := create(&retentionv1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("events-%d", p)}, Spec: retentionv1.RetentionPolicySpec{
			DatasetRef: retentionv1.LocalObjectReference{Name: "app-0"}, Mode: retentionv1.ModeDryRun, Schedule: "0 3 * * *",
			Rules: []retentionv1.RetentionRule{{Name: "events", Collections: []retentionv1.Identifier{"events"}, OlderThan: "90d", Action: retentionv1.ActionDelete}},
		}}, nil); err != nil {
			return n, err
		}
	}
	for j := 0; j < 40; j++ {
		cutoff := metav1.NewTime(now.Add(-90 * 24 * time.Hour))
		job := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("events-0-%d", 29900000+j), Labels: map[string]string{retentionv1.LabelPolicy: "events-0"}},
			Spec: retentionv1.PurgeJobSpec{DatasetRef: retentionv1.LocalObjectReference{Name: "app-0"}, Mode: retentionv1.ModeDryRun,
				Operations: []retentionv1.Operation{{Collection: "events", Action: retentionv1.ActionDelete, ByAge: true, Cutoff: &cutoff, Rule: "events"}}}}
		if err := create(job, func() {
			job.Status = retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobSucceeded, StartTime: &now, CompletionTime: &now, Matched: 1200,
				Operations: []retentionv1.OperationStatus{{Collection: "events", Phase: retentionv1.PurgeJobSucceeded, Matched: 1200, Batches: 2}}, Conditions: ready}
		}); err != nil {
			return n, err
		}
	}
	for r := 0; r < 47; r++ {
		dr := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("erase-%d", r)}, Spec: retentionv1.DeletionRequestSpec{
			Subject: retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "user_id", Value: fmt.Sprintf("usr_%s_%d", ns, r)}}},
			Reason:  retentionv1.ReasonSubjectRequest,
		}}
		if err := create(dr, func() {
			rows := int64(6)
			digest := fmt.Sprintf("hmac-sha256:%064x", r)
			dr.Status = retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestCompleted, SubjectDigest: digest, NotBefore: &now, DeadlineTime: &now, CompletionTime: &now,
				Plan: []retentionv1.PlannedCollection{
					{Dataset: "app-0", Collection: "events", Action: retentionv1.ActionDelete, Matched: &rows},
					{Dataset: "app-0", Collection: "users", Action: retentionv1.ActionDelete, Matched: &rows},
				},
				PurgeJobs: []string{fmt.Sprintf("erase-app-0-%d", r)},
				Receipt: &retentionv1.Receipt{SubjectDigest: digest, Verified: true, CompletedAt: &now, SHA256: fmt.Sprintf("%064x", r+1),
					Entries: []retentionv1.ReceiptEntry{{Dataset: "app-0", Collection: "events", Action: retentionv1.ActionDelete, Rows: 5, CompletedAt: &now}, {Dataset: "app-0", Collection: "users", Action: retentionv1.ActionDelete, Rows: 1, CompletedAt: &now}}},
				Conditions: append(ready, metav1.Condition{Type: retentionv1.ConditionDeadlineMet, Status: metav1.ConditionTrue, Reason: "Completed", Message: "Completed before the deadline", LastTransitionTime: now}),
			}
		}); err != nil {
			return n, err
		}
	}
	for h := 0; h < 5; h++ {
		if err := create(&retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("case-%d", h)}, Spec: retentionv1.LegalHoldSpec{
			Reason: "preservation order", Subjects: []retentionv1.SubjectIdentity{{Type: "user_id", Value: fmt.Sprintf("usr_held_%d", h)}},
			Datasets: []retentionv1.ObjectName{"app-1"},
		}}, nil); err != nil {
			return n, err
		}
	}
	return n, nil
}

// lineCounter counts the lines the manager logs.
type lineCounter struct{ n atomic.Int64 }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n.Add(int64(strings.Count(string(p), "\n")))
	return len(p), nil
}

func (l *lineCounter) lines() int64 { return l.n.Load() }

// sampler reads VmRSS and VmHWM of a process.
type sampler struct {
	pid  int
	mu   sync.Mutex
	rss  []float64 // MiB, every sample
	from int       // first sample of the steady window
	hwm  float64
	done chan struct{}
}

func newSampler(pid int) *sampler { return &sampler{pid: pid, done: make(chan struct{})} }

func (s *sampler) run(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-s.done:
			return
		case <-t.C:
		}
	}
}

func (s *sampler) sample() {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return
	}
	defer f.Close()
	var rss, hwm float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	if rss == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rss = append(s.rss, rss)
	s.hwm = max(s.hwm, hwm, rss)
}

// mark starts the steady window.
func (s *sampler) mark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from = len(s.rss)
}

// steady is the median RSS since mark.
func (s *sampler) steady() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := append([]float64(nil), s.rss[s.from:]...)
	if len(w) == 0 {
		return 0
	}
	sort.Float64s(w)
	return w[len(w)/2]
}

func (s *sampler) peak() float64 {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hwm
}

func (s *sampler) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rss)
}

func (s *sampler) stop() { close(s.done) }

// get fetches a loopback endpoint of the manager.
func get(url string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error { c.cancel(); return c.ReadCloser.Close() }

// heapInUse reads go_memstats_heap_inuse_bytes from the metrics endpoint.
func heapInUse(b *testing.B, url string) float64 {
	resp, err := get(url)
	if err != nil {
		b.Logf("metrics: %v", err)
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f / (1 << 20)
		}
	}
	return 0
}

func saveProfile(b *testing.B, url, path string) {
	resp, err := get(url)
	if err != nil {
		b.Errorf("heap profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.Fatal(err)
	}
	b.Logf("heap profile of the settled manager saved to %s", path)
}
