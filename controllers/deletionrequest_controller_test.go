package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/ledger"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/receipt"
)

// The subject of these tests, with identifiers distinctive enough to search
// for in logs, events and statuses.
const (
	adaID    = "usr_ada_4711"
	adaEmail = "ada.lovelace@example.org"
	adaPhone = "+44-20-7946-0958"
)

// seedApp creates six related tables with foreign keys and three users.
func seedApp(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for _, sql := range []string{
		`CREATE TABLE users (id text PRIMARY KEY, email text UNIQUE NOT NULL, phone text)`,
		`CREATE TABLE devices (id bigint PRIMARY KEY, user_id text NOT NULL REFERENCES users(id), device_id text, ip inet)`,
		`CREATE TABLE sessions (id bigint PRIMARY KEY, device_id bigint NOT NULL REFERENCES devices(id), token text, started_at timestamptz)`,
		`CREATE TABLE orders (id bigint PRIMARY KEY, user_id text REFERENCES users(id), shipping_address text, total numeric, created_at timestamptz)`,
		`CREATE TABLE order_items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders(id), sku text, gift_note text)`,
		`CREATE TABLE support_messages (id bigint PRIMARY KEY, user_id text NOT NULL REFERENCES users(id), body text, created_at timestamptz)`,
	} {
		mustExec(t, conn, sql)
	}
	users := []struct{ id, email, phone string }{
		{adaID, adaEmail, adaPhone}, {"usr_alan_1912", "alan@example.org", "+44-1"}, {"usr_grace_1906", "grace@example.org", "+1-2"},
	}
	for u, usr := range users {
		mustExec(t, conn, `INSERT INTO users VALUES ($1, $2, $3)`, usr.id, usr.email, usr.phone)
		for d := 0; d < 3; d++ {
			dev := int64(u*10 + d)
			mustExec(t, conn, `INSERT INTO devices VALUES ($1, $2, $3, '192.0.2.1')`, dev, usr.id, fmt.Sprintf("dev-%s-%d", usr.id, d))
			for s := 0; s < 4; s++ {
				mustExec(t, conn, `INSERT INTO sessions VALUES ($1, $2, $3, now())`, dev*10+int64(s), dev, fmt.Sprintf("tok-%d-%d", dev, s))
			}
		}
		for o := 0; o < 5; o++ {
			order := int64(u*100 + o)
			mustExec(t, conn, `INSERT INTO orders VALUES ($1, $2, $3, 42.5, now())`, order, usr.id, "1 Infinite Loop for "+usr.email)
			for i := 0; i < 2; i++ {
				mustExec(t, conn, `INSERT INTO order_items VALUES ($1, $2, 'sku', $3)`, order*10+int64(i), order, "Happy birthday from "+usr.email)
			}
		}
		for m := 0; m < 6; m++ {
			mustExec(t, conn, `INSERT INTO support_messages VALUES ($1, $2, $3, now())`, int64(u*100+m), usr.id, "Please help, I am "+usr.email)
		}
	}
}

func appDataset(ns string) *retentionv1.Dataset {
	ref := func(field, coll, target string) []retentionv1.Reference {
		return []retentionv1.Reference{{Field: retentionv1.Identifier(field), Collection: retentionv1.Identifier(coll), TargetField: retentionv1.Identifier(target)}}
	}
	erased := "[erased]"
	return &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{
				{Name: "users", PrimaryKey: []retentionv1.Identifier{"id"}, Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}, {Type: "phone", Field: "phone"}}},
				{Name: "devices", PrimaryKey: []retentionv1.Identifier{"id"}, Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}, References: ref("user_id", "users", "id")},
				{Name: "sessions", References: ref("device_id", "devices", "id")},
				{Name: "orders", PrimaryKey: []retentionv1.Identifier{"id"}, Action: retentionv1.ActionAnonymize,
					Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}, References: ref("user_id", "users", "id"),
					Fields: []retentionv1.DataField{
						{Name: "user_id", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyNull}},
						{Name: "shipping_address", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyFixed, Replacement: &erased}},
					}},
				{Name: "order_items", Action: retentionv1.ActionAnonymize, References: ref("order_id", "orders", "id"),
					Fields: []retentionv1.DataField{{Name: "gift_note", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyNull}}}},
				{Name: "support_messages", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}, References: ref("user_id", "users", "id")},
			},
		},
	}
}

func appFixture(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	seedApp(t, conn)
	create(t, appDataset(ns))
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada", Labels: marked()},
		StringData: map[string]string{"user_id": adaID, "email": adaEmail}})
	return ns, conn
}

func adaRequest(ns, name string) *retentionv1.DeletionRequest {
	return &retentionv1.DeletionRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: retentionv1.DeletionRequestSpec{
			Subject: retentionv1.Subject{IdentitiesSecretRef: &retentionv1.SecretReference{Name: "ada"}},
			Reason:  retentionv1.ReasonSubjectRequest,
		},
	}
}

func waitRequest(t *testing.T, ns, name string, phase retentionv1.DeletionRequestPhase) *retentionv1.DeletionRequest {
	t.Helper()
	return waitFor(t, &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, 90*time.Second, "phase "+string(phase),
		func(d *retentionv1.DeletionRequest) bool { return d.Status.Phase == phase })
}

// snapshot is every row of the six tables, as text, for rows not of Ada.
func othersSnapshot(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT u.*::text FROM users u WHERE id <> '` + adaID + `' ORDER BY id`,
		`SELECT d.*::text FROM devices d WHERE user_id <> '` + adaID + `' ORDER BY id`,
		`SELECT s.*::text FROM sessions s JOIN devices d ON d.id = s.device_id WHERE d.user_id <> '` + adaID + `' ORDER BY s.id`,
		`SELECT o.*::text FROM orders o WHERE user_id <> '` + adaID + `' ORDER BY id`,
		`SELECT i.*::text FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.user_id <> '` + adaID + `' ORDER BY i.id`,
		`SELECT m.*::text FROM support_messages m WHERE user_id <> '` + adaID + `' ORDER BY id`,
	} {
		rows, err := conn.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			b.WriteString(s + "\n")
		}
		rows.Close()
	}
	return b.String()
}

// adaLeft counts the rows still identifiable to Ada, table by table.
func adaLeft(t *testing.T, conn *pgx.Conn) map[string]int64 {
	t.Helper()
	like := "%" + adaEmail + "%"
	return map[string]int64{
		"users":            count(t, conn, `SELECT count(*) FROM users WHERE id = $1 OR email = $2 OR phone = $3`, adaID, adaEmail, adaPhone),
		"devices":          count(t, conn, `SELECT count(*) FROM devices WHERE user_id = $1 OR device_id LIKE $2`, adaID, "%"+adaID+"%"),
		"sessions":         count(t, conn, `SELECT count(*) FROM sessions WHERE device_id < 10`),
		"orders":           count(t, conn, `SELECT count(*) FROM orders WHERE user_id = $1 OR shipping_address LIKE $2`, adaID, like),
		"order_items":      count(t, conn, `SELECT count(*) FROM order_items WHERE gift_note LIKE $1`, like),
		"support_messages": count(t, conn, `SELECT count(*) FROM support_messages WHERE user_id = $1 OR body LIKE $2`, adaID, like),
	}
}

func TestDeletionRequestErasesTheSubjectEverywhereAndNobodyElse(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := appFixture(t)
	before := othersSnapshot(t, conn)
	ordersBefore := count(t, conn, `SELECT count(*) FROM orders`)

	create(t, adaRequest(ns, "ada"))
	dr := waitRequest(t, ns, "ada", retentionv1.RequestCompleted)

	for table, n := range adaLeft(t, conn) {
		if n != 0 {
			t.Errorf("%d rows identifiable to the subject left in %s", n, table)
		}
	}
	if after := othersSnapshot(t, conn); after != before {
		t.Errorf("other subjects' rows changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := count(t, conn, `SELECT count(*) FROM orders`); got != ordersBefore {
		t.Errorf("orders are anonymized, not deleted: %d rows, want %d", got, ordersBefore)
	}
	if got := count(t, conn, `SELECT count(*) FROM orders WHERE user_id IS NULL AND shipping_address = '[erased]'`); got != 5 {
		t.Errorf("%d anonymized orders, want 5", got)
	}

	// The plan, in order: children before parents.
	order := map[string]int{}
	for i, p := range dr.Status.Plan {
		order[p.Collection] = i
	}
	for _, edge := range [][2]string{{"sessions", "devices"}, {"devices", "users"}, {"order_items", "orders"}, {"orders", "users"}, {"support_messages", "users"}} {
		if order[edge[0]] > order[edge[1]] {
			t.Errorf("plan erases %s after %s: %+v", edge[0], edge[1], dr.Status.Plan)
		}
	}
	// The receipt: rows per collection, a digest, a hash that checks out.
	r := dr.Status.Receipt
	if r == nil || !r.Verified || !strings.HasPrefix(r.SubjectDigest, "hmac-sha256:") {
		t.Fatalf("receipt: %+v", r)
	}
	rows := map[string]int64{}
	for _, e := range r.Entries {
		rows[e.Collection] = e.Rows
	}
	want := map[string]int64{"users": 1, "devices": 3, "sessions": 12, "orders": 5, "order_items": 10, "support_messages": 6}
	for c, n := range want {
		if rows[c] != n {
			t.Errorf("receipt %s: %d rows, want %d", c, rows[c], n)
		}
	}
	if sum, _ := receipt.SHA256(r); sum != r.SHA256 {
		t.Errorf("receipt sha256 %s does not match its content (%s)", r.SHA256, sum)
	}
	if !hasCondition(dr, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonErased) ||
		!hasCondition(dr, retentionv1.ConditionDeadlineMet, metav1.ConditionTrue, retentionv1.ReasonAnsweredInTime) {
		t.Errorf("conditions: %+v", dr.Status.Conditions)
	}
	// The ledger keeps digests of the identities, never the identities.
	line, err := ledger.Line(context.Background(), env.Client, ns, "ada")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, r.SHA256) || !strings.Contains(line, "email=hmac-sha256:") {
		t.Errorf("ledger entry: %q", line)
	}
	assertNoPersonalData(t, ns)
}

// assertNoPersonalData scans the manager's logs, the namespace's events and
// the status of every Lethe object for the subject's identifier strings.
func assertNoPersonalData(t *testing.T, ns string) {
	t.Helper()
	var haystack strings.Builder
	haystack.WriteString(managerLogs.String())
	var events eventsv1.EventList
	if err := env.Client.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		fmt.Fprintf(&haystack, "%s %s %s\n", e.Reason, e.Note, e.Action)
	}
	lists := []client.ObjectList{&retentionv1.DeletionRequestList{}, &retentionv1.PurgeJobList{}, &retentionv1.DatasetList{}, &retentionv1.DataStoreList{}, &retentionv1.LegalHoldList{}, &retentionv1.RetentionPolicyList{}, &retentionv1.RecipientList{}}
	for _, l := range lists {
		if err := env.Client.List(context.Background(), l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(l)
		var generic struct {
			Items []struct {
				Status json.RawMessage `json:"status"`
			} `json:"items"`
		}
		_ = json.Unmarshal(b, &generic)
		for _, it := range generic.Items {
			haystack.Write(it.Status)
		}
	}
	if len(events.Items) == 0 {
		t.Error("no events to scan")
	}
	for _, id := range []string{adaID, adaEmail, adaPhone} {
		if strings.Contains(haystack.String(), id) {
			t.Errorf("subject identifier %q found in logs, events or status", id)
		}
	}
}

// shiftableClock is a clock tests can move forward.
type shiftableClock struct{ offset atomic.Int64 }

func (c *shiftableClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *shiftableClock) shift(d time.Duration) { c.offset.Add(int64(d)) }

// touch changes an annotation so the controller reconciles now.
func touch(t *testing.T, obj client.Object) {
	t.Helper()
	annotate(t, obj, "test.lethe.dev/touched", time.Now().Format(time.RFC3339Nano))
}

func TestDeletionRequestWaitsForTheReviewWindow(t *testing.T) {
	clock := &shiftableClock{}
	startManagerWithClock(t, controllers.Options{}, clock.now)
	ns, conn := appFixture(t)
	dr := adaRequest(ns, "cancel")
	dr.Spec.Reason = retentionv1.ReasonAccountCancellation // 48h by default
	create(t, dr)
	got := waitRequest(t, ns, "cancel", retentionv1.RequestReviewing)
	if d := got.Status.NotBefore.Sub(got.CreationTimestamp.Time); d != 48*time.Hour {
		t.Errorf("notBefore is %s after creation, want 48h", d)
	}
	if len(got.Status.Plan) != 6 {
		t.Errorf("the plan must show before acting: %+v", got.Status.Plan)
	}
	if !hasCondition(got, retentionv1.ConditionReviewWindowPassed, metav1.ConditionFalse, retentionv1.ReasonInReview) || adaLeft(t, conn)["users"] != 1 {
		t.Fatalf("acted inside the review window: %+v", got.Status.Conditions)
	}
	clock.shift(47 * time.Hour)
	touch(t, got)
	time.Sleep(time.Second)
	if p := waitRequest(t, ns, "cancel", retentionv1.RequestReviewing); adaLeft(t, conn)["users"] != 1 {
		t.Fatalf("acted 47h into a 48h window: %s", p.Status.Phase)
	}
	clock.shift(2 * time.Hour)
	touch(t, got)
	waitRequest(t, ns, "cancel", retentionv1.RequestCompleted)
	if adaLeft(t, conn)["users"] != 0 {
		t.Error("not erased after the review window")
	}

	// A minor's data goes at once, whatever the reason's usual window.
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grace", Labels: marked()}, StringData: map[string]string{"user_id": "usr_grace_1906"}})
	minor := adaRequest(ns, "minor")
	minor.Spec.Reason = retentionv1.ReasonMinor
	minor.Spec.Subject.IdentitiesSecretRef.Name = "grace"
	create(t, minor)
	m := waitRequest(t, ns, "minor", retentionv1.RequestCompleted)
	if !m.Status.NotBefore.Time.Equal(m.CreationTimestamp.Time) {
		t.Errorf("a minor's request had a review window until %s", m.Status.NotBefore)
	}
}

// installApprovalPolicy installs the ValidatingAdmissionPolicy of config/admission.
func installApprovalPolicy(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, "config", "admission", "deletionrequest_approval.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(string(data)), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) == 0 {
			continue
		}
		err := env.Client.Create(context.Background(), &u)
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
}

func TestDeletionRequestApprovalByAnotherAuthenticatedUser(t *testing.T) {
	installApprovalPolicy(t)
	startManager(t, controllers.Options{})
	ns, conn := appFixture(t)
	alice, err := env.UserClient("alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := env.UserClient("bob")
	if err != nil {
		t.Fatal(err)
	}
	dr := adaRequest(ns, "needs-approval")
	dr.Spec.RequireApproval = true

	// The policy takes a moment to be enforced after creation; the first
	// check doubles as the wait for it.
	var createErr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if createErr = alice.Create(context.Background(), dr.DeepCopy()); createErr != nil && strings.Contains(createErr.Error(), "requested-by") {
			break
		}
		if createErr == nil {
			_ = env.Client.Delete(context.Background(), dr.DeepCopy())
			time.Sleep(200 * time.Millisecond)
		}
	}
	if createErr == nil || !strings.Contains(createErr.Error(), "requested-by") {
		t.Fatalf("a request requiring approval without requested-by was accepted: %v", createErr)
	}
	// Claiming to be someone else is refused.
	forged := dr.DeepCopy()
	forged.Annotations = map[string]string{retentionv1.AnnotationRequestedBy: "bob"}
	if err := alice.Create(context.Background(), forged); err == nil {
		t.Fatal("alice created a request claiming to be bob")
	}
	dr.Annotations = map[string]string{retentionv1.AnnotationRequestedBy: "alice"}
	if err := alice.Create(context.Background(), dr); err != nil {
		t.Fatal(err)
	}
	got := waitRequest(t, ns, "needs-approval", retentionv1.RequestAwaitingApproval)
	if adaLeft(t, conn)["users"] != 1 {
		t.Fatal("erased before approval")
	}
	// The creator cannot approve, nor can anyone approve in another's name.
	for _, c := range []struct {
		who client.Client
		as  string
	}{{alice, "alice"}, {alice, "bob"}, {bob, "carol"}} {
		patch := client.MergeFrom(got.DeepCopy())
		attempt := got.DeepCopy()
		attempt.Annotations[retentionv1.AnnotationApprovedBy] = c.as
		if err := c.who.Patch(context.Background(), attempt, patch); err == nil {
			t.Fatalf("approval as %q was accepted", c.as)
		}
	}
	patch := client.MergeFrom(got.DeepCopy())
	got.Annotations[retentionv1.AnnotationApprovedBy] = "bob"
	if err := bob.Patch(context.Background(), got, patch); err != nil {
		t.Fatalf("bob's approval was refused: %v", err)
	}
	done := waitRequest(t, ns, "needs-approval", retentionv1.RequestCompleted)
	if done.Status.ApprovedBy != "bob" || adaLeft(t, conn)["users"] != 0 {
		t.Errorf("approvedBy %q; users left %d", done.Status.ApprovedBy, adaLeft(t, conn)["users"])
	}
}

func TestDeletionRequestBlockedByLegalHoldUntilReleased(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := appFixture(t)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held", Labels: marked()}, StringData: map[string]string{"email": adaEmail}})
	hold := &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-99"},
		Spec: retentionv1.LegalHoldSpec{Reason: "Case 99", SubjectsSecretRef: &retentionv1.SecretReference{Name: "held"}}}
	create(t, hold)
	create(t, adaRequest(ns, "ada"))
	held := waitRequest(t, ns, "ada", retentionv1.RequestHeld)
	if !hasCondition(held, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonLegalHold) ||
		!strings.Contains(condition(held, retentionv1.ConditionHeld).Message, "case-99") {
		t.Fatalf("conditions: %+v", held.Status.Conditions)
	}
	if adaLeft(t, conn)["support_messages"] != 6 {
		t.Fatal("held subject's data was touched")
	}
	patch := client.MergeFrom(hold.DeepCopy())
	hold.Spec.Released = true
	if err := env.Client.Patch(context.Background(), hold, patch); err != nil {
		t.Fatal(err)
	}
	waitRequest(t, ns, "ada", retentionv1.RequestCompleted)
	if adaLeft(t, conn)["support_messages"] != 0 {
		t.Error("not erased after the hold was released")
	}
}

func TestDeletionRequestOverdueIsFlagged(t *testing.T) {
	clock := &shiftableClock{}
	startManagerWithClock(t, controllers.Options{}, clock.now)
	ns, _ := appFixture(t)
	dr := adaRequest(ns, "late")
	dr.Spec.Reason = retentionv1.ReasonAccountCancellation // in review for 48h
	dr.Spec.Deadline = "24h"
	create(t, dr)
	got := waitRequest(t, ns, "late", retentionv1.RequestReviewing)
	if !hasCondition(got, retentionv1.ConditionDeadlineMet, metav1.ConditionTrue, retentionv1.ReasonOnTrack) {
		t.Fatalf("conditions: %+v", got.Status.Conditions)
	}
	left := testutil.ToFloat64(metrics.DeletionRequestDeadline.WithLabelValues(ns, "late"))
	if left <= 23*3600 || left > 24*3600 {
		t.Errorf("deadline metric = %.0fs, want just under 24h", left)
	}
	clock.shift(30 * time.Hour)
	touch(t, got)
	over := waitFor(t, got, 30*time.Second, "overdue", func(d *retentionv1.DeletionRequest) bool {
		return hasCondition(d, retentionv1.ConditionDeadlineMet, metav1.ConditionFalse, retentionv1.ReasonOverdue)
	})
	if v := testutil.ToFloat64(metrics.DeletionRequestDeadline.WithLabelValues(ns, "late")); v >= 0 {
		t.Errorf("deadline metric = %.0f, want negative when overdue", v)
	}
	assertEvent(t, ns, "late", retentionv1.ReasonOverdue)
	_ = over
}

func TestDeletionRequestStopsBeforeLeavingRecordsIdentifiable(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	seedApp(t, conn)
	// Without the foreign key, nothing in the store stops users from going
	// while orders still point at them.
	mustExec(t, conn, `ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey`)
	ds := appDataset(ns)
	// Orders are "anonymized" without touching user_id: still identifiable.
	for i := range ds.Spec.Collections {
		if ds.Spec.Collections[i].Name == "orders" {
			ds.Spec.Collections[i].Fields = ds.Spec.Collections[i].Fields[1:]
		}
	}
	create(t, ds)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada", Labels: marked()}, StringData: map[string]string{"user_id": adaID}})
	before := adaLeft(t, conn)
	create(t, adaRequest(ns, "ada"))
	// Such an erasure would end with Ada's orders still carrying her
	// user_id: the Dataset refuses the anonymization, and the request
	// stops before changing anything, naming the field.
	stopped := waitFor(t, &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}, 60*time.Second, "Stalled DatasetNotReady",
		func(d *retentionv1.DeletionRequest) bool {
			return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonDatasetNotReady)
		})
	if c := condition(stopped, retentionv1.ConditionStalled); !strings.Contains(c.Message, "orders.user_id") || !strings.Contains(c.Message, retentionv1.ReasonInvalidAnonymization) {
		t.Errorf("Stalled: %q, want the field orders.user_id named", c.Message)
	}
	if after := adaLeft(t, conn); !maps.Equal(after, before) || len(stopped.Status.PurgeJobs) != 0 {
		t.Errorf("records changed by a stopped request: %v, were %v (jobs %v)", after, before, stopped.Status.PurgeJobs)
	}
}

func TestDeletionRequestTTLRemovesTheRequestAndKeepsTheLedger(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, _ := appFixture(t)
	// The identity Secret is owned by the request, so it goes with it.
	dr := adaRequest(ns, "short-lived")
	dr.Spec.Subject.IdentitiesSecretRef.Name = "ada-owned"
	dr.Spec.TTLSecondsAfterFinished = ptr.To(int32(2))
	create(t, dr)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada-owned", Labels: marked(),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: retentionv1.GroupVersion.String(), Kind: "DeletionRequest", Name: dr.Name, UID: dr.UID}}},
		StringData: map[string]string{"user_id": adaID}})
	done := waitRequest(t, ns, "short-lived", retentionv1.RequestCompleted)
	receipt := done.Status.Receipt

	deadline := time.Now().Add(30 * time.Second)
	for {
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(dr), &retentionv1.DeletionRequest{})
		if err != nil && client.IgnoreNotFound(err) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request was not removed after ttlSecondsAfterFinished")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "ada-owned"}, &corev1.Secret{}); client.IgnoreNotFound(err) != nil || err == nil {
		t.Errorf("the identity Secret owned by the request is still there (err %v)", err)
	}
	line, err := ledger.Line(context.Background(), env.Client, ns, "short-lived")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, receipt.SHA256) || strings.Contains(line, adaID) {
		t.Errorf("ledger line after TTL: %q", line)
	}
}

// A Dataset can require approval for every erasure touching it: a request
// cannot opt out by leaving its own requireApproval false. Without the
// creator's name (requested-by) it stalls; with it, it waits for an
// approval by someone else and is erased only then.
func TestDeletionRequestApprovalRequiredByDataset(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := appFixture(t)
	ds := &retentionv1.Dataset{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "app"}, ds); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ds.DeepCopy())
	ds.Spec.RequireApproval = true
	if err := env.Client.Patch(context.Background(), ds, patch); err != nil {
		t.Fatal(err)
	}

	create(t, adaRequest(ns, "anonymous"))
	anon := waitFor(t, &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "anonymous"}}, 90*time.Second,
		"Stalled RequesterUnknown", func(d *retentionv1.DeletionRequest) bool {
			return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonRequesterUnknown)
		})
	if !hasCondition(anon, retentionv1.ConditionApproved, metav1.ConditionFalse, retentionv1.ReasonRequesterUnknown) {
		t.Errorf("conditions: %+v", anon.Status.Conditions)
	}

	// As users the approval policy (installed by another test of this
	// process, or not) would accept.
	alice, err := env.UserClient("alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := env.UserClient("bob")
	if err != nil {
		t.Fatal(err)
	}
	dr := adaRequest(ns, "opted-out")
	dr.Annotations = map[string]string{retentionv1.AnnotationRequestedBy: "alice"}
	if err := alice.Create(context.Background(), dr); err != nil {
		t.Fatal(err)
	}
	got := waitRequest(t, ns, "opted-out", retentionv1.RequestAwaitingApproval)
	if !hasCondition(got, retentionv1.ConditionApproved, metav1.ConditionFalse, retentionv1.ReasonAwaitingApproval) {
		t.Errorf("conditions: %+v", got.Status.Conditions)
	}
	time.Sleep(time.Second)
	if left := adaLeft(t, conn)["users"]; left != 1 {
		t.Fatal("erased before approval, although the Dataset requires it")
	}
	approval := client.MergeFrom(got.DeepCopy())
	got.Annotations[retentionv1.AnnotationApprovedBy] = "bob"
	if err := bob.Patch(context.Background(), got, approval); err != nil {
		t.Fatal(err)
	}
	waitRequest(t, ns, "opted-out", retentionv1.RequestCompleted)
	if left := adaLeft(t, conn)["users"]; left != 0 {
		t.Errorf("not erased after approval: %d users rows left", left)
	}
}

// A PurgeJob not created by Lethe that names a request in
// retention.lethe.dev/deletion-requests (a dry run that would make the
// request fail verification) is ignored by the request and refused by the
// PurgeJob controller; the request is erased by Lethe's own job.
func TestPurgeJobForgedForARequestIsIgnored(t *testing.T) {
	ns, conn := appFixture(t)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged", Labels: marked()},
		StringData: map[string]string{"user_id": "nobody"}})
	create(t, &retentionv1.PurgeJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged",
			Labels:      map[string]string{retentionv1.LabelCoalesced: "true"},
			Annotations: map[string]string{retentionv1.AnnotationDeletionRequests: "victim", retentionv1.AnnotationSignature: "v1:0000"}},
		Spec: retentionv1.PurgeJobSpec{DatasetRef: retentionv1.LocalObjectReference{Name: "app"}, Mode: retentionv1.ModeDryRun,
			SubjectsSecretRef: &retentionv1.SecretReference{Name: "forged"},
			Operations:        []retentionv1.Operation{{Collection: "users", Action: retentionv1.ActionDelete, BySubject: true}}},
	})
	startManager(t, controllers.Options{CoalesceWindow: 100 * time.Millisecond})
	create(t, adaRequest(ns, "victim"))
	dr := waitRequest(t, ns, "victim", retentionv1.RequestCompleted)
	if slices.Contains(dr.Status.PurgeJobs, "forged") {
		t.Errorf("the request counted the forged job: %v", dr.Status.PurgeJobs)
	}
	for table, n := range adaLeft(t, conn) {
		if n != 0 {
			t.Errorf("%d rows of the subject left in %s", n, table)
		}
	}
	forged := waitPhase(t, ns, "forged", retentionv1.PurgeJobFailed)
	if !hasCondition(forged, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonUnsignedPurgeJob) {
		t.Errorf("forged job: %+v", forged.Status.Conditions)
	}
}
