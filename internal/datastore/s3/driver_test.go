package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"k8s.io/utils/ptr"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/mask"
	"github.com/lethe-dev/lethe/internal/testharness"
)

func TestMain(m *testing.M) { testharness.Main(m) }

type env struct {
	d      *Driver
	c      *minio.Client // direct client, to set up and read back
	cfg    datastore.Config
	bucket string
}

func setup(t *testing.T, versioned bool) env {
	t.Helper()
	var srv testharness.S3Server
	if versioned {
		srv = testharness.S3Versioned(t)
	} else {
		srv = testharness.S3(t)
	}
	cfg := datastore.Config{
		Type: "S3", S3Endpoint: srv.Endpoint, S3Region: srv.Region, S3Bucket: srv.Bucket,
		S3AccessKeyID: srv.AccessKeyID, S3SecretAccessKey: srv.SecretAccessKey, S3ForcePathStyle: true,
		TLS: datastore.TLSDisable, // the throwaway server speaks plain http
	}
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	c, err := minio.New(strings.TrimPrefix(srv.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(srv.AccessKeyID, srv.SecretAccessKey, ""), Region: srv.Region, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return env{d: d, c: c, cfg: cfg, bucket: srv.Bucket}
}

// put uploads small objects, eight at a time.
func (e env) put(t *testing.T, keys ...string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	sem := make(chan struct{}, 8)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			body := []byte("personal data of " + k)
			_, err := e.c.PutObject(context.Background(), e.bucket, k, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

type entry struct {
	Key, Version string
	Marker       bool
	Modified     time.Time
}

// list returns every object (or, with versions, every version and delete
// marker) in the bucket.
func (e env) list(t *testing.T, versions bool) []entry {
	t.Helper()
	var out []entry
	for o := range e.c.ListObjectsIter(context.Background(), e.bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: versions}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out = append(out, entry{o.Key, o.VersionID, o.IsDeleteMarker, o.LastModified})
	}
	return out
}

func (e env) keys(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, o := range e.list(t, false) {
		out = append(out, o.Key)
	}
	sort.Strings(out)
	return out
}

func run(t *testing.T, d *Driver, op datastore.Operation) int64 {
	t.Helper()
	ctx := context.Background()
	want, err := d.Count(ctx, op)
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	got, _ := drain(t, d, op, "")
	if got != want {
		t.Fatalf("Execute deleted %d, Count said %d", got, want)
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

func TestProbeAndErrors(t *testing.T) {
	e := setup(t, false)
	ctx := context.Background()
	info, err := e.d.Probe(ctx)
	if err != nil || info.Version == "" {
		t.Fatalf("Probe = %+v, %v", info, err)
	}
	t.Logf("server: %s", info.Version)

	cfg := e.cfg
	cfg.S3Bucket = e.bucket + "-missing"
	missing, _ := New(ctx, cfg)
	if _, err := missing.Probe(ctx); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("missing bucket: %v, want ErrNotFound", err)
	}
	if _, err := missing.Execute(ctx, datastore.Operation{Collection: datastore.Collection{Pattern: "a/"}, Delete: true, Cutoff: ptr.To(time.Now())}, ""); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("missing bucket, Execute: %v, want ErrNotFound", err)
	}

	cfg = e.cfg
	cfg.S3SecretAccessKey = "wrong-secret"
	bad, _ := New(ctx, cfg)
	if _, err := bad.Probe(ctx); !errors.Is(err, datastore.ErrAuthentication) {
		t.Errorf("wrong secret: %v, want ErrAuthentication", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg = e.cfg
	cfg.S3Endpoint = "http://" + l.Addr().String()
	l.Close()
	down, _ := New(ctx, cfg)
	if _, err := down.Probe(ctx); !errors.Is(err, datastore.ErrUnavailable) {
		t.Errorf("closed port: %v, want ErrUnavailable", err)
	}

	for _, ep := range []string{"ftp://x", "http://host/path", "http://u:p@host"} {
		cfg := e.cfg
		cfg.S3Endpoint = ep
		if _, err := New(ctx, cfg); !errors.Is(err, datastore.ErrInvalid) {
			t.Errorf("endpoint %q: %v, want ErrInvalid", ep, err)
		}
	}

	c := datastore.Collection{Pattern: "uploads/{user_id}/"}
	for name, op := range map[string]datastore.Operation{
		"anonymize":        {Collection: c, Subjects: map[string][]string{"user_id": {"1"}}, Fields: []datastore.FieldMask{{Field: "x", Strategy: mask.Strategy{Kind: mask.Null}}}},
		"no selection":     {Collection: c, Delete: true},
		"slash in value":   {Collection: c, Delete: true, Subjects: map[string][]string{"user_id": {"1/2"}}},
		"dot-dot in value": {Collection: c, Delete: true, Subjects: map[string][]string{"user_id": {".."}}},
		"dot value":        {Collection: c, Delete: true, Subjects: map[string][]string{"user_id": {"."}}},
		"empty value":      {Collection: c, Delete: true, Subjects: map[string][]string{"user_id": {""}}},
		"no placeholder":   {Collection: c, Delete: true, Subjects: map[string][]string{"email": {"a@b"}}},
		"not LastModified": {Collection: datastore.Collection{Pattern: "a/", TimestampSource: "HashField"}, Delete: true, Cutoff: ptr.To(time.Now())},
		"via":              {Collection: c, Delete: true, Subjects: map[string][]string{"user_id": {"1"}}, Paths: [][]datastore.Hop{{{Field: "x"}}}},
	} {
		if _, err := e.d.Execute(ctx, op, ""); !errors.Is(err, datastore.ErrInvalid) {
			t.Errorf("%s: Execute: %v, want ErrInvalid", name, err)
		}
		if _, err := e.d.Count(ctx, op); !errors.Is(err, datastore.ErrInvalid) {
			t.Errorf("%s: Count: %v, want ErrInvalid", name, err)
		}
	}
}

// TestLastModifiedCutoff uploads three generations a little over a second
// apart and cuts at the middle one's LastModified: the older generation goes,
// the one at the cutoff and the newer one stay.
func TestLastModifiedCutoff(t *testing.T) {
	e := setup(t, false)
	gen := func(g string) []string {
		return []string{"uploads/1/" + g + "-a", "uploads/2/" + g + "-b", "uploads/3/" + g + "-c"}
	}
	e.put(t, gen("old")...)
	time.Sleep(1100 * time.Millisecond)
	e.put(t, gen("mid")...)
	time.Sleep(1100 * time.Millisecond)
	e.put(t, gen("new")...)
	e.put(t, "elsewhere/old") // not in the collection

	var cut time.Time
	for _, o := range e.list(t, false) {
		if o.Key == "uploads/2/mid-b" {
			cut = o.Modified
		}
	}
	for _, o := range e.list(t, false) {
		switch {
		case strings.HasPrefix(o.Key, "elsewhere/"):
		case strings.Contains(o.Key, "old") && !o.Modified.Before(cut.Add(-time.Second+time.Millisecond)):
			t.Fatalf("old generation not a second older than the cutoff: %v vs %v", o.Modified, cut)
		case strings.Contains(o.Key, "new") && o.Modified.Before(cut.Add(time.Second)):
			t.Fatalf("new generation not a second newer than the cutoff: %v vs %v", o.Modified, cut)
		}
	}
	op := datastore.Operation{Collection: datastore.Collection{Pattern: "uploads/{user_id}/", TimestampSource: "LastModified"}, Delete: true, Cutoff: &cut, BatchSize: 2}
	if n := run(t, e.d, op); n != 3 {
		t.Errorf("deleted %d, want 3", n)
	}
	want := append(append([]string{"elsewhere/old"}, gen("mid")...), gen("new")...)
	sort.Strings(want)
	if got := e.keys(t); !slices.Equal(got, want) {
		t.Errorf("objects left %q, want %q", got, want)
	}
}

// TestSubjectErasure: erasing user 1 leaves none of their objects and all of
// user 12's and 123's; values are used verbatim (no URL encoding surprises);
// many subjects are erased together.
func TestSubjectErasure(t *testing.T) {
	e := setup(t, false)
	users := []string{"1", "12", "123", "2", "a*", "ab", "[x]", "x", "a b", "a%20b", "a+b", "é", "?"}
	var all []string
	for _, u := range users {
		all = append(all, "uploads/"+u+"/photo.jpg", "uploads/"+u+"/docs/id.pdf", "avatars/"+u+".png")
	}
	// (The posix backend cannot hold an object uploads/1 next to uploads/1/…)
	all = append(all, "uploads/1.txt", "uploads/1x/a")
	e.put(t, all...)
	erase := func(pattern string, values ...string) int64 {
		t.Helper()
		return run(t, e.d, datastore.Operation{
			Collection: datastore.Collection{Pattern: pattern},
			Delete:     true, Subjects: map[string][]string{"user_id": values}, BatchSize: 1,
		})
	}
	if n := erase("uploads/{user_id}/", "1"); n != 2 {
		t.Errorf("user 1: %d, want 2", n)
	}
	if n := erase("uploads/{user_id}", "a b", "a*", "é", "nobody"); n != 6 {
		t.Errorf("three users: %d, want 6", n)
	}
	if n := erase("avatars/{user_id}.png", "1", "?", "a+b"); n != 3 {
		t.Errorf("avatars: %d, want 3", n)
	}
	left := map[string]bool{}
	for _, k := range e.keys(t) {
		left[k] = true
	}
	for _, u := range users {
		gone := u == "1" || u == "a b" || u == "a*" || u == "é"
		for _, k := range []string{"uploads/" + u + "/photo.jpg", "uploads/" + u + "/docs/id.pdf"} {
			if left[k] == gone {
				t.Errorf("%s: present=%v", k, left[k])
			}
		}
		avatarGone := u == "1" || u == "?" || u == "a+b"
		if k := "avatars/" + u + ".png"; left[k] == avatarGone {
			t.Errorf("%s: present=%v", k, left[k])
		}
	}
	if !left["uploads/1x/a"] || !left["uploads/1.txt"] {
		t.Error("uploads/1x/a and uploads/1.txt are not user 1's and must stay")
	}
}

// TestScanModeSubjects covers subjects whose placeholder is not the first
// one: one listing of the static prefix, values parsed back.
func TestScanModeSubjects(t *testing.T) {
	e := setup(t, false)
	var keys []string
	for _, tenant := range []string{"acme", "beta"} {
		for _, u := range []string{"1", "12", "2"} {
			keys = append(keys, fmt.Sprintf("t/%s/u/%s/a", tenant, u), fmt.Sprintf("t/%s/u/%s/b", tenant, u))
		}
	}
	e.put(t, keys...)
	op := datastore.Operation{
		Collection: datastore.Collection{Pattern: "t/{tenant}/u/{user_id}/"},
		Delete:     true, Subjects: map[string][]string{"user_id": {"1", "2"}}, Held: map[string][]string{"tenant": {"beta"}}, BatchSize: 3,
	}
	if n := run(t, e.d, op); n != 4 {
		t.Errorf("deleted %d, want 4 (users 1 and 2 of acme; beta is held)", n)
	}
	want := []string{"t/acme/u/12/a", "t/acme/u/12/b", "t/beta/u/1/a", "t/beta/u/1/b", "t/beta/u/12/a", "t/beta/u/12/b", "t/beta/u/2/a", "t/beta/u/2/b"}
	if got := e.keys(t); !slices.Equal(got, want) {
		t.Errorf("left %q, want %q", got, want)
	}
}

func TestLegalHold(t *testing.T) {
	e := setup(t, false)
	e.put(t, "u/1/a", "u/2/a", "u/2/b", "u/3/a", "u/4/5/a")
	cut := time.Now().Add(time.Hour)
	coll := datastore.Collection{Pattern: "u/{user_id}/"}
	held := map[string][]string{"user_id": {"2", "4/5"}}
	if n := run(t, e.d, datastore.Operation{Collection: coll, Delete: true, Subjects: map[string][]string{"user_id": {"1", "2"}}, Held: held}); n != 1 {
		t.Errorf("erased %d, want 1 (user 2 is held)", n)
	}
	if n := run(t, e.d, datastore.Operation{Collection: coll, Delete: true, Cutoff: &cut, Held: held}); n != 1 {
		t.Errorf("deleted by age %d, want 1 (user 3; 2 and 4/5 held)", n)
	}
	if got := e.keys(t); !slices.Equal(got, []string{"u/2/a", "u/2/b", "u/4/5/a"}) {
		t.Errorf("left %q", got)
	}
}

// TestResume stops after one batch, continues with a new driver from the
// persisted cursor and checks exact totals, for per-subject listings and for
// a whole-collection listing that keeps some objects.
func TestResume(t *testing.T) {
	e := setup(t, false)
	var keys, subjects []string
	for u := range 60 {
		for f := range 20 {
			keys = append(keys, fmt.Sprintf("u/%d/f%02d", u, f))
		}
		if u%3 == 0 {
			subjects = append(subjects, fmt.Sprint(u))
		}
	}
	e.put(t, keys...)
	cut := time.Now().Add(time.Hour)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		op   datastore.Operation
		want int64

		batch int64
	}{
		// 20 objects per subject: batches of 15 stop inside a subject's listing.
		{"subjects", datastore.Operation{Collection: datastore.Collection{Pattern: "u/{user_id}/"}, Delete: true, Subjects: map[string][]string{"user_id": subjects}, BatchSize: 15}, 20 * 20, 15},
		{"age", datastore.Operation{Collection: datastore.Collection{Pattern: "u/{user_id}/"}, Delete: true, Cutoff: &cut, Held: map[string][]string{"user_id": {"1", "59"}}, BatchSize: 70}, 38 * 20, 70},
	} {
		if n, err := e.d.Count(ctx, c.op); err != nil || n != c.want {
			t.Fatalf("%s: Count = %d, %v; want %d", c.name, n, err, c.want)
		}
		first, err := e.d.Execute(ctx, c.op, "")
		if err != nil || first.Done || first.Affected != c.batch {
			t.Fatalf("%s: first batch %+v, %v", c.name, first, err)
		}
		for _, s := range subjects {
			if strings.Contains(first.Cursor, "/"+s+"/") {
				t.Errorf("%s: cursor %q holds a subject's value", c.name, first.Cursor)
			}
		}
		d2, err := New(ctx, e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		rest, batches := drain(t, d2, c.op, first.Cursor)
		if first.Affected+rest != c.want || batches < 2 {
			t.Errorf("%s: %d + %d in %d more batches, want %d", c.name, first.Affected, rest, batches, c.want)
		}
	}
	if got := e.keys(t); len(got) != 40 || got[0] != "u/1/f00" || got[39] != "u/59/f19" {
		t.Errorf("left %d objects: %q…", len(got), got[:min(3, len(got))])
	}
}

// TestBatchBounds: per-subject listings run in parallel, but a batch never
// takes more than BatchSize objects unless one subject alone has more.
func TestBatchBounds(t *testing.T) {
	e := setup(t, false)
	var keys, subjects []string
	for u := range 10 {
		subjects = append(subjects, fmt.Sprint(u))
		for f := range 20 {
			keys = append(keys, fmt.Sprintf("u/%d/f%02d", u, f))
		}
	}
	for f := range 150 {
		keys = append(keys, fmt.Sprintf("u/big/f%03d", f))
	}
	e.put(t, keys...)
	op := datastore.Operation{Collection: datastore.Collection{Pattern: "u/{user_id}/"}, Delete: true, Subjects: map[string][]string{"user_id": append(subjects, "big")}, BatchSize: 70}
	var sizes []int64
	cursor := ""
	for {
		b, err := e.d.Execute(context.Background(), op, cursor)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, b.Affected)
		if b.Done {
			break
		}
		cursor = b.Cursor
	}
	// Values sort 0…9, big: three subjects of 20 per batch (a fourth would
	// overflow), then big, which alone holds more than a batch, split.
	if want := []int64{60, 60, 60, 20, 70, 70, 10}; !slices.Equal(sizes, want) {
		t.Errorf("batches %v, want %v", sizes, want)
	}
	var total int64
	for _, n := range sizes {
		if n > 70 {
			t.Errorf("a batch of %d", n)
		}
		total += n
	}
	if total != 350 || len(e.keys(t)) != 0 {
		t.Errorf("batches %v (total %d), %d objects left", sizes, total, len(e.keys(t)))
	}
}

// TestVersionedErasure: erasing a subject in a versioned bucket leaves no
// version and no delete marker of theirs, and every version of the others.
func TestVersionedErasure(t *testing.T) {
	e := setup(t, true)
	ctx := context.Background()
	for range 3 {
		e.put(t, "u/1/a", "u/1/b", "u/12/a")
	}
	if err := e.c.RemoveObject(ctx, e.bucket, "u/1/b", minio.RemoveObjectOptions{}); err != nil { // a delete marker
		t.Fatal(err)
	}
	if err := e.c.RemoveObject(ctx, e.bucket, "u/12/a", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	before12 := 0
	for _, v := range e.list(t, true) {
		if strings.HasPrefix(v.Key, "u/12/") {
			before12++
		}
	}
	op := datastore.Operation{Collection: datastore.Collection{Pattern: "u/{user_id}/"}, Delete: true, Subjects: map[string][]string{"user_id": {"1"}}, BatchSize: 2}
	if n := run(t, e.d, op); n != 6 {
		t.Errorf("deleted %d versions, want 6 (delete markers are not records)", n)
	}
	after12 := 0
	for _, v := range e.list(t, true) {
		if strings.HasPrefix(v.Key, "u/1/") {
			t.Errorf("left behind: %+v", v)
		}
		if strings.HasPrefix(v.Key, "u/12/") {
			after12++
		}
	}
	if after12 != before12 || before12 != 4 {
		t.Errorf("user 12 had %d versions and markers, now %d; want 4", before12, after12)
	}
	if _, err := e.c.StatObject(ctx, e.bucket, "u/1/a", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Errorf("u/1/a still readable: %v", err)
	}
}

// TestVersionedAge: versions and delete markers dated before the cutoff go,
// the others stay. Servers date a noncurrent version differently (AWS: when
// it was written; versitygw's posix backend: when it was overwritten), so
// the expectation is computed from the dates the server lists.
func TestVersionedAge(t *testing.T) {
	e := setup(t, true)
	ctx := context.Background()
	e.put(t, "u/1/a", "u/2/a", "u/3/a")
	if err := e.c.RemoveObject(ctx, e.bucket, "u/3/a", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	cut := time.Now()
	time.Sleep(1100 * time.Millisecond)
	e.put(t, "u/1/a", "u/2/b")
	var want []entry
	var old int64
	for _, v := range e.list(t, true) {
		if v.Modified.Before(cut) {
			if !v.Marker {
				old++
			}
			continue
		}
		want = append(want, v)
	}
	op := datastore.Operation{Collection: datastore.Collection{Pattern: "u/{user_id}/"}, Delete: true, Cutoff: &cut}
	if n := run(t, e.d, op); n != old || n < 2 {
		t.Errorf("deleted %d versions, want %d (at least u/2/a and u/3/a's)", n, old)
	}
	if got := e.list(t, true); !slices.Equal(got, want) {
		t.Errorf("left %+v, want %+v", got, want)
	}
	for _, v := range e.list(t, true) {
		if v.Key == "u/3/a" || v.Key == "u/2/a" {
			t.Errorf("left behind: %+v", v)
		}
	}
}

// TestPerKeyErrors: objects under an S3 object-lock legal hold cannot be
// deleted; the error says how many and why, never which keys, and the
// objects that could go are counted.
func TestPerKeyErrors(t *testing.T) {
	e := setup(t, true)
	ctx := context.Background()
	locked := e.bucket + "-lock"
	if err := e.c.MakeBucket(ctx, locked, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"u/secret-user-7/a", "u/secret-user-7/b"} {
		body := []byte("x")
		if _, err := e.c.PutObject(ctx, locked, k, bytes.NewReader(body), 1, minio.PutObjectOptions{LegalHold: minio.LegalHoldEnabled}); err != nil {
			t.Fatal(err)
		}
	}
	body := []byte("x")
	if _, err := e.c.PutObject(ctx, locked, "u/secret-user-7/c", bytes.NewReader(body), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.S3Bucket = locked
	d, _ := New(ctx, cfg)
	op := datastore.Operation{Collection: datastore.Collection{Pattern: "u/{user_id}/"}, Delete: true, Subjects: map[string][]string{"user_id": {"secret-user-7"}}}
	b, err := d.Execute(ctx, op, "")
	if !errors.Is(err, datastore.ErrAuthentication) {
		t.Fatalf("Execute: %+v, %v; want ErrAuthentication", b, err)
	}
	if b.Affected != 1 || b.Cursor != "" {
		t.Errorf("batch %+v, want 1 deleted and the old cursor", b)
	}
	if msg := err.Error(); strings.Contains(msg, "secret-user-7") || !strings.Contains(msg, "2 of 3") || !strings.Contains(msg, "AccessDenied ×2") {
		t.Errorf("error message %q", msg)
	}
}

func TestDescribeAndTotal(t *testing.T) {
	e := setup(t, false)
	ctx := context.Background()
	e.put(t, "u/1/a", "u/2/a", "u/2/b", "u/x", "other")
	c := datastore.Collection{Pattern: "u/{user_id}/"}
	info, err := e.d.Describe(ctx, c)
	if err != nil || info.EstimatedRows != 3 {
		t.Errorf("Describe = %+v, %v; want 3 objects", info, err)
	}
	if n, err := e.d.Total(ctx, c); err != nil || n != 3 {
		t.Errorf("Total = %d, %v", n, err)
	}
	if _, err := e.d.Describe(ctx, datastore.Collection{Pattern: "u/{a}{b}/"}); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("bad prefix: %v", err)
	}
}
