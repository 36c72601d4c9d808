package executor_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/fake"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/mask"
)

// flaky fails batches at random: before the store changes anything (a
// refused connection), or after the batch committed (the reply to COMMIT
// lost), as a real store may; and counts (a recount, the verification).
type flaky struct {
	*fake.Driver
	rng                  *rand.Rand
	before, after, count float64
	committedLost        int
	committedLostN       int64
	countsFailed         int
}

func (f *flaky) Count(ctx context.Context, op datastore.Operation) (int64, error) {
	if f.rng.Float64() < f.count {
		f.countsFailed++
		return 0, fake.ErrUnavailable
	}
	return f.Driver.Count(ctx, op)
}

func (f *flaky) Execute(ctx context.Context, op datastore.Operation, cursor string) (datastore.Batch, error) {
	if f.rng.Float64() < f.before {
		return datastore.Batch{}, fake.ErrUnavailable
	}
	b, err := f.Driver.Execute(ctx, op, cursor)
	if err == nil && f.rng.Float64() < f.after {
		f.committedLost++
		f.committedLostN += b.Affected
		return datastore.Batch{}, fake.ErrUnavailable
	}
	return b, err
}

// Whatever fails between a batch and its checkpoint — the checkpoint write,
// the manager (a crash loses everything not written), the store's reply
// after a commit — and whenever a hold arrives, the job ends with totals
// equal to what was truly deleted and anonymized, verified. Hundreds of
// random runs, each reproducible from its seed.
func TestCountsExactUnderFailures(t *testing.T) {
	var recounted, crashes, lostReplies, failedWrites, failedCounts int
	for seed := range uint64(400) {
		rng := rand.New(rand.NewPCG(seed, 13))
		const n = 300
		d := events(n, 50+rng.IntN(200))
		// profiles: 50 old records anonymized (the email masked).
		for i := range 50 {
			d.Insert("profiles", fake.Record{Key: fmt.Sprintf("p%03d", i), Time: base.Add(-time.Hour), Fields: map[string]string{"email": fmt.Sprintf("p%d@example.com", i)}})
		}
		f := &flaky{Driver: d, rng: rng, before: rng.Float64() * 0.1, after: rng.Float64() * 0.1, count: rng.Float64() * 0.3}
		del := deleteExpired(1 + rng.IntN(40))
		if rng.IntN(3) == 0 {
			del.Op.Held = map[string][]string{"user_id": {"7"}}
		}
		cutoff := base
		anon := engine.Step{Op: datastore.Operation{Collection: datastore.Collection{Name: "profiles"}, Cutoff: &cutoff, BatchSize: 1 + rng.IntN(20),
			Fields: []datastore.FieldMask{{Field: "email", Strategy: mask.Strategy{Kind: mask.Redact}}}}}
		steps := []engine.Step{del, anon}
		h := newHarness(t, f, jobFor(retentionv1.ModeEnforce, steps...), steps...)
		h.tick = time.Duration(rng.IntN(2000)) * time.Millisecond
		h.interval = time.Duration(1+rng.IntN(5)) * time.Second
		h.sliceTime = time.Duration(2+rng.IntN(20)) * time.Second
		h.maxBatches = rng.IntN(6)
		pFail, pCrash := rng.Float64()*0.3, rng.Float64()*0.3
		h.failCheckpoints = func(int) bool { return rng.Float64() < pFail }
		holdAt := -1
		if rng.IntN(3) == 0 {
			holdAt = rng.IntN(10)
		}
		done := false
		for i := 0; i < 2000 && !done; i++ {
			if i == holdAt {
				// A hold on user 3 placed mid-run: the next slices resolve it.
				h.steps[0].Op.Held = map[string][]string{"user_id": {"3", "7"}}
			}
			p, err := h.slice(context.Background())
			if err == nil && p == executor.Completed {
				done = true
				break
			}
			if err != nil {
				var abort *executor.AbortError
				if errors.As(err, &abort) {
					failedWrites++
				}
				h.restart()
			}
			if rng.Float64() < pCrash {
				crashes++
				h.crash()
			}
		}
		if !done {
			t.Fatalf("seed %d: the job did not complete", seed)
		}
		lostReplies += f.committedLost
		failedCounts += f.countsFailed
		truly := int64(n - left(d))
		anonymized := int64(0)
		for _, r := range d.Records("profiles") {
			if !strings.Contains(r.Fields["email"], "@") {
				anonymized++
			}
		}
		st := h.written
		if st.Deleted != truly || h.job.Status.Deleted != truly || st.Anonymized != 50 || anonymized != 50 {
			t.Fatalf("seed %d: status says %d deleted (in memory %d) and %d anonymized; truly %d deleted and %d anonymized (%d replies lost after commit)",
				seed, st.Deleted, h.job.Status.Deleted, st.Anonymized, truly, anonymized, f.committedLost)
		}
		var ops int64
		for _, op := range st.Operations {
			ops += op.Deleted
		}
		if ops != st.Deleted {
			t.Fatalf("seed %d: operations deleted %d, job %d", seed, ops, st.Deleted)
		}
		for _, r := range d.Records("events") {
			held := r.Fields["user_id"] == "7" || holdAt >= 0 && r.Fields["user_id"] == "3"
			if r.Time.Before(base) && !held {
				t.Fatalf("seed %d: expired record %s left", seed, r.Key)
			}
		}
		if h.verified == nil || !h.verified.Exact {
			t.Fatalf("seed %d: verification %+v", seed, h.verified)
		}
		if st.Recounted > 0 {
			recounted++
		}
	}
	t.Logf("400 runs: %d recounted, %d crashes, %d replies lost after commit, %d checkpoint writes failed, %d counts failed", recounted, crashes, lostReplies, failedWrites, failedCounts)
	if recounted < 50 || crashes < 100 || lostReplies < 50 || failedWrites < 50 || failedCounts < 50 {
		t.Errorf("the failures did not reach enough runs to mean anything")
	}
}

// Records someone else adds to an operation's scope during the run, or
// deletes from it, leave the data right but the totals unprovable once they
// rest on a recount: the verification says so with the numbers. With
// safety.verifyCounts Always it says so in a run that needed no recount as
// well; with the default it counts only after a recount, whether the
// recount attributed records (status.recounted) or found the scope grown.
func TestCountsNotExactWhenScopeChanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(d *fake.Driver)
		want   string
	}{{
		name:   "records deleted by someone else",
		change: func(d *fake.Driver) { d.Remove("events", "00400", "00401") },
		want:   "events: expected 2 records left in scope (matched 437 + held 0 - deleted 435), found 0",
	}, {
		name: "old records inserted behind the cursor",
		change: func(d *fake.Driver) {
			d.Insert("events", fake.Record{Key: "00000", Time: base.Add(-time.Hour), Fields: map[string]string{"user_id": "1"}})
		},
		want: "events: expected 0 records left in scope (matched 437 + held 0 - deleted 437), found 1",
	}} {
		for _, how := range []string{"always", "after a crash", "changed before a restart"} {
			t.Run(tc.name+", "+how, func(t *testing.T) {
				d := events(1000, 437)
				steps := []engine.Step{deleteExpired(50)}
				job := jobFor(retentionv1.ModeEnforce, steps...)
				if how == "always" {
					job.Spec.Safety = &retentionv1.SafetyLimits{VerifyCounts: retentionv1.VerifyCountsAlways}
				}
				h := newHarness(t, d, job, steps...)
				h.maxBatches = 2
				for _, want := range []executor.Progress{executor.Started, executor.Yielded} {
					if p, err := h.slice(context.Background()); err != nil || p != want {
						t.Fatalf("slice: %v %v, want %v", p, err, want)
					}
				}
				if how == "after a crash" {
					// Batches commit, their checkpoint fails, the process
					// dies; the next one recounts them and goes on.
					h.failCheckpoint = h.checkpoints + 1
					if _, err := h.slice(context.Background()); err == nil {
						t.Fatal("the checkpoint did not fail")
					}
					h.crash()
					if p, err := h.slice(context.Background()); err != nil || p != executor.Yielded {
						t.Fatalf("slice after the crash: %v %v", p, err)
					}
					if len(h.recounts) != 1 {
						t.Fatalf("recounts %v, want one", h.recounts)
					}
				}
				if how == "changed before a restart" {
					// Nothing is lost, but the recount of the new process
					// finds the scope changed; for records removed by someone
					// else it attributes them to the job, which nothing can
					// tell from a batch lost (and the totals are then off by
					// them: the read-back cannot see it either).
					tc.change(d)
					h.crash()
					mustNot(t, h.drive(context.Background()))
					if strings.HasPrefix(tc.name, "records deleted") {
						wantVerified(t, h, true)
						if !h.verified.ReadBack {
							t.Errorf("verification %+v, want a read-back", h.verified)
						}
						return
					}
					wantVerified(t, h, false)
					if !h.verified.ReadBack || !strings.Contains(h.verified.Message, tc.want) {
						t.Errorf("verification %+v, want a read-back and %q in the message", h.verified, tc.want)
					}
					return
				}
				tc.change(d)
				mustNot(t, h.drive(context.Background()))
				wantVerified(t, h, false)
				if !h.verified.ReadBack || !strings.Contains(h.verified.Message, tc.want) {
					t.Errorf("verification %+v, want a read-back and %q in the message", h.verified, tc.want)
				}
			})
		}
	}
}

// A job this process checkpointed cleanly is not recounted and, by
// default, not read back: its one count is the first. Its totals are the
// batches' own, and the verification says so. With verifyCounts Always it
// is read back (a second count) and agrees.
func TestNoRecountWhenVouched(t *testing.T) {
	for _, c := range []struct {
		verify   retentionv1.CountVerification
		counts   int
		readBack bool
		msg      string
	}{
		{"", 1, false, "437 deleted and 0 anonymized, each the sum of the counts the store returned inside the committed batches"},
		{retentionv1.VerifyCountsAfterRecount, 1, false, "none had to be recounted"},
		{retentionv1.VerifyCountsAlways, 2, true, "What is left in scope agrees with 437 deleted and 0 anonymized"},
	} {
		t.Run(string(c.verify), func(t *testing.T) {
			d := events(1000, 437)
			steps := []engine.Step{deleteExpired(100)}
			job := jobFor(retentionv1.ModeEnforce, steps...)
			job.Spec.Safety = &retentionv1.SafetyLimits{VerifyCounts: c.verify}
			h := newHarness(t, d, job, steps...)
			h.maxBatches = 1
			mustNot(t, h.drive(context.Background()))
			if n := d.Calls("Count"); n != c.counts {
				t.Errorf("%d counts, want %d", n, c.counts)
			}
			wantDeleted(t, h, d, 437)
			wantVerified(t, h, true)
			if h.verified.ReadBack != c.readBack || !strings.Contains(h.verified.Message, c.msg) {
				t.Errorf("verification %+v, want read-back %v and %q", h.verified, c.readBack, c.msg)
			}
			if len(h.recounts) != 0 || h.written.Recounted != 0 {
				t.Errorf("recounts %v", h.recounts)
			}
		})
	}
}

// A recount that finds nothing lost (the process restarted after an
// orderly checkpoint) proves the totals at that point, and the batches
// after it are this process's own: no read-back. One that attributes
// records reads back at the end, in whichever process finishes the job.
func TestReadBackFollowsRecounts(t *testing.T) {
	for _, lose := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch lost %v", lose), func(t *testing.T) {
			d := events(1000, 437)
			steps := []engine.Step{deleteExpired(100)}
			h := newHarness(t, d, jobFor(retentionv1.ModeEnforce, steps...), steps...)
			h.maxBatches = 2
			for _, want := range []executor.Progress{executor.Started, executor.Yielded} {
				if p, err := h.slice(context.Background()); err != nil || p != want {
					t.Fatalf("slice: %v %v, want %v", p, err, want)
				}
			}
			if lose {
				h.failCheckpoint = h.checkpoints + 1
				if _, err := h.slice(context.Background()); err == nil {
					t.Fatal("the checkpoint did not fail")
				}
			}
			h.crash()
			mustNot(t, h.drive(context.Background()))
			wantDeleted(t, h, d, 437)
			wantVerified(t, h, true)
			if h.verified.ReadBack != lose {
				t.Errorf("verification %+v, want read-back %v", h.verified, lose)
			}
			if lose && h.written.Recounted == 0 {
				t.Errorf("nothing recounted")
			}
		})
	}
}

// Checkpoints are bounded in time: with a batch every 100ms and an interval
// of 5s, a slice of 10s writes 3 times (at 5s, 10s and when it yields), not
// 100 times.
func TestCheckpointsBoundedInTime(t *testing.T) {
	d := events(3000, 2500)
	steps := []engine.Step{deleteExpired(10)}
	h := newHarness(t, d, jobFor(retentionv1.ModeEnforce, steps...), steps...)
	h.tick = 100 * time.Millisecond
	h.interval = 5 * time.Second
	h.sliceTime = 10 * time.Second
	if p, err := h.slice(context.Background()); err != nil || p != executor.Started {
		t.Fatal(p, err)
	}
	if p, err := h.slice(context.Background()); err != nil || p != executor.Yielded {
		t.Fatal(p, err)
	}
	// 100 batches, a clock reading before each.
	if h.checkpoints != 3 || h.written.Deleted != h.job.Status.Deleted || h.job.Status.Deleted != 1000 {
		t.Errorf("%d checkpoints, %d deleted (written %d)", h.checkpoints, h.job.Status.Deleted, h.written.Deleted)
	}
	mustNot(t, h.drive(context.Background()))
	wantVerified(t, h, true)
	if h.written.Deleted != 2500 {
		t.Errorf("%d deleted", h.written.Deleted)
	}
}

// A cancelled reconcile (an orderly shutdown) writes what its batches did
// before it stops: nothing is left to recount.
func TestCancelledSliceWritesItsProgress(t *testing.T) {
	d := events(1000, 437)
	steps := []engine.Step{deleteExpired(100)}
	h := newHarness(t, d, jobFor(retentionv1.ModeEnforce, steps...), steps...)
	if p, err := h.slice(context.Background()); err != nil || p != executor.Started {
		t.Fatal(p, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.Program(fake.Fault{Method: "Execute", Call: 2, Before: cancel})
	_, err := h.slice(ctx)
	var abort *executor.AbortError
	if !errors.As(err, &abort) || h.written.Deleted != 200 || left(d) != 800 {
		t.Fatalf("error %v, %d written deleted, %d left", err, h.written.Deleted, left(d))
	}
	h.crash()
	mustNot(t, h.drive(context.Background()))
	wantDeleted(t, h, d, 437)
	if h.written.Recounted != 0 {
		t.Errorf("%d recounted", h.written.Recounted)
	}
}

// An anonymization with an HMAC field is checkpointed after every batch: a
// batch re-run after a lost checkpoint would hash its pseudonyms again.
// Other strategies are idempotent and follow the interval.
func TestHMACAnonymizationCheckpointsEveryBatch(t *testing.T) {
	for _, tc := range []struct {
		kind mask.Kind
		want int
	}{{mask.HMAC, 5}, {mask.Redact, 1}} {
		d := fake.New()
		for i := range 50 {
			d.Insert("profiles", fake.Record{Key: fmt.Sprintf("p%03d", i), Time: base.Add(-time.Hour), Fields: map[string]string{"email": fmt.Sprintf("p%d@example.com", i)}})
		}
		cutoff := base
		steps := []engine.Step{{Op: datastore.Operation{Collection: datastore.Collection{Name: "profiles"}, Cutoff: &cutoff, BatchSize: 10,
			Fields: []datastore.FieldMask{{Field: "email", Strategy: mask.Strategy{Kind: tc.kind, Key: []byte(hmacTestKey)}}}}}}
		h := newHarness(t, d, jobFor(retentionv1.ModeEnforce, steps...), steps...)
		mustNot(t, h.drive(context.Background()))
		if h.checkpoints != tc.want || h.written.Anonymized != 50 {
			t.Errorf("%s: %d checkpoints (want %d), %d anonymized", tc.kind, h.checkpoints, tc.want, h.written.Anonymized)
		}
		wantVerified(t, h, true)
	}
}

const hmacTestKey = "0123456789abcdef0123456789abcdef"
