package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
)

var hmacKey = []byte("0123456789abcdef0123456789abcdef")

// profiles has one column of every mask type.
func profiles(t *testing.T, n int) *env {
	e := newEnv(t)
	e.exec(
		`CREATE TABLE profiles (
			id INT PRIMARY KEY,
			email VARCHAR(100) NOT NULL,
			phone VARCHAR(20) NULL,
			name VARCHAR(8) NULL,
			bio TEXT NULL,
			avatar BLOB NULL,
			born DATE NULL,
			last_login DATETIME NULL,
			seen TIMESTAMP NULL,
			ip INET6 NULL,
			score INT NULL,
			created_at DATETIME NOT NULL)`,
		fmt.Sprintf(`INSERT INTO profiles SELECT seq, CONCAT('person', seq, '@example.com'),
			IF(seq %% 5 = 0, NULL, CONCAT('+4915', LPAD(seq * 7919, 9, '0'))),
			CONCAT('Ñame', seq), REPEAT('bio ', seq %% 7),
			IF(seq %% 4 = 0, NULL, UNHEX(CONCAT('FF00', HEX(seq), 'C3'))),
			'1980-01-01' + INTERVAL seq * 97 DAY,
			'2024-03-31 00:30:00' + INTERVAL seq * 37 MINUTE,
			FROM_UNIXTIME(1700000000 + seq * 86399),
			IF(seq %% 3 = 0, NULL, CONCAT('2001:db8:', HEX(seq), '::7')),
			seq * 10, '2020-01-01' + INTERVAL seq DAY FROM seq_1_to_%d`, n),
	)
	return e
}

var profileFields = []datastore.FieldMask{
	{Field: "email", Strategy: mask.Strategy{Kind: mask.HMAC, Key: hmacKey}},
	{Field: "phone", Strategy: mask.Strategy{Kind: mask.PartialMask, KeepFirst: 3, KeepLast: 2}},
	{Field: "name", Strategy: mask.Strategy{Kind: mask.Redact}},
	{Field: "bio", Strategy: mask.Strategy{Kind: mask.Null}},
	{Field: "avatar", Strategy: mask.Strategy{Kind: mask.HMAC, Key: hmacKey}},
	{Field: "born", Strategy: mask.Strategy{Kind: mask.Generalize, Granularity: "Year"}},
	{Field: "last_login", Strategy: mask.Strategy{Kind: mask.Generalize}},
	{Field: "seen", Strategy: mask.Strategy{Kind: mask.Generalize, Granularity: "Month"}},
	{Field: "ip", Strategy: mask.Strategy{Kind: mask.Generalize}},
	{Field: "score", Strategy: mask.Strategy{Kind: mask.Fixed, Replacement: "0"}},
}

// readProfiles returns every profile as one line of its text values.
func (e *env) readProfiles() map[string]string {
	e.t.Helper()
	rows, err := e.db.Query(`SELECT id, email, phone, name, bio, HEX(avatar), CAST(born AS CHAR), CAST(last_login AS CHAR), CAST(seen AS CHAR), ip, score FROM profiles ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		vals := make([]sql.NullString, 11)
		ptrs := make([]any, 11)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			e.t.Fatal(err)
		}
		parts := make([]string, len(vals)-1)
		for i, v := range vals[1:] {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out[vals[0].String] = strings.Join(parts, " | ")
	}
	return out
}

// expectedProfile applies each strategy once to a profile's original text
// values, independently of the driver.
func expectedProfile(t *testing.T, line string, loc *time.Location) string {
	t.Helper()
	in := strings.Split(line, " | ")
	out := make([]string, len(in))
	apply := func(i int, s mask.Strategy, v any, col mask.Column) any {
		r, err := s.Apply(v, col)
		if err != nil {
			t.Fatalf("field %d: %v", i, err)
		}
		return r
	}
	str := func(s string) any {
		if s == "NULL" {
			return nil
		}
		return s
	}
	text := func(v any) string {
		switch x := v.(type) {
		case nil:
			return "NULL"
		case string:
			return x
		case []byte:
			return fmt.Sprintf("%X", x)
		}
		return fmt.Sprint(v)
	}
	out[0] = text(apply(0, profileFields[0].Strategy, str(in[0]), mask.Column{Type: mask.Text, MaxLength: 100}))
	out[1] = text(apply(1, profileFields[1].Strategy, str(in[1]), mask.Column{Type: mask.Text, MaxLength: 20, Nullable: true}))
	out[2] = text(apply(2, profileFields[2].Strategy, str(in[2]), mask.Column{Type: mask.Text, MaxLength: 8, Nullable: true}))
	out[3] = "NULL"
	var avatar any
	if in[4] != "NULL" {
		var b []byte
		fmt.Sscanf(in[4], "%X", &b)
		avatar = b
	}
	out[4] = text(apply(4, profileFields[4].Strategy, avatar, mask.Column{Type: mask.Bytes, MaxLength: 65535, Nullable: true}))
	born, _ := time.Parse(time.DateOnly, in[5])
	out[5] = apply(5, profileFields[5].Strategy, born, mask.Column{Type: mask.Date, Nullable: true}).(time.Time).Format(time.DateOnly)
	login, _ := time.ParseInLocation(time.DateTime, in[6], loc)
	out[6] = apply(6, profileFields[6].Strategy, login, mask.Column{Type: mask.Timestamp, Nullable: true}).(time.Time).In(loc).Format(time.DateTime)
	seen, _ := time.Parse(time.DateTime, in[7])
	out[7] = apply(7, profileFields[7].Strategy, seen, mask.Column{Type: mask.Timestamp, Nullable: true}).(time.Time).UTC().Format(time.DateTime)
	out[8] = text(apply(8, profileFields[8].Strategy, str(in[8]), mask.Column{Type: mask.IP, Nullable: true}))
	out[9] = text(apply(9, profileFields[9].Strategy, str(in[9]), mask.Column{Type: mask.Other, Nullable: true}))
	return strings.Join(out, " | ")
}

// Anonymizing masks every field of every selected row exactly once, with
// the column types mapped to mask types (text limits, bytes that are not
// UTF-8, DATETIME generalized in the collection's zone, TIMESTAMP in UTC,
// DATE, INET6, an integer column), across several batches, a Close and a new
// driver resuming from the cursor: HMAC applied twice would show.
func TestAnonymizeResume(t *testing.T) {
	e := profiles(t, 50)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	original := e.readProfiles()
	cutoff := time.Date(2020, 1, 41, 0, 0, 0, 0, berlin) // rows 1…39 (created 2020-01-02…2020-02-09) are older
	op := datastore.Operation{
		Collection: datastore.Collection{Name: "profiles", TimestampField: "created_at", TimestampLocation: berlin},
		Cutoff:     &cutoff, Fields: profileFields, BatchSize: 7,
	}

	d1, err := New(context.Background(), e.config())
	if err != nil {
		t.Fatal(err)
	}
	if n := mustCount(t, d1, op); n != 39 {
		t.Fatalf("Count = %d, want 39", n)
	}
	var total int64
	cursor := ""
	for range 2 {
		b, err := d1.Execute(context.Background(), op, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if b.Affected != 7 || b.Done {
			t.Fatalf("batch %+v, want 7 rows, not done", b)
		}
		total += b.Affected
		cursor = b.Cursor
	}
	d1.Close()

	d2 := e.driver()
	res := runAll(t, d2, op, cursor)
	total += res.affected
	if total != 39 {
		t.Fatalf("anonymized %d rows, want 39", total)
	}
	if res.batches != 4 { // 7+7 before the restart, then 7, 7, 7, 4
		t.Errorf("%d batches after the restart, want 4", res.batches)
	}

	after := e.readProfiles()
	for id := 1; id <= 50; id++ {
		key := fmt.Sprint(id)
		want := original[key]
		if id <= 39 {
			want = expectedProfile(t, original[key], berlin)
		}
		if after[key] != want {
			t.Errorf("profile %d:\n got  %s\n want %s\n from %s", id, after[key], want, original[key])
		}
	}
	// Once done, the same operation from its final cursor touches nothing.
	b, err := d2.Execute(context.Background(), op, res.cursor)
	if err != nil || b.Affected != 0 || !b.Done {
		t.Fatalf("after done: %+v, %v", b, err)
	}
	if again := e.readProfiles(); !maps.Equal(again, after) {
		t.Fatal("rows changed after done")
	}
}

// A delete that is interrupted and resumed by a new driver deletes every
// selected row once: the totals add up exactly.
func TestDeleteResume(t *testing.T) {
	e := newEnv(t)
	e.exec("CREATE TABLE events (id BIGINT PRIMARY KEY, ts DATETIME NOT NULL)",
		"INSERT INTO events SELECT seq, '2020-01-01' + INTERVAL seq MINUTE FROM seq_1_to_5000")
	cutoff := time.Date(2020, 1, 3, 0, 0, 0, 0, time.UTC)
	op := datastore.Operation{Collection: datastore.Collection{Name: "events", TimestampField: "ts"}, Delete: true, Cutoff: &cutoff, BatchSize: 300}
	want := e.count("SELECT COUNT(*) FROM events WHERE ts < '2020-01-03'")
	d1, err := New(context.Background(), e.config())
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	cursor := ""
	for range 3 {
		b, err := d1.Execute(context.Background(), op, cursor)
		if err != nil {
			t.Fatal(err)
		}
		total += b.Affected
		cursor = b.Cursor
	}
	d1.Close()
	res := runAll(t, e.driver(), op, cursor)
	if total+res.affected != want {
		t.Fatalf("deleted %d+%d, want %d", total, res.affected, want)
	}
	if n := e.count("SELECT COUNT(*) FROM events"); n != 5000-want {
		t.Fatalf("%d rows left, want %d", n, 5000-want)
	}
}

// A composite key (one integer and one case-insensitive string column)
// batches and resumes in the server's order; anonymizing by subject.
func TestAnonymizeCompositeKey(t *testing.T) {
	e := newEnv(t)
	e.exec(
		"CREATE TABLE notes (tenant INT NOT NULL, code VARCHAR(10) NOT NULL, owner VARCHAR(20) NOT NULL, body VARCHAR(50), PRIMARY KEY (tenant, code), KEY (owner))",
		"INSERT INTO notes SELECT seq DIV 10, CONCAT(IF(seq % 2 = 0, 'a', 'B'), seq % 10), IF(seq % 3 = 0, 'alice', 'bob'), CONCAT('secret ', seq) FROM seq_1_to_200",
	)
	d := e.driver()
	op := datastore.Operation{
		Collection: datastore.Collection{Name: "notes", IdentityFields: map[string]string{"name": "owner"}},
		Subjects:   map[string][]string{"name": {"alice"}},
		Fields:     []datastore.FieldMask{{Field: "body", Strategy: mask.Strategy{Kind: mask.Fixed, Replacement: "[removed]"}}},
		BatchSize:  6,
	}
	want := e.count("SELECT COUNT(*) FROM notes WHERE owner = 'alice'")
	res := runAll(t, d, op, "")
	if res.affected != want {
		t.Fatalf("anonymized %d, want %d", res.affected, want)
	}
	if n := e.count("SELECT COUNT(*) FROM notes WHERE owner = 'alice' AND body <> '[removed]'"); n != 0 {
		t.Fatalf("%d of alice's notes not anonymized", n)
	}
	if n := e.count("SELECT COUNT(*) FROM notes WHERE owner = 'bob' AND body LIKE 'secret %'"); n != 200-want {
		t.Fatalf("bob's notes changed: %d intact", n)
	}
}

// Strategies that cannot apply to a column, and key columns, are refused
// before anything is read.
func TestAnonymizeInvalid(t *testing.T) {
	e := profiles(t, 3)
	d := e.driver()
	before := e.readProfiles()
	c := datastore.Collection{Name: "profiles", IdentityFields: map[string]string{"email": "email"}}
	subjects := map[string][]string{"email": {"person1@example.com"}}
	for _, f := range []datastore.FieldMask{
		{Field: "email", Strategy: mask.Strategy{Kind: mask.Null}},                   // NOT NULL
		{Field: "score", Strategy: mask.Strategy{Kind: mask.HMAC, Key: hmacKey}},     // integer
		{Field: "name", Strategy: mask.Strategy{Kind: mask.HMAC, Key: hmacKey}},      // varchar(8) too short
		{Field: "id", Strategy: mask.Strategy{Kind: mask.Fixed, Replacement: "1"}},   // key
		{Field: "nope", Strategy: mask.Strategy{Kind: mask.Fixed, Replacement: "1"}}, // missing
	} {
		_, err := d.Execute(context.Background(), datastore.Operation{Collection: c, Subjects: subjects, Fields: []datastore.FieldMask{f}}, "")
		wantErr(t, err, datastore.ErrInvalid, datastore.ErrNotFound)
	}
	// A value the server rejects: the error names the column and the error
	// number, never the value.
	_, err := d.Execute(context.Background(), datastore.Operation{Collection: c, Subjects: subjects,
		Fields: []datastore.FieldMask{{Field: "score", Strategy: mask.Strategy{Kind: mask.Fixed, Replacement: "zz-secret-zz"}}}}, "")
	wantErr(t, err, datastore.ErrInvalid)
	if strings.Contains(err.Error(), "zz-secret-zz") || strings.Contains(err.Error(), "person1") {
		t.Fatalf("error message holds a value: %v", err)
	}
	if after := e.readProfiles(); !maps.Equal(before, after) {
		t.Fatal("rows changed")
	}
}
