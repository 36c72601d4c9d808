package controllers_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

// graphFixture: PostgreSQL users(id, email) is the only table holding both
// identity types; orders is keyed only by user_id; order_items has no
// identity and is owned by orders (a declared reference on its foreign key); Redis
// keeps sessions under session:{user_id}:*. Ada and Alan each have data
// everywhere.
func graphFixture(t *testing.T) (string, *pgx.Conn, *goredis.Client) {
	t.Helper()
	ctx := context.Background()
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	for _, sql := range []string{
		`CREATE TABLE users (id text PRIMARY KEY, email text UNIQUE NOT NULL)`,
		`CREATE TABLE orders (id bigint PRIMARY KEY, user_id text NOT NULL REFERENCES users(id), total numeric)`,
		`CREATE TABLE order_items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders(id), gift_note text)`,
	} {
		mustExec(t, conn, sql)
	}
	for u, usr := range []struct{ id, email string }{{adaID, adaEmail}, {"usr_alan_1912", "alan@example.org"}} {
		mustExec(t, conn, `INSERT INTO users VALUES ($1, $2)`, usr.id, usr.email)
		for o := 0; o < 3; o++ {
			order := int64(u*100 + o)
			mustExec(t, conn, `INSERT INTO orders VALUES ($1, $2, 9.5)`, order, usr.id)
			for i := 0; i < 2; i++ {
				mustExec(t, conn, `INSERT INTO order_items VALUES ($1, $2, 'for '||$3)`, order*10+int64(i), order, usr.id)
			}
		}
	}

	rc := redisSessions(t, ns, adaID, "usr_alan_1912")

	create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
		Collections: []retentionv1.Collection{
			{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}},
			{Name: "orders", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}},
			// No identity: the items are Ada's because her orders own them
			// (a foreign key alone would only say they point at an order).
			{Name: "order_items", References: []retentionv1.Reference{{Field: "order_id", Collection: "orders"}}},
		}}})
	create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sessions"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "redis"},
		Collections: []retentionv1.Collection{{Name: "sessions", KeyPattern: "session:{user_id}:*", TimestampField: "ts",
			Identities: []retentionv1.IdentityField{{Type: "user_id"}}}}}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada-email", Labels: marked()}, StringData: map[string]string{"email": adaEmail}})
	return ns, conn, rc
}

func emailRequest(ns, name string) *retentionv1.DeletionRequest {
	return &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: retentionv1.DeletionRequestSpec{
		Reason: retentionv1.ReasonSubjectRequest, Subject: retentionv1.Subject{IdentitiesSecretRef: &retentionv1.SecretReference{Name: "ada-email"}}}}
}

// graphSnapshot is every record of both subjects, by owner.
func graphSnapshot(t *testing.T, conn *pgx.Conn, rc *goredis.Client, owner string) map[string]int64 {
	t.Helper()
	keys, err := rc.Keys(context.Background(), "session:"+owner+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]int64{
		"users":       count(t, conn, `SELECT count(*) FROM users WHERE id = $1`, owner),
		"orders":      count(t, conn, `SELECT count(*) FROM orders WHERE user_id = $1`, owner),
		"order_items": count(t, conn, `SELECT count(*) FROM order_items WHERE gift_note = 'for '||$1`, owner),
		"sessions":    int64(len(keys)),
	}
}

// A request naming only the email reaches, through the user_id derived from
// users, the orders keyed only by user_id, the order items reached only
// through a live foreign key, and the Redis sessions keyed by user_id.
func TestDeletionRequestDerivesIdentitiesAndFollowsForeignKeys(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn, rc := graphFixture(t)
	alanBefore := graphSnapshot(t, conn, rc, "usr_alan_1912")

	// In review first: the plan shows before anything is read or erased.
	review := emailRequest(ns, "ada-review")
	review.Spec.ReviewWindow = ptr.To(retentionv1.WaitDuration("48h"))
	create(t, review)
	r := waitFor(t, review, 60*time.Second, "a plan with the derivable collections", func(d *retentionv1.DeletionRequest) bool {
		return d.Status.Phase == retentionv1.RequestReviewing && len(d.Status.Plan) == 4
	})
	via := map[string]string{}
	for _, p := range r.Status.Plan {
		via[p.Collection] = p.Via
	}
	if !strings.Contains(via["sessions"], "user_id (derived from email via users)") ||
		!strings.Contains(via["order_items"], "order_items.order_id → orders.id; identity: user_id") {
		t.Errorf("plan before derivation: %+v", r.Status.Plan)
	}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "ada-review-subject"}, &corev1.Secret{}); err == nil {
		t.Error("identities derived inside the review window")
	}

	create(t, emailRequest(ns, "ada"))
	dr := waitRequest(t, ns, "ada", retentionv1.RequestCompleted)

	if left := graphSnapshot(t, conn, rc, adaID); left["users"]+left["orders"]+left["order_items"]+left["sessions"] != 0 {
		t.Errorf("left of the subject: %v", left)
	}
	if after := graphSnapshot(t, conn, rc, "usr_alan_1912"); !maps.Equal(after, alanBefore) {
		t.Errorf("the other subject's records changed: before %v, after %v", alanBefore, after)
	}
	rows := map[string]int64{}
	for _, e := range dr.Status.Receipt.Entries {
		rows[e.Dataset+"/"+e.Collection] = e.Rows
	}
	want := map[string]int64{"shop/users": 1, "shop/orders": 3, "shop/order_items": 6, "sessions/sessions": 2}
	if !maps.Equal(rows, want) || !dr.Status.Receipt.Verified {
		t.Errorf("receipt %v (verified %v), want %v", rows, dr.Status.Receipt.Verified, want)
	}
	// Children first: order_items (foreign key only) before orders before users.
	pos := map[string]int{}
	for i, p := range dr.Status.Plan {
		pos[p.Collection] = i
		via[p.Collection] = p.Via
	}
	if pos["order_items"] > pos["orders"] || pos["orders"] > pos["users"] {
		t.Errorf("plan order: %+v", dr.Status.Plan)
	}
	if v := via["order_items"]; v != "order_items.order_id → orders.id; identity: user_id (derived from email via users)" {
		t.Errorf("via of order_items: %q", v)
	}
	// The derived user_id is kept in the request's own Secret, nowhere else.
	var s corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "ada-subject"}, &s); err != nil {
		t.Fatal(err)
	}
	if string(s.Data["user_id"]) != adaID || !metav1.IsControlledBy(&s, dr) {
		t.Errorf("derived identities Secret: keys %v, owners %v", slices.Collect(maps.Keys(s.Data)), s.OwnerReferences)
	}
	assertNoPersonalData(t, ns)
}

// A legal hold on the user_id blocks a request that names only the email.
func TestDeletionRequestHeldThroughDerivedIdentity(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn, rc := graphFixture(t)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held", Labels: marked()}, StringData: map[string]string{"user_id": adaID}})
	hold := &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-7"},
		Spec: retentionv1.LegalHoldSpec{Reason: "Case 7", SubjectsSecretRef: &retentionv1.SecretReference{Name: "held"}}}
	create(t, hold)
	create(t, emailRequest(ns, "ada"))
	held := waitRequest(t, ns, "ada", retentionv1.RequestHeld)
	if c := condition(held, retentionv1.ConditionHeld); c == nil || !strings.Contains(c.Message, "case-7") {
		t.Fatalf("conditions: %+v", held.Status.Conditions)
	}
	time.Sleep(time.Second)
	if left := graphSnapshot(t, conn, rc, adaID); left["users"] != 1 || left["orders"] != 3 || left["order_items"] != 6 || left["sessions"] != 2 {
		t.Fatalf("held subject's data was touched: %v", left)
	}
	patch := client.MergeFrom(hold.DeepCopy())
	hold.Spec.Released = true
	if err := env.Client.Patch(context.Background(), hold, patch); err != nil {
		t.Fatal(err)
	}
	waitRequest(t, ns, "ada", retentionv1.RequestCompleted)
	if left := graphSnapshot(t, conn, rc, adaID); left["users"]+left["orders"]+left["order_items"]+left["sessions"] != 0 {
		t.Errorf("not erased after the hold was released: %v", left)
	}
	assertNoPersonalData(t, ns)
}

// A phone number shared by more people than the derivation bound stops the
// request before anything is erased: erasing them all would erase others.
func TestDeletionRequestStopsWhenDerivationIsTooBroad(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn, rc := graphFixture(t)
	mustExec(t, conn, `CREATE TABLE phones (user_id text NOT NULL, phone text NOT NULL, PRIMARY KEY (user_id, phone))`)
	mustExec(t, conn, `INSERT INTO phones SELECT 'usr_'||g, '+1-555-0100' FROM generate_series(1, 9) g`)
	mustExec(t, conn, `INSERT INTO phones VALUES ($1, '+1-555-0100')`, adaID)
	var ds retentionv1.Dataset
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "shop"}, &ds); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ds.DeepCopy())
	ds.Spec.Collections = append(ds.Spec.Collections, retentionv1.Collection{Name: "phones",
		Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}, {Type: "phone", Field: "phone"}}})
	if err := env.Client.Patch(context.Background(), &ds, patch); err != nil {
		t.Fatal(err)
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-phone", Labels: marked()}, StringData: map[string]string{"phone": "+1-555-0100"}})
	dr := emailRequest(ns, "shared")
	dr.Spec.Subject.IdentitiesSecretRef.Name = "by-phone"
	create(t, dr)
	got := waitFor(t, dr, 60*time.Second, "Stalled DerivationLimit", func(d *retentionv1.DeletionRequest) bool {
		return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonDerivationLimit)
	})
	time.Sleep(time.Second)
	if left := graphSnapshot(t, conn, rc, adaID); left["users"] != 1 || left["orders"] != 3 || left["sessions"] != 2 {
		t.Fatalf("records erased although derivation was stopped: %v (%s)", left, got.Status.Phase)
	}
	if n := count(t, conn, `SELECT count(*) FROM phones`); n != 10 {
		t.Fatalf("phones: %d rows left, want 10", n)
	}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "shared-subject"}, &corev1.Secret{}); err == nil {
		t.Error("a Secret of derived identities was kept although derivation stopped")
	}
	assertNoPersonalData(t, ns)
}
