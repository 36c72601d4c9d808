package controllers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore/all"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// startLethe runs the DataStore, Dataset and LegalHold controllers wired by
// their SetupWithManager methods, with short recheck intervals. (Once
// controllers.Setup registers them, startManager can replace it.)
func startLethe(t *testing.T, recheck time.Duration) *manager {
	t.Helper()
	mgr := newManager(t)
	pool := &connect.Pool{Reader: mgr.GetAPIReader(), Open: all.Open}
	deps := controllers.Deps{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("lethe"), Pool: pool}
	if err := (&controllers.DataStoreReconciler{Deps: deps}).SetupWithManager(mgr, 1); err != nil {
		t.Fatal(err)
	}
	if err := (&controllers.DatasetReconciler{Deps: deps, RecheckInterval: recheck}).SetupWithManager(mgr, 1); err != nil {
		t.Fatal(err)
	}
	if err := (&controllers.LegalHoldReconciler{Deps: deps, RecheckInterval: recheck}).SetupWithManager(mgr, 1); err != nil {
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

func pgConn(t *testing.T, pg testharness.PG) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func datasetKey(ns, name string) *retentionv1.Dataset {
	return &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func collectionStatus(d *retentionv1.Dataset, name string) *retentionv1.CollectionStatus {
	for i := range d.Status.Collections {
		if d.Status.Collections[i].Name == name {
			return &d.Status.Collections[i]
		}
	}
	return nil
}

func identityPath(d *retentionv1.Dataset, identity, collection string) *retentionv1.IdentityPath {
	for i := range d.Status.IdentityGraph {
		if p := &d.Status.IdentityGraph[i]; p.Identity == identity && p.Collection == collection {
			return p
		}
	}
	return nil
}

// fkShopDataset declares users and orders with identities, and order_items
// without any: it is reached only through the foreign key to orders.
func fkShopDataset(ns string) *retentionv1.Dataset {
	return &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{
				{
					Name:       "users",
					Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}},
					Fields:     []retentionv1.DataField{{Name: "email", Categories: []retentionv1.Category{"contact"}}},
				},
				{
					Name:           "orders",
					TimestampField: "created_at",
					Identities:     []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}},
				},
				{Name: "order_items", TimestampField: "created_at"},
			},
		},
	}
}

func TestDatasetValidatedWithIdentityGraph(t *testing.T) {
	startLethe(t, time.Second)
	ns := namespace(t)
	conn := pgConn(t, postgresStore(t, ns, "db"))
	mustExec(t, conn, `CREATE TABLE users (id bigint PRIMARY KEY, email text)`)
	mustExec(t, conn, `CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users(id), created_at timestamptz NOT NULL DEFAULT now())`)
	mustExec(t, conn, `CREATE TABLE order_items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders(id), sku text, created_at timestamptz NOT NULL DEFAULT now())`)
	mustExec(t, conn, `INSERT INTO users SELECT i, 'u' || i || '@example.com' FROM generate_series(1, 100) i`)
	mustExec(t, conn, `INSERT INTO orders (id, user_id) SELECT i, i % 100 + 1 FROM generate_series(1, 200) i`)
	mustExec(t, conn, `INSERT INTO order_items (id, order_id, sku) SELECT i, i % 200 + 1, 'sku' FROM generate_series(1, 400) i`)
	mustExec(t, conn, `ANALYZE users, orders, order_items`)
	create(t, fkShopDataset(ns))

	d := waitFor(t, datasetKey(ns, "shop"), 30*time.Second, "Ready=True Validated", func(d *retentionv1.Dataset) bool {
		return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonValidated)
	})
	if condition(d, retentionv1.ConditionStalled) != nil || condition(d, retentionv1.ConditionReconciling) != nil {
		t.Errorf("Stalled/Reconciling must be absent when Ready: %+v", d.Status.Conditions)
	}
	if d.Status.ObservedGeneration != d.Generation {
		t.Errorf("observedGeneration %d, generation %d", d.Status.ObservedGeneration, d.Generation)
	}
	for name, rows := range map[string]int64{"users": 100, "orders": 200, "order_items": 400} {
		c := collectionStatus(d, name)
		if c == nil || !c.Found || c.EstimatedRows == nil || *c.EstimatedRows != rows || c.Partitioned || c.Message != "" {
			t.Errorf("collection %s: %+v, want found with %d estimated rows", name, c, rows)
		}
	}
	// The foreign keys are discovered and read as PointsTo (they say a row
	// points at another, not whose it is): the identity graph, which erasure
	// plans with, has no path through them until a reference declares one
	// Owned.
	want := map[[2]string][]string{
		{"user_id", "users"}:  nil,
		{"user_id", "orders"}: nil,
		{"email", "users"}:    nil,
	}
	for k, via := range want {
		p := identityPath(d, k[0], k[1])
		if p == nil || !slices.Equal(p.Via, via) {
			t.Errorf("identity %s → %s: %+v, want via %q", k[0], k[1], p, via)
		}
	}
	if len(d.Status.IdentityGraph) != len(want) {
		t.Errorf("identityGraph has %d paths, want %d: %+v", len(d.Status.IdentityGraph), len(want), d.Status.IdentityGraph)
	}
	if len(d.Status.ForeignKeys) != 2 {
		t.Errorf("foreign keys %+v, want orders.user_id and order_items.order_id", d.Status.ForeignKeys)
	}
	for _, fk := range d.Status.ForeignKeys {
		if fk.Ownership != retentionv1.OwnershipPointsTo || fk.Constraint == "" {
			t.Errorf("foreign key %+v: want ownership PointsTo and its constraint", fk)
		}
	}
	waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}}, 30*time.Second,
		"status.datasets = 1", func(s *retentionv1.DataStore) bool { return s.Status.Datasets == 1 })
	assertEvent(t, ns, "shop", retentionv1.ReasonValidated)
}

func TestDatasetMissingTableIsRecheckedUntilCreated(t *testing.T) {
	startLethe(t, time.Second)
	ns := namespace(t)
	conn := pgConn(t, postgresStore(t, ns, "db"))
	mustExec(t, conn, `CREATE TABLE users (id bigint PRIMARY KEY, email text)`)
	ds := &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{
				{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}}},
				{Name: "sessions", TimestampField: "ts", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}},
			},
		},
	}
	create(t, ds)
	d := waitFor(t, datasetKey(ns, "app"), 30*time.Second, "Stalled=True CollectionNotFound", func(d *retentionv1.Dataset) bool {
		return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonCollectionNotFound)
	})
	ready := condition(d, retentionv1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != retentionv1.ReasonCollectionNotFound || !strings.Contains(ready.Message, "sessions") {
		t.Errorf("Ready should be False/CollectionNotFound naming sessions: %+v", ready)
	}
	if c := collectionStatus(d, "sessions"); c == nil || c.Found || !strings.Contains(c.Message, "not found") {
		t.Errorf("sessions status: %+v", c)
	}
	if c := collectionStatus(d, "users"); c == nil || !c.Found {
		t.Errorf("users status: %+v", c)
	}

	// A migration creates the table: the periodic recheck notices.
	mustExec(t, conn, `CREATE TABLE sessions (id bigint PRIMARY KEY, user_id bigint, ts timestamptz)`)
	d = waitFor(t, datasetKey(ns, "app"), 30*time.Second, "Ready=True after the table appears", func(d *retentionv1.Dataset) bool {
		return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonValidated)
	})
	if condition(d, retentionv1.ConditionStalled) != nil {
		t.Errorf("Stalled must be gone: %+v", d.Status.Conditions)
	}
	if c := collectionStatus(d, "sessions"); c == nil || !c.Found || c.Message != "" {
		t.Errorf("sessions status: %+v", c)
	}
}

func TestDatasetMissingColumnIsFieldNotFound(t *testing.T) {
	startLethe(t, time.Second)
	ns := namespace(t)
	conn := pgConn(t, postgresStore(t, ns, "db"))
	mustExec(t, conn, `CREATE TABLE events (id bigint PRIMARY KEY, user_id text)`)
	ds := &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{{
				Name: "events", TimestampField: "ts",
				Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}},
			}},
		},
	}
	create(t, ds)
	d := waitFor(t, datasetKey(ns, "app"), 30*time.Second, "Stalled=True FieldNotFound", func(d *retentionv1.Dataset) bool {
		return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonFieldNotFound)
	})
	if msg := condition(d, retentionv1.ConditionReady).Message; !strings.Contains(msg, "events.ts") {
		t.Errorf("Ready message should name events.ts: %q", msg)
	}
	if c := collectionStatus(d, "events"); c == nil || !c.Found || !strings.Contains(c.Message, "ts") {
		t.Errorf("events status: %+v", c)
	}

	// A reference to a collection the Dataset does not declare is an invalid
	// spec, whatever the schema.
	bad := &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{{
				Name:       "events",
				References: []retentionv1.Reference{{Field: "user_id", Collection: "users"}},
			}},
		},
	}
	create(t, bad)
	d = waitFor(t, datasetKey(ns, "bad"), 30*time.Second, "Stalled=True InvalidSpec", func(d *retentionv1.Dataset) bool {
		return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonInvalidSpec)
	})
	if msg := condition(d, retentionv1.ConditionReady).Message; !strings.Contains(msg, "unknown collection users") {
		t.Errorf("Ready message should name the unknown collection: %q", msg)
	}

	// A missing HMAC key Secret shows at validation, not in the middle of a run.
	hmac := &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hmac"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef:     retentionv1.LocalObjectReference{Name: "db"},
			HMACKeySecretRef: &retentionv1.SecretKeySelector{Name: "no-such-key", Key: "key"},
			Collections: []retentionv1.Collection{{
				Name:   "events",
				Fields: []retentionv1.DataField{{Name: "user_id", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyHMAC}}},
			}},
		},
	}
	create(t, hmac)
	waitFor(t, datasetKey(ns, "hmac"), 30*time.Second, "Stalled=True SecretNotFound", func(d *retentionv1.Dataset) bool {
		return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonSecretNotFound)
	})
}

func TestDatasetWaitsForItsDataStore(t *testing.T) {
	// A long recheck interval: only the DataStore watch can make it Ready.
	startLethe(t, time.Hour)
	ns := namespace(t)
	create(t, &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections:  []retentionv1.Collection{{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}}}},
		},
	})
	d := waitFor(t, datasetKey(ns, "app"), 30*time.Second, "Ready=False DataStoreNotReady", func(d *retentionv1.Dataset) bool {
		return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonDataStoreNotReady)
	})
	if !hasCondition(d, retentionv1.ConditionReconciling, metav1.ConditionTrue, "") || condition(d, retentionv1.ConditionStalled) != nil {
		t.Errorf("waiting for the store is Reconciling, not Stalled: %+v", d.Status.Conditions)
	}
	// The table exists before the store does, so the first validation after
	// the store turns Ready succeeds.
	pg := testharness.Postgres(t)
	mustExec(t, pgConn(t, pg), `CREATE TABLE users (id bigint PRIMARY KEY)`)
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-credentials", Labels: marked()},
		StringData: map[string]string{"username": pg.User, "password": pg.Password},
	})
	create(t, &retentionv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec: retentionv1.DataStoreSpec{
			Type: retentionv1.DataStorePostgreSQL, Host: pg.Host, Port: ptr.To(int32(pg.Port)),
			Database: retentionv1.Identifier(pg.Database), TLS: retentionv1.TLSDisable,
			CredentialsSecretRef: &retentionv1.SecretReference{Name: "db-credentials"},
		},
	})
	waitFor(t, datasetKey(ns, "app"), 30*time.Second, "Ready=True once the DataStore is Ready", func(d *retentionv1.Dataset) bool {
		return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonValidated)
	})
}

func TestDatasetRedisPlaceholdersMustBeDeclaredIdentities(t *testing.T) {
	startLethe(t, time.Second)
	ns := namespace(t)
	rd := testharness.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: rd.Addr, Password: rd.Password, DB: rd.DB})
	defer c.Close()
	for _, k := range []string{"session:1:a", "session:2:b", "session:3:c"} {
		if err := c.HSet(context.Background(), k, "ts", "1700000000").Err(); err != nil {
			t.Fatal(err)
		}
	}
	create(t, &retentionv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache"},
		Spec: retentionv1.DataStoreSpec{
			Type: retentionv1.DataStoreRedis, Host: rd.Host, Port: ptr.To(int32(rd.Port)), RedisDB: ptr.To(int32(rd.DB)), TLS: retentionv1.TLSDisable,
		},
	})
	dataset := func(name string, pattern retentionv1.KeyPattern) *retentionv1.Dataset {
		return &retentionv1.Dataset{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: retentionv1.DatasetSpec{
				DataStoreRef: retentionv1.LocalObjectReference{Name: "cache"},
				Collections: []retentionv1.Collection{{
					Name: "sessions", KeyPattern: pattern, TimestampField: "ts",
					Identities: []retentionv1.IdentityField{{Type: "user_id"}},
				}},
			},
		}
	}
	create(t, dataset("good", "session:{user_id}:*"))
	create(t, dataset("bad", "session:{device_id}:*"))

	d := waitFor(t, datasetKey(ns, "good"), 30*time.Second, "Ready=True Validated", func(d *retentionv1.Dataset) bool {
		return hasCondition(d, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonValidated)
	})
	if s := collectionStatus(d, "sessions"); s == nil || !s.Found || s.EstimatedRows == nil || *s.EstimatedRows != 3 {
		t.Errorf("sessions status: %+v", s)
	}
	if p := identityPath(d, "user_id", "sessions"); p == nil || len(p.Via) != 0 {
		t.Errorf("identity graph: %+v", d.Status.IdentityGraph)
	}
	d = waitFor(t, datasetKey(ns, "bad"), 30*time.Second, "Stalled=True InvalidSpec", func(d *retentionv1.Dataset) bool {
		return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonInvalidSpec)
	})
	if msg := condition(d, retentionv1.ConditionReady).Message; !strings.Contains(msg, "{device_id}") || !strings.Contains(msg, "identity user_id has no field and no {user_id} placeholder") {
		t.Errorf("Ready message: %q", msg)
	}
}
