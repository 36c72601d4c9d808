package hostile

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/managerproc"
)

// caseTimeout bounds how long one accepted case may take to show Stalled.
const caseTimeout = 90 * time.Second

// TestHostileInput is the whole suite: one namespace, one manager under the
// namespaced Role, one set of stores with sentinels; the RBAC flow first,
// then every case concurrently, then the sentinels and the manager's log.
func TestHostileInput(t *testing.T) {
	start := time.Now()
	st := fillStores(t)
	before := st.checksums(t)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hostile-"}}
	create(t, env.Client, ns)
	grant(t, ns.Name)
	adminSecrets(t, ns.Name, st)
	user, _ := userClient(t, userName)
	_, managerConfig := userClient(t, managerUser)
	manager := startManager(t, managerConfig, ns.Name)

	// The namespace user really has no Secret rights.
	var s corev1.Secret
	if err := user.Get(ctx(), client.ObjectKey{Namespace: ns.Name, Name: "pg-creds"}, &s); !apierrors.IsForbidden(err) {
		t.Fatalf("the namespace user reads Secret pg-creds: %v; want Forbidden", err)
	}

	r := strings.NewReplacer(
		"{{PGHOST}}", st.pg.Host, "{{PGPORT}}", strconv.Itoa(st.pg.Port), "{{PGDB}}", st.pg.Database,
		"{{MYHOST}}", st.my.Host, "{{MYPORT}}", strconv.Itoa(st.my.Port), "{{MYDB}}", st.my.Database,
		"{{RDHOST}}", st.rd.Host, "{{RDPORT}}", strconv.Itoa(st.rd.Port), "{{RDDB}}", strconv.Itoa(st.rd.DB),
		"{{S3ENDPOINT}}", st.s3.Endpoint, "{{S3BUCKET}}", st.s3.Bucket,
	)

	t.Run("NamespacedRBACFlow", func(t *testing.T) { rbacFlow(t, user, ns.Name, r, st) })
	if t.Failed() {
		t.FailNow()
	}
	// A hold whose subjects Secret is missing, in force before the cases.
	broken := &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "broken-hold"},
		Spec:       retentionv1.LegalHoldSpec{Datasets: []retentionv1.ObjectName{"my-news"}, SubjectsSecretRef: &retentionv1.SecretReference{Name: "missing-held"}},
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(retentionv1.GroupVersion.WithKind("LegalHold"))
	u.SetNamespace(ns.Name)
	u.SetName(broken.Name)
	if err := user.Create(ctx(), broken); err != nil {
		t.Fatal(err)
	}
	if msg := waitCondition(user, u, retentionv1.ConditionStalled, "True", "SecretNotFound", "missing-held", 30*time.Second); msg != "" {
		t.Fatalf("LegalHold broken-hold: %s", msg)
	}
	setup := time.Since(start)

	all := cases()
	if len(all) < 100 {
		t.Errorf("%d cases; the suite needs at least 100", len(all))
	}
	names := map[string]bool{}
	for _, c := range all {
		if names[c.name] || (c.stalled == "") == (len(c.rejected) == 0) {
			t.Fatalf("case %q is duplicated or expects neither or both of rejection and Stalled", c.name)
		}
		names[c.name] = true
	}
	results := make([]string, len(all))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 12)
	for i, c := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = run(user, ns.Name, fmt.Sprintf("c%03d", i), r.Replace(c.manifest), c)
		}()
	}
	wg.Wait()
	rejected, stalled := 0, 0
	for i, c := range all {
		t.Run(c.name, func(t *testing.T) {
			if results[i] != "" {
				t.Error(results[i])
			}
		})
		if c.stalled != "" {
			stalled++
		} else {
			rejected++
		}
	}
	t.Logf("%d cases: %d rejected at admission, %d accepted and Stalled with a reason (setup %s, cases %s)",
		len(all), rejected, stalled, setup.Round(time.Second), (time.Since(start) - setup).Round(time.Second))

	t.Run("MetricSeriesOfDeletedObjects", func(t *testing.T) { metricSeriesRemoved(t, manager, user, ns.Name, all) })
	t.Run("CleanupDeletesOnlyOwnedSecrets", func(t *testing.T) { cleanupKeepsOthersSecrets(t, user, ns.Name) })

	// Nothing the cases did changed a sentinel.
	after := st.checksums(t)
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if before[k] != after[k] {
			t.Errorf("sentinel %s changed: before %s, after %s", k, before[k], after[k])
		}
	}
	if logs := managerLogs.String(); strings.Contains(strings.ToLower(logs), "forbidden") {
		i := strings.Index(strings.ToLower(logs), "forbidden")
		t.Errorf("the manager under the namespaced Role met a forbidden: …%s…", logs[max(0, i-300):min(len(logs), i+200)])
	}
}

// adminSecrets creates, as the admin, the Secrets the namespace user may
// point at but not read.
func adminSecrets(t *testing.T, ns string, st stores) {
	t.Helper()
	for name, data := range map[string]map[string]string{
		"pg-creds":            {"username": st.pg.User, "password": st.pg.Password},
		"my-creds":            {"username": st.my.User, "password": st.my.Password},
		"s3-creds":            {"accessKeyID": st.s3.AccessKeyID, "secretAccessKey": st.s3.SecretAccessKey},
		"hmac-key":            {"key": "hmac-key-0123456789abcdef0123456789"},
		"bad-identities":      {"email": "a\x00b@example.com"},
		"bad-type-identities": {"Email": "x@example.com"},
		"bad-hold-subjects":   {"email": "ok@example.com\nx\x01y@example.com"},
	} {
		create(t, env.Client, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"retention.lethe.dev/secret": "true"}}, StringData: data})
	}
}

// base objects the cases refer to, created by the namespace user.
const baseObjects = `
kind: DataStore
metadata: {name: pg}
spec: {type: PostgreSQL, host: "{{PGHOST}}", port: {{PGPORT}}, database: {{PGDB}}, tls: Disable, credentialsSecretRef: {name: pg-creds}}
---
kind: DataStore
metadata: {name: my}
spec: {type: MySQL, host: "{{MYHOST}}", port: {{MYPORT}}, database: {{MYDB}}, tls: Disable, credentialsSecretRef: {name: my-creds}}
---
kind: DataStore
metadata: {name: rd}
spec: {type: Redis, host: "{{RDHOST}}", port: {{RDPORT}}, redisDB: {{RDDB}}, tls: Disable}
---
kind: DataStore
metadata: {name: s3}
spec: {type: S3, tls: Disable, credentialsSecretRef: {name: s3-creds}, s3: {endpoint: "{{S3ENDPOINT}}", region: us-east-1, bucket: {{S3BUCKET}}, forcePathStyle: true}}
---
kind: Dataset
metadata: {name: pg-shop}
spec:
  dataStoreRef: {name: pg}
  collections:
  - name: users
    timestampField: created_at
    identities: [{type: user_id, field: id}, {type: email, field: email}]
    fields: [{name: note, categories: [contact], anonymize: {strategy: Redact}}]
  - name: orders
    timestampField: created_at
    identities: [{type: user_id, field: user_id}]
    fields: [{name: shipping, anonymize: {strategy: Fixed, replacement: redacted}}]
  - name: events
    timestampField: created_at
    identities: [{type: user_id, field: user_id}]
---
kind: Dataset
metadata: {name: pg-scratch}
spec:
  dataStoreRef: {name: pg}
  collections: [{name: scratch, timestampField: created_at, identities: [{type: scratch_id, field: id}]}]
---
kind: Dataset
metadata: {name: my-news}
spec:
  dataStoreRef: {name: my}
  collections: [{name: subscribers, timestampField: created_at, identities: [{type: email, field: email}]}]
---
kind: Dataset
metadata: {name: rd-sessions}
spec:
  dataStoreRef: {name: rd}
  collections: [{name: sessions, keyPattern: "session:{user_id}:*", identities: [{type: user_id}], timestampField: last_seen}]
---
kind: Dataset
metadata: {name: s3-uploads}
spec:
  dataStoreRef: {name: s3}
  collections: [{name: uploads, prefix: "uploads/{user_id}/", identities: [{type: user_id}]}]
`

// rbacFlow: as the namespace user, DataStores and Datasets become Ready and
// a RetentionPolicy run deletes what it should, all reconciled by the
// manager with only its namespaced Role.
func rbacFlow(t *testing.T, user client.Client, ns string, r *strings.Replacer, st stores) {
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(r.Replace(baseObjects), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte("apiVersion: retention.lethe.dev/v1alpha1\n"+strings.TrimSpace(doc)), &u.Object); err != nil {
			t.Fatalf("base object: %v\n%s", err, doc)
		}
		u.SetNamespace(ns)
		if err := user.Create(ctx(), u, client.FieldValidation("Strict")); err != nil {
			t.Fatalf("creating %s %s as the namespace user: %v", u.GetKind(), u.GetName(), err)
		}
		objs = append(objs, u)
	}
	for _, u := range objs {
		if msg := waitCondition(user, u, "Ready", "True", "", "", 60*time.Second); msg != "" {
			t.Fatalf("%s %s: %s", u.GetKind(), u.GetName(), msg)
		}
	}
	p := &retentionv1.RetentionPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scratch-flow", Annotations: map[string]string{"retention.lethe.dev/run-now": "1"}},
		Spec: retentionv1.RetentionPolicySpec{
			DatasetRef: retentionv1.LocalObjectReference{Name: "pg-scratch"}, Mode: retentionv1.ModeEnforce, Schedule: "0 3 * * *",
			Rules: []retentionv1.RetentionRule{{Name: "scratch_30d", Collections: []retentionv1.Identifier{"scratch"}, OlderThan: "30d", Action: retentionv1.ActionDelete}},
		},
	}
	if err := user.Create(ctx(), p); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := user.Get(ctx(), client.ObjectKeyFromObject(p), p)
		if err == nil && p.Status.LastRun != nil && p.Status.LastRun.Result == "Succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy run did not succeed under the namespaced Role: %v %+v", err, p.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if p.Status.LastRun.RowsDeleted != 10 {
		t.Errorf("the run deleted %d rows, want 10", p.Status.LastRun.RowsDeleted)
	}
	conn := pgConn(t, st)
	var n int
	if err := conn.QueryRow(ctx(), "SELECT count(*) FROM scratch").Scan(&n); err != nil || n != 0 {
		t.Errorf("scratch holds %d rows after the run (%v), want 0", n, err)
	}
}

// run applies one case as the namespace user and returns what went wrong,
// or "".
func run(user client.Client, ns, name, manifest string, c hostileCase) string {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(strings.Replace(manifest, "name: NAME", "name: "+name, 1)), &u.Object); err != nil {
		return fmt.Sprintf("the test manifest is not YAML: %v\n%s", err, manifest)
	}
	u.SetNamespace(ns)
	err := user.Create(ctx(), u, client.FieldValidation("Strict"))
	if len(c.rejected) > 0 {
		if err == nil {
			return fmt.Sprintf("accepted at admission; want a rejection containing %q\n%s", c.rejected, manifest)
		}
		for _, want := range c.rejected {
			if !strings.Contains(err.Error(), want) {
				return fmt.Sprintf("rejected with %q; want it to contain %q", err, want)
			}
		}
		return ""
	}
	if err != nil {
		return fmt.Sprintf("rejected at admission (%v); want accepted and Stalled %s", err, c.stalled)
	}
	return waitCondition(user, u, retentionv1.ConditionStalled, "True", c.stalled, c.message, caseTimeout)
}

// waitCondition polls an object until a condition has the status, reason
// and a message containing message; it returns "" or what it saw last.
func waitCondition(c client.Client, u *unstructured.Unstructured, typ, status, reason, message string, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(u.GroupVersionKind())
	var last []any
	for {
		err := c.Get(ctx(), client.ObjectKeyFromObject(u), got)
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			last = conds
			for _, x := range conds {
				m, _ := x.(map[string]any)
				if m["type"] == typ && m["status"] == status && (reason == "" || m["reason"] == reason) &&
					strings.Contains(fmt.Sprint(m["message"]), message) {
					return ""
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("after %s no condition %s=%s reason %q with message containing %q; conditions: %v (error %v)", timeout, typ, status, reason, message, last, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// metricSeriesRemoved deletes a stalled DeletionRequest and a DataStore
// that no Dataset uses, and checks that their series leave the registry.
func metricSeriesRemoved(t *testing.T, manager *managerproc.Manager, user client.Client, ns string, all []hostileCase) {
	pick := func(prefix string) string {
		for i, c := range all {
			if strings.HasPrefix(c.name, prefix) {
				return fmt.Sprintf("c%03d", i)
			}
		}
		t.Fatalf("no case %q", prefix)
		return ""
	}
	dr, store := pick("DeletionRequest/selector with an invalid label value"), pick("DataStore/credentials Secret missing")
	if !series(t, manager, "lethe_deletionrequest_deadline_seconds", "deletionrequest", ns, dr) {
		t.Fatalf("no lethe_deletionrequest_deadline_seconds series for the stalled request %s", dr)
	}
	if !series(t, manager, "lethe_datastore_up", "datastore", ns, store) {
		t.Fatalf("no lethe_datastore_up series for DataStore %s", store)
	}
	for _, o := range []client.Object{
		&retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: dr}},
		&retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: store}},
	} {
		if err := user.Delete(ctx(), o); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for series(t, manager, "lethe_deletionrequest_deadline_seconds", "deletionrequest", ns, dr) || series(t, manager, "lethe_datastore_up", "datastore", ns, store) {
		if time.Now().After(deadline) {
			t.Fatalf("series of deleted DeletionRequest %s or DataStore %s are still exported", dr, store)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cleanupKeepsOthersSecrets: a request named billing, finished with
// ttlSecondsAfterFinished 0, is removed, but the admin's Secrets
// billing-subject (its derived-identities name) and billing-ids (its
// identities Secret), which it does not own, stay.
func cleanupKeepsOthersSecrets(t *testing.T, user client.Client, ns string) {
	for name, data := range map[string]string{"billing-subject": "the admin's", "billing-ids": "999"} {
		key := "note"
		if name == "billing-ids" {
			key = "scratch_id" // no such row: the erasure completes and changes nothing
		}
		create(t, env.Client, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"retention.lethe.dev/secret": "true"}}, StringData: map[string]string{key: data}})
	}
	dr := &retentionv1.DeletionRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing"},
		Spec: retentionv1.DeletionRequestSpec{
			Subject: retentionv1.Subject{IdentitiesSecretRef: &retentionv1.SecretReference{Name: "billing-ids"}},
			Reason:  retentionv1.ReasonSubjectRequest, Scope: &retentionv1.ErasureScope{Datasets: []retentionv1.ObjectName{"pg-scratch"}},
			TTLSecondsAfterFinished: new(int32),
		},
	}
	if err := user.Create(ctx(), dr); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := user.Get(ctx(), client.ObjectKeyFromObject(dr), dr)
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request billing was not removed after its TTL: %v %+v", err, dr.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, name := range []string{"billing-subject", "billing-ids"} {
		var s corev1.Secret
		if err := env.Client.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			t.Errorf("the admin's Secret %s, not owned by request billing, is gone after its cleanup: %v", name, err)
		}
	}
}

// series reports whether the metric family the manager exports has a series
// with namespace ns and label = value. A failed scrape fails the test.
func series(t *testing.T, manager *managerproc.Manager, family, label, ns, value string) bool {
	t.Helper()
	mfs, err := manager.Gather(ctx())
	if err != nil {
		t.Fatalf("scraping the manager's metrics: %v", err)
	}
	mf, ok := mfs[family]
	if !ok {
		return false
	}
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["namespace"] == ns && labels[label] == value {
			return true
		}
	}
	return false
}
