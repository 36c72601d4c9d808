package controllers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/ledger"
	"github.com/lethe-dev/lethe/internal/signature"
)

// people are the subjects of the TTL test: every identity value of theirs,
// named and derived.
var people = []struct{ request, id, email, phone string }{
	{"erase-ada", adaID, adaEmail, adaPhone},
	{"erase-alan", "usr_alan_1912", "alan@example.org", "+44-1"},
	{"erase-grace", "usr_grace_1906", "grace@example.org", "+1-2"},
}

// After ttlSecondsAfterFinished nothing but the ledger's digests is left:
// several requests named by email (user_id and phone are derived and kept in
// each request's Secret) are erased by one coalesced PurgeJob whose subjects
// Secret holds all their identities. Every Secret Lethe creates carries its
// owner reference from creation (never patched later), and once the last
// request has expired the coalesced PurgeJob and every Secret of identities
// are gone (envtest has no garbage collector: Lethe deletes them itself).
// The manager runs under config/rbac only, like every test of this suite.
func TestTTLLeavesNoSecretHoldingAnIdentity(t *testing.T) {
	// The window outlasts planning both requests on a loaded machine (2s
	// split them into two PurgeJobs under a load average of 20).
	startManager(t, controllers.Options{CoalesceWindow: 5 * time.Second})
	ns, conn := appFixture(t)
	// The fixture's identity Secret is the test's, not Lethe's: requests
	// name their subjects inline here.
	if err := env.Client.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}); err != nil {
		t.Fatal(err)
	}
	secrets := watchSecrets(t, ns)
	// Each request is seen Completed through a watch: requests finish a few
	// seconds apart on a loaded machine, and one may have expired (3s) and
	// been deleted before a poll for it began.
	completed := watchCompleted(t, ns)
	uids := map[string]string{}
	for _, p := range people {
		dr := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.request}, Spec: retentionv1.DeletionRequestSpec{
			Reason:                  retentionv1.ReasonSubjectRequest,
			Subject:                 retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "email", Value: p.email}}},
			TTLSecondsAfterFinished: ptr.To(int32(3)),
		}}
		create(t, dr)
		uids[p.request] = string(dr.UID)
	}
	var job string
	seen := completed(90*time.Second, len(people))
	for _, p := range people {
		dr := seen[p.request]
		if dr == nil {
			t.Fatalf("%s was never seen Completed (seen: %d of %d)", p.request, len(seen), len(people))
		}
		if !dr.Status.Receipt.Verified || len(dr.Status.PurgeJobs) != 1 {
			t.Fatalf("%s: receipt %+v, jobs %v", p.request, dr.Status.Receipt, dr.Status.PurgeJobs)
		}
		if job == "" {
			job = dr.Status.PurgeJobs[0]
		} else if dr.Status.PurgeJobs[0] != job {
			t.Fatalf("the requests were not erased by one PurgeJob: %s and %s", job, dr.Status.PurgeJobs[0])
		}
		if !hasCondition(dr, retentionv1.ConditionIdentitiesDerived, metav1.ConditionTrue, "") {
			t.Errorf("%s derived nothing (the test needs each request's Secret): %+v", p.request, dr.Status.Conditions)
		}
	}
	// Erased in the store, read back.
	for _, p := range people {
		if n := count(t, conn, `SELECT count(*) FROM users WHERE id = $1 OR email = $2`, p.id, p.email); n != 0 {
			t.Errorf("%s: %d users rows left", p.request, n)
		}
		if n := count(t, conn, `SELECT count(*) FROM devices WHERE user_id = $1`, p.id); n != 0 {
			t.Errorf("%s: %d devices rows left (reached only by the derived user_id)", p.request, n)
		}
	}

	// The requests expire; the coalesced PurgeJob goes with the last one.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var drs retentionv1.DeletionRequestList
		var jobs retentionv1.PurgeJobList
		if err := env.Client.List(context.Background(), &drs, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.List(context.Background(), &jobs, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if len(drs.Items) == 0 && len(jobs.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the TTL, %d DeletionRequests and %d PurgeJobs are left (coalesced job %s)", len(drs.Items), len(jobs.Items), job)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// No Secret in the namespace holds any identity value.
	var all corev1.SecretList
	if err := env.Client.List(context.Background(), &all, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range all.Items {
		names = append(names, s.Name)
		for k, v := range s.Data {
			for _, p := range people {
				for _, id := range []string{p.id, p.email, p.phone} {
					if strings.Contains(string(v), id) || strings.Contains(k, id) {
						t.Errorf("Secret %s (key %s) still holds an identity of %s", s.Name, k, p.request)
					}
				}
			}
		}
	}
	if !slices.Equal(names, []string{"db-credentials"}) {
		t.Errorf("Secrets left: %v; only the DataStore's credentials should be", names)
	}
	// Only ledger ConfigMaps remain, with digests only.
	var cms corev1.ConfigMapList
	if err := env.Client.List(context.Background(), &cms, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	ledgerLines := 0
	for _, cm := range cms.Items {
		if cm.Name == "kube-root-ca.crt" {
			continue
		}
		if cm.Labels[retentionv1.LabelLedger] != "true" {
			t.Errorf("ConfigMap %s is not a ledger shard", cm.Name)
			continue
		}
		for _, line := range cm.Data {
			ledgerLines += strings.Count(line, "\n") + 1
			for _, p := range people {
				for _, id := range []string{p.id, p.email, p.phone} {
					if strings.Contains(line, id) {
						t.Errorf("ledger %s holds an identity of %s", cm.Name, p.request)
					}
				}
			}
		}
	}
	for _, p := range people {
		if _, err := ledger.Line(context.Background(), env.Client, ns, p.request); err != nil {
			t.Errorf("no ledger line for %s: %v", p.request, err)
		}
	}

	// Every Secret Lethe created was owned from its creation and never
	// changed; and it is gone.
	created, sealed := 0, 0
	added := secrets.added()
	for name, s := range added {
		if s.Labels[retentionv1.LabelCoalesced] == "" && s.Labels[retentionv1.LabelDeletionRequest] == "" && s.Labels[retentionv1.LabelSealedKeys] == "" {
			continue
		}
		created++
		refs := s.OwnerReferences
		var want string
		switch {
		case name == job:
			want = "PurgeJob/" + job
		case name == job+"-sealed":
			want = "PurgeJob/" + job
			sealed++
		case strings.HasSuffix(name, "-subject") && uids[strings.TrimSuffix(name, "-subject")] != "":
			want = "DeletionRequest/" + strings.TrimSuffix(name, "-subject")
			if len(refs) == 1 && string(refs[0].UID) != uids[strings.TrimSuffix(name, "-subject")] {
				t.Errorf("Secret %s is owned by UID %s, not its request's", name, refs[0].UID)
			}
		default:
			t.Errorf("unexpected Secret %s created by Lethe (labels %v)", name, s.Labels)
			continue
		}
		if len(refs) != 1 || refs[0].Kind+"/"+refs[0].Name != want || refs[0].UID == "" || refs[0].Controller == nil || !*refs[0].Controller {
			t.Errorf("Secret %s was created with owner references %+v, want %s as its controller", name, refs, want)
		}
		if refs[0].BlockOwnerDeletion != nil && *refs[0].BlockOwnerDeletion {
			t.Errorf("Secret %s sets blockOwnerDeletion, which needs update on the owner's finalizers (not in config/rbac)", name)
		}
		if n := secrets.count(name, watch.Modified); n > 0 {
			t.Errorf("Secret %s was changed %d times after its creation (owner references must be set in the create call)", name, n)
		}
		if secrets.count(name, watch.Deleted) == 0 {
			t.Errorf("Secret %s was not deleted", name)
		}
	}
	if _, ok := added[job]; !ok {
		t.Errorf("the coalesced PurgeJob's subjects Secret %s was never seen", job)
	}
	if created != 1+sealed+len(people) || sealed != 1 {
		t.Errorf("Lethe created %d Secrets of identities (%d of sealed keys), want %d (the job's, its sealed keys and one per request)", created, sealed, 2+len(people))
	}
	t.Logf("coalesced PurgeJob %s; %d Secrets of identities created and deleted; ledger: %d lines; Secrets left: %v", job, created, ledgerLines, names)
}

// A request never deletes a Secret it does not own: a request named billing
// with ttlSecondsAfterFinished 0 leaves the admin's Secret billing-subject,
// and the identity Secret it names, where they are.
func TestTTLKeepsSecretsTheRequestDoesNotOwn(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, _ := appFixture(t)
	admin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing-subject"},
		StringData: map[string]string{"api-key": "the billing team's"}}
	create(t, admin)
	dr := adaRequest(ns, "billing") // names the fixture's Secret "ada", which it does not own
	dr.Spec.Subject = retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "user_id", Value: adaID}},
		IdentitiesSecretRef: &retentionv1.SecretReference{Name: "ada"}}
	dr.Spec.TTLSecondsAfterFinished = ptr.To(int32(0))
	create(t, dr)
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(dr), &retentionv1.DeletionRequest{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the request was not removed after ttlSecondsAfterFinished 0 (error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := ledger.Line(context.Background(), env.Client, ns, "billing"); err != nil {
		t.Fatalf("the request did not complete before it was removed: %v", err)
	}
	for _, name := range []string{"billing-subject", "ada"} {
		var s corev1.Secret
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			t.Errorf("Secret %s, not owned by the request, was deleted with it: %v", name, err)
		}
	}
}

// Identity types no Dataset declares are reported, never silently matched
// to nothing: a request naming only such a type stops (Stalled, reason
// UnknownIdentityType) instead of completing as NothingInScope; a request
// naming a known type too completes and its condition names the unknown one.
// Neither says the value. A LegalHold is checked the same way.
func TestUnknownIdentityTypesAreReported(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := appFixture(t)
	typo := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "typo"}, Spec: retentionv1.DeletionRequestSpec{
		Reason: retentionv1.ReasonSubjectRequest,
		// The Dataset says phone.
		Subject: retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "phone_number", Value: adaPhone}}},
	}}
	create(t, typo)
	got := waitFor(t, typo, 60*time.Second, "Stalled/UnknownIdentityType", func(d *retentionv1.DeletionRequest) bool {
		return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonUnknownIdentityType)
	})
	if !hasCondition(got, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonUnknownIdentityType) || got.Status.Phase == retentionv1.RequestCompleted {
		t.Errorf("typo: phase %s, conditions %+v", got.Status.Phase, got.Status.Conditions)
	}
	c := condition(got, retentionv1.ConditionUnknownIdentityTypes)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != retentionv1.ReasonUnknownIdentityType || !strings.Contains(c.Message, "phone_number") || !strings.Contains(c.Message, "app") {
		t.Errorf("typo: UnknownIdentityTypes condition %+v", c)
	}
	assertEvent(t, ns, "typo", retentionv1.ReasonUnknownIdentityType)
	// It stays stopped: nothing ran, nothing completed.
	time.Sleep(2 * time.Second)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(typo), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase == retentionv1.RequestCompleted || got.Status.Receipt != nil || len(got.Status.PurgeJobs) > 0 {
		t.Errorf("typo went on: phase %s, jobs %v", got.Status.Phase, got.Status.PurgeJobs)
	}
	if n := count(t, conn, `SELECT count(*) FROM users WHERE id = $1`, adaID); n != 1 {
		t.Errorf("ada's user row: %d", n)
	}

	mixed := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mixed"}, Spec: retentionv1.DeletionRequestSpec{
		Reason: retentionv1.ReasonSubjectRequest,
		Subject: retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{
			{Type: "user_id", Value: adaID}, {Type: "phone_number", Value: adaPhone}}},
	}}
	create(t, mixed)
	done := waitRequest(t, ns, "mixed", retentionv1.RequestCompleted)
	if !hasCondition(done, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonErased) {
		t.Errorf("mixed: %+v", done.Status.Conditions)
	}
	c = condition(done, retentionv1.ConditionUnknownIdentityTypes)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "phone_number") || strings.Contains(c.Message, "user_id") {
		t.Errorf("mixed: UnknownIdentityTypes condition %+v", c)
	}
	assertEvent(t, ns, "mixed", retentionv1.ReasonUnknownIdentityType)
	if n := count(t, conn, `SELECT count(*) FROM users WHERE id = $1`, adaID); n != 0 {
		t.Errorf("mixed: ada's user row is still there")
	}

	// A request naming only known types has no such condition.
	known := adaRequest(ns, "known")
	known.Spec.Subject = retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "email", Value: "nobody@example.org"}}}
	create(t, known)
	if k := waitRequest(t, ns, "known", retentionv1.RequestCompleted); condition(k, retentionv1.ConditionUnknownIdentityTypes) != nil {
		t.Errorf("known: %+v", k.Status.Conditions)
	}

	hold := &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-9"}, Spec: retentionv1.LegalHoldSpec{
		Subjects: []retentionv1.SubjectIdentity{{Type: "user_id", Value: "usr_alan_1912"}, {Type: "customer_no", Value: "C-1"}}}}
	create(t, hold)
	h := waitFor(t, holdKey(ns, "case-9"), 30*time.Second, "UnknownIdentityTypes on the hold", func(h *retentionv1.LegalHold) bool {
		return condition(h, retentionv1.ConditionUnknownIdentityTypes) != nil
	})
	if c := condition(h, retentionv1.ConditionUnknownIdentityTypes); !strings.Contains(c.Message, "customer_no") || strings.Contains(c.Message, "user_id") || strings.Contains(c.Message, "C-1") {
		t.Errorf("hold: %+v", c)
	}
	assertEvent(t, ns, "case-9", retentionv1.ReasonUnknownIdentityType)
	assertNoPersonalData(t, ns)

}

// A PurgeJob created before its subjects Secret (as the coalescer creates
// them, so that the Secret is owned by the job from its creation) waits for
// it instead of stalling or failing, and then erases.
func TestPurgeJobWaitsForItsSubjectsSecret(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := appFixture(t)
	job := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-subject"}, Spec: retentionv1.PurgeJobSpec{
		DatasetRef:        retentionv1.LocalObjectReference{Name: "app"},
		Mode:              retentionv1.ModeEnforce,
		SubjectsSecretRef: &retentionv1.SecretReference{Name: "by-subject"},
		Operations:        []retentionv1.Operation{{Collection: "support_messages", Action: retentionv1.ActionDelete, BySubject: true}},
	}}
	if err := signature.Sign(testDigestKey, job, map[string][]byte{"user_id": []byte(adaID)}); err != nil {
		t.Fatal(err)
	}
	create(t, job)
	time.Sleep(3 * time.Second)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(job), job); err != nil {
		t.Fatal(err)
	}
	if job.Status.Phase == retentionv1.PurgeJobStalled || job.Status.Phase == retentionv1.PurgeJobFailed {
		t.Fatalf("a PurgeJob whose subjects Secret does not exist yet is %s: %+v", job.Status.Phase, job.Status.Conditions)
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-subject", Labels: marked(),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: retentionv1.GroupVersion.String(), Kind: "PurgeJob", Name: job.Name, UID: job.UID}}},
		StringData: map[string]string{"user_id": adaID}})
	done := waitPhase(t, ns, "by-subject", retentionv1.PurgeJobSucceeded)
	if done.Status.Deleted != 6 {
		t.Errorf("deleted %d, want Ada's 6 support messages", done.Status.Deleted)
	}
	if n := count(t, conn, `SELECT count(*) FROM support_messages WHERE user_id = $1`, adaID); n != 0 {
		t.Errorf("%d of Ada's support messages left", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM support_messages`); n != 12 {
		t.Errorf("%d support messages left, want the other two users' 12", n)
	}
}

// A coalesced PurgeJob whose subjects Secret never came (the manager stopped
// between creating the job and the Secret) stalls once its grace is over,
// having run nothing; its request deletes it and is erased by a new one
// instead of failing.
func TestRequestRecoversFromACoalescedJobWithoutItsSecret(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := appFixture(t)
	orphan := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erase-app-orphan",
		Labels:      map[string]string{retentionv1.LabelCoalesced: "true"},
		Annotations: map[string]string{retentionv1.AnnotationDeletionRequests: "orph"}},
		Spec: retentionv1.PurgeJobSpec{
			DatasetRef:        retentionv1.LocalObjectReference{Name: "app"},
			Mode:              retentionv1.ModeEnforce,
			SubjectsSecretRef: &retentionv1.SecretReference{Name: "erase-app-orphan"},
			Operations:        []retentionv1.Operation{{Collection: "support_messages", Action: retentionv1.ActionDelete, BySubject: true}},
		}}
	// Signed as Lethe signs the jobs it creates: only its Secret is missing.
	if err := signature.Sign(testDigestKey, orphan, map[string][]byte{"user_id": []byte(adaID)}); err != nil {
		t.Fatal(err)
	}
	create(t, orphan)
	dr := adaRequest(ns, "orph")
	dr.Spec.Subject = retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "user_id", Value: adaID}}}
	create(t, dr)
	waitFor(t, dr, 30*time.Second, "the request waiting for the orphaned job", func(d *retentionv1.DeletionRequest) bool {
		return d.Status.Phase == retentionv1.RequestRunning && slices.Equal(d.Status.PurgeJobs, []string{orphan.Name})
	})
	done := waitFor(t, dr, 90*time.Second, "Completed", func(d *retentionv1.DeletionRequest) bool {
		return d.Status.Phase == retentionv1.RequestCompleted || d.Status.Phase == retentionv1.RequestFailed
	})
	if done.Status.Phase != retentionv1.RequestCompleted || !done.Status.Receipt.Verified || slices.Contains(done.Status.PurgeJobs, orphan.Name) {
		t.Fatalf("phase %s, jobs %v, conditions %+v", done.Status.Phase, done.Status.PurgeJobs, done.Status.Conditions)
	}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(orphan), &retentionv1.PurgeJob{}); !apierrors.IsNotFound(err) {
		t.Errorf("the orphaned PurgeJob is still there (error %v)", err)
	}
	for table, n := range adaLeft(t, conn) {
		if n > 0 {
			t.Errorf("%d of Ada's records left in %s", n, table)
		}
	}
}

// watchCompleted watches the DeletionRequests of ns from now on; the
// function it returns waits until n of them have been seen Completed (or
// the timeout passes) and returns each as it was first seen so.
func watchCompleted(t *testing.T, ns string) func(timeout time.Duration, n int) map[string]*retentionv1.DeletionRequest {
	t.Helper()
	w := watchIn(t, ns, &retentionv1.DeletionRequestList{})
	return func(timeout time.Duration, n int) map[string]*retentionv1.DeletionRequest {
		seen := map[string]*retentionv1.DeletionRequest{}
		deadline := time.After(timeout)
		for len(seen) < n {
			select {
			case e, ok := <-w.ResultChan():
				if !ok {
					t.Fatalf("the watch of DeletionRequests ended after %d of %d were seen Completed", len(seen), n)
				}
				if dr, ok := e.Object.(*retentionv1.DeletionRequest); ok && dr.Status.Phase == retentionv1.RequestCompleted && seen[dr.Name] == nil {
					seen[dr.Name] = dr.DeepCopy()
				}
			case <-deadline:
				return seen
			}
		}
		return seen
	}
}
