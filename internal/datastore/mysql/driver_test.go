package mysql

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// New connects, tells MariaDB from MySQL, and sets up every session: UTC time
// zone, lock wait timeout in whole seconds rounded up, READ COMMITTED, and
// the pool size.
func TestNewSessionSettings(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.LockTimeout = 1500 * time.Millisecond
	cfg.MaxConnections = 3
	d := e.driverWith(cfg)

	info, err := d.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info.Version, "MariaDB") || !d.MariaDB() {
		t.Fatalf("version %q, MariaDB()=%v: want MariaDB detected", info.Version, d.MariaDB())
	}
	if got := d.db.Stats().MaxOpenConnections; got != 3 {
		t.Errorf("MaxOpenConnections = %d, want 3", got)
	}
	var tz, isolation string
	var innodbLock, mdlLock int
	err = d.db.QueryRow("SELECT @@session.time_zone, @@session.tx_isolation, @@session.innodb_lock_wait_timeout, @@session.lock_wait_timeout").
		Scan(&tz, &isolation, &innodbLock, &mdlLock)
	if err != nil {
		t.Fatal(err)
	}
	if tz != "+00:00" || isolation != "READ-COMMITTED" || innodbLock != 2 || mdlLock != 2 {
		t.Errorf("session: time_zone %s, isolation %s, innodb_lock_wait_timeout %d, lock_wait_timeout %d; want +00:00, READ-COMMITTED, 2, 2",
			tz, isolation, innodbLock, mdlLock)
	}
	if got := d.stmtPrefix(); got != "SET STATEMENT max_statement_time=5 FOR " {
		t.Errorf("statement prefix %q", got)
	}
}

// Connection failures are classified: wrong password → ErrAuthentication
// (1045), nothing listening → ErrUnavailable, unknown database → ErrNotFound;
// and the message carries neither the password nor the server's text.
func TestNewErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	cfg := e.config()
	cfg.Password = "wrong-secret-password"
	_, err := New(ctx, cfg)
	wantErr(t, err, datastore.ErrAuthentication)
	var me *datastore.Error
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Errorf("want error 1045, got %v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-password") || strings.Contains(err.Error(), e.my.User+"'@") {
		t.Errorf("error leaks server text: %v", err)
	}

	cfg = e.config()
	cfg.Port = freePort(t)
	_, err = New(ctx, cfg)
	wantErr(t, err, datastore.ErrUnavailable)

	cfg = e.config()
	cfg.Database = "no_such_database"
	_, err = New(ctx, cfg)
	wantErr(t, err, datastore.ErrNotFound)

	cfg = e.config()
	cfg.TLS = "Sometimes"
	_, err = New(ctx, cfg)
	wantErr(t, err, datastore.ErrInvalid)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// A batch that waits for a row lock longer than LockTimeout fails with
// ErrUnavailable (1205), and a batch statement running longer than
// StatementTimeout is stopped by the server (1969).
func TestBatchLimits(t *testing.T) {
	e := newEnv(t)
	e.exec(
		"CREATE TABLE events (id BIGINT PRIMARY KEY, ts DATETIME NOT NULL, note VARCHAR(20))",
		"INSERT INTO events SELECT seq, '2020-01-01' + INTERVAL seq SECOND, 'x' FROM seq_1_to_300000",
	)
	cfg := e.config()
	cfg.LockTimeout = time.Second
	d := e.driverWith(cfg)

	// Another transaction holds the first row.
	tx, err := e.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("UPDATE events SET note = 'busy' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	op := datastore.Operation{
		Collection: datastore.Collection{Name: "events", TimestampField: "ts"},
		Delete:     true, Cutoff: &cutoff, BatchSize: 100,
	}
	start := time.Now()
	_, err = d.Execute(context.Background(), op, "")
	wantErr(t, err, datastore.ErrUnavailable)
	var me *datastore.Error
	if !errors.As(err, &me) || me.Number != 1205 {
		t.Fatalf("want lock wait timeout 1205, got %v", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("lock wait took %v with a 1s limit", took)
	}
	tx.Rollback()

	// Only the very last row matches: the batch scans 300,000 rows for it,
	// far longer than 1ms.
	cfg.StatementTimeout = time.Millisecond
	d = e.driverWith(cfg)
	late := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(300000 * time.Second)
	op.Cutoff = &late
	op.Collection.IdentityFields = map[string]string{"note": "note"}
	op.Held = map[string][]string{"note": {"x"}}
	_, err = d.Execute(context.Background(), op, "")
	wantErr(t, err, datastore.ErrUnavailable)
	if !errors.As(err, &me) || me.Number != 1969 {
		t.Fatalf("want statement timeout 1969, got %v", err)
	}
}

// Probe and Close.
func TestProbeAfterClose(t *testing.T) {
	e := newEnv(t)
	d, err := New(context.Background(), e.config())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = d.Probe(context.Background())
	if err == nil {
		t.Fatal("Probe after Close succeeded")
	}
}
