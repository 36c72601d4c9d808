// Package identity runs the manager binary under the identity an install
// gives it, with nothing more: the Helm chart (charts/lethe, rendered with
// Helm's Go library) and the kustomize configuration (config/default,
// rendered by kubectl kustomize) are applied to a real kube-apiserver, a
// token for their ServiceAccount is obtained with TokenRequest, and the
// manager runs with that token and the flags of their Deployment (leader
// election included) through a complete flow: a DataStore on a real
// PostgreSQL, a Dataset, a LegalHold, a RetentionPolicy run, a
// DeletionRequest approved by another user (the install's admission policy
// and approver role) and one held back. Any "forbidden" in the manager's log
// fails the test: the shipped RBAC must be enough.
//
// Each install gets its own control plane: both create the same
// cluster-scoped names, and each admission policy names its own manager.
package identity

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/helmchart"
	"github.com/lethe-dev/lethe/internal/managerproc"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/testharness"
)

func TestMain(m *testing.M) { testharness.Main(m) }

const (
	system = "lethe-system"
	ns     = "shop"
)

// install is what an install method renders: the manager's identity and
// flags are read from it.
type install struct {
	docs []string // YAML documents
}

func TestChartIdentity(t *testing.T) {
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	ms, err := helmchart.Render(helmchart.Dir(root), "lethe", system, nil)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	flow(t, install{docs: helmchart.Documents(ms)})
}

func TestKustomizeIdentity(t *testing.T) {
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	out, err := exec.Command(filepath.Join(assets, "kubectl"), "kustomize", filepath.Join(root, "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default (run make controlplane): %v", err)
	}
	var docs []string
	for _, d := range strings.Split("\n"+string(out), "\n---") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, d)
		}
	}
	flow(t, install{docs: docs})
}

// logBuffer collects the manager's log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func flow(t *testing.T, in install) {
	ctx := context.Background()
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c := env.Client

	// Apply what the install renders, as an admin would (the CRDs are
	// already installed by testenv from config/crd/bases, which test/chart
	// keeps equal to the chart's).
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: system}})
	var deployment *appsv1.Deployment
	for _, doc := range in.docs {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if len(u.Object) == 0 {
			continue
		}
		if u.GetKind() == "Deployment" {
			deployment = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, deployment); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Create(ctx, &u); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("applying %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	if deployment == nil {
		t.Fatal("the install renders no Deployment")
	}
	pod := deployment.Spec.Template.Spec
	sa := pod.ServiceAccountName
	if sa == "" {
		t.Fatal("the Deployment names no ServiceAccount")
	}

	// The digest key: the install's Secret (the chart generates it; with
	// kustomize the admin creates it, as the operations guide says).
	keySecret, keyKey := "", ""
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			keySecret = v.Secret.SecretName
			if len(v.Secret.Items) > 0 {
				keyKey = v.Secret.Items[0].Key
			}
		}
	}
	if keyKey == "" {
		keyKey = "key"
	}
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: system, Name: keySecret}, &secret); apierrors.IsNotFound(err) {
		mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: system, Name: keySecret},
			StringData: map[string]string{keyKey: "identity-test-digest-key-0123456789abcdef"}})
		err = c.Get(ctx, client.ObjectKey{Namespace: system, Name: keySecret}, &secret)
		if err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, secret.Data[keyKey], 0o600); err != nil {
		t.Fatal(err)
	}

	// The manager's flags: the Deployment's, with the paths and ports of
	// this machine.
	var args []string
	leaderNS := false
	for _, ctr := range pod.Containers {
		if ctr.Name != "manager" {
			continue
		}
		for _, a := range ctr.Args {
			switch {
			case strings.HasPrefix(a, "--metrics-bind-address"), strings.HasPrefix(a, "--health-probe-bind-address"):
				// managerproc binds them on free loopback ports
			case strings.HasPrefix(a, "--digest-key-file"):
				args = append(args, "--digest-key-file="+keyFile)
			default:
				if strings.HasPrefix(a, "--leader-election-namespace") {
					leaderNS = true
				}
				args = append(args, a)
			}
		}
	}
	if !leaderNS {
		// In a Pod the manager reads its namespace from the ServiceAccount
		// mount; outside one it must be told.
		args = append(args, "--leader-election-namespace="+system)
	}

	cfg, err := env.ServiceAccountConfig(ctx, system, sa)
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager log (tail):\n%s", tail(logs.String(), 6000))
		}
	})
	mgr := testharness.Manager(t, managerproc.Options{Config: cfg, Args: args, Log: &logs})
	t.Logf("manager runs as system:serviceaccount:%s:%s with %s", system, sa, strings.Join(args, " "))

	run(t, env, c)

	if err := mgr.Stop(); err != nil {
		t.Errorf("stopping the manager: %v", err)
	}
	if l := strings.ToLower(logs.String()); strings.Contains(l, "forbidden") {
		i := strings.Index(l, "forbidden")
		t.Errorf("the manager met a forbidden under the install's RBAC: …%s…", logs.String()[max(0, i-400):min(len(l), i+200)])
	}
	if !strings.Contains(logs.String(), "Successfully acquired lease") {
		t.Errorf("the manager did not acquire its leader-election Lease")
	}
}

// run is the complete flow, as users would drive it.
func run(t *testing.T, env *testenv.Env, c client.Client) {
	ctx := context.Background()
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})

	// alice files requests; bob approves them (the install's approver
	// ClusterRole, bound in the namespace).
	mustCreate(t, c, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lethe-edit"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{retentionv1.GroupVersion.Group}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"},
	}}})
	bind := func(user, kind, role string) {
		mustCreate(t, c, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user + "-" + role},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role}})
	}
	bind("alice", "Role", "lethe-edit")
	bind("bob", "Role", "lethe-edit")
	bind("bob", "ClusterRole", "lethe-deletionrequest-approver")
	alice, err := env.UserClientInGroups("alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := env.UserClientInGroups("bob")
	if err != nil {
		t.Fatal(err)
	}

	pg := testharness.Postgres(t)
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	for _, q := range []string{
		`CREATE TABLE users (id text PRIMARY KEY, email text UNIQUE NOT NULL)`,
		`CREATE TABLE events (id bigint PRIMARY KEY, user_id text NOT NULL REFERENCES users(id), created_at timestamptz NOT NULL)`,
		`INSERT INTO users VALUES ('usr_ada', 'ada@example.org'), ('usr_alan', 'alan@example.org'), ('usr_grace', 'grace@example.org')`,
		// per user: 5 events of 2020 (past a 90-day retention), 5 of today
		`INSERT INTO events SELECT n, (ARRAY['usr_ada','usr_alan','usr_grace'])[1 + n % 3],
		   CASE WHEN n < 15 THEN timestamptz '2020-01-01' + n * interval '1 day' ELSE now() END FROM generate_series(0, 29) n`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	count := func(q string, args ...any) int {
		var n int
		if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	marked := map[string]string{retentionv1.LabelSecretConsent: "true"}
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-credentials", Labels: marked},
		StringData: map[string]string{"username": pg.User, "password": pg.Password}})
	mustCreate(t, c, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: retentionv1.DataStoreSpec{
		Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr.To(int32(pg.Port)), Database: retentionv1.Identifier(pg.Database),
		TLS: retentionv1.TLSDisable, CredentialsSecretRef: &retentionv1.SecretReference{Name: "db-credentials"},
	}})
	mustCreate(t, c, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
		Collections: []retentionv1.Collection{
			{Name: "users", PrimaryKey: []retentionv1.Identifier{"id"}, Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}},
			{Name: "events", PrimaryKey: []retentionv1.Identifier{"id"}, TimestampField: "created_at",
				Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}},
				References: []retentionv1.Reference{{Field: "user_id", Collection: "users", TargetField: "id"}}},
		},
	}})
	wait(t, "Dataset app Ready", func() (bool, string) {
		var d retentionv1.Dataset
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, &d); err != nil {
			return false, err.Error()
		}
		return retentionv1.IsReady(&d), fmt.Sprintf("%v", d.Status.Conditions)
	})

	// A legal hold on grace, then a retention run: her old events stay.
	mustCreate(t, c, &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-1"}, Spec: retentionv1.LegalHoldSpec{
		Reason:   "preservation order",
		Subjects: []retentionv1.SubjectIdentity{{Type: "user_id", Value: "usr_grace"}},
	}})
	wait(t, "LegalHold case-1 Active", func() (bool, string) {
		var h retentionv1.LegalHold
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "case-1"}, &h); err != nil {
			return false, err.Error()
		}
		return h.Status.Phase == retentionv1.HoldActive, fmt.Sprintf("phase %q %v", h.Status.Phase, h.Status.Conditions)
	})
	mustCreate(t, c, &retentionv1.RetentionPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "events-90d", Annotations: map[string]string{retentionv1.AnnotationRunNow: "first"}},
		Spec: retentionv1.RetentionPolicySpec{
			DatasetRef: retentionv1.LocalObjectReference{Name: "app"}, Mode: retentionv1.ModeEnforce, Schedule: "0 3 * * *",
			Rules: []retentionv1.RetentionRule{{Name: "events", Collections: []retentionv1.Identifier{"events"}, OlderThan: "90d", Action: retentionv1.ActionDelete}},
		},
	})
	wait(t, "the policy's run Succeeded", func() (bool, string) {
		var p retentionv1.RetentionPolicy
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "events-90d"}, &p); err != nil {
			return false, err.Error()
		}
		if p.Status.LastRun == nil {
			return false, fmt.Sprintf("no run yet: %v", p.Status.Conditions)
		}
		return p.Status.LastRun.Result == retentionv1.PurgeJobSucceeded, fmt.Sprintf("last run %+v", *p.Status.LastRun)
	})
	if old := count(`SELECT count(*) FROM events WHERE created_at < '2021-01-01'`); old != 5 {
		t.Errorf("after the run %d old events are left; want grace's 5 (held)", old)
	}
	if held := count(`SELECT count(*) FROM events WHERE created_at < '2021-01-01' AND user_id = 'usr_grace'`); held != 5 {
		t.Errorf("the run deleted held events: %d of grace's 5 left", held)
	}

	// ada asks for erasure; the request needs approval; bob approves.
	dr := &retentionv1.DeletionRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erase-ada", Annotations: map[string]string{retentionv1.AnnotationRequestedBy: "alice"}},
		Spec: retentionv1.DeletionRequestSpec{
			Subject:         retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "email", Value: "ada@example.org"}}},
			Reason:          retentionv1.ReasonSubjectRequest,
			RequireApproval: true,
		},
	}
	eventually(t, "alice files the request", func() error { return alice.Create(ctx, dr.DeepCopy()) })
	waitRequest(t, c, "erase-ada", retentionv1.RequestAwaitingApproval)
	eventually(t, "bob approves", func() error {
		var got retentionv1.DeletionRequest
		if err := bob.Get(ctx, client.ObjectKey{Namespace: ns, Name: "erase-ada"}, &got); err != nil {
			return err
		}
		patch := client.MergeFrom(got.DeepCopy())
		got.Annotations[retentionv1.AnnotationApprovedBy] = "bob"
		return bob.Patch(ctx, &got, patch)
	})
	done := waitRequest(t, c, "erase-ada", retentionv1.RequestCompleted)
	if done.Status.ApprovedBy != "bob" || done.Status.Receipt == nil {
		t.Errorf("completed request: approvedBy %q, receipt %v", done.Status.ApprovedBy, done.Status.Receipt)
	}
	if n := count(`SELECT count(*) FROM users WHERE id = 'usr_ada'`) + count(`SELECT count(*) FROM events WHERE user_id = 'usr_ada'`); n != 0 {
		t.Errorf("%d records of ada are left after her erasure", n)
	}
	if n := count(`SELECT count(*) FROM users`); n != 2 {
		t.Errorf("%d users left; want alan and grace", n)
	}

	// grace asks too: the hold keeps her request back.
	mustCreate(t, c, &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erase-grace"}, Spec: retentionv1.DeletionRequestSpec{
		Subject: retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "user_id", Value: "usr_grace"}}},
		Reason:  retentionv1.ReasonSubjectRequest,
	}})
	waitRequest(t, c, "erase-grace", retentionv1.RequestHeld)
	if n := count(`SELECT count(*) FROM events WHERE user_id = 'usr_grace'`); n != 10 {
		t.Errorf("grace has %d events left; the hold keeps all 10", n)
	}
}

func mustCreate(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
	}
}

// flowTimeout bounds each step on a loaded shared machine.
const flowTimeout = 90 * time.Second

func wait(t *testing.T, what string, done func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(flowTimeout)
	for {
		ok, state := done()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, flowTimeout, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// eventually retries an action the admission policy or RBAC may refuse
// for a moment after they were created.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if err = f(); err == nil || apierrors.IsAlreadyExists(err) {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

func waitRequest(t *testing.T, c client.Client, name string, phase retentionv1.DeletionRequestPhase) *retentionv1.DeletionRequest {
	t.Helper()
	var dr retentionv1.DeletionRequest
	wait(t, fmt.Sprintf("DeletionRequest %s %s", name, phase), func() (bool, string) {
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &dr); err != nil {
			return false, err.Error()
		}
		return dr.Status.Phase == phase, fmt.Sprintf("phase %q %v", dr.Status.Phase, dr.Status.Conditions)
	})
	return &dr
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
