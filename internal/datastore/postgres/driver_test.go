package postgres_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"k8s.io/utils/ptr"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
	"github.com/lethe-dev/lethe/internal/mask"
)

// TestProbe proves Probe connects and reports the server version.
func TestProbe(t *testing.T) {
	e := setup(t)
	d := e.driver()
	info, err := d.Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if !strings.HasPrefix(info.Version, "PostgreSQL 1") {
		t.Fatalf("Version = %q", info.Version)
	}
}

// TestConnectionErrorsAreClassified proves wrong credentials are
// ErrAuthentication (and the password is not in the message), a closed port
// and an administrator shutting a session down are ErrUnavailable (retryable,
// and the pool recovers), and a missing database is ErrNotFound.
func TestConnectionErrorsAreClassified(t *testing.T) {
	e := setup(t)
	ctx := context.Background()

	cfg := e.cfg()
	cfg.Password = "not-the-password-0123"
	_, err := e.driverWith(cfg).Probe(ctx)
	wantErr(t, err, datastore.ErrAuthentication, "wrong password")
	if strings.Contains(err.Error(), cfg.Password) {
		t.Fatalf("error message contains the password: %v", err)
	}

	cfg = e.cfg()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	_, err = e.driverWith(cfg).Probe(ctx)
	wantErr(t, err, datastore.ErrUnavailable, "connection refused")

	cfg = e.cfg()
	cfg.Database = "no_such_database"
	_, err = e.driverWith(cfg).Probe(ctx)
	wantErr(t, err, datastore.ErrNotFound, "missing database")

	cfg = e.cfg()
	cfg.MaxConnections = 1
	d := e.driverWith(cfg)
	if _, err := d.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	e.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lethe' AND datname = $1", e.pg.Database)
	_, err = d.Probe(ctx)
	wantErr(t, err, datastore.ErrUnavailable, "admin shutdown")
	if _, err := d.Probe(ctx); err != nil {
		t.Fatalf("pool did not recover after admin shutdown: %v", err)
	}

	if _, err := postgres.New(ctx, datastore.Config{Type: "PostgreSQL", Database: "x"}); !errors.Is(err, datastore.ErrInvalid) {
		t.Fatalf("New without host: want ErrInvalid, got %v", err)
	}
}

// TestLockAndStatementTimeouts proves every batch runs with the configured
// lock_timeout and statement_timeout, and that hitting them is
// ErrUnavailable (retry later), not a failure that needs a human.
func TestLockAndStatementTimeouts(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL)`)
	e.exec(`INSERT INTO t SELECT i, '2020-01-01'::timestamptz FROM generate_series(1, 10) i`)
	cfg := e.cfg()
	cfg.LockTimeout = 200 * time.Millisecond
	cfg.StatementTimeout = 300 * time.Millisecond
	d := e.driverWith(cfg)
	op := datastore.Operation{Collection: datastore.Collection{Name: "t", TimestampField: "ts"},
		Delete: true, Cutoff: ptr.To(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)), BatchSize: 100}

	tx, err := e.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT * FROM t WHERE id = 5 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = d.Execute(ctx, op, "")
	wantErr(t, err, datastore.ErrUnavailable, "row locked by another transaction")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "55P03" {
		t.Fatalf("want SQLSTATE 55P03 (lock_not_available), got %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("lock wait took %v; lock_timeout not applied", el)
	}
	_ = tx.Rollback(ctx)
	if n := e.int("SELECT count(*) FROM t"); n != 10 {
		t.Fatalf("failed batch changed rows: %d left", n)
	}

	e.exec(`CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN OLD; END $$`)
	e.exec(`CREATE TRIGGER slow BEFORE DELETE ON t FOR EACH ROW EXECUTE FUNCTION slow()`)
	start = time.Now()
	_, err = d.Execute(ctx, op, "")
	wantErr(t, err, datastore.ErrUnavailable, "slow statement")
	if !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("want SQLSTATE 57014 (statement timeout), got %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("statement ran %v; statement_timeout not applied", el)
	}
	if n := e.int("SELECT count(*) FROM t"); n != 10 {
		t.Fatalf("timed-out batch changed rows: %d left", n)
	}
}

// TestErrorsNeverQuoteValues proves a server error whose detail quotes a
// subject identifier (a foreign key violation on a natural key) reaches the
// caller classified, with the identifier nowhere in the message.
func TestErrorsNeverQuoteValues(t *testing.T) {
	e := setup(t)
	e.exec(`CREATE TABLE accounts (email text PRIMARY KEY)`)
	e.exec(`CREATE TABLE sessions (id int PRIMARY KEY, email text NOT NULL REFERENCES accounts)`)
	secret := "secret.person@example.com"
	e.exec(`INSERT INTO accounts VALUES ($1)`, secret)
	e.exec(`INSERT INTO sessions VALUES (1, $1)`, secret)
	d := e.driver()
	op := datastore.Operation{
		Collection: datastore.Collection{Name: "accounts", IdentityFields: map[string]string{"email": "email"}},
		Delete:     true, Subjects: map[string][]string{"email": {secret}}, BatchSize: 10,
	}
	_, err := d.Execute(context.Background(), op, "")
	wantErr(t, err, datastore.ErrInvalid, "deleting a referenced parent first")
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error message quotes the subject: %v", err)
	}
	if !strings.Contains(err.Error(), "23503") || !strings.Contains(err.Error(), "sessions_email_fkey") {
		t.Fatalf("error message should name SQLSTATE and constraint: %v", err)
	}
}

// TestIdentifiersAreQuoted proves a hostile collection name can only fail to
// match (ErrNotFound, the table it names survives), and a table whose real
// name needs quoting works.
func TestIdentifiersAreQuoted(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.exec(`CREATE TABLE users (id int PRIMARY KEY, ts timestamptz NOT NULL, email text)`)
	e.exec(`INSERT INTO users SELECT i, '2020-01-01', 'u' || i FROM generate_series(1, 5) i`)
	d := e.driver()
	cutoff := ptr.To(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, name := range []string{`users"; DROP TABLE users; --`, `users; DROP TABLE users`, `users" CASCADE --`} {
		c := datastore.Collection{Name: "evil", Table: name, TimestampField: "ts", IdentityFields: map[string]string{"email": "email"}}
		_, err := d.Describe(ctx, c)
		wantErr(t, err, datastore.ErrNotFound, "Describe "+name)
		_, err = d.Total(ctx, c)
		wantErr(t, err, datastore.ErrNotFound, "Total "+name)
		op := datastore.Operation{Collection: c, Delete: true, Cutoff: cutoff, BatchSize: 10}
		_, err = d.Count(ctx, op)
		wantErr(t, err, datastore.ErrNotFound, "Count "+name)
		_, err = d.Execute(ctx, op, "")
		wantErr(t, err, datastore.ErrNotFound, "Execute "+name)
		evilSchema := datastore.Collection{Name: "users", Schema: `public"; DROP TABLE users; --`, TimestampField: "ts"}
		_, err = d.Total(ctx, evilSchema)
		wantErr(t, err, datastore.ErrNotFound, "Total with hostile schema")
	}
	if n := e.int("SELECT count(*) FROM users"); n != 5 {
		t.Fatalf("users has %d rows after hostile names, want 5", n)
	}

	// Hostile column names in the collection are quoted too.
	c := datastore.Collection{Name: "users", TimestampField: `ts" < now() OR true --`}
	_, err := d.Count(ctx, datastore.Operation{Collection: c, Delete: true, Cutoff: cutoff})
	wantErr(t, err, datastore.ErrNotFound, "hostile timestamp field")

	// A real table with a name that needs quoting.
	e.exec(`CREATE SCHEMA "odd ""schema"""`)
	e.exec(`CREATE TABLE "odd ""schema"""."we""ird; name" ("i""d" int PRIMARY KEY, "t s" timestamptz NOT NULL, "e-mail" text)`)
	e.exec(`INSERT INTO "odd ""schema"""."we""ird; name" SELECT i, '2020-01-01'::timestamptz + i * interval '1 day', 'x' || i FROM generate_series(1, 20) i`)
	odd := datastore.Collection{Name: "odd", Schema: `odd "schema"`, Table: `we"ird; name`, TimestampField: "t s",
		IdentityFields: map[string]string{"email": "e-mail"}}
	info, err := d.Describe(ctx, odd)
	if err != nil {
		t.Fatalf("Describe odd table: %v", err)
	}
	if !slices.Equal(info.PrimaryKey, []string{`i"d`}) {
		t.Fatalf("PrimaryKey = %q", info.PrimaryKey)
	}
	op := datastore.Operation{Collection: odd, Delete: true, Cutoff: ptr.To(time.Date(2020, 1, 11, 0, 0, 0, 0, time.UTC)), BatchSize: 3}
	if n := count(t, d, op); n != 9 {
		t.Fatalf("Count = %d, want 9", n)
	}
	r := drain(t, d, op, "", 10)
	if r.affected != 9 {
		t.Fatalf("deleted %d, want 9", r.affected)
	}
	sub := datastore.Operation{Collection: odd, Delete: false, Subjects: map[string][]string{"email": {"x15", "x16"}},
		Fields: []datastore.FieldMask{{Field: "e-mail", Strategy: redact()}}, BatchSize: 1}
	r = drain(t, d, sub, "", 5)
	if r.affected != 2 {
		t.Fatalf("anonymized %d, want 2", r.affected)
	}
	if n := e.int(`SELECT count(*) FROM "odd ""schema"""."we""ird; name" WHERE "e-mail" = '***'`); n != 2 {
		t.Fatalf("%d rows redacted, want 2", n)
	}
}

// TestDescribe proves Describe reads columns (type, length, nullability),
// the primary key, foreign keys, range partitioning and the row estimate
// summed over partitions; that a declared primary key wins; and that a
// missing table is ErrNotFound.
func TestDescribe(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.exec(`CREATE DOMAIN email_address AS varchar(80)`)
	e.exec(`CREATE TABLE users (id bigint PRIMARY KEY, email email_address NOT NULL, name varchar(40), code char(6),
		photo bytea, ip inet, born date, seen timestamptz, local_seen timestamp, tags text[], score numeric(5,2))`)
	e.exec(`CREATE TABLE orders (id bigint, region text, user_id bigint REFERENCES users, PRIMARY KEY (region, id))`)
	e.exec(`CREATE TABLE items (id serial PRIMARY KEY, order_region text, order_id bigint,
		FOREIGN KEY (order_region, order_id) REFERENCES orders (region, id))`)
	e.exec(`CREATE TABLE events (id bigint, ts timestamptz NOT NULL, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)`)
	e.exec(`CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')`)
	e.exec(`CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')`)
	e.exec(`INSERT INTO events SELECT i, '2024-01-01'::timestamptz + (i % 50) * interval '1 day' FROM generate_series(1, 3000) i`)
	e.exec(`ANALYZE events`)
	e.exec(`CREATE TABLE nopk (a int NOT NULL, b int NOT NULL, c int, UNIQUE (a, b))`)
	e.exec(`CREATE TABLE nokey (a int)`)
	d := e.driver()

	info, err := d.Describe(ctx, coll("users"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]datastore.Column{
		"id":         {Name: "id", Type: "int8"},
		"email":      {Name: "email", Type: "varchar", MaxLength: 80},
		"name":       {Name: "name", Type: "varchar", MaxLength: 40, Nullable: true},
		"code":       {Name: "code", Type: "bpchar", MaxLength: 6, Nullable: true},
		"photo":      {Name: "photo", Type: "bytea", Nullable: true},
		"ip":         {Name: "ip", Type: "inet", Nullable: true},
		"born":       {Name: "born", Type: "date", Nullable: true},
		"seen":       {Name: "seen", Type: "timestamptz", Nullable: true},
		"local_seen": {Name: "local_seen", Type: "timestamp", Nullable: true},
		"tags":       {Name: "tags", Type: "text[]", Nullable: true},
		"score":      {Name: "score", Type: "numeric", Nullable: true},
	}
	for n, w := range want {
		got := info.Columns[n]
		// Unique: the primary key; Mask: what strategies see of the column.
		if got.Unique != (n == "id") || got.Mask.Nullable != got.Nullable || (got.Mask.MaxLength != got.MaxLength && got.Mask.Type == mask.Text) {
			t.Errorf("column %s: unique %v, mask %+v", n, got.Unique, got.Mask)
		}
		got.Unique, got.Mask = false, mask.Column{}
		if got != w {
			t.Errorf("column %s = %+v, want %+v", n, got, w)
		}
	}
	if len(info.Columns) != len(want) {
		t.Errorf("%d columns, want %d", len(info.Columns), len(want))
	}
	if !slices.Equal(info.PrimaryKey, []string{"id"}) || info.Partitioned || len(info.ForeignKeys) != 0 {
		t.Errorf("users: pk %v partitioned %v fks %v", info.PrimaryKey, info.Partitioned, info.ForeignKeys)
	}

	info, err = d.Describe(ctx, coll("items"))
	if err != nil {
		t.Fatal(err)
	}
	wantFK := datastore.ForeignKey{Name: "items_order_region_order_id_fkey", Columns: []string{"order_region", "order_id"},
		RefSchema: "public", RefTable: "orders", RefColumns: []string{"region", "id"}}
	if len(info.ForeignKeys) != 1 || info.ForeignKeys[0].Name != wantFK.Name || info.ForeignKeys[0].RefTable != "orders" ||
		info.ForeignKeys[0].RefSchema != "public" || !slices.Equal(info.ForeignKeys[0].Columns, wantFK.Columns) ||
		!slices.Equal(info.ForeignKeys[0].RefColumns, wantFK.RefColumns) {
		t.Errorf("items fks = %+v, want %+v", info.ForeignKeys, wantFK)
	}
	info, err = d.Describe(ctx, coll("orders"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.PrimaryKey, []string{"region", "id"}) {
		t.Errorf("orders pk = %v", info.PrimaryKey)
	}

	info, err = d.Describe(ctx, coll("events"))
	if err != nil {
		t.Fatal(err)
	}
	if !info.Partitioned || !slices.Equal(info.PrimaryKey, []string{"id", "ts"}) {
		t.Errorf("events: partitioned %v pk %v", info.Partitioned, info.PrimaryKey)
	}
	if info.EstimatedRows < 2700 || info.EstimatedRows > 3300 {
		t.Errorf("events EstimatedRows = %d, want about 3000 (summed over partitions)", info.EstimatedRows)
	}

	info, err = d.Describe(ctx, coll("nopk"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.PrimaryKey, []string{"a", "b"}) {
		t.Errorf("nopk key = %v, want the NOT NULL unique index (a, b)", info.PrimaryKey)
	}
	if info, err = d.Describe(ctx, coll("nokey")); err != nil || len(info.PrimaryKey) != 0 {
		t.Errorf("table without any key: want empty PrimaryKey, got %v, %v", info.PrimaryKey, err)
	}
	_, err = d.Execute(ctx, datastore.Operation{Collection: datastore.Collection{Name: "nokey", IdentityFields: map[string]string{"a": "a"}},
		Delete: true, Subjects: map[string][]string{"a": {"1"}}}, "")
	wantErr(t, err, datastore.ErrInvalid, "executing on a table without key")
	// A declared key must be backed by a unique index: batches by a key
	// that repeats would skip or repeat rows.
	c := coll("nokey")
	c.PrimaryKey = []string{"a"}
	_, err = d.Describe(ctx, c)
	wantErr(t, err, datastore.ErrInvalid, "declared primary key without a unique index")
	c = coll("nopk")
	c.PrimaryKey = []string{"b", "a"}
	if info, err = d.Describe(ctx, c); err != nil || !slices.Equal(info.PrimaryKey, []string{"b", "a"}) {
		t.Errorf("declared primary key: %v %v", info.PrimaryKey, err)
	}
	c = coll("nokey")
	c.PrimaryKey = []string{"zz"}
	_, err = d.Describe(ctx, c)
	wantErr(t, err, datastore.ErrNotFound, "declared primary key column missing")

	_, err = d.Describe(ctx, coll("missing"))
	wantErr(t, err, datastore.ErrNotFound, "missing table")
	_, err = d.Describe(ctx, datastore.Collection{Name: "users", Schema: "nope"})
	wantErr(t, err, datastore.ErrNotFound, "missing schema")
	e.exec(`CREATE VIEW v AS SELECT 1 AS x`)
	_, err = d.Describe(ctx, coll("v"))
	wantErr(t, err, datastore.ErrInvalid, "a view")

	if n, err := d.Total(ctx, coll("events")); err != nil || n != 3000 {
		t.Errorf("Total(events) = %d, %v; want 3000", n, err)
	}
}

// TestSchemaChangeInvalidatesCache proves the cached description is dropped
// when the server says a column vanished, and re-read afterwards.
func TestSchemaChangeInvalidatesCache(t *testing.T) {
	e := setup(t)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL)`)
	e.exec(`INSERT INTO t SELECT i, '2020-01-01' FROM generate_series(1, 10) i`)
	d := e.driver()
	op := datastore.Operation{Collection: datastore.Collection{Name: "t", TimestampField: "ts"}, Delete: true,
		Cutoff: ptr.To(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)), BatchSize: 4}
	if n := count(t, d, op); n != 10 {
		t.Fatalf("Count = %d", n)
	}
	e.exec(`ALTER TABLE t RENAME COLUMN ts TO created`)
	_, err := d.Count(context.Background(), op)
	wantErr(t, err, datastore.ErrNotFound, "renamed column")
	op.Collection.TimestampField = "created"
	if n := count(t, d, op); n != 10 {
		t.Fatalf("Count after re-describe = %d", n)
	}
}

// TestInvalidOperations proves operations that cannot be executed as
// specified are refused before anything is touched.
func TestInvalidOperations(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL, label text, email text)`)
	e.exec(`CREATE TABLE other (id int PRIMARY KEY, ts timestamptz NOT NULL)`)
	e.exec(`INSERT INTO t SELECT i, '2020-01-01', 'x', 'e' || i FROM generate_series(1, 10) i`)
	d := e.driver()
	cut := ptr.To(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	base := datastore.Collection{Name: "t", TimestampField: "ts", IdentityFields: map[string]string{"email": "email"}}
	cases := []struct {
		name  string
		op    datastore.Operation
		class error
	}{
		{"neither cutoff nor subjects", datastore.Operation{Collection: base, Delete: true}, datastore.ErrInvalid},
		{"subjects without values", datastore.Operation{Collection: base, Delete: true, Subjects: map[string][]string{"email": nil}}, datastore.ErrInvalid},
		{"unknown identity type", datastore.Operation{Collection: base, Delete: true, Subjects: map[string][]string{"phone": {"1"}}}, datastore.ErrInvalid},
		{"cutoff on a text column", datastore.Operation{Collection: datastore.Collection{Name: "t", TimestampField: "label"}, Delete: true, Cutoff: cut}, datastore.ErrInvalid},
		{"cutoff without timestamp field", datastore.Operation{Collection: coll("t"), Delete: true, Cutoff: cut}, datastore.ErrInvalid},
		{"missing timestamp column", datastore.Operation{Collection: datastore.Collection{Name: "t", TimestampField: "nope"}, Delete: true, Cutoff: cut}, datastore.ErrNotFound},
		{"anonymize without fields", datastore.Operation{Collection: base, Cutoff: cut}, datastore.ErrInvalid},
		{"anonymize the primary key", datastore.Operation{Collection: base, Cutoff: cut, Fields: []datastore.FieldMask{{Field: "id", Strategy: fixed("0")}}}, datastore.ErrInvalid},
		{"anonymize a missing column", datastore.Operation{Collection: base, Cutoff: cut, Fields: []datastore.FieldMask{{Field: "nope", Strategy: redact()}}}, datastore.ErrNotFound},
		{"strategy unfit for column", datastore.Operation{Collection: base, Cutoff: cut, Fields: []datastore.FieldMask{{Field: "ts", Strategy: redact()}}}, datastore.ErrInvalid},
	}
	for _, c := range cases {
		_, err := d.Execute(ctx, c.op, "")
		wantErr(t, err, c.class, c.name)
	}
	good := datastore.Operation{Collection: base, Delete: true, Cutoff: cut, BatchSize: 2}
	_, err := d.Execute(ctx, good, `{"garbage`)
	wantErr(t, err, datastore.ErrInvalid, "garbage cursor")
	b, err := d.Execute(ctx, datastore.Operation{Collection: datastore.Collection{Name: "other", TimestampField: "ts"}, Delete: true, Cutoff: cut, BatchSize: 2}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Execute(ctx, good, b.Cursor)
	wantErr(t, err, datastore.ErrInvalid, "cursor of another table")
	if n := e.int("SELECT count(*) FROM t"); n != 10 {
		t.Fatalf("refused operations touched rows: %d left", n)
	}
}

// TestConcurrentUse runs operations on several collections at once through
// one driver (it must be safe for concurrent use).
func TestConcurrentUse(t *testing.T) {
	e := setup(t)
	for _, n := range []string{"a", "b", "c", "d"} {
		e.exec(`CREATE TABLE ` + n + ` (id int PRIMARY KEY, ts timestamptz NOT NULL)`)
		e.exec(`INSERT INTO ` + n + ` SELECT i, '2020-01-01'::timestamptz + i * interval '1 hour' FROM generate_series(1, 500) i`)
	}
	d := e.driver()
	cut := ptr.To(time.Date(2020, 1, 11, 0, 0, 0, 0, time.UTC)) // 239 rows before
	var wg sync.WaitGroup
	results := make([]int64, 4)
	for i, n := range []string{"a", "b", "c", "d"} {
		wg.Go(func() {
			op := datastore.Operation{Collection: datastore.Collection{Name: n, TimestampField: "ts"}, Delete: true, Cutoff: cut, BatchSize: 17}
			cursor := ""
			for {
				b, err := d.Execute(context.Background(), op, cursor)
				if err != nil {
					t.Error(err)
					return
				}
				results[i] += b.Affected
				cursor = b.Cursor
				if b.Done {
					return
				}
			}
		})
	}
	wg.Wait()
	for i, r := range results {
		if r != 239 {
			t.Errorf("table %d: deleted %d, want 239", i, r)
		}
	}
}
