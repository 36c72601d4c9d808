// Package erasure benchmarks DeletionRequests end to end: a real control
// plane, the Lethe manager binary and a real PostgreSQL holding a
// six-table schema with foreign keys. It reports completed requests per
// second for a burst of requests, coalesced (the product) and with one
// PurgeJob per request (the baseline, in the same run), and the latency of
// one request on an idle system.
//
//	go test ./test/bench/erasure/ -run '^$' -bench . -benchtime 1x
//
// LETHE_BENCH_REQUESTS sets the burst size (default 1000),
// LETHE_BENCH_CONCURRENCY the parallel DeletionRequest reconciles (default 16, as the manager),
// LETHE_BENCH_WINDOW_MS the coalescing window (default 200, as the manager),
// LETHE_BENCH_BASELINE=0 skips the baseline (for quick experiments), and
// LETHE_BENCH_PPROF_DIR=DIR saves a CPU profile of kube-apiserver during
// each burst (LETHE_BENCH_PPROF_SECONDS long, default 10) as DIR/apiserver.pprof.
package erasure

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/managerproc"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/testharness"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	log.SetLogger(logDiscard())
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := testharness.Run(m)
	_ = env.Stop()
	os.Exit(code)
}

// startManager runs the manager binary with API limits fit for a burst;
// coalesce=false makes every request its own PurgeJob (the baseline). It
// reaches the API server through apiProxy, which counts its calls.
// The returned function stops it (also at cleanup): only one manager may run
// at a time, or the first would erase the baseline's requests too.
func startManager(b *testing.B, coalesce bool) (stop func()) {
	b.Helper()
	// The manager's ServiceAccount under the RBAC of config/rbac.
	cfg, err := env.ManagerConfig()
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	args := []string{
		"--deletionrequest-concurrency=" + strconv.Itoa(envInt("LETHE_BENCH_CONCURRENCY", 16)),
		"--purgejob-concurrency=4",
		"--coalesce-window=" + (time.Duration(envInt("LETHE_BENCH_WINDOW_MS", 200)) * time.Millisecond).String(),
	}
	if !coalesce {
		args = append(args, "--coalesce-max-subjects=1")
	}
	m := testharness.Manager(b, managerproc.Options{
		Config:    apiProxy(b, cfg, apiCalls),
		DigestKey: []byte("bench-digest-key-0123456789abcdef0123"),
		Args:      args,
		Log:       managerLog(),
	})
	return func() {
		if err := m.Stop(); err != nil {
			b.Errorf("manager: %v", err)
		}
	}
}

// warmUp waits for the DataStore to be Ready and erases one subject, so
// measurements start with caches synced and connections open.
func warmUp(b *testing.B, ns string, id int) {
	b.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var ds retentionv1.DataStore
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &ds); err == nil && retentionv1.IsReady(&ds) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("DataStore not Ready")
		}
	}
	must(b, env.Client.Create(ctx, request(ns, id)))
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var dr retentionv1.DeletionRequest
		must(b, env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("req-%d", id)}, &dr))
		if dr.Status.Phase == retentionv1.RequestCompleted {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("warm-up request did not complete")
		}
	}
}

// apiCalls counts the manager's requests to the API server by verb and
// resource, so the benchmark can report what one erasure costs the API server.
var apiCalls = &callCounter{counts: map[string]int{}}

type callCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *callCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Query().Get("watch") != "true" {
			c.mu.Lock()
			c.counts[req.Method+" "+resourceOf(req.URL.Path)]++
			c.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// resourceOf names the resource of an API path: .../namespaces/<ns>/<resource>[/<name>[/<subresource>]].
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	i := slices.Index(parts, "namespaces")
	if i < 0 || i+2 >= len(parts) {
		return path
	}
	rest := parts[i+2:]
	if len(rest) == 3 {
		return rest[0] + "/" + rest[2]
	}
	return rest[0]
}

// take returns the counts since the last call and resets them.
func (c *callCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	c.counts = map[string]int{}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// logCalls reports the manager's API calls per completed request.
func logCalls(b *testing.B, n int, calls map[string]int) float64 {
	total, writes := 0, 0
	var lines []string
	for k, v := range calls {
		total += v
		if !strings.HasPrefix(k, "GET ") {
			writes += v
		}
		lines = append(lines, fmt.Sprintf("%s=%.2f", k, float64(v)/float64(n)))
	}
	slices.Sort(lines)
	b.Logf("manager API calls per request: %.2f (%.2f writes): %s", float64(total)/float64(n), float64(writes)/float64(n), strings.Join(lines, " "))
	return float64(writes) / float64(n)
}

// fixture creates a namespace, a DataStore on a fresh database with the
// six-table schema for `users` users, and the Dataset.
func fixture(b *testing.B, users int) string {
	b.Helper()
	ctx := context.Background()
	pg := testharness.Postgres(b)
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		`CREATE TABLE users (id text PRIMARY KEY, email text UNIQUE NOT NULL)`,
		`CREATE TABLE devices (id bigint PRIMARY KEY, user_id text NOT NULL REFERENCES users(id), device_id text)`,
		`CREATE INDEX ON devices (user_id)`,
		`CREATE TABLE sessions (id bigint PRIMARY KEY, device_id bigint NOT NULL REFERENCES devices(id), token text)`,
		`CREATE INDEX ON sessions (device_id)`,
		`CREATE TABLE orders (id bigint PRIMARY KEY, user_id text REFERENCES users(id), shipping_address text)`,
		`CREATE INDEX ON orders (user_id)`,
		`CREATE TABLE order_items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders(id), gift_note text)`,
		`CREATE INDEX ON order_items (order_id)`,
		`CREATE TABLE support_messages (id bigint PRIMARY KEY, user_id text NOT NULL REFERENCES users(id), body text)`,
		`CREATE INDEX ON support_messages (user_id)`,
		`INSERT INTO users SELECT 'u' || i, 'u' || i || '@example.org' FROM generate_series(1, $1) i`,
		`INSERT INTO devices SELECT i, 'u' || (1 + i % $1), 'dev' || i FROM generate_series(1, 2 * $1) i`,
		`INSERT INTO sessions SELECT i, 1 + i % (2 * $1), 'tok' || i FROM generate_series(1, 4 * $1) i`,
		`INSERT INTO orders SELECT i, 'u' || (1 + i % $1), 'addr' || i FROM generate_series(1, 3 * $1) i`,
		`INSERT INTO order_items SELECT i, 1 + i % (3 * $1), 'note' || i FROM generate_series(1, 6 * $1) i`,
		`INSERT INTO support_messages SELECT i, 'u' || (1 + i % $1), 'help' || i FROM generate_series(1, 2 * $1) i`,
		`ANALYZE`,
	} {
		args := []any{}
		if containsParam(sql) {
			args = append(args, users)
		}
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "lethe-bench-"}}
	must(b, env.Client.Create(ctx, ns))
	must(b, env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "db", Labels: map[string]string{retentionv1.LabelSecretConsent: "true"}},
		StringData: map[string]string{"username": pg.User, "password": pg.Password}}))
	must(b, env.Client.Create(ctx, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "db"},
		Spec: retentionv1.DataStoreSpec{Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr.To(int32(pg.Port)),
			Database: retentionv1.Identifier(pg.Database), TLS: retentionv1.TLSDisable, CredentialsSecretRef: &retentionv1.SecretReference{Name: "db"},
			Limits: retentionv1.DataStoreLimits{MaxConnections: 8}}}))
	ref := func(field, coll, target string) []retentionv1.Reference {
		return []retentionv1.Reference{{Field: retentionv1.Identifier(field), Collection: retentionv1.Identifier(coll), TargetField: retentionv1.Identifier(target)}}
	}
	must(b, env.Client.Create(ctx, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "app"},
		Spec: retentionv1.DatasetSpec{DataStoreRef: retentionv1.LocalObjectReference{Name: "db"}, Collections: []retentionv1.Collection{
			{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}},
			{Name: "devices", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}, References: ref("user_id", "users", "id")},
			{Name: "sessions", References: ref("device_id", "devices", "id")},
			{Name: "orders", Action: retentionv1.ActionAnonymize, Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}, References: ref("user_id", "users", "id"),
				Fields: []retentionv1.DataField{{Name: "user_id", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyNull}},
					{Name: "shipping_address", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyNull}}}},
			{Name: "order_items", Action: retentionv1.ActionAnonymize, References: ref("order_id", "orders", "id"),
				Fields: []retentionv1.DataField{{Name: "gift_note", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyNull}}}},
			{Name: "support_messages", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}, References: ref("user_id", "users", "id")},
		}}}))
	return ns.Name
}

func containsParam(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '$' && s[i+1] == '1' {
			return true
		}
	}
	return false
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

func request(ns string, i int) *retentionv1.DeletionRequest {
	return &retentionv1.DeletionRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("req-%d", i)},
		Spec: retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonSubjectRequest,
			Subject: retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "user_id", Value: fmt.Sprintf("u%d", i)}}}},
	}
}

// burst creates n requests from 8 clients at once and waits, on a watch (not
// by polling lists, which would load the API server the manager shares), until
// all are Completed; it returns requests per second from the first create.
func burst(b *testing.B, ns string, n int) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w := watchRequests(b, ctx, ns)
	if dir := os.Getenv("LETHE_BENCH_PPROF_DIR"); dir != "" {
		profiled := apiserverProfile(b, dir, envInt("LETHE_BENCH_PPROF_SECONDS", 10))
		defer func() { <-profiled }()
	}
	cpuBefore := cpuByProcess()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 1; i <= n; i++ {
		next <- i
	}
	close(next)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := env.Client.Create(ctx, request(ns, i)); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	createdAt := make(chan time.Time, 1)
	go func() { wg.Wait(); createdAt <- time.Now() }()
	completed := map[string]bool{}
	for len(completed) < n {
		dr, ok := w.next()
		if !ok {
			b.Fatalf("only %d of %d requests completed: %v", len(completed), n, ctx.Err())
		}
		if !strings.HasPrefix(dr.Name, "req-") || dr.Name == fmt.Sprintf("req-%d", n+50) {
			continue
		}
		switch dr.Status.Phase {
		case retentionv1.RequestCompleted:
			completed[dr.Name] = true
		case retentionv1.RequestFailed:
			b.Fatalf("request %s failed: %s", dr.Name, failure(dr))
		}
	}
	elapsed := time.Since(start)
	cpuAfter := cpuByProcess()
	created := <-createdAt
	b.Logf("%d requests created in %.1fs, all completed in %.1fs", n, created.Sub(start).Seconds(), elapsed.Seconds())
	logCPU(b, n, cpuBefore, cpuAfter, elapsed)
	logSize(b, ns, "req-1")
	logJobs(b, ns, start)
	return float64(n) / elapsed.Seconds()
}

// logJobs summarizes the burst's PurgeJobs: how many, requests per job, and
// how long they took from creation to completion (one line: benchmark logs
// keep only their first lines).
func logJobs(b *testing.B, ns string, start time.Time) {
	var jobs retentionv1.PurgeJobList
	must(b, env.Client.List(context.Background(), &jobs, client.InNamespace(ns)))
	var members, took []float64
	for _, j := range jobs.Items {
		if j.CreationTimestamp.Time.Before(start.Add(-time.Second)) || j.Status.CompletionTime == nil {
			continue
		}
		members = append(members, float64(len(strings.Split(j.Annotations[retentionv1.AnnotationDeletionRequests], ","))))
		took = append(took, j.Status.CompletionTime.Sub(j.CreationTimestamp.Time).Seconds())
	}
	if len(members) == 0 {
		return
	}
	slices.Sort(members)
	slices.Sort(took)
	b.Logf("%d PurgeJobs: requests per job min %.0f median %.0f max %.0f; created to finished median %.0fs max %.0fs (1 s resolution)",
		len(members), members[0], members[len(members)/2], members[len(members)-1], took[len(took)/2], took[len(took)-1])
}

func failure(dr *retentionv1.DeletionRequest) string {
	for _, c := range dr.Status.Conditions {
		if c.Type == retentionv1.ConditionStalled {
			return c.Message
		}
	}
	return string(dr.Status.Phase)
}

// requestWatch streams DeletionRequests of a namespace, re-establishing the
// watch (after a fresh list) when the API server closes it.
type requestWatch struct {
	b      *testing.B
	ctx    context.Context
	ns     string
	c      client.WithWatch
	events <-chan watch.Event
	stop   func()
	queue  []*retentionv1.DeletionRequest
}

func watchRequests(b *testing.B, ctx context.Context, ns string) *requestWatch {
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	must(b, err)
	w := &requestWatch{b: b, ctx: ctx, ns: ns, c: c}
	w.open()
	b.Cleanup(func() { w.stop() })
	return w
}

// open lists (queueing what is there) and watches from the list's version.
func (w *requestWatch) open() {
	var list retentionv1.DeletionRequestList
	must(w.b, w.c.List(w.ctx, &list, client.InNamespace(w.ns)))
	for i := range list.Items {
		w.queue = append(w.queue, &list.Items[i])
	}
	wi, err := w.c.Watch(w.ctx, &retentionv1.DeletionRequestList{}, client.InNamespace(w.ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	must(w.b, err)
	w.events, w.stop = wi.ResultChan(), wi.Stop
}

// next returns the next observed state of a request; false when ctx ends.
func (w *requestWatch) next() (*retentionv1.DeletionRequest, bool) {
	for len(w.queue) == 0 {
		select {
		case <-w.ctx.Done():
			return nil, false
		case ev, ok := <-w.events:
			if !ok || ev.Type == watch.Error {
				w.stop()
				w.open()
				continue
			}
			if dr, isDR := ev.Object.(*retentionv1.DeletionRequest); isDR {
				w.queue = append(w.queue, dr)
			}
		}
	}
	dr := w.queue[0]
	w.queue = w.queue[1:]
	return dr, true
}

func requests(*testing.B) int { return envInt("LETHE_BENCH_REQUESTS", 1000) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkErasureThroughput: completed requests/s for a burst, coalesced
// vs one PurgeJob per request, and the ratio.
func BenchmarkErasureThroughput(b *testing.B) {
	n := requests(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns := fixture(b, n+100)
		stop := startManager(b, true)
		warmUp(b, ns, n+50)
		apiCalls.take()
		b.StartTimer()
		coalesced := burst(b, ns, n)
		b.StopTimer()
		b.ReportMetric(logCalls(b, n, apiCalls.take()), "api-writes/req")
		stop()
		floor := apiFloor(b, namespace(b), n, 16, fetch(b, ns, "req-1"))
		b.ReportMetric(floor, "api-floor-req/s")
		b.ReportMetric(coalesced/floor, "x-api-floor")
		b.Logf("%d requests: coalesced %.1f req/s; the API server alone, for the create and two status writes with no manager, %.1f req/s (Lethe reaches %.0f%% of it)", n, coalesced, floor, 100*coalesced/floor)

		if os.Getenv("LETHE_BENCH_BASELINE") == "0" {
			b.ReportMetric(coalesced, "req/s")
			continue
		}
		nsBase := fixture(b, n+100)
		startManager(b, false)
		warmUp(b, nsBase, n+50)
		baseline := burst(b, nsBase, n)
		b.ReportMetric(coalesced, "req/s")
		b.ReportMetric(baseline, "baseline-req/s")
		b.ReportMetric(coalesced/baseline, "x-baseline")
		b.Logf("%d requests: coalesced %.1f req/s, one PurgeJob per request %.1f req/s (%.1fx)", n, coalesced, baseline, coalesced/baseline)
	}
}

// BenchmarkErasureLatencyIdle: one request on an idle system, create to Completed.
func BenchmarkErasureLatencyIdle(b *testing.B) {
	ns := fixture(b, 1000)
	startManager(b, true)
	warmUp(b, ns, 999)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		must(b, env.Client.Create(context.Background(), request(ns, 500+i)))
		var phase retentionv1.DeletionRequestPhase
		for {
			var dr retentionv1.DeletionRequest
			must(b, env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("req-%d", 500+i)}, &dr))
			if dr.Status.Phase != phase {
				phase = dr.Status.Phase
				b.Logf("%6.3fs %s", time.Since(start).Seconds(), phase)
			}
			if dr.Status.Phase == retentionv1.RequestCompleted {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/request")
}
