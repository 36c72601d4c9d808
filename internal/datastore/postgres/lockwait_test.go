package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// TestLockTimeoutBoundsEveryWait proves a table held in ACCESS EXCLUSIVE
// mode by another transaction makes every operation that reads or writes it
// give up within lockTimeout, each time, on fresh connections (nothing
// described or prepared yet: the statement's parse waits for the lock too)
// and on reused ones (described and prepared), and that the error says it
// was a lock wait.
func TestLockTimeoutBoundsEveryWait(t *testing.T) {
	e := setup(t)
	// Every call is bounded by a deadline too, so a wait lockTimeout does
	// not bound fails the test (as a timeout) instead of hanging it.
	ctx := context.Background()
	e.exec(`CREATE TABLE parent (id int PRIMARY KEY, ts timestamptz NOT NULL, name text)`)
	e.exec(`CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent)`)
	e.exec(`INSERT INTO parent SELECT i, '2020-01-01', 'n' || i FROM generate_series(1, 20) i`)
	e.exec(`INSERT INTO child VALUES (1, 1)`)
	const lockTimeout = 500 * time.Millisecond
	const limit = lockTimeout + 1500*time.Millisecond
	cfg := e.cfg()
	cfg.LockTimeout = lockTimeout
	cutoff := ptr.To(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	del := datastore.Operation{Collection: datastore.Collection{Name: "parent", TimestampField: "ts"},
		Delete: true, Cutoff: cutoff, BatchSize: 5}
	anon := datastore.Operation{Collection: del.Collection, Cutoff: cutoff, BatchSize: 5,
		Fields: []datastore.FieldMask{{Field: "name", Strategy: redact()}}}
	calls := []struct {
		name string
		call func(ctx context.Context, d datastore.Driver) error
	}{
		{"Count", func(ctx context.Context, d datastore.Driver) error {
			_, err := d.Count(ctx, del)
			return err
		}},
		{"Total", func(ctx context.Context, d datastore.Driver) error {
			_, err := d.Total(ctx, del.Collection)
			return err
		}},
		{"Execute delete", func(ctx context.Context, d datastore.Driver) error {
			_, err := d.Execute(ctx, del, "")
			return err
		}},
		{"Execute anonymize", func(ctx context.Context, d datastore.Driver) error {
			_, err := d.Execute(ctx, anon, "")
			return err
		}},
		{"Keys", func(ctx context.Context, d datastore.Driver) error {
			_, err := d.(datastore.Sealer).Keys(ctx, del, 100)
			return err
		}},
		{"Blockers", func(ctx context.Context, d datastore.Driver) error {
			_, err := d.(datastore.Referrers).Blockers(ctx, []datastore.Operation{del})
			return err
		}},
	}

	// A warm driver: its table descriptions cached and its statements
	// prepared before the lock is taken (Execute with a cutoff that
	// selects nothing runs the same statements, with other values).
	warm := e.driverWith(cfg)
	past := ptr.To(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, c := range calls {
		del.Cutoff, anon.Cutoff = past, past
		if err := c.call(ctx, warm); err != nil {
			t.Fatalf("warm-up %s: %v", c.name, err)
		}
	}
	del.Cutoff, anon.Cutoff = cutoff, cutoff

	tx, err := e.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE parent IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var worst time.Duration
	for round := range 3 {
		fresh := e.driverWith(cfg)
		for _, d := range []struct {
			name string
			d    datastore.Driver
		}{{"fresh", fresh}, {"warm", warm}} {
			for _, c := range calls {
				start := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := c.call(cctx, d.d)
				cancel()
				took := time.Since(start)
				worst = max(worst, took)
				what := d.name + " " + c.name
				t.Logf("round %d %s: %v after %v", round, what, err, took.Round(time.Millisecond))
				if err == nil {
					t.Fatalf("%s: no error while the table is locked", what)
				}
				if !errors.Is(err, datastore.ErrLockTimeout) || !errors.Is(err, datastore.ErrUnavailable) {
					t.Fatalf("%s: want a lock timeout (ErrLockTimeout, ErrUnavailable), got %v", what, err)
				}
				if msg := err.Error(); !strings.Contains(msg, "lock") || !strings.Contains(msg, "lockTimeout 500ms") {
					t.Fatalf("%s: message does not say it was a lock wait: %s", what, msg)
				}
				if took > limit {
					t.Fatalf("%s: gave up after %v with lockTimeout %v", what, took, lockTimeout)
				}
			}
		}
	}
	t.Logf("longest wait %v with lockTimeout %v", worst, lockTimeout)
	_ = tx.Rollback(ctx)
	if n := e.int("SELECT count(*) FROM parent WHERE name LIKE 'n%'"); n != 20 {
		t.Fatalf("failed operations changed rows: %d of 20 left untouched", n)
	}
}
