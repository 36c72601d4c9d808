package controllers_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/signature"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/testharness"
)

var env *testenv.Env

// managerConfig authenticates the managers the tests start as the manager's
// ServiceAccount, bound only to the ClusterRole of config/rbac/role.yaml:
// the tests run Lethe under the RBAC it ships, and any "forbidden" in the
// managers' logs fails them (checkForbidden).
var managerConfig *rest.Config

// managerLogs keeps everything the managers log, so tests can prove that no
// subject identifier ever reaches a log line.
var managerLogs testenv.Logs

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(os.Stderr, &managerLogs)), zap.UseDevMode(false)))
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if managerConfig, err = env.ManagerConfig(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = env.Stop()
		os.Exit(1)
	}
	// os.Exit skips deferred calls: stop the control plane explicitly, or
	// kube-apiserver and etcd outlive the test binary.
	code := testharness.Run(m)
	// Each test checks the lines logged while its manager ran; this catches
	// what a manager logged outside them.
	if lines := forbiddenLines(managerLogs.String()); len(lines) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the manager was refused by the API server under the RBAC of config/rbac:\n%s\n", strings.Join(lines, "\n"))
		code = 1
	}
	_ = env.Stop()
	os.Exit(code)
}

// manager is a running Lethe manager in the test process.
type manager struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startManager runs the controllers until the returned manager is stopped
// (graceful: in-flight reconciles finish, as on a real shutdown).
func startManager(t *testing.T, opts controllers.Options) *manager {
	t.Helper()
	return startManagerWithClock(t, opts, nil)
}

// startManagerWithClock runs the controllers with a fixed notion of now.
func startManagerWithClock(t *testing.T, opts controllers.Options, clock func() time.Time) *manager {
	t.Helper()
	mgr := newManager(t)
	deps := controllers.NewDeps(mgr, testDigestKey)
	deps.Clock = clock
	pool := deps.Pool
	if err := controllers.Setup(mgr, deps, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &manager{cancel: cancel}
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		defer pool.Close()
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	t.Cleanup(m.stop)
	return m
}

// newManager returns a manager authenticated as Lethe's ServiceAccount under
// the shipped RBAC; when the test ends, after the manager has stopped, any
// line it logged with "forbidden" fails the test.
func newManager(t *testing.T) ctrl.Manager {
	t.Helper()
	mgr, err := ctrl.NewManager(managerConfig, ctrl.Options{
		Scheme:         env.Scheme,
		Cache:          controllers.CacheOptions(""), // as main.go: the cache transform included
		Metrics:        metricsserver.Options{BindAddress: "0"},
		LeaderElection: false,
		Controller:     config.Controller{SkipNameValidation: ptr.To(true)},
		Client:         client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	from := managerLogs.Len()
	// Registered before the manager's stop, so it runs after it (cleanups
	// run last in, first out).
	t.Cleanup(func() {
		if lines := forbiddenLines(managerLogs.String()[from:]); len(lines) > 0 {
			t.Errorf("the manager was refused by the API server under the RBAC of config/rbac (config/rbac/role.yaml lacks a permission):\n%s", strings.Join(lines, "\n"))
		}
	})
	return mgr
}

// forbiddenLines returns the log lines where the API server refused the
// manager (`... is forbidden: User "system:serviceaccount:..." cannot ...`).
func forbiddenLines(logs string) []string {
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "forbidden") {
			out = append(out, line)
		}
	}
	return out
}

func (m *manager) stop() {
	m.cancel()
	m.done.Wait()
}

// marked labels a Secret as one Lethe may use (retentionv1.LabelSecretConsent).
func marked() map[string]string { return map[string]string{retentionv1.LabelSecretConsent: "true"} }

// testDigestKey is the digest key of every test manager.
var testDigestKey = []byte("test-digest-key-0123456789abcdef0123")

// createJob creates a PurgeJob signed as the manager signs the jobs it
// creates (tests stand in for a RetentionPolicy or the coalescer).
func createJob(t *testing.T, job *retentionv1.PurgeJob) {
	t.Helper()
	var subjects map[string][]byte
	if ref := job.Spec.SubjectsSecretRef; ref != nil {
		var s corev1.Secret
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: job.Namespace, Name: ref.Name}, &s); err != nil {
			t.Fatal(err)
		}
		subjects = s.Data
	}
	if err := signature.Sign(testDigestKey, job, subjects); err != nil {
		t.Fatal(err)
	}
	create(t, job)
}

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "lethe-test-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// waitFor polls an object until cond holds or the timeout passes.
func waitFor[T client.Object](t *testing.T, obj T, timeout time.Duration, what string, cond func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
		if err == nil && cond(obj) {
			return obj
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error %v); object: %+v", timeout, what, err, obj)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func condition(o retentionv1.Object, t string) *metav1.Condition {
	return meta.FindStatusCondition(o.GetConditions(), t)
}

func hasCondition(o retentionv1.Object, t string, status metav1.ConditionStatus, reason string) bool {
	c := condition(o, t)
	return c != nil && c.Status == status && (reason == "" || c.Reason == reason) && c.ObservedGeneration == o.GetGeneration()
}

// postgresStore creates a DataStore and its credentials Secret for a fresh
// throwaway PostgreSQL database, and returns the database.
func postgresStore(t *testing.T, ns, name string) testharness.PG {
	t.Helper()
	return postgresStoreWith(t, ns, name, nil)
}

// postgresStoreWith is postgresStore with the DataStore's spec changed by edit.
func postgresStoreWith(t *testing.T, ns, name string, edit func(*retentionv1.DataStoreSpec)) testharness.PG {
	t.Helper()
	pg := testharness.Postgres(t)
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-credentials", Labels: marked()},
		StringData: map[string]string{"username": pg.User, "password": pg.Password},
	})
	store := &retentionv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: retentionv1.DataStoreSpec{
			Type:                 retentionv1.DataStorePostgreSQL,
			Host:                 pg.Host,
			Port:                 ptr.To(int32(pg.Port)),
			Database:             retentionv1.Identifier(pg.Database),
			TLS:                  retentionv1.TLSDisable,
			CredentialsSecretRef: &retentionv1.SecretReference{Name: name + "-credentials"},
		},
	}
	if edit != nil {
		edit(&store.Spec)
	}
	create(t, store)
	return pg
}
