package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
)

// attempts records the estimated range DELETEs of a driver.
type attempts struct {
	all        []postgres.RangeAttempt
	rolledBack int
	committed  int
	timedOut   int
}

func watch(d *postgres.Driver, also func(postgres.RangeAttempt)) *attempts {
	a := &attempts{}
	postgres.SetRangeAttemptHook(d, func(r postgres.RangeAttempt) {
		a.all = append(a.all, r)
		switch {
		case r.TimedOut:
			a.timedOut++
		case r.Committed:
			a.committed++
		default:
			a.rolledBack++
		}
		if also != nil {
			also(r)
		}
	})
	return a
}

// TestEstimatedRangeOvershoot proves that an estimated range that holds
// more than BatchSize rows is rolled back, leaving the table exactly as it
// was, and retried narrower: sparse rows (one a minute) seed the density,
// then a burst (a thousand rows a second) follows. No committed batch
// exceeds BatchSize, every expired row goes and nothing else.
func TestEstimatedRangeOvershoot(t *testing.T) {
	e := setup(t)
	e.exec(`CREATE TABLE burst (id bigint PRIMARY KEY, ts timestamptz NOT NULL)`)
	e.exec(`CREATE INDEX ON burst (ts)`)
	e.exec(`INSERT INTO burst SELECT i, '2023-01-01'::timestamptz + i * interval '1 minute' FROM generate_series(1, 300) i`)
	e.exec(`INSERT INTO burst SELECT 1000 + i, '2023-01-01 05:01:00+00'::timestamptz + i * interval '1 ms' FROM generate_series(1, 3000) i`)
	e.exec(`INSERT INTO burst SELECT 10000 + i, '2023-02-01'::timestamptz + i * interval '1 minute' FROM generate_series(1, 300) i`)
	e.exec(`INSERT INTO burst SELECT 20000 + i, '2024-06-01'::timestamptz + i * interval '1 second' FROM generate_series(1, 50) i`)
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	want := e.int(`SELECT count(*) FROM burst WHERE ts < $1`, cut)

	d := e.driver()
	var before int64
	a := watch(d, func(r postgres.RangeAttempt) {
		n := e.int(`SELECT count(*) FROM burst`)
		switch {
		case !r.Committed && n != before:
			t.Fatalf("rolled-back attempt (%d rows) changed the table: %d rows, want %d", r.Deleted, n, before)
		case r.Committed && r.Deleted > 100:
			t.Fatalf("committed attempt deleted %d rows, more than BatchSize", r.Deleted)
		}
	})
	op := datastore.Operation{Collection: datastore.Collection{Name: "burst", TimestampField: "ts"}, Delete: true, Cutoff: &cut, BatchSize: 100}
	cursor, total := "", int64(0)
	for i := 0; ; i++ {
		if i > 500 {
			t.Fatal("not done after 500 batches")
		}
		before = e.int(`SELECT count(*) FROM burst`)
		b, err := d.Execute(context.Background(), op, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if b.Affected > 100 {
			t.Fatalf("batch deleted %d rows", b.Affected)
		}
		if got := before - e.int(`SELECT count(*) FROM burst`); got != b.Affected {
			t.Fatalf("batch reported %d rows, the table lost %d", b.Affected, got)
		}
		total += b.Affected
		cursor = b.Cursor
		if b.Done {
			break
		}
	}
	if total != want {
		t.Fatalf("deleted %d, want %d", total, want)
	}
	if n := e.int(`SELECT count(*) FROM burst WHERE ts < $1`, cut); n != 0 {
		t.Fatalf("%d expired rows left", n)
	}
	if n := e.int(`SELECT count(*) FROM burst`); n != 50 {
		t.Fatalf("%d rows left, want the 50 recent ones", n)
	}
	if a.rolledBack == 0 || a.committed == 0 {
		t.Fatalf("want both committed and rolled-back estimated attempts, got %d committed, %d rolled back", a.committed, a.rolledBack)
	}
	t.Logf("%d estimated attempts committed, %d rolled back", a.committed, a.rolledBack)
}

// TestEstimatedRangeBursty walks timestamps in bursts, gaps and ties, with
// a legal hold: exactly the expired, unheld rows go, in batches within
// BatchSize, for timestamptz and timestamp columns.
func TestEstimatedRangeBursty(t *testing.T) {
	e := setup(t)
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, typ := range []string{"timestamptz", "timestamp"} {
		name := "bursty_" + typ
		t.Run(typ, func(t *testing.T) {
			e.exec(fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, ts %s NOT NULL, user_id int)`, name, typ))
			e.exec(`CREATE INDEX ON ` + name + ` (ts)`)
			// 40 blocks: each some tens to hundreds of rows packed into a
			// few seconds, then a gap of hours to weeks; every 7th block is
			// one timestamp.
			e.exec(`INSERT INTO ` + name + ` SELECT b * 1000 + i,
				'2023-01-01'::timestamp + (b * b * 7) * interval '1 hour' + CASE WHEN b % 7 = 0 THEN interval '0' ELSE i * interval '7 ms' END,
				(b * 1000 + i) % 13
				FROM generate_series(0, 39) b, generate_series(1, 20 + (b * 37) % 400) i`)
			e.exec(`INSERT INTO ` + name + ` SELECT 100000 + i, '2024-01-01'::timestamp + i * interval '1 minute', 0 FROM generate_series(1, 100) i`)
			want := e.int(`SELECT count(*) FROM ` + name + ` WHERE ts < '2024-01-01' AND user_id <> 3`)
			keep := e.ints(`SELECT id FROM ` + name + ` WHERE ts >= '2024-01-01' OR user_id = 3 ORDER BY id`)
			d := e.driver()
			a := watch(d, nil)
			op := datastore.Operation{Collection: datastore.Collection{Name: name, TimestampField: "ts", IdentityFields: map[string]string{"user_id": "user_id"}},
				Delete: true, Cutoff: &cut, BatchSize: 150, Held: map[string][]string{"user_id": {"3"}}}
			r := drain(t, d, op, "", 1000)
			if r.affected != want {
				t.Fatalf("deleted %d, want %d", r.affected, want)
			}
			left := e.ints(`SELECT id FROM ` + name + ` ORDER BY id`)
			if fmt.Sprint(left) != fmt.Sprint(keep) {
				t.Fatalf("rows left differ from the held and recent ones: %d left, want %d", len(left), len(keep))
			}
			if a.committed == 0 {
				t.Fatal("no estimated range DELETE was used")
			}
			t.Logf("%d batches; %d estimated attempts committed, %d rolled back", r.batches, a.committed, a.rolledBack)
		})
	}
}

// TestEstimatedRangeOneTimestamp puts far more rows than a batch on one
// timestamp in the middle of evenly spaced rows: the walk gets through them
// within BatchSize per batch and then estimates again.
func TestEstimatedRangeOneTimestamp(t *testing.T) {
	e := setup(t)
	e.exec(`CREATE TABLE one_ts (id bigint PRIMARY KEY, ts timestamptz NOT NULL)`)
	e.exec(`CREATE INDEX ON one_ts (ts)`)
	e.exec(`INSERT INTO one_ts SELECT i, '2023-01-01'::timestamptz + i * interval '1 second' FROM generate_series(1, 1000) i`)
	e.exec(`INSERT INTO one_ts SELECT 5000 + i, '2023-01-01'::timestamptz + 500 * interval '1 second' FROM generate_series(1, 700) i`)
	e.exec(`INSERT INTO one_ts SELECT 9000 + i, '2025-01-01'::timestamptz FROM generate_series(1, 10) i`)
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	d := e.driver()
	a := watch(d, nil)
	op := datastore.Operation{Collection: datastore.Collection{Name: "one_ts", TimestampField: "ts"}, Delete: true, Cutoff: &cut, BatchSize: 100}
	r := drain(t, d, op, "", 200)
	if r.affected != 1700 {
		t.Fatalf("deleted %d, want 1700", r.affected)
	}
	if n := e.int(`SELECT count(*) FROM one_ts`); n != 10 {
		t.Fatalf("%d rows left, want 10", n)
	}
	for _, at := range a.all {
		if at.Committed && at.Deleted > 100 {
			t.Fatalf("committed attempt of %d rows", at.Deleted)
		}
	}
	if a.committed == 0 {
		t.Fatal("no estimated range DELETE was used")
	}
	t.Logf("%d batches; %d estimated attempts committed, %d rolled back", r.batches, a.committed, a.rolledBack)
}

// TestEstimatedRangeCutoff proves the estimated ranges stop strictly before
// the cutoff: rows at cutoff−1s and −1µs go; rows at the cutoff, +1µs and
// +1s stay, with many evenly spaced rows before them so that the last
// batches are estimated, for timestamptz and (Shanghai wall clock) timestamp
// columns, in a Los Angeles session.
func TestEstimatedRangeCutoff(t *testing.T) {
	e := setup(t)
	e.setTimeZone("America/Los_Angeles")
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	cutoff := time.Date(2024, 3, 10, 10, 0, 0, 0, time.UTC)
	for _, typ := range []string{"timestamptz", "timestamp"} {
		for _, bs := range []int{7, 50} {
			name := fmt.Sprintf("ec_%s_%d", typ, bs)
			t.Run(name, func(t *testing.T) {
				e.exec(fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, ts %s NOT NULL)`, name, typ))
				e.exec(`CREATE INDEX ON ` + name + ` (ts)`)
				var loc *time.Location
				wall := func(at time.Time) any { return at }
				cast := ""
				if typ == "timestamp" {
					loc = shanghai
					wall = func(at time.Time) any { return at.In(shanghai).Format("2006-01-02 15:04:05.999999") }
					cast = "::timestamp"
				}
				ins := fmt.Sprintf(`INSERT INTO %s VALUES ($1, $2%s)`, name, cast)
				for i := 1; i <= 300; i++ {
					e.exec(ins, i, wall(cutoff.Add(-time.Duration(301-i)*17*time.Second)))
				}
				for i, off := range []time.Duration{-time.Second, -time.Microsecond, 0, time.Microsecond, time.Second} {
					e.exec(ins, 1000+i, wall(cutoff.Add(off)))
				}
				d := e.driver()
				a := watch(d, nil)
				op := datastore.Operation{Collection: datastore.Collection{Name: name, TimestampField: "ts", TimestampLocation: loc},
					Delete: true, Cutoff: &cutoff, BatchSize: bs}
				r := drain(t, d, op, "", 200)
				if r.affected != 302 {
					t.Fatalf("deleted %d, want 302", r.affected)
				}
				if got := e.ints(`SELECT id FROM ` + name + ` ORDER BY id`); fmt.Sprint(got) != "[1002 1003 1004]" {
					t.Fatalf("rows left %v, want [1002 1003 1004]", got)
				}
				if a.committed == 0 {
					t.Fatal("no estimated range DELETE was used")
				}
			})
		}
	}
}

// TestEstimatedRangeResume proves a job resumed on a new driver from a
// cursor persisted mid-way (which carries the density) deletes exactly the
// rest, and that a cursor written before the cursor carried a density, or
// one whose density is corrupt, is handled: the former resumes, the latter
// fails as invalid.
func TestEstimatedRangeResume(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, variant := range []string{"density", "old", "corrupt"} {
		name := "er_" + variant
		t.Run(variant, func(t *testing.T) {
			e.exec(`CREATE TABLE ` + name + ` (id bigint PRIMARY KEY, ts timestamptz NOT NULL)`)
			e.exec(`CREATE INDEX ON ` + name + ` (ts)`)
			e.exec(`INSERT INTO ` + name + ` SELECT i, '2023-01-01'::timestamptz + ((i * 37) % 2000) * interval '3 minutes' FROM generate_series(1, 2000) i`)
			e.exec(`INSERT INTO ` + name + ` SELECT 5000 + i, '2024-02-01'::timestamptz FROM generate_series(1, 5) i`)
			op := datastore.Operation{Collection: datastore.Collection{Name: name, TimestampField: "ts"}, Delete: true, Cutoff: &cut, BatchSize: 90}
			d1 := e.driver()
			cursor, total := "", int64(0)
			for i := 0; i < 5; i++ {
				b, err := d1.Execute(ctx, op, cursor)
				if err != nil {
					t.Fatal(err)
				}
				total += b.Affected
				cursor = b.Cursor
			}
			d1.Close()
			var c map[string]any
			if err := json.Unmarshal([]byte(cursor), &c); err != nil {
				t.Fatal(err)
			}
			if _, ok := c["w"]; !ok {
				t.Fatalf("mid-way cursor %s carries no density", cursor)
			}
			switch variant {
			case "old":
				delete(c, "w")
			case "corrupt":
				c["w"] = -5
			}
			bs, _ := json.Marshal(c)
			cursor = string(bs)
			d2 := e.driver()
			if variant == "corrupt" {
				_, err := d2.Execute(ctx, op, cursor)
				wantErr(t, err, datastore.ErrInvalid, "corrupt density")
				return
			}
			a := watch(d2, nil)
			r := drain(t, d2, op, cursor, 200)
			total += r.affected
			if total != 2000 {
				t.Fatalf("deleted %d in total, want 2000", total)
			}
			if n := e.int(`SELECT count(*) FROM ` + name); n != 5 {
				t.Fatalf("%d rows left, want 5", n)
			}
			if a.committed == 0 {
				t.Fatal("the resumed job used no estimated range DELETE")
			}
		})
	}
}

// TestEstimatedRangeTimeout proves that an estimated range so dense that
// its DELETE hits the statement timeout does not fail the batch (a retry
// from the same cursor would time out again, forever): the batch rolls back
// and finds its bound exactly. Sparse rows seed a wide range; a burst of
// 300,000 rows in one second follows.
func TestEstimatedRangeTimeout(t *testing.T) {
	e := setup(t)
	e.exec(`CREATE TABLE dense (id bigint PRIMARY KEY, ts timestamptz NOT NULL)`)
	e.exec(`INSERT INTO dense SELECT i, '2023-01-01'::timestamptz + i * interval '1 minute' FROM generate_series(1, 200) i`)
	e.exec(`INSERT INTO dense SELECT 1000 + i, '2023-01-01 03:25:00+00'::timestamptz + i * interval '3 us' FROM generate_series(1, 300000) i`)
	e.exec(`CREATE INDEX ON dense (ts)`)
	e.exec(`ANALYZE dense`)
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := e.cfg()
	cfg.StatementTimeout = 60 * time.Millisecond
	d := e.driverWith(cfg)
	a := watch(d, nil)
	op := datastore.Operation{Collection: datastore.Collection{Name: "dense", TimestampField: "ts"}, Delete: true, Cutoff: &cut, BatchSize: 100}
	ctx := context.Background()
	cursor, total := "", int64(0)
	for i := 0; i < 6; i++ {
		b, err := d.Execute(ctx, op, cursor)
		if err != nil {
			t.Fatalf("batch %d: %v", i+1, err)
		}
		if b.Affected > 100 {
			t.Fatalf("batch %d deleted %d rows", i+1, b.Affected)
		}
		total += b.Affected
		cursor = b.Cursor
	}
	if n := e.int(`SELECT count(*) FROM dense`); n != 300200-total {
		t.Fatalf("%d rows left, want %d", n, 300200-total)
	}
	if total < 500 {
		t.Fatalf("6 batches deleted only %d rows", total)
	}
	if a.timedOut == 0 {
		t.Fatal("no estimated range hit the statement timeout: the test proves nothing")
	}
	t.Logf("6 batches deleted %d rows; %d estimated attempts committed, %d rolled back, %d timed out", total, a.committed, a.rolledBack, a.timedOut)
}

// TestEstimatedRangeFollowsBatchSize: when the batch size changes from one
// batch to the next (adaptive batches), the estimated range scales to the
// new size: on evenly spread rows every batch deletes close to its own
// size, whether the size doubles or drops eightfold, and no range is
// rolled back for holding too many rows.
func TestEstimatedRangeFollowsBatchSize(t *testing.T) {
	e := setup(t)
	e.exec(`CREATE TABLE even (id bigint PRIMARY KEY, ts timestamptz NOT NULL)`)
	e.exec(`CREATE INDEX ON even (ts)`)
	e.exec(`INSERT INTO even SELECT i, '2023-01-01'::timestamptz + i * interval '1 second' FROM generate_series(1, 40000) i`)
	e.exec(`ANALYZE even`)
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	d := e.driver()
	a := watch(d, nil)
	op := datastore.Operation{Collection: datastore.Collection{Name: "even", TimestampField: "ts"}, Delete: true, Cutoff: &cut}
	cursor := ""
	for i, n := range []int{1000, 2000, 4000, 8000, 1000, 1000, 4000} {
		op.BatchSize = n
		b, err := d.Execute(context.Background(), op, cursor)
		if err != nil {
			t.Fatal(err)
		}
		cursor = b.Cursor
		// The first batch finds its bound exactly; the next ones estimate
		// it at 90% of their size.
		if b.Affected > int64(n) || (i > 0 && float64(b.Affected) < 0.8*float64(n)) {
			t.Errorf("batch %d of size %d deleted %d rows, want about 90%% of it", i, n, b.Affected)
		}
	}
	if a.rolledBack != 0 || a.committed != 6 {
		t.Errorf("%d estimated ranges committed, %d rolled back; want 6 and none", a.committed, a.rolledBack)
	}
}
