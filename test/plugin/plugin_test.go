// Package plugin tests `kubectl lethe` (cmd/kubectl-lethe, internal/plugin)
// against a real kube-apiserver (envtest): the samples of config/samples with
// the statuses the manager would write, the approval admission policy of
// config/admission and the approver role of config/rbac, users bound by
// RBAC, and the binary itself found by kubectl's plugin mechanism.
package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/ledger"
	"github.com/lethe-dev/lethe/internal/plugin"
	"github.com/lethe-dev/lethe/internal/receipt"
	"github.com/lethe-dev/lethe/internal/testenv"
)

const ns = "shop"

var (
	env   *testenv.Env
	admin string // kubeconfig of an admin
	dir   string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	env, err = testenv.Start()
	if err != nil {
		println("plugin tests:", err.Error())
		return 1
	}
	defer func() { _ = env.Stop() }()
	dir, err = os.MkdirTemp("", "lethe-plugin-")
	if err != nil {
		return 1
	}
	defer os.RemoveAll(dir)
	if admin, err = env.Kubeconfig(dir); err != nil {
		println(err.Error())
		return 1
	}
	return m.Run()
}

// lethe runs `kubectl lethe args...` in-process and returns stdout, stderr
// and the error the command returned.
func lethe(t *testing.T, kubeconfig, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := plugin.NewCommand(plugin.Streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	cmd.SetArgs(append(args, "--kubeconfig", kubeconfig))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func mustLethe(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := lethe(t, admin, "", args...)
	if err != nil {
		t.Fatalf("kubectl lethe %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func sample(t *testing.T, file string, into client.Object) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	into.SetNamespace(ns)
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := env.Client.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

func setStatus(t *testing.T, o client.Object) {
	t.Helper()
	if err := env.Client.Status().Update(context.Background(), o); err != nil {
		t.Fatalf("status of %T %s: %v", o, o.GetName(), err)
	}
}

func mt(d time.Duration) *metav1.Time {
	t := metav1.NewTime(time.Now().Add(d).Truncate(time.Second))
	return &t
}

func cond(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
}

// key is the digest key of the test's "manager".
var key = []byte("0123456789abcdef0123456789abcdef-plugin-test")

// fixture creates the namespace and one object of each kind in the states
// the commands report on, as the manager would leave them.
func fixture(t *testing.T) {
	t.Helper()
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lethe-system"}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "lethe-system", Name: "lethe-digest-key"}, Data: map[string][]byte{"key": append(key, '\n')}})

	var store retentionv1.DataStore
	sample(t, "retention_v1alpha1_datastore.yaml", &store)
	var set retentionv1.Dataset
	sample(t, "retention_v1alpha1_dataset.yaml", &set)
	var policy retentionv1.RetentionPolicy
	sample(t, "retention_v1alpha1_retentionpolicy.yaml", &policy)
	var run retentionv1.PurgeJob
	sample(t, "retention_v1alpha1_purgejob.yaml", &run)
	var hold retentionv1.LegalHold
	sample(t, "retention_v1alpha1_legalhold.yaml", &hold)
	var late, done retentionv1.DeletionRequest
	sample(t, "retention_v1alpha1_deletionrequest.yaml", &late)
	sample(t, "retention_v1alpha1_deletionrequest.yaml", &done)
	late.Name, done.Name = "late", "done"
	stopped := run.DeepCopy()
	stopped.Name = "shop-retention-29922900"
	create(t, &store, &set, &policy, &run, stopped, &hold, &late, &done)

	store.Status = retentionv1.DataStoreStatus{Conditions: []metav1.Condition{cond("Ready", "False", retentionv1.ReasonConnectionFailed, "dial tcp: connection refused")}}
	setStatus(t, &store)
	set.Status = retentionv1.DatasetStatus{Conditions: []metav1.Condition{cond("Ready", "True", "Validated", "12 collections validated")}}
	setStatus(t, &set)
	run.Status = retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobSucceeded, Matched: 130, Deleted: 100, Anonymized: 10,
		Conditions: []metav1.Condition{cond("Ready", "True", "Succeeded", "done")}}
	for i, op := range run.Spec.Operations {
		st := retentionv1.OperationStatus{Collection: string(op.Collection), Phase: retentionv1.PurgeJobSucceeded}
		if i == 0 { // browsing_logs_180d: 120 matched, 100 deleted, 20 left
			st.Matched, st.Deleted = 120, 100
		}
		run.Status.Operations = append(run.Status.Operations, st)
	}
	setStatus(t, &run)
	stopped.Status = retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobStalled, Matched: 9000000, Conditions: []metav1.Condition{
		cond("Ready", "False", retentionv1.ReasonSafetyLimitExceeded, "would touch 9000000 records"),
		cond("Stalled", "True", retentionv1.ReasonSafetyLimitExceeded, "would touch 9000000 records, more than safety.maxRows 5000000"),
	}}
	setStatus(t, stopped)
	measured := mt(-time.Minute)
	policy.Status = retentionv1.RetentionPolicyStatus{NextScheduleTime: mt(5 * time.Hour),
		Backlog: &retentionv1.Backlog{Records: 20, Held: 3, MeasuredTime: *measured, Rules: []retentionv1.RuleBacklog{
			{Rule: "browsing_logs_180d", Records: 20, Held: 3, Accuracy: retentionv1.BacklogExact, MeasuredTime: *measured, Cutoff: *measured},
			{Rule: "orders_3y", Records: 0, Accuracy: retentionv1.BacklogExact, MeasuredTime: *measured, Cutoff: *measured},
		}},
		Conditions: []metav1.Condition{cond("Ready", "True", "Scheduled", "ok")},
		LastRun:    &retentionv1.RunSummary{PurgeJob: run.Name, ScheduledTime: mt(-19 * time.Hour), Result: retentionv1.PurgeJobSucceeded, RowsMatched: 130, RowsDeleted: 100, RowsAnonymized: 10}}
	setStatus(t, &policy)
	hold.Status = retentionv1.LegalHoldStatus{Phase: retentionv1.HoldActive, Subjects: 2, Derived: 1, Blocking: []string{"PurgeJob/" + run.Name},
		Conditions: []metav1.Condition{cond("Ready", "True", "Active", "holding")}}
	setStatus(t, &hold)
	late.Status = retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestAwaitingApproval, DeadlineTime: mt(-2 * time.Hour), SubjectDigest: "hmac-sha256:aa",
		Conditions: []metav1.Condition{cond("Ready", "False", "AwaitingApproval", "waiting")}}
	setStatus(t, &late)

	// done: completed with a receipt and its ledger line, as the manager
	// writes them (internal/receipt, internal/ledger).
	identities := map[string][]string{"email": {"ada@example.com"}, "user_id": {"100042"}}
	m := int64(3)
	rc, err := receipt.Build("hmac-sha256:bb", []retentionv1.PlannedCollection{{Dataset: "shop", Collection: "users", Action: retentionv1.ActionDelete, Matched: &m}}, nil, time.Now().Truncate(time.Second), true)
	if err != nil {
		t.Fatal(err)
	}
	done.Status = retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestCompleted, DeadlineTime: mt(29 * 24 * time.Hour), SubjectDigest: rc.SubjectDigest,
		Receipt: rc, CompletionTime: rc.CompletedAt, Conditions: []metav1.Condition{cond("Ready", "True", "Completed", "erased"), cond("DeadlineMet", "True", "Completed", "on time")}}
	setStatus(t, &done)
	line, err := ledger.NewLine(key, done.Name, rc, identities)
	if err != nil {
		t.Fatal(err)
	}
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: retentionv1.LedgerConfigMap + "-" + ledger.Day(rc.CompletedAt.Time) + "-0",
		Labels: map[string]string{retentionv1.LabelLedger: "true"}}, Data: map[string]string{done.Name: line}})
}

func TestPlugin(t *testing.T) {
	fixture(t)
	ctx := context.Background()

	t.Run("status", func(t *testing.T) {
		out := mustLethe(t, "status", "-n", ns)
		t.Logf("kubectl lethe status -n %s:\n%s", ns, out)
		for _, want := range [][]string{
			{"DataStore", "shop-postgres", "NotReady", "ConnectionFailed: dial tcp: connection refused"},
			{"Dataset", "shop", "Ready"},
			{"RetentionPolicy", "shop-retention", "Ready", "next run in", "last run shop-retention-29921460 Succeeded"},
			{"PurgeJob", "shop-retention-29921460", "Succeeded", "Enforce: 130 matched, 100 deleted, 10 anonymized"},
			{"PurgeJob", "shop-retention-29922900", "Stalled", "SafetyLimitExceeded", "kubectl lethe release-run shop-retention-29922900"},
			{"DeletionRequest", "done", "Completed", "receipt sha256"},
			{"DeletionRequest", "late", "Overdue", "deadline 120m ago; phase AwaitingApproval"},
			{"LegalHold", "case-2026-sh-0142", "Holding", "2 subjects, 1 derived; blocking PurgeJob/shop-retention-29921460"},
		} {
			if !hasRow(out, want...) {
				t.Errorf("status lacks a row with %q:\n%s", want, out)
			}
		}
		if !strings.HasPrefix(out, "KIND ") {
			t.Errorf("status has no header:\n%s", out)
		}
		var rows []plugin.Row
		if err := json.Unmarshal([]byte(mustLethe(t, "status", "-n", ns, "-o", "json")), &rows); err != nil || len(rows) != 8 {
			t.Fatalf("status -o json: %v, %d rows", err, len(rows))
		}
		var again []plugin.Row
		if err := yaml.Unmarshal([]byte(mustLethe(t, "status", "-n", ns, "-o", "yaml")), &again); err != nil || len(again) != 8 || again[0].Kind != "DataStore" {
			t.Fatalf("status -o yaml: %v %+v", err, again)
		}
		if out := mustLethe(t, "status", "-A"); !hasRow(out, ns, "LegalHold", "case-2026-sh-0142") {
			t.Errorf("status -A lacks the namespace column:\n%s", out)
		}
		if _, _, err := lethe(t, admin, "", "status", "-n", ns, "-o", "xml"); err == nil {
			t.Error("-o xml was accepted")
		}
	})

	t.Run("report", func(t *testing.T) {
		out := mustLethe(t, "report", "-n", ns)
		t.Logf("kubectl lethe report -n %s:\n%s", ns, out)
		for _, want := range [][]string{
			{"shop-retention", "browsing_logs_180d", "Delete", "180d", "Enforce", "20 (+3 held)", "shop-retention-29921460", "Succeeded"},
			{"shop-retention", "orders_3y", "Anonymize", "3y", "Enforce", "0", "shop-retention-29921460"},
			{"shop-retention", "support_messages_180d", "Anonymize", "180d", "Enforce", "<not counted>"},
			{"done", "AccountCancellation", "Completed", "True", "3"},
			{"late", "AccountCancellation", "AwaitingApproval", "ago", "<none>"},
		} {
			if !hasRow(out, want...) {
				t.Errorf("report lacks a row with %q:\n%s", want, out)
			}
		}
		var rep plugin.Report
		if err := json.Unmarshal([]byte(mustLethe(t, "report", "-n", ns, "-o", "json")), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Promises) != 4 || rep.Promises[0].PastRetention == nil || *rep.Promises[0].PastRetention != 20 || len(rep.Requests) != 2 || rep.Requests[0].ReceiptSHA256 == "" {
			t.Errorf("report -o json: %+v", rep)
		}
	})

	t.Run("release-run", func(t *testing.T) {
		out := mustLethe(t, "release-run", "shop-retention-29922900", "-n", ns)
		if !strings.Contains(out, "purgejob/shop-retention-29922900 released past its safety limit") {
			t.Errorf("release-run: %s", out)
		}
		var j retentionv1.PurgeJob
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-retention-29922900"}, &j); err != nil || j.Annotations[retentionv1.AnnotationReleaseSafetyLimit] != "true" {
			t.Errorf("the run was not released: %v %v", err, j.Annotations)
		}
		if _, _, err := lethe(t, admin, "", "release-run", "shop-retention-29921460", "-n", ns); err == nil {
			t.Error("release-run of a run that is not stopped by its safety limit succeeded")
		}
	})

	t.Run("run-now, suspend, resume", func(t *testing.T) {
		out := mustLethe(t, "run-now", "shop-retention", "-n", ns)
		var p retentionv1.RetentionPolicy
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-retention"}, &p); err != nil {
			t.Fatal(err)
		}
		if tok := p.Annotations[retentionv1.AnnotationRunNow]; tok == "" || !strings.Contains(out, tok) {
			t.Errorf("run-now: annotation %q, output %s", tok, out)
		}
		mustLethe(t, "suspend", "shop-retention", "-n", ns)
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-retention"}, &p); err != nil || !p.Spec.Suspend {
			t.Fatalf("suspend: %v %v", err, p.Spec.Suspend)
		}
		if out := mustLethe(t, "status", "-n", ns); !hasRow(out, "RetentionPolicy", "shop-retention", "Suspended") {
			t.Errorf("a suspended policy is not shown Suspended:\n%s", out)
		}
		mustLethe(t, "resume", "retentionpolicy", "shop-retention", "-n", ns)
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-retention"}, &p); err != nil || p.Spec.Suspend {
			t.Fatalf("resume: %v %v", err, p.Spec.Suspend)
		}
		// A PurgeJob: the stopped run can be paused and resumed; a
		// finished one cannot.
		var j retentionv1.PurgeJob
		mustLethe(t, "suspend", "purgejob", "shop-retention-29922900", "-n", ns)
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-retention-29922900"}, &j); err != nil || !j.Spec.Suspend {
			t.Fatalf("suspend purgejob: %v %v", err, j.Spec.Suspend)
		}
		mustLethe(t, "resume", "pj", "shop-retention-29922900", "-n", ns)
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-retention-29922900"}, &j); err != nil || j.Spec.Suspend {
			t.Fatalf("resume purgejob: %v %v", err, j.Spec.Suspend)
		}
		if _, _, err := lethe(t, admin, "", "suspend", "purgejob", "shop-retention-29921460", "-n", ns); err == nil || !strings.Contains(err.Error(), "failed") {
			t.Errorf("suspend of a finished purgejob: %v", err)
		}
		if _, errOut, err := lethe(t, admin, "", "suspend", "nope", "-n", ns); err == nil || !strings.Contains(errOut, "not found") {
			t.Errorf("suspend of a missing policy: %v %s", err, errOut)
		}
	})

	t.Run("receipt verify", func(t *testing.T) {
		out := mustLethe(t, "receipt", "verify", "done", "-n", ns)
		if !hasRow(out, "done", "VALID") {
			t.Errorf("receipt verify:\n%s", out)
		}
		var dr retentionv1.DeletionRequest
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "done"}, &dr); err != nil {
			t.Fatal(err)
		}
		dr.Status.Receipt.Entries[0].Rows = 2 // the receipt is edited after the fact
		setStatus(t, &dr)
		out, _, err := lethe(t, admin, "", "receipt", "verify", "done", "-n", ns)
		if err == nil || !strings.Contains(out, "INVALID: the receipt's content does not match its sha256") || !strings.Contains(out, "the erasure ledger records another receipt SHA-256") {
			t.Errorf("a tampered receipt: %v\n%s", err, out)
		}
		if _, _, err := lethe(t, admin, "", "receipt", "verify", "late", "-n", ns); err == nil || !strings.Contains(err.Error(), "has no receipt") {
			t.Errorf("verify of a request without receipt: %v", err)
		}
	})

	t.Run("ledger lookup", func(t *testing.T) {
		out, errOut, err := lethe(t, admin, "ada@example.com\n", "ledger", "lookup", "email", "-n", ns)
		if err != nil || !hasRow(out, ns, "done") {
			t.Errorf("ledger lookup: %v\n%s%s", err, out, errOut)
		}
		if strings.Contains(out+errOut, "ada@example.com") {
			t.Error("ledger lookup printed the identity")
		}
		var res struct {
			Lines []plugin.Match `json:"lines"`
		}
		keyFile := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		out, _, err = lethe(t, admin, "100042", "ledger", "lookup", "user_id", "-A", "--digest-key-file", keyFile, "-o", "json")
		if err != nil || json.Unmarshal([]byte(out), &res) != nil || len(res.Lines) != 1 || res.Lines[0].Request != "done" {
			t.Errorf("ledger lookup -A -o json: %v %s", err, out)
		}
		// Not found: the error names the type and digest, never the value.
		out, errOut, err = lethe(t, admin, "grace@example.com\n", "ledger", "lookup", "email", "-n", ns)
		if err == nil || !strings.Contains(err.Error(), "no erasure ledger line") {
			t.Errorf("lookup of an identity never erased: %v", err)
		}
		if err != nil && strings.Contains(out+errOut+err.Error(), "grace") {
			t.Error("a failed lookup shows the identity")
		}
		// The same value under another type is another identity.
		if _, _, err := lethe(t, admin, "ada@example.com\n", "ledger", "lookup", "phone", "-n", ns); err == nil {
			t.Error("the email's digest matched as a phone")
		}
		// A wrong key finds nothing.
		if err := os.WriteFile(keyFile, []byte("another-key-another-key-another-key!"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := lethe(t, admin, "ada@example.com\n", "ledger", "lookup", "email", "-n", ns, "--digest-key-file", keyFile); err == nil {
			t.Error("a wrong key found the line")
		}
	})

	t.Run("approve", func(t *testing.T) { testApprove(t) })

	t.Run("kubectl finds the plugin", func(t *testing.T) {
		bin := t.TempDir()
		build := exec.Command("go", "build", "-o", filepath.Join(bin, "kubectl-lethe"), "./cmd/kubectl-lethe")
		build.Dir = env.Root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		kubectl := exec.Command(filepath.Join(env.Assets, "kubectl"), "lethe", "status", "-n", ns, "--kubeconfig", admin)
		kubectl.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := kubectl.CombinedOutput()
		if err != nil || !hasRow(string(out), "LegalHold", "case-2026-sh-0142", "Holding") {
			t.Errorf("kubectl lethe status: %v\n%s", err, out)
		}
	})
}

// testApprove installs the approval admission policy and approver role
// from config/ and approves as a user bound to it; the creator cannot.
func testApprove(t *testing.T) {
	ctx := context.Background()
	for _, f := range []string{"admission/deletionrequest_approval.yaml", "rbac/deletionrequest_approver_role.yaml"} {
		install(t, f)
	}
	// Namespace users: edit rights on Lethe's kinds; bob also approves.
	create(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "plugin-test-lethe-editor"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{retentionv1.GroupVersion.Group}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
	}})
	bind := func(name, user, role string) {
		create(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Subjects: []rbacv1.Subject{{Kind: "User", Name: user, APIGroup: rbacv1.GroupName}},
			RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: role, APIGroup: rbacv1.GroupName}})
	}
	bind("alice-edits", "alice", "plugin-test-lethe-editor")
	bind("bob-edits", "bob", "plugin-test-lethe-editor")
	bind("bob-approves", "bob", "deletionrequest-approver")
	bind("carol-edits", "carol", "plugin-test-lethe-editor")
	kc := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		p, err := env.UserKubeconfig(dir, u)
		if err != nil {
			t.Fatal(err)
		}
		kc[u] = p
	}
	alice, err := env.UserClientInGroups("alice")
	if err != nil {
		t.Fatal(err)
	}
	var dr retentionv1.DeletionRequest
	sample(t, "retention_v1alpha1_deletionrequest.yaml", &dr)
	dr.Name = "needs-approval"
	dr.Spec.RequireApproval = true
	dr.Annotations = map[string]string{retentionv1.AnnotationRequestedBy: "alice"}
	// The policy and bindings take a moment to be enforced.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := alice.Create(ctx, dr.DeepCopy())
		if err == nil || apierrors.IsAlreadyExists(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice cannot create the request: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// carol may patch but lacks the approve verb: the policy refuses.
	var errCarol error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		_, _, errCarol = lethe(t, kc["carol"], "", "approve", "needs-approval", "-n", ns)
		if errCarol != nil {
			break
		}
		// the policy was not enforced yet: undo and retry
		_ = env.Client.Patch(ctx, &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "needs-approval"}},
			client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"retention.lethe.dev/approved-by":null}}}`)))
	}
	if errCarol == nil {
		t.Fatal("carol, without the approve verb, approved")
	}
	// The creator cannot approve her own request.
	var errOut string
	_, errOut, err = lethe(t, kc["alice"], "", "approve", "needs-approval", "-n", ns)
	if err == nil || !strings.Contains(errOut, "the creator of a DeletionRequest cannot approve it") {
		t.Errorf("alice approved her own request: %v %s", err, errOut)
	}
	var out string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		out, errOut, err = lethe(t, kc["bob"], "", "approve", "needs-approval", "-n", ns)
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !strings.Contains(out, "deletionrequest/needs-approval approved by bob") {
		t.Fatalf("bob could not approve: %v\n%s%s", err, out, errOut)
	}
	var got retentionv1.DeletionRequest
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "needs-approval"}, &got); err != nil || got.Annotations[retentionv1.AnnotationApprovedBy] != "bob" {
		t.Errorf("approval not recorded: %v %v", err, got.Annotations)
	}
	out, _, err = lethe(t, kc["bob"], "", "approve", "needs-approval", "-n", ns, "-o", "json")
	var res []map[string]string
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || len(res) != 1 || res[0]["message"] != "deletionrequest/needs-approval already approved by bob" {
		t.Errorf("approve again -o json: %v %s", err, out)
	}
}

// install applies a YAML file of config/ (several documents) as admin.
func install(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, "config", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---") {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		create(t, &u)
	}
}

// hasRow reports whether one line of out holds every cell, in order.
func hasRow(out string, cells ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, c := range cells {
			i := strings.Index(rest, c)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(c):]
		}
		if ok {
			return true
		}
	}
	return false
}
