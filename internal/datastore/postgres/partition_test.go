package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

func newEvents(e *env) {
	e.exec(`CREATE TABLE events (id bigint, ts timestamptz NOT NULL, user_id bigint, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)`)
	e.exec(`CREATE INDEX ON events (ts)`)
	e.exec(`CREATE TABLE events_2024_01 PARTITION OF events FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2024-02-01 00:00+00')`)
	e.exec(`CREATE TABLE events_2024_02 PARTITION OF events FOR VALUES FROM ('2024-02-01 00:00+00') TO ('2024-03-01 00:00+00')`)
	e.exec(`CREATE TABLE events_2024_03 PARTITION OF events FOR VALUES FROM ('2024-03-01 00:00+00') TO ('2024-04-01 00:00+00')`)
	e.exec(`CREATE TABLE events_default PARTITION OF events DEFAULT`)
	// 1000 rows per month, spread evenly; 10 old and 10 future rows in the
	// default partition; user_id cycles through 1..10.
	for _, m := range []string{"2024-01-01", "2024-02-01", "2024-03-01"} {
		e.exec(`INSERT INTO events SELECT i, $1::timestamptz + (i - 1) * (($1::timestamptz + interval '1 month') - $1::timestamptz) / 1000, i % 10 + 1
			FROM generate_series(1, 1000) i`, m+" 00:00+00")
	}
	e.exec(`INSERT INTO events SELECT 5000 + i, '2023-06-01 00:00+00'::timestamptz + i * interval '1 day', i % 10 + 1 FROM generate_series(1, 10) i`)
	e.exec(`INSERT INTO events SELECT 6000 + i, '2025-06-01 00:00+00'::timestamptz + i * interval '1 day', i % 10 + 1 FROM generate_series(1, 10) i`)
}

// TestPartitionFastPath proves an age-based delete on a table
// range-partitioned on its timestamp drops (DETACH + DROP) the two
// partitions wholly before the cutoff, one per call, counting their rows,
// then deletes the rest of the straddling and default partitions in batches;
// Count before equals the total; resuming on a new driver after the
// partition phase works; the session time zone does not matter.
func TestPartitionFastPath(t *testing.T) {
	e := setup(t)
	e.setTimeZone("Asia/Kolkata")
	newEvents(e)
	d := e.driver()
	cut := time.Date(2024, 3, 16, 12, 0, 0, 0, time.UTC)
	op := datastore.Operation{Collection: datastore.Collection{Name: "events", TimestampField: "ts"}, Delete: true, Cutoff: &cut, BatchSize: 200}
	want := e.int(`SELECT count(*) FROM events WHERE ts < $1`, cut)
	if n := count(t, d, op); n != want {
		t.Fatalf("Count = %d, want %d", n, want)
	}
	ctx := context.Background()
	cursor := ""
	var total int64
	for i := 0; i < 2; i++ {
		b, err := d.Execute(ctx, op, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if b.PartitionsDropped != 1 || b.Affected != 1000 || b.Done {
			t.Fatalf("call %d: %+v, want one partition of 1000 rows dropped", i+1, b)
		}
		total += b.Affected
		cursor = b.Cursor
	}
	// One batch past the partition phase, then resume on a new driver.
	b, err := d.Execute(ctx, op, cursor)
	if err != nil {
		t.Fatal(err)
	}
	if b.PartitionsDropped != 0 || b.Affected != 200 {
		t.Fatalf("first batch after the partitions: %+v", b)
	}
	total += b.Affected
	d.Close()
	r := drain(t, e.driver(), op, b.Cursor, 20)
	total += r.affected
	if r.partitions != 0 || total != want {
		t.Fatalf("deleted %d in total (%d partitions after resuming), want %d", total, r.partitions, want)
	}
	for _, p := range []string{"events_2024_01", "events_2024_02"} {
		if n := e.int(`SELECT count(*) FROM pg_class WHERE relname = $1`, p); n != 0 {
			t.Fatalf("partition %s still exists", p)
		}
	}
	if n := e.int(`SELECT count(*) FROM events_2024_03 WHERE ts < $1`, cut); n != 0 {
		t.Fatalf("%d expired rows left in the straddling partition", n)
	}
	if n := e.int(`SELECT count(*) FROM events_2024_03`); n != 1000-want+2000+10 {
		t.Fatalf("straddling partition has %d rows, want %d", n, 1000-want+2000+10)
	}
	if n := e.int(`SELECT count(*) FROM events_default`); n != 10 {
		t.Fatalf("default partition has %d rows, want the 10 future ones", n)
	}
}

// TestPartitionPathNeedsNoHolds proves partitions are not dropped when a
// legal hold applies (held rows live in the expired partitions); rows are
// deleted in batches and the held ones survive.
func TestPartitionPathNeedsNoHolds(t *testing.T) {
	e := setup(t)
	newEvents(e)
	d := e.driver()
	cut := time.Date(2024, 3, 16, 12, 0, 0, 0, time.UTC)
	coll := datastore.Collection{Name: "events", TimestampField: "ts", IdentityFields: map[string]string{"user_id": "user_id"}}
	op := datastore.Operation{Collection: coll, Delete: true, Cutoff: &cut, BatchSize: 500, Held: map[string][]string{"user_id": {"3"}}}
	want := e.int(`SELECT count(*) FROM events WHERE ts < $1 AND user_id <> 3`, cut)
	if n := count(t, d, op); n != want {
		t.Fatalf("Count = %d, want %d", n, want)
	}
	r := drain(t, d, op, "", 50)
	if r.partitions != 0 || r.affected != want {
		t.Fatalf("dropped %d partitions, deleted %d; want 0 and %d", r.partitions, r.affected, want)
	}
	if n := e.int(`SELECT count(*) FROM events WHERE ts < $1`, cut); n != e.int(`SELECT count(*) FROM events WHERE ts < $1 AND user_id = 3`, cut) || n == 0 {
		t.Fatalf("expired rows left: %d, want exactly the held ones", n)
	}

	// Erasing a subject across partitions (rows addressed by primary key,
	// the partition key bounded by each batch's range).
	erase := datastore.Operation{Collection: coll, Delete: true, Subjects: map[string][]string{"user_id": {"5", "3"}},
		Held: map[string][]string{"user_id": {"3"}}, BatchSize: 70}
	want = e.int(`SELECT count(*) FROM events WHERE user_id = 5`)
	if n := count(t, d, erase); n != want || n == 0 {
		t.Fatalf("erase Count = %d, want %d", n, want)
	}
	if r := drain(t, d, erase, "", 50); r.affected != want {
		t.Fatalf("erased %d, want %d", r.affected, want)
	}
	if n := e.int(`SELECT count(*) FROM events WHERE user_id = 5`); n != 0 {
		t.Fatalf("%d rows of the erased subject left", n)
	}
	if n := e.int(`SELECT count(*) FROM events WHERE user_id = 3`); n == 0 {
		t.Fatal("held subject's rows were erased")
	}
}

// TestPartitionBoundWallClock proves the partition bounds of a table
// partitioned on a timestamp without time zone are compared as wall-clock
// time in the collection's location: the January partition (upper bound
// 2024-02-01 00:00) is dropped exactly when the cutoff reaches that wall
// clock reading in Asia/Shanghai, 2024-01-31 16:00 UTC, and not a second
// earlier.
func TestPartitionBoundWallClock(t *testing.T) {
	e := setup(t)
	e.setTimeZone("America/New_York")
	e.exec(`CREATE TABLE visits (id bigint, ts timestamp NOT NULL, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)`)
	e.exec(`CREATE TABLE visits_jan PARTITION OF visits FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')`)
	e.exec(`CREATE TABLE visits_feb PARTITION OF visits FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')`)
	e.exec(`INSERT INTO visits SELECT i, '2024-01-01'::timestamp + i * interval '1 hour' FROM generate_series(0, 24 * 60 - 1) i`)
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	d := e.driver()
	coll := datastore.Collection{Name: "visits", TimestampField: "ts", TimestampLocation: shanghai}

	early := time.Date(2024, 1, 31, 15, 59, 59, 0, time.UTC) // 23:59:59 on Jan 31 in Shanghai
	op := datastore.Operation{Collection: coll, Delete: true, Cutoff: &early, BatchSize: 300}
	if n := count(t, d, op); n != 31*24 {
		t.Fatalf("Count = %d, want %d", n, 31*24)
	}
	r := drain(t, d, op, "", 10)
	if r.partitions != 0 || r.affected != 31*24 {
		t.Fatalf("a second before the bound: %d partitions dropped, %d rows deleted; want 0 and %d", r.partitions, r.affected, 31*24)
	}
	exact := time.Date(2024, 1, 31, 16, 0, 0, 0, time.UTC)
	op.Cutoff = &exact
	r = drain(t, d, op, "", 10)
	if r.partitions != 1 || r.affected != 0 {
		t.Fatalf("at the bound: %d partitions dropped, %d rows; want the (now empty) January partition dropped", r.partitions, r.affected)
	}
	if n := e.int(`SELECT count(*) FROM visits`); n != 29*24 {
		t.Fatalf("%d visits left, want February's %d", n, 29*24)
	}
}
