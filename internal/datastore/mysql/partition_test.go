package mysql

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// On a table RANGE-partitioned by TO_DAYS(created_at) into three partitions,
// a purge drops the partition wholly before the cutoff (counting its rows),
// deletes the old rows of the straddling partition in batches, leaves the
// newest partition alone, and the totals equal Count.
func TestPartitionDrop(t *testing.T) {
	e := newEnv(t)
	e.exec(
		`CREATE TABLE logs (id BIGINT NOT NULL, created_at DATETIME NOT NULL, msg VARCHAR(20), PRIMARY KEY (id, created_at))
		PARTITION BY RANGE (TO_DAYS(created_at)) (
			PARTITION p2023 VALUES LESS THAN (TO_DAYS('2024-01-01')),
			PARTITION p2024h1 VALUES LESS THAN (TO_DAYS('2024-07-01')),
			PARTITION pmax VALUES LESS THAN MAXVALUE)`,
		// 1000 rows in 2023, 1810 in the first half of 2024 (10 a day), 500 later.
		`INSERT INTO logs SELECT seq, '2023-01-01' + INTERVAL (seq * 8) HOUR, 'old' FROM seq_1_to_1000`,
		`INSERT INTO logs SELECT 1000 + seq, '2024-01-01' + INTERVAL (seq * 144) MINUTE, 'mid' FROM seq_0_to_1809`,
		`INSERT INTO logs SELECT 5000 + seq, '2024-07-01' + INTERVAL seq HOUR, 'new' FROM seq_1_to_500`,
	)
	d := e.driver()
	cutoff := time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)
	op := datastore.Operation{Collection: datastore.Collection{Name: "logs", TimestampField: "created_at"},
		Delete: true, Cutoff: &cutoff, BatchSize: 200}
	want := e.count("SELECT COUNT(*) FROM logs WHERE created_at < '2024-04-01'")
	if n := mustCount(t, d, op); n != want {
		t.Fatalf("Count = %d, want %d", n, want)
	}

	start := time.Now()
	b, err := d.Execute(context.Background(), op, "")
	if err != nil {
		t.Fatal(err)
	}
	if b.PartitionsDropped != 1 || b.Affected != 1000 || b.Done {
		t.Fatalf("first batch %+v, want partition p2023 dropped with 1000 rows", b)
	}
	t.Logf("partition of 1000 rows counted and dropped in %v", time.Since(start))
	if got := e.strings("SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'logs' ORDER BY PARTITION_ORDINAL_POSITION"); !slices.Equal(got, []string{"p2024h1", "pmax"}) {
		t.Fatalf("partitions left %v", got)
	}

	// The rest, from the cursor, with a new driver: no partition is
	// dropped again, the straddling partition is purged in batches.
	d2 := e.driver()
	res := runAll(t, d2, op, b.Cursor)
	if res.dropped != 0 {
		t.Fatalf("dropped %d more partitions", res.dropped)
	}
	if b.Affected+res.affected != want {
		t.Fatalf("deleted %d+%d, want %d", b.Affected, res.affected, want)
	}
	if n := e.count("SELECT COUNT(*) FROM logs WHERE created_at < '2024-04-01'"); n != 0 {
		t.Fatalf("%d old rows left", n)
	}
	if n := e.count("SELECT COUNT(*) FROM logs"); n != 3310-want {
		t.Fatalf("%d rows left, want %d", n, 3310-want)
	}
}

// A partition that holds a row the purge must keep (held) is not dropped but
// purged in batches around that row; later expired partitions are still
// dropped. Here with TIMESTAMP and UNIX_TIMESTAMP, and with RANGE COLUMNS.
func TestPartitionDropKeepsHeldRows(t *testing.T) {
	for _, tc := range []struct{ name, column, partitioning string }{
		{"unix_timestamp", "ts TIMESTAMP NOT NULL", `PARTITION BY RANGE (UNIX_TIMESTAMP(ts)) (
			PARTITION p2022 VALUES LESS THAN (UNIX_TIMESTAMP('2023-01-01 00:00:00')),
			PARTITION p2023 VALUES LESS THAN (UNIX_TIMESTAMP('2024-01-01 00:00:00')),
			PARTITION p2024 VALUES LESS THAN (UNIX_TIMESTAMP('2025-01-01 00:00:00')),
			PARTITION pmax VALUES LESS THAN MAXVALUE)`},
		{"range_columns", "ts DATETIME NOT NULL", `PARTITION BY RANGE COLUMNS (ts) (
			PARTITION p2022 VALUES LESS THAN ('2023-01-01'),
			PARTITION p2023 VALUES LESS THAN ('2024-01-01'),
			PARTITION p2024 VALUES LESS THAN ('2025-01-01'),
			PARTITION pmax VALUES LESS THAN (MAXVALUE))`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.exec(
				"SET time_zone = '+00:00'",
				"CREATE TABLE logs (id BIGINT NOT NULL, "+tc.column+", owner VARCHAR(20) NULL, PRIMARY KEY (id, ts)) "+tc.partitioning,
				// 100 rows in each year 2022…2025; row 5 (2022) is held.
				`INSERT INTO logs SELECT seq, TIMESTAMP('2022-01-01') + INTERVAL (seq DIV 100) YEAR + INTERVAL (seq % 100) DAY, CONCAT('o', seq) FROM seq_0_to_399`,
			)
			d := e.driver()
			cutoff := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
			op := datastore.Operation{
				Collection: datastore.Collection{Name: "logs", TimestampField: "ts", IdentityFields: map[string]string{"owner": "owner"}},
				Delete:     true, Cutoff: &cutoff, BatchSize: 30, Held: map[string][]string{"owner": {"o5"}},
			}
			want := mustCount(t, d, op)
			if want != 299 { // 2022 + 2023 + Jan…May 2024 (100 days of 2024 < Jun 1) minus the held row
				t.Fatalf("Count = %d, want 299", want)
			}
			res := runAll(t, d, op, "")
			if res.dropped != 1 {
				t.Fatalf("dropped %d partitions, want 1 (p2023; p2022 holds a held row)", res.dropped)
			}
			if res.affected != want {
				t.Fatalf("deleted %d, want %d", res.affected, want)
			}
			if got := e.strings("SELECT id FROM logs WHERE ts < '2024-06-01'"); !slices.Equal(got, []string{"5"}) {
				t.Fatalf("old rows left %v, want the held row 5", got)
			}
			if got := e.strings("SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'logs' ORDER BY PARTITION_ORDINAL_POSITION"); !slices.Equal(got, []string{"p2022", "p2024", "pmax"}) {
				t.Fatalf("partitions left %v", got)
			}
		})
	}
}

// A table partitioned by something other than its timestamp is purged in
// batches only, and subject erasures never drop partitions.
func TestPartitionNotDropped(t *testing.T) {
	e := newEnv(t)
	e.exec(
		`CREATE TABLE logs (id BIGINT NOT NULL, created_at DATETIME NULL, owner INT NOT NULL, PRIMARY KEY (id))
		PARTITION BY RANGE (id) (PARTITION a VALUES LESS THAN (100), PARTITION b VALUES LESS THAN MAXVALUE)`,
		`CREATE TABLE logs2 (id BIGINT NOT NULL, created_at DATETIME NULL, PRIMARY KEY (id, created_at))
		PARTITION BY RANGE (YEAR(created_at)) (PARTITION a VALUES LESS THAN (2023), PARTITION b VALUES LESS THAN MAXVALUE)`,
		`INSERT INTO logs SELECT seq, '2020-01-01', seq % 2 FROM seq_1_to_150`,
		`INSERT INTO logs2 SELECT seq, '2020-01-01' FROM seq_1_to_10`,
	)
	d := e.driver()
	cutoff := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	// Partitioned by id, not by the timestamp: batches only.
	op := datastore.Operation{Collection: datastore.Collection{Name: "logs", TimestampField: "created_at"}, Delete: true, Cutoff: &cutoff, BatchSize: 40}
	if res := runAll(t, d, op, ""); res.dropped != 0 || res.affected != 150 {
		t.Fatalf("logs: %+v", res)
	}
	// logs2's partition a lies wholly before the cutoff, but this is an erasure.
	op = datastore.Operation{Collection: datastore.Collection{Name: "logs2", TimestampField: "created_at"}, Delete: true, Cutoff: &cutoff,
		Subjects: map[string][]string{"id": {"1"}}}
	op.Collection.IdentityFields = map[string]string{"id": "id"}
	if res := runAll(t, d, op, ""); res.dropped != 0 || res.affected != 1 {
		t.Fatalf("logs2 erasure: %+v", res)
	}
}
