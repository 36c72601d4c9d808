package admission

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// managerUser is the manager's identity as config/admission names it.
const managerUser = "system:serviceaccount:lethe-system:lethe-controller-manager"

// installConfig creates the objects of one file of config/ (policies,
// bindings, roles) and removes them when the test ends, so that the other
// tests of this package, which create PurgeJobs as an admin, are not
// affected.
func installConfig(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", file))
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(data)), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := k8s.Create(context.Background(), u); err != nil {
			t.Fatalf("installing %s %s from config/%s: %v", u.GetKind(), u.GetName(), file, err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), u) })
	}
}

// namespaceUser returns a client for a user who may do anything with Lethe's
// kinds in namespace ns (the "edit" a namespace user has) and nothing with
// Secrets.
func namespaceUser(t *testing.T, ns, name string) client.Client {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-edit"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{group}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}}}
	if err := k8s.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	bind(t, ns, name, "Role", role.Name)
	c, err := testEnv.UserClientInGroups(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func bind(t *testing.T, ns, user, kind, role string) {
	t.Helper()
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user + "-" + strings.ToLower(kind) + "-" + role},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user, APIGroup: rbacv1.GroupName}},
		RoleRef:  rbacv1.RoleRef{Kind: kind, Name: role, APIGroup: rbacv1.GroupName}}
	if err := k8s.Create(context.Background(), rb); err != nil {
		t.Fatal(err)
	}
}

// eventually retries f until it returns nil (policies and RBAC bindings
// take a moment to be enforced) and returns its last error.
func eventually(f func() error) error {
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = f(); err == nil {
			return nil
		}
	}
	return err
}

func purgeJob(t *testing.T, ns, name string) *unstructured.Unstructured {
	u := decode(t, obj("PurgeJob", "datasetRef: {name: shop}\nmode: Enforce\ncutoff: \"2100-01-01T00:00:00Z\"\noperations:\n- {collection: orders, action: Delete, byAge: true}\n"))
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// TestPurgeJobsAreCreatedOnlyByLethe applies config/admission/purgejob_creator.yaml:
// a namespace user with edit rights on Lethe's kinds, and even a cluster
// admin, cannot create a PurgeJob; the manager can. The user may set the
// release annotation and nothing else.
func TestPurgeJobsAreCreatedOnlyByLethe(t *testing.T) {
	installConfig(t, "admission/purgejob_creator.yaml")
	ns := newNamespace(t, "purgejob-creator")
	ctx := context.Background()
	mallory := namespaceUser(t, ns, "mallory")
	manager, err := testEnv.UserClientInGroups(managerUser, "system:masters")
	if err != nil {
		t.Fatal(err)
	}

	// The policy takes a moment to be enforced: wait until the user's
	// create is refused for the policy's reason.
	var createErr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		createErr = mallory.Create(ctx, purgeJob(t, ns, "forged"))
		if createErr != nil && strings.Contains(createErr.Error(), "PurgeJobs are created only by Lethe") {
			break
		}
		if createErr == nil {
			_ = k8s.Delete(ctx, purgeJob(t, ns, "forged"))
		}
	}
	if createErr == nil || !strings.Contains(createErr.Error(), "PurgeJobs are created only by Lethe ("+managerUser+")") {
		t.Fatalf("a namespace user created a PurgeJob: %v", createErr)
	}
	if err := k8s.Create(ctx, purgeJob(t, ns, "by-admin")); err == nil || !strings.Contains(err.Error(), "PurgeJobs are created only by Lethe") {
		t.Fatalf("a cluster admin created a PurgeJob: %v", err)
	}
	job := purgeJob(t, ns, "run")
	job.SetLabels(map[string]string{"retention.lethe.dev/policy": "nightly"})
	job.SetAnnotations(map[string]string{"retention.lethe.dev/signature": "v1:by-the-manager"})
	if err := manager.Create(ctx, job); err != nil {
		t.Fatalf("the manager could not create a PurgeJob: %v", err)
	}

	patch := func(c client.Client, p string) error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(job.GroupVersionKind())
		u.SetNamespace(ns)
		u.SetName("run")
		return c.Patch(ctx, u, client.RawPatch(types.MergePatchType, []byte(p)))
	}
	for _, c := range []struct {
		desc, patch, want string
	}{
		{"the signature annotation", `{"metadata":{"annotations":{"retention.lethe.dev/signature":"v1:forged"}}}`, "you may set or remove only the annotation retention.lethe.dev/release-safety-limit"},
		{"another annotation", `{"metadata":{"annotations":{"retention.lethe.dev/deletion-requests":"victim"}}}`, "you may set or remove only the annotation"},
		{"removing the signature", `{"metadata":{"annotations":{"retention.lethe.dev/signature":null}}}`, "you may set or remove only the annotation"},
		{"a label", `{"metadata":{"labels":{"retention.lethe.dev/policy":"other"}}}`, "the labels of a PurgeJob are written only by Lethe"},
		{"the batch size", `{"spec":{"batchSize":7}}`, "but for suspend"},
		{"the cutoff, with suspend", `{"spec":{"suspend":true,"cutoff":"2200-01-01T00:00:00Z"}}`, "but for suspend"},
		{"safety limits added", `{"spec":{"safety":{"maxRows":1}}}`, "but for suspend"},
	} {
		if err := patch(mallory, c.patch); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("changing %s: got %v, want an error containing %q", c.desc, err, c.want)
		}
	}
	// Suspending and resuming is the user's (spec.suspend is not signed).
	if err := patch(mallory, `{"spec":{"suspend":true}}`); err != nil {
		t.Errorf("a user could not suspend a PurgeJob: %v", err)
	}
	if err := patch(mallory, `{"spec":{"suspend":false}}`); err != nil {
		t.Errorf("a user could not resume a PurgeJob: %v", err)
	}
	if err := patch(mallory, `{"metadata":{"annotations":{"retention.lethe.dev/release-safety-limit":"true"}}}`); err != nil {
		t.Errorf("a user could not set the release annotation: %v", err)
	}
	if err := patch(mallory, `{"metadata":{"annotations":{"retention.lethe.dev/release-safety-limit":null}}}`); err != nil {
		t.Errorf("a user could not remove the release annotation: %v", err)
	}
	if err := patch(manager, `{"metadata":{"annotations":{"retention.lethe.dev/release-safety-limit":"true"}}}`); err != nil {
		t.Errorf("the manager could not annotate its PurgeJob: %v", err)
	}
	if err := mallory.Delete(ctx, purgeJob(t, ns, "run")); err != nil {
		t.Errorf("a user could not delete (stop) a PurgeJob: %v", err)
	}
}

// TestApprovalNeedsTheApproveVerb applies config/admission/deletionrequest_approval.yaml
// and the ClusterRole of config/rbac/deletionrequest_approver_role.yaml: a
// user with get and patch on deletionrequests cannot approve; bound to the
// approver role, the same user can. A namespace labelled
// retention.lethe.dev/require-approval=true refuses requests that opt out.
func TestApprovalNeedsTheApproveVerb(t *testing.T) {
	installConfig(t, "admission/deletionrequest_approval.yaml")
	installConfig(t, "rbac/deletionrequest_approver_role.yaml")
	ns := newNamespace(t, "approval")
	ctx := context.Background()
	alice := namespaceUser(t, ns, "alice") // files the request
	bob := namespaceUser(t, ns, "bob")     // get, patch and more, but not approve

	dr := decode(t, obj("DeletionRequest", "subject: {identities: [{type: user_id, value: \"100042\"}]}\nreason: SubjectRequest\nrequireApproval: true\n"))
	dr.SetNamespace(ns)
	dr.SetName("needs-approval")
	// The policy takes a moment to be enforced: wait until claiming to be
	// someone else is refused.
	forged := dr.DeepCopy()
	forged.SetAnnotations(map[string]string{"retention.lethe.dev/requested-by": "bob"})
	var forgeErr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if forgeErr = alice.Create(ctx, forged.DeepCopy()); forgeErr != nil && strings.Contains(forgeErr.Error(), "requested-by must be your own user name") {
			break
		}
		if forgeErr == nil {
			_ = k8s.Delete(ctx, forged.DeepCopy())
			time.Sleep(500 * time.Millisecond)
		}
	}
	if forgeErr == nil {
		t.Fatal("the approval policy is not enforced")
	}
	dr.SetAnnotations(map[string]string{"retention.lethe.dev/requested-by": "alice"})
	if err := eventually(func() error { return alice.Create(ctx, dr.DeepCopy()) }); err != nil {
		t.Fatal(err)
	}
	approve := func(c client.Client, as string) error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(dr.GroupVersionKind())
		u.SetNamespace(ns)
		u.SetName(dr.GetName())
		return c.Patch(ctx, u, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"retention.lethe.dev/approved-by":"`+as+`"}}}`)))
	}
	err := approve(bob, "bob")
	if err == nil || !strings.Contains(err.Error(), "approving a DeletionRequest needs the RBAC verb approve on deletionrequests.retention.lethe.dev") {
		t.Fatalf("approval without the approve verb: got %v", err)
	}

	bind(t, ns, "bob", "ClusterRole", "deletionrequest-approver")
	if err := eventually(func() error { return approve(bob, "bob") }); err != nil {
		t.Fatalf("bob, bound to the approver role, could not approve: %v", err)
	}
	var got unstructured.Unstructured
	got.SetGroupVersionKind(dr.GroupVersionKind())
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: dr.GetName()}, &got); err != nil || got.GetAnnotations()["retention.lethe.dev/approved-by"] != "bob" {
		t.Fatalf("the approval was not recorded: %v %v", err, got.GetAnnotations())
	}

	// The creator cannot approve, even holding the verb.
	bind(t, ns, "alice", "ClusterRole", "deletionrequest-approver")
	own := dr.DeepCopy()
	own.SetName("own")
	if err := alice.Create(ctx, own); err != nil {
		t.Fatal(err)
	}
	dr.SetName("own")
	if err := approve(alice, "alice"); err == nil || !strings.Contains(err.Error(), "the creator of a DeletionRequest cannot approve it") {
		t.Errorf("the creator approved her own request: %v", err)
	}

	// A namespace that requires approval: opting out is refused.
	var nsObj unstructured.Unstructured
	nsObj.SetAPIVersion("v1")
	nsObj.SetKind("Namespace")
	nsObj.SetName(ns)
	if err := k8s.Patch(ctx, &nsObj, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"retention.lethe.dev/require-approval":"true"}}}`))); err != nil {
		t.Fatal(err)
	}
	optOut := decode(t, obj("DeletionRequest", "subject: {identities: [{type: user_id, value: \"100042\"}]}\nreason: SubjectRequest\n"))
	optOut.SetNamespace(ns)
	optOut.SetName("opt-out")
	err = nil
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = alice.Create(ctx, optOut.DeepCopy()); err != nil {
			break
		}
		_ = k8s.Delete(ctx, optOut.DeepCopy())
	}
	if err == nil || !strings.Contains(err.Error(), "every DeletionRequest must set spec.requireApproval: true") {
		t.Errorf("a request opted out of approval in a namespace that requires it: %v", err)
	}
	withApproval := dr.DeepCopy()
	withApproval.SetName("with-approval")
	if err := alice.Create(ctx, withApproval); err != nil {
		t.Errorf("a request requiring approval was refused in a namespace that requires it: %v", err)
	}
}
