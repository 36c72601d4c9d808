package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

func redact() mask.Strategy        { return mask.Strategy{Kind: mask.Redact} }
func fixed(s string) mask.Strategy { return mask.Strategy{Kind: mask.Fixed, Replacement: s} }
func generalize() mask.Strategy    { return mask.Strategy{Kind: mask.Generalize} }
func hmacStrategy() mask.Strategy {
	return mask.Strategy{Kind: mask.HMAC, Key: []byte("test-key-0123456789abcdef")}
}

// TestAnonymizeColumnTypes proves values are read, masked in Go with the
// column's type family (text with its length limit, bytea, timestamptz in
// UTC whatever the session time zone, timestamp and date as wall-clock
// values, inet and cidr) and written back by one UPDATE per batch; NULLs stay
// NULL except under Fixed; rows outside the selection are untouched.
func TestAnonymizeColumnTypes(t *testing.T) {
	e := setup(t)
	e.setTimeZone("Asia/Tokyo")
	e.exec(`CREATE TABLE people (id int PRIMARY KEY, created timestamptz NOT NULL, name varchar(12), phone text,
		photo bytea, seen timestamptz, local_seen timestamp, born date, ip inet, net cidr, note text, score int)`)
	e.exec(`INSERT INTO people VALUES
		(1, '2020-01-01', 'Ada Lovelace', '13812341234', '\x0102030405', '2024-03-10 23:30:00+00', '2024-03-10 23:30:00',
		 '1990-07-15', '203.0.113.77', '2001:db8:1234:5678::/64', 'secret', 42),
		(2, '2020-01-01', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(3, '2030-01-01', 'Grace Hopper', '13912345678', '\x01', '2024-03-10 23:30:00+00', '2024-03-10 23:30:00',
		 '1906-12-09', '198.51.100.7', '10.0.0.0/8', 'keep', 7)`)
	d := e.driver()
	op := datastore.Operation{
		Collection: datastore.Collection{Name: "people", TimestampField: "created"},
		Cutoff:     ptr.To(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)),
		BatchSize:  10,
		Fields: []datastore.FieldMask{
			{Field: "name", Strategy: mask.Strategy{Kind: mask.PartialMask, KeepFirst: 1, KeepLast: 1}},
			{Field: "phone", Strategy: mask.Strategy{Kind: mask.PartialMask, KeepFirst: 3, KeepLast: 4}},
			{Field: "photo", Strategy: redact()},
			{Field: "seen", Strategy: generalize()},
			{Field: "local_seen", Strategy: mask.Strategy{Kind: mask.Generalize, Granularity: "Month"}},
			{Field: "born", Strategy: mask.Strategy{Kind: mask.Generalize, Granularity: "Year"}},
			{Field: "ip", Strategy: generalize()},
			{Field: "net", Strategy: generalize()},
			{Field: "note", Strategy: mask.Strategy{Kind: mask.Null}},
			{Field: "score", Strategy: fixed("0")},
		},
	}
	if n := count(t, d, op); n != 2 {
		t.Fatalf("Count = %d, want 2", n)
	}
	if r := drain(t, d, op, "", 3); r.affected != 2 {
		t.Fatalf("anonymized %d, want 2", r.affected)
	}
	type row struct {
		name, phone, photo, seen, localSeen, born, ip, net, note, score *string
	}
	read := func(id int) row {
		var r row
		err := e.admin.QueryRow(context.Background(), `SELECT name, phone, encode(photo, 'hex'),
			to_char(seen AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), local_seen::text, born::text, abbrev(ip), abbrev(net), note, score::text
			FROM people WHERE id = $1`, id).Scan(&r.name, &r.phone, &r.photo, &r.seen, &r.localSeen, &r.born, &r.ip, &r.net, &r.note, &r.score)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	s := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return *p
	}
	got := read(1)
	want := []string{"A**********e", "138****1234", "2a2a2a2a2a", "2024-03-10 00:00:00", "2024-03-01 00:00:00", "1990-01-01",
		"203.0.113.0", "2001:db8:1234::/64", "NULL", "0"}
	have := []string{s(got.name), s(got.phone), s(got.photo), s(got.seen), s(got.localSeen), s(got.born), s(got.ip), s(got.net), s(got.note), s(got.score)}
	for i := range want {
		if have[i] != want[i] {
			t.Errorf("row 1 field %d = %q, want %q", i, have[i], want[i])
		}
	}
	got = read(2)
	have = []string{s(got.name), s(got.phone), s(got.photo), s(got.seen), s(got.localSeen), s(got.born), s(got.ip), s(got.net), s(got.note), s(got.score)}
	want = []string{"NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "0"}
	for i := range want {
		if have[i] != want[i] {
			t.Errorf("row 2 field %d = %q, want %q", i, have[i], want[i])
		}
	}
	got = read(3)
	if s(got.name) != "Grace Hopper" || s(got.ip) != "198.51.100.7" || s(got.score) != "7" {
		t.Errorf("row outside the cutoff changed: %+v", got)
	}
}

// TestAnonymizeConcurrentWriter proves the optimistic write-back never
// overwrites a concurrent writer's newer value with a mask of the older
// value it read: a transaction updates row 5 (holding its lock) before the
// batch reads it; the batch reads the older committed value without
// waiting, its UPDATE waits for the row, and the writer then commits. The
// row ends up masked from the newer value when it is still expired, and
// with the writer's value, unmasked, when the writer moved it out of the
// selection (no longer expired, or the batch's held rows) — never as the
// mask of the older value. Every other row is masked once.
func TestAnonymizeConcurrentWriter(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	strategy := hmacStrategy()
	maskOf := func(v string) string {
		out, err := strategy.Apply(v, mask.Column{Type: mask.Text, Nullable: true})
		if err != nil {
			t.Fatal(err)
		}
		return out.(string)
	}
	for i, tc := range []struct {
		name   string
		write  string // the concurrent writer's change to row 5
		want5  string // row 5's email afterwards
		masked int64  // rows the batch reports
	}{
		{"newer value, still expired: masked from the newer value", `UPDATE %s SET email = 'new@example.com' WHERE id = 5`, maskOf("new@example.com"), 10},
		{"moved out of the selection: left as written", `UPDATE %s SET email = 'new@example.com', ts = '2030-01-01' WHERE id = 5`, "new@example.com", 9},
		{"deleted: gone", `DELETE FROM %s WHERE id = 5`, "", 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("cw_%d", i)
			e.exec(`CREATE TABLE ` + name + ` (id int PRIMARY KEY, ts timestamptz NOT NULL, email text)`)
			e.exec(`INSERT INTO ` + name + ` SELECT i, '2020-01-01'::timestamptz + i * interval '1 minute', 'user' || i || '@example.com' FROM generate_series(1, 10) i`)
			cfg := e.cfg()
			cfg.LockTimeout = 10 * time.Second
			d := e.driverWith(cfg)
			op := datastore.Operation{Collection: datastore.Collection{Name: name, TimestampField: "ts"},
				Cutoff:    ptr.To(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)),
				BatchSize: 100, Fields: []datastore.FieldMask{{Field: "email", Strategy: strategy}}}

			tx, err := e.admin.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if _, err := tx.Exec(ctx, fmt.Sprintf(tc.write, name)); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var b datastore.Batch
			var berr error
			go func() {
				b, berr = d.Execute(ctx, op, "")
				close(done)
			}()
			for i := 0; ; i++ {
				if e.int(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lethe' AND wait_event_type = 'Lock'`) > 0 {
					break
				}
				if i > 500 {
					t.Fatal("the batch never waited for the written row")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			<-done
			if berr != nil {
				t.Fatal(berr)
			}
			if b.Affected != tc.masked {
				t.Errorf("batch masked %d rows, want %d", b.Affected, tc.masked)
			}
			rows, err := e.admin.Query(ctx, `SELECT id, email FROM `+name+` ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			got := map[int]string{}
			for rows.Next() {
				var id int
				var email string
				if err := rows.Scan(&id, &email); err != nil {
					t.Fatal(err)
				}
				got[id] = email
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			for id := 1; id <= 10; id++ {
				want := maskOf(fmt.Sprintf("user%d@example.com", id))
				if id == 5 {
					want = tc.want5
				}
				if v, ok := got[id]; (want == "" && ok) || (want != "" && v != want) {
					t.Errorf("row %d: email %q (present %v), want %q", id, v, ok, want)
				}
			}
			if got[5] == maskOf("user5@example.com") {
				t.Error("row 5 holds the mask of the value before the concurrent write")
			}
		})
	}
}
