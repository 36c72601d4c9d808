package health_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/health"
)

func qty(s string) *resource.Quantity { q := resource.MustParse(s); return &q }

func TestLimitsFor(t *testing.T) {
	pg := retentionv1.DataStorePostgreSQL
	my := retentionv1.DataStoreMySQL
	cases := []struct {
		name    string
		spec    retentionv1.DataStoreSpec
		want    health.Limits
		none    bool
		wantErr string
	}{
		{name: "PostgreSQL defaults", spec: retentionv1.DataStoreSpec{Type: pg},
			want: health.Limits{Type: pg, CheckInterval: 250 * time.Millisecond, MaxLag: 10 * time.Second, MaxLagBytes: 256 << 20}},
		{name: "MySQL defaults: nothing to read without replicas", spec: retentionv1.DataStoreSpec{Type: my},
			want: health.Limits{Type: my, CheckInterval: 250 * time.Millisecond, MaxLag: 10 * time.Second}, none: true},
		{name: "Redis has none", spec: retentionv1.DataStoreSpec{Type: retentionv1.DataStoreRedis}, want: health.Limits{Type: retentionv1.DataStoreRedis}, none: true},
		{name: "everything off", spec: retentionv1.DataStoreSpec{Type: pg, Limits: retentionv1.DataStoreLimits{Health: retentionv1.DataStoreHealth{
			MaxReplicationLag: "0", MaxReplicationLagBytes: qty("0")}}},
			want: health.Limits{Type: pg, CheckInterval: 250 * time.Millisecond}, none: true},
		{name: "PostgreSQL set", spec: retentionv1.DataStoreSpec{Type: pg, Limits: retentionv1.DataStoreLimits{Health: retentionv1.DataStoreHealth{
			CheckInterval: "2s", MaxReplicationLag: "2s", MaxReplicationLagBytes: qty("1Mi"), IgnoredStandbys: []string{"dr"},
			MaxActiveSessions: 8, MaxLockWaiters: 3}}},
			want: health.Limits{Type: pg, CheckInterval: 2 * time.Second, MaxLag: 2 * time.Second, MaxLagBytes: 1 << 20,
				IgnoredStandbys: []string{"dr"}, MaxActiveSessions: 8, MaxLockWaiters: 3}},
		{name: "MySQL set", spec: retentionv1.DataStoreSpec{Type: my, Limits: retentionv1.DataStoreLimits{Health: retentionv1.DataStoreHealth{
			MaxThreadsRunning: 20, Replicas: []retentionv1.MySQLReplica{{Host: "r1"}}}}},
			want: health.Limits{Type: my, CheckInterval: 250 * time.Millisecond, MaxLag: 10 * time.Second, MaxThreadsRunning: 20,
				Replicas: []retentionv1.MySQLReplica{{Host: "r1"}}}},
		{name: "bad interval", spec: retentionv1.DataStoreSpec{Type: pg, Limits: retentionv1.DataStoreLimits{Health: retentionv1.DataStoreHealth{CheckInterval: "1h"}}},
			wantErr: "checkInterval"},
		{name: "bad lag", spec: retentionv1.DataStoreSpec{Type: pg, Limits: retentionv1.DataStoreLimits{Health: retentionv1.DataStoreHealth{MaxReplicationLag: "01s"}}},
			wantErr: "maxReplicationLag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := health.LimitsFor(&c.spec)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			if got.None() != c.none {
				t.Errorf("None() = %v, want %v", got.None(), c.none)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	pg := health.Limits{Type: retentionv1.DataStorePostgreSQL, CheckInterval: time.Second, MaxLag: 10 * time.Second, MaxLagBytes: 1 << 20,
		MaxActiveSessions: 5, MaxLockWaiters: 2}
	pgTime := pg
	pgTime.MaxLagBytes = 0
	my := health.Limits{Type: retentionv1.DataStoreMySQL, CheckInterval: time.Second, MaxLag: 5 * time.Second, MaxThreadsRunning: 10,
		Replicas: []retentionv1.MySQLReplica{{Host: "r"}}}
	calm := datastore.Health{ActiveSessions: 1, LockWaiters: 0, ThreadsRunning: -1,
		Replicas: []datastore.ReplicaHealth{{Name: `"s1"`, BytesKnown: true, LagBytes: 100}}}
	with := func(h datastore.Health, edit func(*datastore.Health)) datastore.Health {
		h.Replicas = append([]datastore.ReplicaHealth(nil), h.Replicas...)
		edit(&h)
		return h
	}
	cases := []struct {
		name   string
		limits health.Limits
		h      datastore.Health
		err    error
		reason string
		has    []string
	}{
		{"calm", pg, calm, nil, retentionv1.ReasonHealthy, []string{"1 replicas", "100B of WAL", "1 active sessions", "0 lock waiters"}},
		{"idle standby caught up: replay_lag NULL is no lag", pg, calm, nil, retentionv1.ReasonHealthy, nil},
		{"lag in time", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].Lag, h.Replicas[0].LagKnown = 12300*time.Millisecond, true
		}), nil, retentionv1.ReasonReplicationLag, []string{`Standby "s1" lags 12.3s`, "limit maxReplicationLag 10s"}},
		{"a predicted lag says so", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].Lag, h.Replicas[0].LagKnown, h.Replicas[0].Predicted = 12300*time.Millisecond, true, true
		}), nil, retentionv1.ReasonReplicationLag, []string{`Standby "s1" would replay WAL written now 12.3s late: 100B not replayed at the replay rate seen (limit maxReplicationLag 10s; a predicted lag is kept within 7.5s)`}},
		{"a predicted lag over three quarters of the limit waits", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].Lag, h.Replicas[0].LagKnown, h.Replicas[0].Predicted = 7600*time.Millisecond, true, true
		}), nil, retentionv1.ReasonReplicationLag, []string{"would replay WAL written now 7.6s late", "kept within 7.5s"}},
		{"a predicted lag at three quarters of the limit is within it", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].Lag, h.Replicas[0].LagKnown, h.Replicas[0].Predicted = 7500*time.Millisecond, true, true
		}), nil, retentionv1.ReasonHealthy, nil},
		{"a lag already there may reach the whole limit", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].Lag, h.Replicas[0].LagKnown = 9*time.Second, true
		}), nil, retentionv1.ReasonHealthy, nil},
		{"lag at the limit is within it", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].Lag, h.Replicas[0].LagKnown = 10*time.Second, true
		}), nil, retentionv1.ReasonHealthy, nil},
		{"paused standby: bytes", pg, with(calm, func(h *datastore.Health) { h.Replicas[0].LagBytes = 3 << 20 }),
			nil, retentionv1.ReasonReplicationLag, []string{"3MiB of WAL not replayed", "limit maxReplicationLagBytes 1MiB"}},
		{"a backlog beyond the limit at the assumed rate, the rate not measured yet", pgTime, with(calm, func(h *datastore.Health) { h.Replicas[0].LagBytes = 12 << 20 }),
			nil, retentionv1.ReasonReplicationLag, []string{"12MiB of WAL not replayed and its replay rate is not measured yet: at 1MiB/s it needs more than 7.5s to replay it (limit maxReplicationLag 10s; a predicted lag is kept within 7.5s)"}},
		{"a backlog the assumed rate replays in over three quarters of the limit", pgTime, with(calm, func(h *datastore.Health) { h.Replicas[0].LagBytes = 8 << 20 }),
			nil, retentionv1.ReasonReplicationLag, []string{"8MiB of WAL not replayed"}},
		{"a backlog within the limit at the assumed rate", pgTime, with(calm, func(h *datastore.Health) { h.Replicas[0].LagBytes = 7 << 20 }),
			nil, retentionv1.ReasonHealthy, nil},
		{"a large backlog of a standby whose rate is measured: its lag decides", pgTime, with(calm, func(h *datastore.Health) {
			h.Replicas[0].LagBytes, h.Replicas[0].GrowthKnown = 12<<20, true
			h.Replicas[0].Lag, h.Replicas[0].LagKnown = time.Second, true
		}), nil, retentionv1.ReasonHealthy, nil},
		{"hidden standby", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0] = datastore.ReplicaHealth{Name: "s1", Problem: "pg_stat_replication hides … GRANT pg_monitor"}
		}), nil, retentionv1.ReasonHealthUnknown, []string{"GRANT pg_monitor", "purges wait"}},
		{"unknown wins over lag", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].LagBytes = 3 << 20
			h.Problems = []string{"pg_stat_activity hides 3 sessions"}
		}), nil, retentionv1.ReasonHealthUnknown, []string{"hides 3 sessions"}},
		{"lock waiters", pg, with(calm, func(h *datastore.Health) { h.LockWaiters = 3 }), nil, retentionv1.ReasonLockWaiters,
			[]string{"3 sessions wait for a lock (limit maxLockWaiters 2)"}},
		{"active sessions", pg, with(calm, func(h *datastore.Health) { h.ActiveSessions = 6 }), nil, retentionv1.ReasonActiveSessions,
			[]string{"6 sessions are active (limit maxActiveSessions 5)"}},
		{"sessions not counted", pg, with(calm, func(h *datastore.Health) { h.ActiveSessions = -1 }), nil, retentionv1.ReasonHealthUnknown, nil},
		{"read failed", pg, datastore.Health{}, errors.New("boom"), retentionv1.ReasonHealthUnknown, []string{"could not be read"}},
		{"MySQL calm", my, datastore.Health{ThreadsRunning: 3, ActiveSessions: -1, LockWaiters: -1,
			Replicas: []datastore.ReplicaHealth{{Name: "r:3306", LagKnown: true, Lag: 2 * time.Second}}}, nil, retentionv1.ReasonHealthy,
			[]string{"largest lag 2s", "Threads_running 3"}},
		{"MySQL replica stopped", my, datastore.Health{ThreadsRunning: 3, ActiveSessions: -1, LockWaiters: -1,
			Replicas: []datastore.ReplicaHealth{{Name: "r:3306", Stopped: true}}}, nil, retentionv1.ReasonReplicationLag,
			[]string{"r:3306 is not replicating"}},
		{"MySQL replica lags", my, datastore.Health{ThreadsRunning: 3, ActiveSessions: -1, LockWaiters: -1,
			Replicas: []datastore.ReplicaHealth{{Name: "r:3306", LagKnown: true, Lag: 7 * time.Second}}}, nil, retentionv1.ReasonReplicationLag,
			[]string{"r:3306 lags 7s (limit maxReplicationLag 5s)"}},
		{"MySQL replica unreachable", my, datastore.Health{ThreadsRunning: 3, ActiveSessions: -1, LockWaiters: -1,
			Replicas: []datastore.ReplicaHealth{{Name: "r:3306", Problem: "replica r:3306: connection refused"}}}, nil, retentionv1.ReasonHealthUnknown,
			[]string{"connection refused"}},
		{"MySQL threads", my, datastore.Health{ThreadsRunning: 11, ActiveSessions: -1, LockWaiters: -1}, nil, retentionv1.ReasonThreadsRunning,
			[]string{"Threads_running is 11 (limit maxThreadsRunning 10)"}},
		{"MySQL threads unread", my, datastore.Health{ThreadsRunning: -1, ActiveSessions: -1, LockWaiters: -1}, nil, retentionv1.ReasonHealthUnknown, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := health.Judge(c.limits, c.h, c.err)
			if v.Reason != c.reason || v.Healthy != (c.reason == retentionv1.ReasonHealthy) {
				t.Fatalf("verdict %+v, want reason %s", v, c.reason)
			}
			for _, s := range c.has {
				if !strings.Contains(v.Message, s) {
					t.Errorf("message %q lacks %q", v.Message, s)
				}
			}

		})
	}
}

// A reading that failed because the store itself is down carries the
// error (the job reports an outage); one that failed otherwise is only
// HealthUnknown.
func TestJudgeStoreDown(t *testing.T) {
	l := health.Limits{Type: retentionv1.DataStorePostgreSQL, CheckInterval: time.Second, MaxLag: time.Second}
	for _, c := range []struct {
		err  error
		down bool
	}{
		{fmt.Errorf("health: %w: connection refused", datastore.ErrUnavailable), true},
		{fmt.Errorf("health: %w", datastore.ErrAuthentication), true},
		{fmt.Errorf("health: %w", datastore.ErrNotAllowed), true},
		{fmt.Errorf("health: %w: permission denied for pg_stat_replication", datastore.ErrInvalid), false},
		{errors.New("something else"), false},
	} {
		v := health.Judge(l, datastore.Health{}, c.err)
		if v.Healthy || v.Reason != retentionv1.ReasonHealthUnknown || (v.Err != nil) != c.down {
			t.Errorf("%v: verdict %+v, want store down %v", c.err, v, c.down)
		}
	}
}

// A healthy verdict says how long it may be reused when a standby's lag
// grows: a quarter of the time the lag, gaining LagGrowth seconds a
// second, takes to reach maxReplicationLag.
func TestJudgeUntil(t *testing.T) {
	pg := health.Limits{Type: retentionv1.DataStorePostgreSQL, CheckInterval: time.Second, MaxLag: 10 * time.Second, MaxLagBytes: 1 << 20}
	calm := datastore.Health{ActiveSessions: -1, LockWaiters: -1, ThreadsRunning: -1,
		Replicas: []datastore.ReplicaHealth{{Name: `"s1"`, BytesKnown: true, LagBytes: 100, GrowthKnown: true}}}
	with := func(h datastore.Health, edit func(*datastore.Health)) datastore.Health {
		h.Replicas = append([]datastore.ReplicaHealth(nil), h.Replicas...)
		edit(&h)
		return h
	}
	cases := []struct {
		name   string
		limits health.Limits
		h      datastore.Health
		until  time.Duration
	}{
		{"a standby whose growth is not measured yet: probe soon", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].GrowthKnown = false
		}), health.Probe},
		{"a standby whose growth is not measured yet, the primary writing fast: before the backlog can pass what 1MiB/s replays in 7.5s", pg, with(calm, func(h *datastore.Health) {
			// 7MiB left to 7.5MiB, written at up to 56MiB/s: 125ms, a quarter of it.
			h.Replicas[0].GrowthKnown, h.Replicas[0].LagBytes = false, 1<<19
			h.WALRate = 56 << 20
		}), 31250 * time.Microsecond},
		{"a standby whose growth is not measured yet, the primary writing slowly: probe soon all the same", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].GrowthKnown = false
			h.WALRate = 1 << 20
		}), health.Probe},
		{"a growing predicted lag: healthy until it can reach three quarters of the limit", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].Lag, h.Replicas[0].LagKnown, h.Replicas[0].Predicted, h.Replicas[0].LagGrowth = 7*time.Second, true, true, 1
		}), 125 * time.Millisecond},
		{"a MySQL replica (no growth measured): the check interval", health.Limits{Type: retentionv1.DataStoreMySQL, MaxLag: 5 * time.Second},
			datastore.Health{ActiveSessions: -1, LockWaiters: -1, ThreadsRunning: -1,
				Replicas: []datastore.ReplicaHealth{{Name: "r:3306", LagKnown: true, Lag: time.Second}}}, 0},
		{"a lag that does not grow: the check interval", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].Lag, h.Replicas[0].LagKnown = 4*time.Second, true
		}), 0},
		{"a growing lag: healthy until it can reach the limit", pg, with(calm, func(h *datastore.Health) {
			// 4s of lag gaining 3s a second: 2s to the limit of 10s, a
			// quarter of it.
			h.Replicas[0].Lag, h.Replicas[0].LagKnown, h.Replicas[0].LagGrowth = 4*time.Second, true, 3
		}), 500 * time.Millisecond},
		{"a growing lag at the limit: read again at the next batch", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].Lag, h.Replicas[0].LagKnown, h.Replicas[0].LagGrowth = 10*time.Second, true, 3
		}), time.Nanosecond},
		{"the soonest of two standbys", pg, with(calm, func(h *datastore.Health) {
			h.Replicas[0].Lag, h.Replicas[0].LagKnown, h.Replicas[0].LagGrowth = 4*time.Second, true, 3
			h.Replicas = append(h.Replicas, datastore.ReplicaHealth{Name: "s2", LagKnown: true, Lag: 9 * time.Second, LagGrowth: 2, GrowthKnown: true})
		}), 125 * time.Millisecond},
		{"a growing lag without a time limit: no headroom to keep", health.Limits{Type: retentionv1.DataStorePostgreSQL, MaxLagBytes: 1 << 20},
			with(calm, func(h *datastore.Health) {
				h.Replicas[0].Lag, h.Replicas[0].LagKnown, h.Replicas[0].LagGrowth = 4*time.Second, true, 3
			}), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := health.Judge(c.limits, c.h, nil)
			if !v.Healthy || v.Until != c.until {
				t.Errorf("verdict %+v, want healthy until %v", v, c.until)
			}
		})
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB", 16800: "16.41KiB", 256 << 20: "256MiB", 3 << 30: "3GiB"} {
		if got := health.Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %s, want %s", n, got, want)
		}
	}
}

// The tracker reads a store at most once per interval, shares a reading in
// flight, counts the time a store was unhealthy and announces changes.
func TestTracker(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	changes := make(chan types.NamespacedName, 10)
	tr := &health.Tracker{Clock: clock, Notify: func(k types.NamespacedName) { changes <- k }}
	throttled := map[string]time.Duration{}
	tr.OnThrottled = func(_ types.NamespacedName, reason string, d time.Duration) { throttled[reason] += d }
	key := types.NamespacedName{Namespace: "ns", Name: "db"}
	var reads atomic.Int32
	verdict := health.Verdict{Healthy: true, Reason: retentionv1.ReasonHealthy}
	read := func(context.Context) health.Verdict { reads.Add(1); return verdict }
	ctx := context.Background()

	if _, ok := tr.State(key); ok {
		t.Fatal("a state before any reading")
	}
	tr.Check(ctx, key, time.Second, read)
	tr.Check(ctx, key, time.Second, read)
	if reads.Load() != 1 {
		t.Fatalf("%d reads within one interval, want 1", reads.Load())
	}
	if got := <-changes; got != key {
		t.Fatalf("announced %v", got)
	}
	advance(time.Second)
	verdict = health.Verdict{Reason: retentionv1.ReasonReplicationLag, Message: "lags 12s"}
	if v := tr.Check(ctx, key, time.Second, read); v.Reason != retentionv1.ReasonReplicationLag || reads.Load() != 2 {
		t.Fatalf("after the interval: %+v, %d reads", v, reads.Load())
	}
	select {
	case <-changes:
	default:
		t.Fatal("a change of verdict was not announced")
	}
	advance(2 * time.Second)
	verdict.Message = "lags 13s" // same reason, new value: not announced at once
	tr.Check(ctx, key, time.Second, read)
	select {
	case <-changes:
		t.Fatal("a new value of the same reason was announced at once")
	default:
	}
	advance(time.Minute)
	verdict = health.Verdict{Healthy: true, Reason: retentionv1.ReasonHealthy}
	tr.Check(ctx, key, time.Second, read)
	if want := map[string]time.Duration{retentionv1.ReasonReplicationLag: 2*time.Second + 10*time.Second}; fmt.Sprint(throttled) != fmt.Sprint(want) {
		t.Errorf("throttled %v, want %v (the gap without a reading capped at 10s)", throttled, want)
	}
	if st, ok := tr.State(key); !ok || !st.Healthy || !st.At.Equal(clock()) {
		t.Errorf("state %+v", st)
	}

	// A healthy verdict with Until is reused for at most that long.
	advance(time.Hour)
	reads.Store(0)
	verdict = health.Verdict{Healthy: true, Reason: retentionv1.ReasonHealthy, Until: 100 * time.Millisecond}
	tr.Check(ctx, key, time.Second, read)
	advance(50 * time.Millisecond)
	tr.Check(ctx, key, time.Second, read)
	if reads.Load() != 1 {
		t.Fatalf("%d reads within Until, want 1", reads.Load())
	}
	advance(50 * time.Millisecond)
	tr.Check(ctx, key, time.Second, read)
	if reads.Load() != 2 {
		t.Fatalf("%d reads once Until passed (within the interval), want 2", reads.Load())
	}
	verdict.Until = 0

	// Concurrent callers share the reading in flight.
	advance(time.Hour)
	release := make(chan struct{})
	reads.Store(0)
	slow := func(context.Context) health.Verdict { reads.Add(1); <-release; return verdict }
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); tr.Check(ctx, key, time.Second, slow) }()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if reads.Load() != 1 {
		t.Errorf("%d concurrent reads, want 1", reads.Load())
	}
	tr.Forget(key)
	if _, ok := tr.State(key); ok {
		t.Error("a forgotten store still has a state")
	}
}
