package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
)

func pgFixture(t *testing.T, stmts ...string) (string, *pgx.Conn) {
	t.Helper()
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	for _, s := range stmts {
		mustExec(t, conn, s)
	}
	return ns, conn
}

func owned(field, coll string) retentionv1.Reference {
	return retentionv1.Reference{Field: retentionv1.Identifier(field), Collection: retentionv1.Identifier(coll)}
}

func rows(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var out string
	if err := conn.QueryRow(context.Background(), "SELECT coalesce(string_agg(r::text, ';' ORDER BY r::text), '') FROM ("+sql+") r").Scan(&out); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func emailSubject(ns, name, email string) *retentionv1.DeletionRequest {
	return &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: retentionv1.DeletionRequestSpec{
		Reason: retentionv1.ReasonSubjectRequest, Subject: retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "email", Value: email}}}}}
}

// An address table reached from customers, orders and payment cards: a
// request erases the subject's addresses along all three owning paths
// (the shortest path alone left two of Ada's three addresses), and no one
// else's.
func TestErasureFollowsEveryOwningPath(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := pgFixture(t,
		`CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL)`,
		`CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers)`,
		`CREATE TABLE cards (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers)`,
		`CREATE TABLE addresses (id bigint PRIMARY KEY, line text NOT NULL,
			customer_id bigint REFERENCES customers, order_id bigint REFERENCES orders, card_id bigint REFERENCES cards)`,
		`INSERT INTO customers VALUES (1, 'ada@example.org'), (2, 'alan@example.org')`,
		`INSERT INTO orders VALUES (10, 1), (20, 2)`,
		`INSERT INTO cards VALUES (100, 1), (200, 2)`,
		// Ada's home (customer), her delivery address (order only) and her
		// billing address (card only); Alan's the same way.
		`INSERT INTO addresses VALUES (1, 'ada home', 1, NULL, NULL), (2, 'ada delivery', NULL, 10, NULL), (3, 'ada billing', NULL, NULL, 100),
			(4, 'alan home', 2, NULL, NULL), (5, 'alan delivery', NULL, 20, NULL), (6, 'alan billing', NULL, NULL, 200)`,
	)
	create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
		Collections: []retentionv1.Collection{
			{Name: "customers", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}},
			{Name: "orders", References: []retentionv1.Reference{owned("customer_id", "customers")}},
			{Name: "cards", References: []retentionv1.Reference{owned("customer_id", "customers")}},
			{Name: "addresses", References: []retentionv1.Reference{owned("customer_id", "customers"), owned("order_id", "orders"), owned("card_id", "cards")}},
		}}})
	alan := rows(t, conn, `SELECT a.* FROM addresses a WHERE line LIKE 'alan%'`)

	create(t, emailSubject(ns, "ada", "ada@example.org"))
	dr := waitRequest(t, ns, "ada", retentionv1.RequestCompleted)
	for _, p := range dr.Status.Plan {
		if p.Collection == "addresses" && strings.Count(p.Via, " | ") != 2 {
			t.Errorf("addresses planned via %q, want all three paths", p.Via)
		}
	}
	if got := rows(t, conn, `SELECT line FROM addresses WHERE line LIKE 'ada%'`); got != "" {
		t.Errorf("Ada's addresses left: %s", got)
	}
	if got := rows(t, conn, `SELECT a.* FROM addresses a WHERE line LIKE 'alan%'`); got != alan {
		t.Errorf("Alan's addresses changed: %s, was %s", got, alan)
	}
	if n := count(t, conn, `SELECT count(*) FROM customers WHERE id = 1`) + count(t, conn, `SELECT count(*) FROM orders WHERE id = 10`) + count(t, conn, `SELECT count(*) FROM cards WHERE id = 100`); n != 0 {
		t.Errorf("%d of Ada's customer, order and card rows left", n)
	}
}

// A supplier whose quotes another buyer ordered: the request stops before
// any change, naming the foreign key, in a dry run and in the real run
// alike; once the Dataset says quotes are anonymized when referenced, it
// completes: the quotes are kept, unlinked from the supplier, the buyer's
// order untouched.
func TestSupplierWhoseQuotesOthersOrdered(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, conn := pgFixture(t,
		`CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL)`,
		`CREATE TABLE quotes (id bigint PRIMARY KEY, supplier_id bigint REFERENCES users, terms text)`,
		`CREATE TABLE orders (id bigint PRIMARY KEY, buyer_id bigint NOT NULL REFERENCES users, quote_id bigint NOT NULL REFERENCES quotes)`,
		`CREATE TABLE messages (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users, body text)`,
		`INSERT INTO users VALUES (1, 'supplier@example.org'), (2, 'buyer@example.org')`,
		`INSERT INTO quotes VALUES (11, 1, 'net 30, ask for Sam'), (12, 1, 'net 60')`,
		`INSERT INTO orders VALUES (21, 2, 11)`,
		`INSERT INTO messages VALUES (31, 1, 'hello'), (32, 2, 'hi')`,
	)
	ds := &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "market"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
		Collections: []retentionv1.Collection{
			{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}},
			{Name: "quotes", References: []retentionv1.Reference{owned("supplier_id", "users")},
				Fields: []retentionv1.DataField{
					{Name: "supplier_id", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyNull}},
					{Name: "terms", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyRedact}},
				}},
			{Name: "orders", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "buyer_id"}},
				References: []retentionv1.Reference{{Field: "quote_id", Collection: "quotes", Ownership: retentionv1.OwnershipPointsTo}}},
			{Name: "messages", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}},
		}}}
	create(t, ds)
	all := func() string {
		return rows(t, conn, `SELECT 'u', u.id::text, u.email FROM users u UNION ALL SELECT 'q', q.id::text, coalesce(q.supplier_id::text, '') || q.terms FROM quotes q
			UNION ALL SELECT 'o', o.id::text, o.buyer_id || '/' || o.quote_id FROM orders o UNION ALL SELECT 'm', m.id::text, m.body FROM messages m`)
	}
	before := all()

	dry := emailSubject(ns, "supplier-dry", "supplier@example.org")
	dry.Spec.DryRun = true
	create(t, dry)
	create(t, emailSubject(ns, "supplier", "supplier@example.org"))
	for _, name := range []string{"supplier-dry", "supplier"} {
		dr := waitFor(t, &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, 60*time.Second, "stopped before acting",
			func(d *retentionv1.DeletionRequest) bool {
				return meta.IsStatusConditionTrue(d.Status.Conditions, retentionv1.ConditionStalled)
			})
		c := meta.FindStatusCondition(dr.Status.Conditions, retentionv1.ConditionStalled)
		if c.Reason != retentionv1.ReasonReferencedOutsideErasure || !strings.Contains(c.Message, "orders_quote_id_fkey") || !strings.Contains(c.Message, "1 records of public.orders") {
			t.Errorf("%s: Stalled %s %q, want ReferencedOutsideErasure naming orders_quote_id_fkey", name, c.Reason, c.Message)
		}
		if len(dr.Status.PurgeJobs) != 0 || len(dr.Status.Plan) != 4 {
			t.Errorf("%s: jobs %v, plan %+v", name, dr.Status.PurgeJobs, dr.Status.Plan)
		}
	}
	if got := all(); got != before {
		t.Fatalf("data changed by a stopped request:\n%s\nwas\n%s", got, before)
	}

	// The fallback: the quotes others refer to are anonymized instead.
	updateDataset(t, ns, ds.Name, ds, func(d *retentionv1.Dataset) {
		d.Spec.Collections[1].WhenReferenced = retentionv1.WhenReferencedAnonymize
	})
	dr := waitRequest(t, ns, "supplier", retentionv1.RequestCompleted)
	for _, p := range dr.Status.Plan {
		if p.Collection == "quotes" && (p.Action != retentionv1.ActionAnonymize || !strings.Contains(p.Fallback, "orders_quote_id_fkey")) {
			t.Errorf("quotes planned %s, fallback %q", p.Action, p.Fallback)
		}
	}
	if got := rows(t, conn, `SELECT q.id, q.supplier_id, q.terms = 'net 30, ask for Sam' OR q.terms = 'net 60' FROM quotes q`); got != "(11,,f);(12,,f)" {
		t.Errorf("quotes after erasure: %s, want both kept, unlinked and redacted", got)
	}
	if got := rows(t, conn, `SELECT u.id FROM users u`); got != "(2)" {
		t.Errorf("users after erasure: %s", got)
	}
	if got := rows(t, conn, `SELECT o.* FROM orders o`) + rows(t, conn, `SELECT m.* FROM messages m`); got != "(21,2,11)(32,2,hi)" {
		t.Errorf("the buyer's order or message changed, or the supplier's message is left: %s", got)
	}
}

// Anonymizing a key, a NOT NULL column with Null, or leaving an identity of
// an Anonymize collection without a strategy is refused by the Dataset
// (Ready=False, naming collection.field), before any erasure could fail on
// it half-way.
func TestDatasetRefusesAnonymizationThatCannotWork(t *testing.T) {
	startManager(t, controllers.Options{})
	ns, _ := pgFixture(t,
		`CREATE TABLE customers (id text PRIMARY KEY, email text UNIQUE, name text NOT NULL, phone text)`)
	null := &retentionv1.Anonymization{Strategy: retentionv1.StrategyNull}
	redact := &retentionv1.Anonymization{Strategy: retentionv1.StrategyRedact}
	for name, tc := range map[string]struct {
		coll retentionv1.Collection
		want string
	}{
		"pk": {retentionv1.Collection{Name: "customers", Action: retentionv1.ActionAnonymize,
			Fields: []retentionv1.DataField{{Name: "id", Anonymize: redact}}}, "customers.id: is part of the primary key"},
		"unique": {retentionv1.Collection{Name: "customers", Action: retentionv1.ActionAnonymize,
			Fields: []retentionv1.DataField{{Name: "email", Anonymize: redact}}}, "customers.email: is part of a unique index"},
		"not-null": {retentionv1.Collection{Name: "customers", Action: retentionv1.ActionAnonymize,
			Fields: []retentionv1.DataField{{Name: "name", Anonymize: null}}}, "customers.name"},
		"identity-without-strategy": {retentionv1.Collection{Name: "customers", Action: retentionv1.ActionAnonymize,
			Identities: []retentionv1.IdentityField{{Type: "phone", Field: "phone"}},
			Fields:     []retentionv1.DataField{{Name: "name", Anonymize: redact}}}, "customers.phone: identity phone of a collection erased by Anonymize needs an anonymize strategy"},
	} {
		create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"}, Collections: []retentionv1.Collection{tc.coll}}})
		d := waitFor(t, datasetKey(ns, name), 60*time.Second, "validated", func(d *retentionv1.Dataset) bool {
			c := meta.FindStatusCondition(d.Status.Conditions, retentionv1.ConditionReady)
			return c != nil && c.ObservedGeneration == d.Generation && c.Reason != retentionv1.ReasonProgressing && c.Reason != "DataStoreNotReady"
		})
		c := meta.FindStatusCondition(d.Status.Conditions, retentionv1.ConditionReady)
		if c.Status != metav1.ConditionFalse || c.Reason != retentionv1.ReasonInvalidAnonymization || !strings.Contains(c.Message, tc.want) {
			t.Errorf("%s: Ready=%s %s %q, want False InvalidAnonymization naming %q", name, c.Status, c.Reason, c.Message, tc.want)
		}
	}
}

// updateDataset changes a Dataset, read again on a conflict (the Dataset
// controller writes its metadata and status meanwhile); into holds the result.
func updateDataset(t *testing.T, ns, name string, into *retentionv1.Dataset, change func(*retentionv1.Dataset)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, into); err != nil {
			return err
		}
		change(into)
		return env.Client.Update(context.Background(), into)
	})
	if err != nil {
		t.Fatal(err)
	}
}
