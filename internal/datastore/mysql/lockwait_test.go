package mysql

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

// TestLockTimeoutBoundsEveryWait proves a table another session holds with
// LOCK TABLES … WRITE (a metadata lock) makes every operation on it give up
// within the lock wait limit, and a row another transaction holds FOR
// UPDATE makes the batches give up the same way, each time, on fresh and
// reused connections, with an error that says it was a lock wait.
// LockTimeout 500ms is 1s on the server (whole seconds, rounded up).
func TestLockTimeoutBoundsEveryWait(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.exec(
		"CREATE TABLE parent (id INT PRIMARY KEY, ts DATETIME NOT NULL, name VARCHAR(20))",
		"CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES parent (id))",
		"INSERT INTO parent SELECT seq, '2020-01-01', CONCAT('n', seq) FROM seq_1_to_20",
		"INSERT INTO child VALUES (1, 1)",
	)
	const limit = time.Second + 1500*time.Millisecond
	cfg := e.config()
	cfg.LockTimeout = 500 * time.Millisecond
	cutoff := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	past := time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
	del := datastore.Operation{Collection: datastore.Collection{Name: "parent", TimestampField: "ts"},
		Delete: true, Cutoff: &cutoff, BatchSize: 5}
	anon := datastore.Operation{Collection: del.Collection, Cutoff: &cutoff, BatchSize: 5,
		Fields: []datastore.FieldMask{{Field: "name", Strategy: mask.Strategy{Kind: mask.Redact}}}}
	type call struct {
		name string
		call func(ctx context.Context, d *Driver) error
	}
	batches := []call{
		{"Execute delete", func(ctx context.Context, d *Driver) error { _, err := d.Execute(ctx, del, ""); return err }},
		{"Execute anonymize", func(ctx context.Context, d *Driver) error { _, err := d.Execute(ctx, anon, ""); return err }},
	}
	all := append([]call{
		{"Count", func(ctx context.Context, d *Driver) error { _, err := d.Count(ctx, del); return err }},
		{"Total", func(ctx context.Context, d *Driver) error { _, err := d.Total(ctx, del.Collection); return err }},
		{"Keys", func(ctx context.Context, d *Driver) error { _, err := d.Keys(ctx, del, 100); return err }},
		{"Blockers", func(ctx context.Context, d *Driver) error {
			_, err := d.Blockers(ctx, []datastore.Operation{del})
			return err
		}},
	}, batches...)

	// A warm driver: tables described and connections used before the
	// lock is taken (Execute with a cutoff that selects nothing).
	warm := e.driverWith(cfg)
	del.Cutoff, anon.Cutoff = &past, &past
	for _, c := range all {
		if err := c.call(ctx, warm); err != nil {
			t.Fatalf("warm-up %s: %v", c.name, err)
		}
	}
	del.Cutoff, anon.Cutoff = &cutoff, &cutoff

	var worst time.Duration
	check := func(lock string, calls []call) {
		t.Helper()
		for round := range 3 {
			fresh := e.driverWith(cfg)
			for _, d := range []struct {
				name string
				d    *Driver
			}{{"fresh", fresh}, {"warm", warm}} {
				for _, c := range calls {
					cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
					start := time.Now()
					err := c.call(cctx, d.d)
					took := time.Since(start)
					cancel()
					worst = max(worst, took)
					what := lock + ": " + d.name + " " + c.name
					t.Logf("round %d %s: %v after %v", round, what, err, took.Round(time.Millisecond))
					if err == nil {
						t.Fatalf("%s: no error while locked", what)
					}
					if !errors.Is(err, datastore.ErrLockTimeout) || !errors.Is(err, datastore.ErrUnavailable) {
						t.Fatalf("%s: want a lock timeout (ErrLockTimeout, ErrUnavailable), got %v", what, err)
					}
					if msg := err.Error(); !strings.Contains(msg, "lock not granted within lockTimeout 1s") {
						t.Fatalf("%s: message does not say it was a lock wait: %s", what, msg)
					}
					if took > limit {
						t.Fatalf("%s: gave up after %v with a 1s lock wait limit", what, took)
					}
				}
			}
		}
	}

	// A metadata lock: LOCK TABLES … WRITE on a session of its own.
	conn, err := e.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "LOCK TABLES parent WRITE"); err != nil {
		t.Fatal(err)
	}
	check("LOCK TABLES WRITE", all)
	if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	// A row lock: SELECT … FOR UPDATE in an open transaction.
	tx, err := e.db.BeginTx(ctx, &sql.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT * FROM parent WHERE id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	check("row lock", batches)
	tx.Rollback()

	t.Logf("longest wait %v with LockTimeout 500ms (1s on the server)", worst)
	if n := e.count("SELECT count(*) FROM parent WHERE name LIKE 'n%'"); n != 20 {
		t.Fatalf("failed operations changed rows: %d of 20 left untouched", n)
	}
}
