package postgres_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// TestCutoffBoundary proves "strictly before the cutoff" at the boundary for
// timestamptz and timestamp columns, with the location nil (UTC) and
// Asia/Shanghai, with and without an index on the timestamp (the two walks),
// while every session of the database runs in America/Los_Angeles: rows at
// cutoff−1s and cutoff−1µs go, rows at the cutoff, cutoff+1µs and cutoff+1s
// and with a NULL timestamp stay; Count equals what Execute deletes.
func TestCutoffBoundary(t *testing.T) {
	e := setup(t)
	e.setTimeZone("America/Los_Angeles")
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	// 2024-03-10 10:00 UTC is when Los Angeles springs forward: a session
	// time zone leaking into the comparison would show here.
	cutoff := time.Date(2024, 3, 10, 10, 0, 0, 0, time.UTC)
	offsets := []time.Duration{-time.Second, -time.Microsecond, 0, time.Microsecond, time.Second}
	d := e.driver()
	for _, typ := range []string{"timestamptz", "timestamp"} {
		for _, loc := range []*time.Location{nil, shanghai} {
			for _, indexed := range []bool{false, true} {
				for _, del := range []bool{true, false} {
					name := fmt.Sprintf("b_%s_%v_%v_%v", typ, loc != nil, indexed, del)
					t.Run(name, func(t *testing.T) {
						e.exec(fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, ts %s, note text)`, name, typ))
						if indexed {
							e.exec(fmt.Sprintf(`CREATE INDEX ON %s (ts)`, name))
						}
						for i, off := range offsets {
							at := cutoff.Add(off)
							if typ == "timestamptz" {
								e.exec(fmt.Sprintf(`INSERT INTO %s VALUES ($1, $2, 'x')`, name), i+1, at)
							} else {
								l := loc
								if l == nil {
									l = time.UTC
								}
								e.exec(fmt.Sprintf(`INSERT INTO %s VALUES ($1, $2::timestamp, 'x')`, name), i+1, at.In(l).Format("2006-01-02 15:04:05.999999"))
							}
						}
						e.exec(fmt.Sprintf(`INSERT INTO %s VALUES (99, NULL, 'x')`, name))
						op := datastore.Operation{
							Collection: datastore.Collection{Name: name, TimestampField: "ts", TimestampLocation: loc},
							Delete:     del, Cutoff: &cutoff, BatchSize: 1,
						}
						if !del {
							op.Fields = []datastore.FieldMask{{Field: "note", Strategy: fixed("gone")}}
						}
						if n := count(t, d, op); n != 2 {
							t.Fatalf("Count = %d, want 2", n)
						}
						if r := drain(t, d, op, "", 10); r.affected != 2 {
							t.Fatalf("affected %d, want 2", r.affected)
						}
						var kept []int64
						if del {
							kept = e.ints(fmt.Sprintf(`SELECT id FROM %s ORDER BY id`, name))
						} else {
							kept = e.ints(fmt.Sprintf(`SELECT id FROM %s WHERE note = 'x' ORDER BY id`, name))
						}
						if want := []int64{3, 4, 5, 99}; !slices.Equal(kept, want) {
							t.Fatalf("kept ids %v, want %v", kept, want)
						}
					})
				}
			}
		}
	}
}

// TestCutoffDateColumn proves a date compares as the midnight that starts it
// in the collection's location: a day is selected once the cutoff is past
// its first instant.
func TestCutoffDateColumn(t *testing.T) {
	e := setup(t)
	e.setTimeZone("Pacific/Honolulu")
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	e.exec(`CREATE TABLE days (id int PRIMARY KEY, day date NOT NULL)`)
	e.exec(`INSERT INTO days VALUES (1, '2024-05-09'), (2, '2024-05-10'), (3, '2024-05-11')`)
	d := e.driver()
	cases := []struct {
		cutoff time.Time
		loc    *time.Location
		want   int64
	}{
		{time.Date(2024, 5, 10, 0, 0, 0, 0, shanghai), shanghai, 1},                // midnight of the 10th there: the 10th is not before it
		{time.Date(2024, 5, 10, 0, 0, 0, 1000, shanghai), shanghai, 2},             // a microsecond later it is
		{time.Date(2024, 5, 10, 0, 0, 0, 0, shanghai), nil, 1},                     // same instant is 2024-05-09 16:00 UTC
		{time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC), nil, 2},                    //
		{time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC), shanghai, 2},               // 20:00 on the 10th in Shanghai
		{time.Date(2024, 5, 10, 17, 0, 0, 0, time.UTC), shanghai, 3},               // 01:00 on the 11th in Shanghai
		{time.Date(2024, 5, 10, 17, 0, 0, 0, time.FixedZone("X", 7*3600)), nil, 2}, // the cutoff's own zone never matters
	}
	for i, c := range cases {
		op := datastore.Operation{Collection: datastore.Collection{Name: "days", TimestampField: "day", TimestampLocation: c.loc},
			Delete: true, Cutoff: &c.cutoff, BatchSize: 10}
		if n := count(t, d, op); n != c.want {
			t.Errorf("case %d: Count = %d, want %d", i, n, c.want)
		}
	}
	cut := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
	op := datastore.Operation{Collection: datastore.Collection{Name: "days", TimestampField: "day", TimestampLocation: shanghai},
		Delete: true, Cutoff: &cut, BatchSize: 10}
	if r := drain(t, d, op, "", 5); r.affected != 2 {
		t.Fatalf("deleted %d, want 2", r.affected)
	}
	if got := e.ints(`SELECT id FROM days`); !slices.Equal(got, []int64{3}) {
		t.Fatalf("kept %v, want [3]", got)
	}
}

// TestRangeDeleteIndexedDateColumn walks an indexed date column in batches:
// each batch's bound (a date) goes out and back as text and is compared as a
// timestamp, which must keep "strictly before the cutoff" exact.
func TestRangeDeleteIndexedDateColumn(t *testing.T) {
	e := setup(t)
	e.setTimeZone("Pacific/Honolulu")
	e.exec(`CREATE TABLE dated (id int PRIMARY KEY, day date NOT NULL)`)
	e.exec(`CREATE INDEX ON dated (day)`)
	e.exec(`INSERT INTO dated SELECT i, date '2024-05-01' + i / 5 FROM generate_series(0, 149) i`) // 5 rows a day for 30 days
	d := e.driver()
	cut := time.Date(2024, 5, 21, 0, 0, 0, 0, time.UTC)
	op := datastore.Operation{Collection: datastore.Collection{Name: "dated", TimestampField: "day"},
		Delete: true, Cutoff: &cut, BatchSize: 7}
	r := drain(t, d, op, "", 50) // drain fails any batch above BatchSize
	if r.affected != 100 {
		t.Fatalf("deleted %d, want 100 (20 days of 5)", r.affected)
	}
	if n := e.int(`SELECT count(*) FROM dated WHERE day < '2024-05-21'`); n != 0 {
		t.Fatalf("%d expired rows left", n)
	}
	if n := e.int(`SELECT count(*) FROM dated`); n != 50 {
		t.Fatalf("%d rows left, want 50", n)
	}
}
