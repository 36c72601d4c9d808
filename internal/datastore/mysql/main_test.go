package mysql

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/testharness"
)

func TestMain(m *testing.M) { testharness.Main(m) }

// env is one fresh database on the throwaway MariaDB, with a raw connection
// for setting up and reading back.
type env struct {
	t  testing.TB
	my testharness.MySQL
	db *sql.DB
}

func newEnv(t testing.TB) *env {
	t.Helper()
	my := testharness.MariaDB(t)
	db, err := sql.Open("mysql", my.DSN+"&loc=UTC&time_zone=%27%2B00%3A00%27")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &env{t: t, my: my, db: db}
}

func (e *env) config() datastore.Config {
	return datastore.Config{
		Type: "MySQL", Host: e.my.Host, Port: e.my.Port, Database: e.my.Database,
		Username: e.my.User, Password: e.my.Password, TLS: datastore.TLSDisable, // the throwaway server has no TLS
		MaxConnections: 4, StatementTimeout: 5 * time.Second, LockTimeout: 2 * time.Second,
	}
}

// driver opens a driver on the env's database, closed when the test ends.
func (e *env) driver() *Driver {
	e.t.Helper()
	return e.driverWith(e.config())
}

func (e *env) driverWith(cfg datastore.Config) *Driver {
	e.t.Helper()
	d, err := New(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() { d.Close() })
	return d
}

// exec runs statements one by one.
func (e *env) exec(stmts ...string) {
	e.t.Helper()
	for _, s := range stmts {
		if _, err := e.db.Exec(s); err != nil {
			e.t.Fatalf("%s: %v", firstLine(s), err)
		}
	}
}

func (e *env) count(q string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.QueryRow(q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", firstLine(q), err)
	}
	return n
}

// strings reads a one-column result as strings.
func (e *env) strings(q string, args ...any) []string {
	e.t.Helper()
	rows, err := e.db.Query(q, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", firstLine(q), err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		if s.Valid {
			out = append(out, s.String)
		} else {
			out = append(out, "NULL")
		}
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

// result sums a whole operation.
type result struct {
	affected int64
	batches  int
	dropped  int
	cursor   string
}

// runAll executes op until done, starting from cursor.
func runAll(t testing.TB, d *Driver, op datastore.Operation, cursor string) result {
	t.Helper()
	var r result
	r.cursor = cursor
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("operation never finished")
		}
		b, err := d.Execute(context.Background(), op, r.cursor)
		if err != nil {
			t.Fatalf("Execute (batch %d): %v", i, err)
		}
		if b.Affected > int64(max(op.BatchSize, defaultBatchSize)) && b.PartitionsDropped == 0 {
			t.Fatalf("batch %d affected %d rows, more than the batch size %d", i, b.Affected, op.BatchSize)
		}
		r.affected += b.Affected
		r.batches++
		r.dropped += b.PartitionsDropped
		r.cursor = b.Cursor
		if b.Done {
			return r
		}
	}
}

func mustCount(t testing.TB, d *Driver, op datastore.Operation) int64 {
	t.Helper()
	n, err := d.Count(context.Background(), op)
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	return n
}

func wantErr(t testing.TB, err error, classes ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one of %v", classes)
	}
	for _, c := range classes {
		if errors.Is(err, c) {
			return
		}
	}
	t.Fatalf("got %v, want one of %v", err, classes)
}

func ptr[T any](v T) *T { return &v }
