package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
	"github.com/lethe-dev/lethe/internal/testharness"
)

func TestMain(m *testing.M) { testharness.Main(m) }

// cutoff is the fixed cutoff of the age tests (2023-11-14T22:13:20Z).
var cutoff = time.Unix(1_700_000_000, 0)

type env struct {
	d   *Driver
	rdb *goredis.Client // direct connection, to set up and read back
	cfg datastore.Config
}

func setup(t *testing.T) env {
	t.Helper()
	srv := testharness.Redis(t)
	cfg := datastore.Config{Type: "Redis", Host: srv.Host, Port: srv.Port, RedisDB: srv.DB, Password: srv.Password, TLS: datastore.TLSDisable}
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr, Password: srv.Password, DB: srv.DB})
	t.Cleanup(func() { _ = rdb.Close() })
	return env{d: d, rdb: rdb, cfg: cfg}
}

func (e env) must(t *testing.T, cmds ...goredis.Cmder) {
	t.Helper()
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			t.Fatalf("%v: %v", c.Args(), err)
		}
	}
}

// keys returns every key of the test's database, sorted.
func (e env) keys(t *testing.T) []string {
	t.Helper()
	var out []string
	iter := e.rdb.Scan(context.Background(), 0, "*", 1000).Iterator()
	for iter.Next(context.Background()) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// run executes op to the end and returns the records affected, checking
// first that Count predicts it exactly.
func run(t *testing.T, d *Driver, op datastore.Operation) int64 {
	t.Helper()
	ctx := context.Background()
	want, err := d.Count(ctx, op)
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	got, _ := drain(t, d, op, "")
	if got != want {
		t.Fatalf("Execute affected %d records, Count said %d", got, want)
	}
	if again, err := d.Count(ctx, op); err != nil || again != 0 {
		t.Fatalf("Count after Execute = %d, %v; want 0", again, err)
	}
	return got
}

func drain(t *testing.T, d *Driver, op datastore.Operation, cursor string) (int64, int) {
	t.Helper()
	var total int64
	for batches := 1; ; batches++ {
		b, err := d.Execute(context.Background(), op, cursor)
		if err != nil {
			t.Fatalf("Execute (batch %d): %v", batches, err)
		}
		total += b.Affected
		if b.Done {
			return total, batches
		}
		if batches > 100000 {
			t.Fatal("Execute never finishes")
		}
		cursor = b.Cursor
	}
}

func TestProbe(t *testing.T) {
	e := setup(t)
	info, err := e.d.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.Version, "Redis ") || len(info.Version) < len("Redis 7") {
		t.Errorf("Version = %q", info.Version)
	}
}

func TestErrorsClassified(t *testing.T) {
	e := setup(t)
	ctx := context.Background()

	// Nothing listens on a port we just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	down, _ := New(ctx, datastore.Config{Host: "127.0.0.1", Port: port, TLS: datastore.TLSDisable})
	defer down.Close()
	if _, err := down.Probe(ctx); !errors.Is(err, datastore.ErrUnavailable) {
		t.Errorf("closed port: %v, want ErrUnavailable", err)
	}

	cfg := e.cfg
	cfg.Username, cfg.Password = "nobody", "wrong"
	bad, _ := New(ctx, cfg)
	defer bad.Close()
	if _, err := bad.Probe(ctx); !errors.Is(err, datastore.ErrAuthentication) {
		t.Errorf("wrong password: %v, want ErrAuthentication", err)
	}

	cfg = e.cfg
	cfg.RedisDB = 1 << 20
	nodb, _ := New(ctx, cfg)
	defer nodb.Close()
	if _, err := nodb.Probe(ctx); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("no such logical database: %v, want ErrNotFound", err)
	}

	c := datastore.Collection{Pattern: "s:{user_id}:*"}
	for name, op := range map[string]datastore.Operation{
		"no selection":           {Collection: c, Delete: true},
		"ambiguous pattern":      {Collection: datastore.Collection{Pattern: "s:{user_id}*"}, Delete: true, Subjects: map[string][]string{"user_id": {"1"}}},
		"value with delimiter":   {Collection: c, Delete: true, Subjects: map[string][]string{"user_id": {"1:2"}}},
		"empty value":            {Collection: c, Delete: true, Subjects: map[string][]string{"user_id": {""}}},
		"identity not in key":    {Collection: c, Delete: true, Subjects: map[string][]string{"email": {"a@b"}}},
		"via":                    {Collection: c, Delete: true, Subjects: map[string][]string{"user_id": {"1"}}, Paths: [][]datastore.Hop{[]datastore.Hop{{Field: "x"}}}},
		"hash field unnamed":     {Collection: c, Delete: true, Cutoff: &cutoff},
		"SQL timestamp source":   {Collection: datastore.Collection{Pattern: "s:*", TimestampSource: "Column"}, Delete: true, Cutoff: &cutoff},
		"anonymize a sorted set": {Collection: datastore.Collection{Pattern: "s:*", TimestampSource: "SortedSetScore"}, Cutoff: &cutoff, Fields: []datastore.FieldMask{{Field: "f", Strategy: mask.Strategy{Kind: mask.Null}}}},
		"anonymize no fields":    {Collection: c, Subjects: map[string][]string{"user_id": {"1"}}},
	} {
		if _, err := e.d.Execute(ctx, op, ""); !errors.Is(err, datastore.ErrInvalid) {
			t.Errorf("%s: Execute: %v, want ErrInvalid", name, err)
		}
		if _, err := e.d.Count(ctx, op); !errors.Is(err, datastore.ErrInvalid) {
			t.Errorf("%s: Count: %v, want ErrInvalid", name, err)
		}
	}
	op := datastore.Operation{Collection: c, Delete: true, Subjects: map[string][]string{"user_id": {"1"}}}
	if _, err := e.d.Execute(ctx, op, "k:0"); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("foreign cursor: %v, want ErrInvalid", err)
	}
}

// TestHashFieldCutoff proves the boundary: a hash dated one second before
// the cutoff is deleted, one dated at the cutoff or a second after is kept,
// in both Unix seconds and RFC 3339; keys that cannot be dated are kept.
func TestHashFieldCutoff(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	stamps := map[string]string{
		"old-unix":      strconv.FormatInt(cutoff.Unix()-1, 10),
		"at-unix":       strconv.FormatInt(cutoff.Unix(), 10),
		"new-unix":      strconv.FormatInt(cutoff.Unix()+1, 10),
		"old-frac":      strconv.FormatInt(cutoff.Unix()-1, 10) + ".999",
		"old-rfc":       cutoff.Add(-time.Second).UTC().Format(time.RFC3339),
		"old-rfc-zone":  cutoff.Add(-time.Second).In(time.FixedZone("x", 5*3600)).Format(time.RFC3339),
		"at-rfc":        cutoff.UTC().Format(time.RFC3339),
		"new-rfc":       cutoff.Add(time.Second).UTC().Format(time.RFC3339Nano),
		"just-old-nano": cutoff.Add(-time.Nanosecond).UTC().Format(time.RFC3339Nano),
		"garbage":       "yesterday",
	}
	for name, ts := range stamps {
		e.must(t, e.rdb.HSet(ctx, "session:"+name+":h", "created", ts, "ip", "10.0.0.1"))
	}
	e.must(t,
		e.rdb.HSet(ctx, "session:nofield:h", "ip", "10.0.0.1"),
		e.rdb.Set(ctx, "session:string:h", "1", 0),
		e.rdb.HSet(ctx, "other:old:h", "created", "1"), // not in the collection
	)
	op := datastore.Operation{
		Collection: datastore.Collection{Pattern: "session:{user_id}:*", TimestampField: "created", TimestampSource: "HashField"},
		Delete:     true, Cutoff: &cutoff, BatchSize: 3,
	}
	if n := run(t, e.d, op); n != 5 {
		t.Errorf("deleted %d keys, want 5", n)
	}
	want := []string{"other:old:h", "session:at-rfc:h", "session:at-unix:h", "session:garbage:h", "session:new-rfc:h", "session:new-unix:h", "session:nofield:h", "session:string:h"}
	if got := e.keys(t); !slices.Equal(got, want) {
		t.Errorf("keys left %q, want %q", got, want)
	}
}

// TestHashFieldCompareAndDelete: a key refreshed between the read and the
// delete survives.
func TestHashFieldCompareAndDelete(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.must(t, e.rdb.HSet(ctx, "s:1:a", "ts", "100"), e.rdb.HSet(ctx, "s:2:a", "ts", "100"))
	n, err := e.d.casUnlink(ctx, "ts", []string{"s:1:a", "s:2:a"}, []string{"100", "99"})
	if err != nil || n != 1 {
		t.Fatalf("casUnlink = %d, %v; want 1", n, err)
	}
	if got := e.keys(t); !slices.Equal(got, []string{"s:2:a"}) {
		t.Errorf("keys left %q", got)
	}
}

// TestSortedSetTrim: members scored before the cutoff are removed, the key
// stays, Affected counts members, and a set bigger than the batch is trimmed
// in steps but completely.
func TestSortedSetTrim(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	c := float64(cutoff.Unix())
	e.must(t, e.rdb.ZAdd(ctx, "seen:1", goredis.Z{Score: c - 1, Member: "old"}, goredis.Z{Score: c, Member: "at"}, goredis.Z{Score: c + 1, Member: "new"}, goredis.Z{Score: c - 0.001, Member: "just-old"}))
	e.must(t, e.rdb.ZAdd(ctx, "seen:2", goredis.Z{Score: c - 5, Member: "a"}))
	var many []goredis.Z
	for i := range 2500 {
		many = append(many, goredis.Z{Score: c - 1000 + float64(i%900), Member: fmt.Sprint("m", i)})
	}
	many = append(many, goredis.Z{Score: c + 10, Member: "keep"})
	e.must(t, e.rdb.ZAdd(ctx, "seen:3", many...))
	e.must(t, e.rdb.Set(ctx, "seen:4", "not a sorted set", 0))

	coll := datastore.Collection{Pattern: "seen:{user_id}", TimestampSource: "SortedSetScore"}
	if total, err := e.d.Total(ctx, coll); err != nil || total != 4+1+2501+1 {
		t.Fatalf("Total = %d, %v; want members (+1 for the string)", total, err)
	}
	op := datastore.Operation{Collection: coll, Delete: true, Cutoff: &cutoff, BatchSize: 1000}
	if n := run(t, e.d, op); n != 2+1+2500 {
		t.Errorf("trimmed %d members, want 2503", n)
	}
	if got := e.rdb.ZRange(ctx, "seen:1", 0, -1).Val(); !slices.Equal(got, []string{"at", "new"}) {
		t.Errorf("seen:1 = %q", got)
	}
	if got := e.rdb.ZRange(ctx, "seen:3", 0, -1).Val(); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("seen:3 = %q", got)
	}
	if got := e.keys(t); !slices.Equal(got, []string{"seen:1", "seen:3", "seen:4"}) {
		t.Errorf("keys %q (an emptied sorted set disappears, the others stay)", got)
	}
}

func TestStreamTrim(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	ms := cutoff.UnixMilli()
	for _, id := range []string{fmt.Sprint(ms-1000, "-0"), fmt.Sprint(ms-1, "-9"), fmt.Sprint(ms, "-0"), fmt.Sprint(ms, "-5"), fmt.Sprint(ms+1000, "-0")} {
		e.must(t, e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: "events:7", ID: id, Values: []any{"k", "v"}}))
	}
	for i := range 1500 {
		e.must(t, e.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: "events:8", ID: fmt.Sprintf("%d-%d", ms-5000, i+1), Values: []any{"k", "v"}}))
	}
	op := datastore.Operation{
		Collection: datastore.Collection{Pattern: "events:{user_id}", TimestampSource: "StreamID"},
		Delete:     true, Cutoff: &cutoff,
	}
	if n := run(t, e.d, op); n != 2+1500 {
		t.Errorf("trimmed %d entries, want 1502", n)
	}
	var ids []string
	for _, m := range e.rdb.XRange(ctx, "events:7", "-", "+").Val() {
		ids = append(ids, m.ID)
	}
	if want := []string{fmt.Sprintf("%d-0", ms), fmt.Sprintf("%d-5", ms), fmt.Sprintf("%d-0", ms+1000)}; !slices.Equal(ids, want) {
		t.Errorf("events:7 = %q, want %q", ids, want)
	}
	if n := e.rdb.XLen(ctx, "events:8").Val(); n != 0 {
		t.Errorf("events:8 has %d entries", n)
	}
}

// TestIdleTime sets idle times with RESTORE … IDLETIME and checks that keys
// last used before the cutoff go and the others stay.
func TestIdleTime(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	now := e.rdb.Time(ctx).Val()
	cut := now.Add(-100 * time.Second)
	for name, idle := range map[string]int{"long": 1000, "over": 110, "under": 90, "fresh": 0} {
		e.must(t, e.rdb.Set(ctx, "tmp", "v", 0))
		dump := e.rdb.Dump(ctx, "tmp").Val()
		e.must(t, e.rdb.Del(ctx, "tmp"), e.rdb.Do(ctx, "RESTORE", "cache:"+name, 0, dump, "IDLETIME", idle))
	}
	op := datastore.Operation{
		Collection: datastore.Collection{Pattern: "cache:{user_id}", TimestampSource: "IdleTime"},
		Delete:     true, Cutoff: &cut,
	}
	if n := run(t, e.d, op); n != 2 {
		t.Errorf("deleted %d keys, want 2", n)
	}
	if got := e.keys(t); !slices.Equal(got, []string{"cache:fresh", "cache:under"}) {
		t.Errorf("keys left %q", got)
	}
}

// TestSubjectErasure: erasing user 1 leaves none of their keys and every
// key of users 12 and 123; values with glob metacharacters match only
// themselves; many subjects are erased in one pass.
func TestSubjectErasure(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	users := []string{"1", "12", "123", "2", `a*`, "ab", "a?c", "abc", "[x]", "x", `b\`, "b", "é", "ü"}
	for _, u := range users {
		for _, s := range []string{"a", "b", "c:d"} {
			e.must(t, e.rdb.Set(ctx, "session:"+u+":"+s, u, 0))
		}
		e.must(t, e.rdb.HSet(ctx, "profile:"+u, "name", u))
	}
	e.must(t, e.rdb.Set(ctx, "session:1", "no suffix: not in the collection", 0))

	left := func() map[string]bool {
		out := map[string]bool{}
		for _, k := range e.keys(t) {
			out[k] = true
		}
		return out
	}
	erase := func(pattern string, values ...string) int64 {
		t.Helper()
		return run(t, e.d, datastore.Operation{
			Collection: datastore.Collection{Pattern: pattern},
			Delete:     true, Subjects: map[string][]string{"user_id": values}, BatchSize: 2,
		})
	}
	if n := erase("session:{user_id}:*", "1"); n != 3 {
		t.Errorf("user 1: %d keys, want 3", n)
	}
	if n := erase("session:{user_id}:*", `a*`); n != 3 {
		t.Errorf("user a*: %d keys, want 3", n)
	}
	if n := erase("session:{user_id}:*", "a?c", "[x]", `b\`); n != 9 {
		t.Errorf("three users at once: %d keys, want 9", n)
	}
	if n := erase("profile:{user_id}", "1", "[x]", "ü", "nobody"); n != 3 {
		t.Errorf("profiles: %d keys, want 3", n)
	}
	got := left()
	for _, u := range users {
		erased := u == "1" || u == `a*` || u == "a?c" || u == "[x]" || u == `b\`
		for _, s := range []string{"a", "b", "c:d"} {
			if k := "session:" + u + ":" + s; got[k] == erased {
				t.Errorf("%s: present=%v", k, got[k])
			}
		}
		erasedProfile := u == "1" || u == "[x]" || u == "ü"
		if k := "profile:" + u; got[k] == erasedProfile {
			t.Errorf("%s: present=%v", k, got[k])
		}
	}
	if !got["session:1"] {
		t.Error("session:1 does not match session:{user_id}:* and must stay")
	}
}

// TestLegalHold: held subjects' keys survive age-based deletion, subject
// erasure and anonymization, including a held value that contains the
// delimiter (matched conservatively).
func TestLegalHold(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	for _, u := range []string{"1", "2", "3", "12"} {
		e.must(t, e.rdb.HSet(ctx, "s:"+u+":x", "ts", "1", "email", "u"+u+"@example.com"))
	}
	e.must(t, e.rdb.HSet(ctx, "s:4:5:x", "ts", "1")) // user 4, or user "4:5"?
	coll := datastore.Collection{Pattern: "s:{user_id}:*", TimestampField: "ts"}
	held := map[string][]string{"user_id": {"2", "4:5"}, "email": {"ignored@example.com"}}

	anon := datastore.Operation{Collection: coll, Cutoff: &cutoff, Held: held,
		Fields: []datastore.FieldMask{{Field: "email", Strategy: mask.Strategy{Kind: mask.Fixed, Replacement: "x"}}}}
	if n := run2(t, e.d, anon); n != 3 {
		t.Errorf("anonymized %d, want 3 (1, 3, 12)", n)
	}
	if v := e.rdb.HGet(ctx, "s:2:x", "email").Val(); v != "u2@example.com" {
		t.Errorf("held user 2 anonymized: %q", v)
	}
	if v := e.rdb.HGet(ctx, "s:12:x", "email").Val(); v != "x" {
		t.Errorf("user 12 not anonymized: %q", v)
	}

	erase := datastore.Operation{Collection: coll, Delete: true, Subjects: map[string][]string{"user_id": {"1", "2"}}, Held: held}
	if n := run(t, e.d, erase); n != 1 {
		t.Errorf("erased %d, want 1 (user 2 is held)", n)
	}
	age := datastore.Operation{Collection: coll, Delete: true, Cutoff: &cutoff, Held: held}
	if n := run(t, e.d, age); n != 2 {
		t.Errorf("deleted by age %d, want 2 (3 and 12)", n)
	}
	if got := e.keys(t); !slices.Equal(got, []string{"s:2:x", "s:4:5:x"}) {
		t.Errorf("keys left %q, want the held ones", got)
	}

	// Keys computed from the subjects (no SCAN) honour holds too.
	e.must(t, e.rdb.Set(ctx, "p:1", "v", 0), e.rdb.Set(ctx, "p:2", "v", 0))
	exact := datastore.Operation{Collection: datastore.Collection{Pattern: "p:{user_id}"}, Delete: true, Subjects: map[string][]string{"user_id": {"1", "2"}}, Held: held}
	if n := run(t, e.d, exact); n != 1 {
		t.Errorf("erased %d profile keys, want 1", n)
	}
	if e.rdb.Exists(ctx, "p:2").Val() != 1 || e.rdb.Exists(ctx, "p:1").Val() != 0 {
		t.Error("p:2 (held) must stay, p:1 must go")
	}
}

// run2 is run for operations that leave their records in place (so Count
// after Execute is not 0).
func run2(t *testing.T, d *Driver, op datastore.Operation) int64 {
	t.Helper()
	want, err := d.Count(context.Background(), op)
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	got, _ := drain(t, d, op, "")
	if got != want {
		t.Fatalf("Execute affected %d, Count said %d", got, want)
	}
	return got
}

func TestAnonymize(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.must(t,
		e.rdb.HSet(ctx, "user:1", "email", "ann@example.com", "phone", "+4912345678", "note", "hi", "ts", "5"),
		e.rdb.HSet(ctx, "user:2", "email", "bob@example.com", "ts", "5"),
		e.rdb.HSet(ctx, "user:3", "email", "cy@example.com", "ts", strconv.FormatInt(cutoff.Unix(), 10)),
	)
	op := datastore.Operation{
		Collection: datastore.Collection{Pattern: "user:{user_id}", TimestampField: "ts"},
		Cutoff:     &cutoff,
		Fields: []datastore.FieldMask{
			{Field: "email", Strategy: mask.Strategy{Kind: mask.Redact}},
			{Field: "phone", Strategy: mask.Strategy{Kind: mask.PartialMask, KeepLast: 2}},
			{Field: "note", Strategy: mask.Strategy{Kind: mask.Null}},
		},
	}
	if n := run2(t, e.d, op); n != 2 {
		t.Errorf("anonymized %d, want 2", n)
	}
	if got := e.rdb.HGetAll(ctx, "user:1").Val(); got["email"] != strings.Repeat("*", len("ann@example.com")) || got["phone"] != "*********78" || got["ts"] != "5" || len(got) != 3 {
		t.Errorf("user:1 = %q", got)
	}
	if got := e.rdb.HGetAll(ctx, "user:2").Val(); got["email"] != strings.Repeat("*", len("bob@example.com")) || len(got) != 2 {
		t.Errorf("user:2 = %q", got)
	}
	if got := e.rdb.HGet(ctx, "user:3", "email").Val(); got != "cy@example.com" {
		t.Errorf("user:3 (at the cutoff) = %q", got)
	}

	// A key that is not a hash stops the batch before anything is written.
	e.must(t, e.rdb.Set(ctx, "user:0", "plain", 0), e.rdb.HSet(ctx, "user:9", "email", "dee@example.com"))
	bySubject := datastore.Operation{Collection: op.Collection, Subjects: map[string][]string{"user_id": {"0", "9"}}, Fields: op.Fields}
	if _, err := e.d.Execute(ctx, bySubject, ""); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("string key: %v, want ErrInvalid", err)
	}
	if _, err := e.d.Count(ctx, bySubject); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("string key, Count: %v, want ErrInvalid", err)
	}
	if got := e.rdb.HGet(ctx, "user:9", "email").Val(); got != "dee@example.com" {
		t.Errorf("user:9 written although the batch failed: %q", got)
	}
}

// TestResume interrupts an erasure after one batch, continues with a new
// driver from the persisted cursor, and checks the totals are exact.
func TestResume(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	const users, perUser = 400, 10
	pipe := e.rdb.Pipeline()
	var subjects []string
	for u := range users {
		for s := range perUser {
			ts := cutoff.Unix() - 10
			if s == 0 {
				ts = cutoff.Unix() + 10 // one fresh key per user
			}
			pipe.HSet(ctx, fmt.Sprintf("s:%d:%d", u, s), "ts", ts)
		}
		if u%2 == 0 {
			subjects = append(subjects, strconv.Itoa(u))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		op   datastore.Operation
		want int64
	}{
		// In order: the even users go, then the old keys of the odd ones.
		{"subjects", datastore.Operation{Collection: datastore.Collection{Pattern: "s:{user_id}:*"}, Delete: true, Subjects: map[string][]string{"user_id": subjects}, BatchSize: 150}, users / 2 * perUser},
		{"age", datastore.Operation{Collection: datastore.Collection{Pattern: "s:{user_id}:*", TimestampField: "ts"}, Delete: true, Cutoff: &cutoff, BatchSize: 150}, users / 2 * (perUser - 1)},
	} {
		name, op, want := c.name, c.op, c.want
		before, err := e.d.Count(ctx, op)
		if err != nil || before != want {
			t.Fatalf("%s: Count = %d, %v; want %d", name, before, err, want)
		}
		first, err := e.d.Execute(ctx, op, "")
		if err != nil || first.Done || first.Affected == 0 {
			t.Fatalf("%s: first batch %+v, %v", name, first, err)
		}
		// The operator restarts: a new driver, the persisted cursor.
		d2, err := New(ctx, e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		rest, batches := drain(t, d2, op, first.Cursor)
		d2.Close()
		if first.Affected+rest != want {
			t.Errorf("%s: %d + %d records, want %d", name, first.Affected, rest, want)
		}
		if batches < 2 {
			t.Errorf("%s: only %d more batches", name, batches)
		}
		if left, err := e.d.Count(ctx, op); err != nil || left != 0 {
			t.Errorf("%s: Count after = %d, %v", name, left, err)
		}
	}
	// Left: the fresh key of each odd user.
	if n := len(e.keys(t)); n != users/2 {
		t.Errorf("%d keys left, want %d", n, users/2)
	}
}

func TestDescribeAndTotal(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	pipe := e.rdb.Pipeline()
	for i := range 3000 {
		pipe.HSet(ctx, fmt.Sprintf("s:%d:h", i), "ts", "1", "email", "x")
	}
	pipe.Set(ctx, "s:x:string", "v", 0)
	pipe.Set(ctx, "other", "v", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	c := datastore.Collection{Pattern: "s:{user_id}:*"}
	info, err := e.d.Describe(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if info.EstimatedRows != 3001 {
		t.Errorf("EstimatedRows = %d, want 3001 (a small keyspace is scanned whole)", info.EstimatedRows)
	}
	if info.KeyTypes["hash"] == 0 {
		t.Errorf("KeyTypes = %v", info.KeyTypes)
	}
	if _, ok := info.Columns["email"]; !ok {
		t.Errorf("Columns = %v", info.Columns)
	}
	if n, err := e.d.Total(ctx, c); err != nil || n != 3001 {
		t.Errorf("Total = %d, %v", n, err)
	}
	if _, err := e.d.Describe(ctx, datastore.Collection{Pattern: "s:{user_id}*"}); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("ambiguous pattern: %v", err)
	}
	empty, err := e.d.Describe(ctx, datastore.Collection{Pattern: "none:{user_id}"})
	if err != nil || empty.EstimatedRows != 0 {
		t.Errorf("empty collection: %+v, %v", empty, err)
	}
}

// TestDescribeEstimate checks the extrapolation from a partial SCAN.
func TestDescribeEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 100k keys")
	}
	e := setup(t)
	ctx := context.Background()
	pipe := e.rdb.Pipeline()
	for i := range 100_000 {
		if i%2 == 0 {
			pipe.Set(ctx, fmt.Sprintf("a:%d:x", i), "v", 0)
		} else {
			pipe.Set(ctx, fmt.Sprintf("b:%d:x", i), "v", 0)
		}
		if i%10000 == 9999 {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	info, err := e.d.Describe(ctx, datastore.Collection{Pattern: "a:{user_id}:*"})
	if err != nil {
		t.Fatal(err)
	}
	if info.EstimatedRows < 40_000 || info.EstimatedRows > 60_000 {
		t.Errorf("EstimatedRows = %d, want about 50000", info.EstimatedRows)
	}
}

// TestSparseScan erases one subject's few keys among many others (the SCAN
// COUNT grows while few keys match) and checks nothing else went.
func TestSparseScan(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	pipe := e.rdb.Pipeline()
	for i := range 30_000 {
		pipe.Set(ctx, fmt.Sprintf("cache:%d", i), "v", 0)
	}
	for i := range 5 {
		pipe.Set(ctx, fmt.Sprintf("session:7:%d", i), "v", 0)
		pipe.Set(ctx, fmt.Sprintf("session:77:%d", i), "v", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	op := datastore.Operation{Collection: datastore.Collection{Pattern: "session:{user_id}:*"}, Delete: true, Subjects: map[string][]string{"user_id": {"7"}}, BatchSize: 2}
	if n := run(t, e.d, op); n != 5 {
		t.Errorf("erased %d, want 5", n)
	}
	if n := e.rdb.DBSize(ctx).Val(); n != 30_005 {
		t.Errorf("%d keys left, want 30005", n)
	}
}

// TestHashFieldFractionalCutoff: with a cutoff inside a second, the whole
// second before it is older and the next one is not.
func TestHashFieldFractionalCutoff(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	cut := cutoff.Add(500 * time.Millisecond)
	e.must(t,
		e.rdb.HSet(ctx, "h:a:x", "ts", strconv.FormatInt(cutoff.Unix(), 10)),
		e.rdb.HSet(ctx, "h:b:x", "ts", strconv.FormatInt(cutoff.Unix()+1, 10)),
		e.rdb.HSet(ctx, "h:c:x", "ts", strconv.FormatInt(cutoff.Unix(), 10)+".4"),
		e.rdb.HSet(ctx, "h:d:x", "ts", strconv.FormatInt(cutoff.Unix(), 10)+".5"),
	)
	op := datastore.Operation{Collection: datastore.Collection{Pattern: "h:{user_id}:*", TimestampField: "ts"}, Delete: true, Cutoff: &cut}
	if n := run(t, e.d, op); n != 2 {
		t.Errorf("deleted %d, want 2", n)
	}
	if got := e.keys(t); !slices.Equal(got, []string{"h:b:x", "h:d:x"}) {
		t.Errorf("keys left %q", got)
	}
}
