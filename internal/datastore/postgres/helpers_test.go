package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
	"github.com/lethe-dev/lethe/internal/testharness"
)

func TestMain(m *testing.M) { testharness.Main(m) }

// env is a fresh database with an admin pool for setting up and reading back.
type env struct {
	t     *testing.T
	pg    testharness.PG
	admin *pgxpool.Pool
}

func setup(t *testing.T) *env {
	t.Helper()
	pg := testharness.Postgres(t)
	admin, err := pgxpool.New(context.Background(), pg.DSN)
	if err != nil {
		t.Fatalf("admin pool: %v", err)
	}
	t.Cleanup(admin.Close)
	return &env{t: t, pg: pg, admin: admin}
}

func (e *env) cfg() datastore.Config {
	return datastore.Config{
		Type: "PostgreSQL", Host: e.pg.Host, Port: e.pg.Port, Database: e.pg.Database,
		Username: e.pg.User, Password: e.pg.Password, TLS: "Disable",
		MaxConnections: 4, StatementTimeout: 5 * time.Second, LockTimeout: time.Second,
	}
}

// driver opens a driver on the env's database, closed when the test ends.
func (e *env) driver() *postgres.Driver {
	e.t.Helper()
	return e.driverWith(e.cfg())
}

func (e *env) driverWith(cfg datastore.Config) *postgres.Driver {
	e.t.Helper()
	d, err := postgres.New(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() { _ = d.Close() })
	return d
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.admin.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("exec %q: %v", firstLine(sql), err)
	}
}

func (e *env) int(sql string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.admin.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("query %q: %v", firstLine(sql), err)
	}
	return n
}

func (e *env) ints(sql string, args ...any) []int64 {
	e.t.Helper()
	rows, _ := e.admin.Query(context.Background(), sql, args...)
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		e.t.Fatalf("query %q: %v", firstLine(sql), err)
	}
	return out
}

// setTimeZone makes every new session of the database use tz, so tests
// prove the driver does not depend on the session's time zone.
func (e *env) setTimeZone(tz string) {
	e.t.Helper()
	e.exec("ALTER DATABASE " + pgx.Identifier{e.pg.Database}.Sanitize() + " SET timezone = '" + tz + "'")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + "…"
	}
	return s
}

// run is the result of running an operation to the end.
type run struct {
	affected   int64
	batches    int
	partitions int
	cursor     string
}

// drain executes op from cursor until Done (at most maxBatches batches).
func drain(t *testing.T, d datastore.Driver, op datastore.Operation, cursor string, maxBatches int) run {
	t.Helper()
	var r run
	r.cursor = cursor
	for {
		if r.batches >= maxBatches {
			t.Fatalf("operation not done after %d batches", maxBatches)
		}
		b, err := d.Execute(context.Background(), op, r.cursor)
		if err != nil {
			t.Fatalf("Execute (batch %d): %v", r.batches+1, err)
		}
		r.batches++
		r.affected += b.Affected
		r.partitions += b.PartitionsDropped
		r.cursor = b.Cursor
		if b.Affected > int64(max(op.BatchSize, 1)) && b.PartitionsDropped == 0 {
			t.Fatalf("batch touched %d rows, more than BatchSize %d", b.Affected, op.BatchSize)
		}
		if b.Done {
			return r
		}
	}
}

func count(t *testing.T, d datastore.Driver, op datastore.Operation) int64 {
	t.Helper()
	n, err := d.Count(context.Background(), op)
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	return n
}

func wantErr(t *testing.T, err, class error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: want %v, got no error", what, class)
	}
	if !errors.Is(err, class) {
		t.Fatalf("%s: want %v, got %v", what, class, err)
	}
}

func coll(name string) datastore.Collection {
	return datastore.Collection{Name: name, Table: name}
}
