package mysql

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Rows dated one second (and one microsecond) before the cutoff are deleted;
// rows at the cutoff and one second after are kept: for DATETIME read as wall
// clock in the collection's location (UTC and two others), and for TIMESTAMP,
// which is an instant whatever the location says.
func TestCutoffBoundary(t *testing.T) {
	cutoff := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"DATETIME(6)", "TIMESTAMP(6)", "DATETIME", "TIMESTAMP"} {
		for _, loc := range []*time.Location{nil, newYork, kolkata} {
			name := typ + "/" + "UTC"
			if loc != nil {
				name = typ + "/" + loc.String()
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t)
				e.exec("CREATE TABLE events (id INT PRIMARY KEY, label VARCHAR(40) NOT NULL, ts " + typ + " NULL)")
				effective := time.UTC
				if loc != nil && typ[0] == 'D' {
					effective = loc
				}
				// The value stored for an instant: the wall clock in the
				// effective location (DATETIME) or UTC (TIMESTAMP, with the
				// test connection's session in UTC).
				stored := func(at time.Time) string { return at.In(effective).Format("2006-01-02 15:04:05.999999") }
				rows := []struct {
					label string
					value string
					kept  bool
				}{
					{"cutoff-1s", stored(cutoff.Add(-time.Second)), false},
					{"cutoff", stored(cutoff), true},
					{"cutoff+1s", stored(cutoff.Add(time.Second)), true},
					{"null", "", true},
				}
				if typ[len(typ)-2] == '6' {
					rows = append(rows, struct {
						label string
						value string
						kept  bool
					}{"cutoff-1us", stored(cutoff.Add(-time.Microsecond)), false})
				}
				if effective != time.UTC {
					// The UTC wall clock one second before the cutoff is,
					// in this location, a different instant: read right, it
					// is after the cutoff (New York, behind UTC) or well
					// before it (Kolkata, ahead of UTC).
					rows = append(rows, struct {
						label string
						value string
						kept  bool
					}{"utc-wall-1s", cutoff.Add(-time.Second).Format("2006-01-02 15:04:05"), effective == newYork})
				}
				for i, r := range rows {
					if r.value == "" {
						e.exec(fmt.Sprintf("INSERT INTO events VALUES (%d, '%s', NULL)", i+1, r.label))
						continue
					}
					if _, err := e.db.Exec("INSERT INTO events VALUES (?, ?, ?)", i+1, r.label, r.value); err != nil {
						t.Fatal(err)
					}
				}
				d := e.driver()
				op := datastore.Operation{
					Collection: datastore.Collection{Name: "events", TimestampField: "ts", TimestampLocation: loc},
					Delete:     true, Cutoff: &cutoff, BatchSize: 10,
				}
				var want []string
				deleted := int64(0)
				for _, r := range rows {
					if r.kept {
						want = append(want, r.label)
					} else {
						deleted++
					}
				}
				if n := mustCount(t, d, op); n != deleted {
					t.Errorf("Count = %d, want %d", n, deleted)
				}
				res := runAll(t, d, op, "")
				if res.affected != deleted {
					t.Errorf("deleted %d, want %d", res.affected, deleted)
				}
				got := e.strings("SELECT label FROM events ORDER BY label")
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("kept %v, want %v", got, want)
				}
			})
		}
	}
}

// A cutoff with nanoseconds is rounded up to the next microsecond, which
// keeps "strictly before" exact for microsecond columns.
func TestCutoffSubMicrosecond(t *testing.T) {
	e := newEnv(t)
	e.exec("CREATE TABLE events (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL)",
		"INSERT INTO events VALUES (1, '2024-01-01 00:00:00.000001'), (2, '2024-01-01 00:00:00.000002')")
	d := e.driver()
	cutoff := time.Date(2024, 1, 1, 0, 0, 0, 1500, time.UTC) // 1.5µs: row 1 is before, row 2 is not
	op := datastore.Operation{Collection: datastore.Collection{Name: "events", TimestampField: "ts"}, Delete: true, Cutoff: &cutoff}
	if res := runAll(t, d, op, ""); res.affected != 1 {
		t.Fatalf("deleted %d rows, want 1", res.affected)
	}
	if got := e.strings("SELECT id FROM events"); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("kept %v, want [2]", got)
	}
}

// A DATE is dated at its midnight in the collection's location.
func TestCutoffDate(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cutoff time.Time
		loc    *time.Location
		kept   []string
	}{
		// Noon UTC: 2024-03-10 began before it.
		{time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC), nil, []string{"2024-03-11"}},
		// Midnight UTC exactly: 2024-03-10 begins at the cutoff, not before.
		{time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC), nil, []string{"2024-03-10", "2024-03-11"}},
		// 16:00 UTC is 01:00 on the 11th in Tokyo: the 11th began before it.
		{time.Date(2024, 3, 10, 16, 0, 0, 0, time.UTC), tokyo, nil},
	} {
		t.Run(tc.cutoff.Format(time.RFC3339), func(t *testing.T) {
			e := newEnv(t)
			e.exec("CREATE TABLE days (d DATE PRIMARY KEY)",
				"INSERT INTO days VALUES ('2024-03-09'), ('2024-03-10'), ('2024-03-11')")
			d := e.driver()
			op := datastore.Operation{Collection: datastore.Collection{Name: "days", TimestampField: "d", TimestampLocation: tc.loc},
				Delete: true, Cutoff: &tc.cutoff}
			runAll(t, d, op, "")
			got := e.strings("SELECT CAST(d AS CHAR) FROM days ORDER BY d")
			if !slices.Equal(got, tc.kept) {
				t.Fatalf("kept %v, want %v", got, tc.kept)
			}
		})
	}
}

// A purge over many batches deletes exactly what Count announced, in batches
// no larger than the batch size, says Done on the batch that found fewer rows
// than the batch size, and leaves newer rows alone; Total is exact.
func TestPurgeBatches(t *testing.T) {
	for _, mode := range []deleteMode{deleteReturning, deleteRange, deleteKeys} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnv(t)
			e.exec(
				"CREATE TABLE events (id BIGINT PRIMARY KEY, ts DATETIME NOT NULL, payload VARCHAR(50), KEY (ts))",
				// Old and new rows interleave in key order.
				"INSERT INTO events SELECT seq, IF(seq % 3 = 0, '2030-01-01', '2020-01-01') + INTERVAL seq SECOND, 'p' FROM seq_1_to_10000",
			)
			d := e.driver()
			d.deleteMode = mode
			cutoff := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			op := datastore.Operation{Collection: datastore.Collection{Name: "events", TimestampField: "ts"},
				Delete: true, Cutoff: &cutoff, BatchSize: 700}
			total, err := d.Total(context.Background(), op.Collection)
			if err != nil || total != 10000 {
				t.Fatalf("Total = %d, %v; want 10000", total, err)
			}
			want := e.count("SELECT COUNT(*) FROM events WHERE ts < '2025-01-01'")
			if n := mustCount(t, d, op); n != want {
				t.Fatalf("Count = %d, want %d", n, want)
			}
			res := runAll(t, d, op, "")
			if res.affected != want {
				t.Errorf("deleted %d, want %d", res.affected, want)
			}
			if wantBatches := int(want/700) + 1; res.batches != wantBatches {
				t.Errorf("%d batches, want %d", res.batches, wantBatches)
			}
			if left := e.count("SELECT COUNT(*) FROM events WHERE ts < '2025-01-01'"); left != 0 {
				t.Errorf("%d old rows left", left)
			}
			if kept := e.count("SELECT COUNT(*) FROM events"); kept != 10000-want {
				t.Errorf("%d rows kept, want %d", kept, 10000-want)
			}
			// Done is final: running again from the last cursor deletes nothing.
			b, err := d.Execute(context.Background(), op, res.cursor)
			if err != nil || b.Affected != 0 || !b.Done {
				t.Errorf("after done: %+v, %v", b, err)
			}
		})
	}
}

// The code path for MySQL (key range delete, MAX_EXECUTION_TIME hint, no
// RETURNING) gives the same result; MariaDB reads the hint as a comment.
func TestMySQLDialectPath(t *testing.T) {
	e := newEnv(t)
	e.exec(
		"CREATE TABLE events (a INT NOT NULL, b VARCHAR(10) NOT NULL, ts TIMESTAMP NOT NULL, PRIMARY KEY (a, b))",
		"INSERT INTO events SELECT seq DIV 3, CONCAT('k', seq % 3), FROM_UNIXTIME(1600000000 + seq * 10) FROM seq_1_to_3000",
	)
	d := e.driver()
	d.mariaDB = false
	if d.stmtPrefix() != "" || d.selectHint() != "/*+ MAX_EXECUTION_TIME(5000) */ " {
		t.Fatalf("MySQL dialect: prefix %q hint %q", d.stmtPrefix(), d.selectHint())
	}
	cutoff := time.Unix(1600000000+2000*10, 0)
	op := datastore.Operation{Collection: datastore.Collection{Name: "events", TimestampField: "ts"},
		Delete: true, Cutoff: &cutoff, BatchSize: 128}
	res := runAll(t, d, op, "")
	if res.affected != 1999 {
		t.Fatalf("deleted %d, want 1999", res.affected)
	}
	if n := e.count("SELECT COUNT(*) FROM events"); n != 1001 {
		t.Fatalf("%d rows left, want 1001", n)
	}
}
