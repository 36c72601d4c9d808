package postgres

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

var _ datastore.HealthReader = (*Driver)(nil)

// grantMonitor is what a missing privilege asks for: pg_monitor includes
// pg_read_all_stats, which shows other users' rows of pg_stat_replication
// and pg_stat_activity.
const grantMonitor = "GRANT pg_monitor TO the DataStore's user"

// Health reads the primary's standbys from pg_stat_replication (replay_lag,
// and the WAL not yet replayed: pg_wal_lsn_diff(pg_current_wal_insert_lsn(),
// replay_lsn)) and counts active sessions and lock waiters in
// pg_stat_activity, not counting Lethe's own (application_name lethe).
// Columns a user without pg_monitor cannot see read as NULL: a Problem.
//
// The primary's position is where WAL is inserted, not where it has been
// written out (pg_current_wal_lsn): with synchronous_commit off, committed
// batches wait in the WAL buffers for the WAL writer (up to
// wal_writer_delay, 200ms, or wal_writer_flush_after, 1MB), and the
// standby must replay them all the same. Measured on the replica-lag
// benchmark: the written position stood still for 110ms while 1.4MB of
// batches were committed, and the gate let them all through.
func (d *Driver) Health(ctx context.Context, q datastore.HealthQuery) (datastore.Health, error) {
	const op = "health"
	h := datastore.Health{ActiveSessions: -1, LockWaiters: -1, ThreadsRunning: -1}
	if q.Replication {
		ignored := q.IgnoredStandbys
		if ignored == nil {
			ignored = []string{}
		}
		rows, err := d.pool.Query(ctx, `SELECT coalesce(application_name, ''), coalesce(host(client_addr), ''), state,
				extract(epoch FROM replay_lag)::float8,
				pg_wal_lsn_diff(pg_current_wal_insert_lsn(), replay_lsn)::float8,
				pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8,
				(to_jsonb(r) ->> 'reply_time')::timestamptz
			FROM pg_stat_replication r
			WHERE coalesce(state, '') NOT IN ('backup', 'stopping') AND NOT (coalesce(application_name, '') = ANY($1))
			ORDER BY pid`, ignored)
		if err != nil {
			return h, classify(op, err)
		}
		now := time.Now()
		sampled := false
		for rows.Next() {
			var name, addr string
			var state *string
			var lag, bytes *float64
			var current float64
			var reported *time.Time
			if err := rows.Scan(&name, &addr, &state, &lag, &bytes, &current, &reported); err != nil {
				rows.Close()
				return h, classify(op, err)
			}
			if !sampled {
				d.wal.record(now, current)
				sampled = true
			}
			r := datastore.ReplicaHealth{Name: standbyName(name, addr)}
			switch {
			case state == nil:
				// Hidden from a user without pg_read_all_stats.
				r.Problem = fmt.Sprintf("pg_stat_replication hides the state of standby %s from the DataStore's user: %s", r.Name, grantMonitor)
			case bytes == nil:
				r.Problem = fmt.Sprintf("standby %s has not reported its replay position yet", r.Name)
			default:
				r.LagBytes, r.BytesKnown = int64(math.Max(*bytes, 0)), true
				if lag != nil && *bytes > 0 {
					r.Lag, r.LagKnown = time.Duration(*lag*float64(time.Second)), true
				}
				if *bytes <= 0 {
					// Replayed all the primary has written: no lag, whatever
					// replay_lag still shows (it keeps its last value
					// until the standby's next report, up to
					// wal_receiver_status_interval later).
					r.Lag, r.LagKnown = 0, true
				}
				// replay_lag is the lag of the last WAL the standby
				// replayed: it trails (it cannot exceed the time since a
				// burst of writes began) and stands still while replay is
				// paused. How long ago the first WAL not yet replayed was
				// written is a lag that is already there, and grows.
				if waited, ok := d.wal.since(now, current-*bytes); ok && waited > r.Lag {
					r.Lag, r.LagKnown = waited, true
				}
				// And a standby that replays more slowly than the primary
				// writes lags by the time it needs to replay what it has
				// not: its backlog over the rate it replayed at while it
				// was behind all along.
				var report time.Time
				if reported != nil {
					report = *reported
				}
				catchUp, rate, measured, ok := d.wal.catchUp(name+"|"+addr, now, report, current-*bytes, *bytes, q.LagLimit)
				if ok && catchUp > r.Lag {
					r.Lag, r.LagKnown, r.Predicted = catchUp, true, true
				}
				// How fast the lag grows while the primary writes at its
				// recent peak: the gate reads again before it can reach
				// the limit. Only from a replay rate measured while the
				// standby was behind all along: a first estimate may be a
				// burst.
				if peak := d.wal.peakRate(now); ok && measured && peak > 0 {
					r.LagGrowth, r.GrowthKnown = max(peak/rate-1, 0), true
				}
			}
			h.Replicas = append(h.Replicas, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return h, classify(op, err)
		}
		h.WALRate = d.wal.peakRate(now)
	}
	if q.Sessions {
		var hidden int64
		err := d.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'active'),
				count(*) FILTER (WHERE wait_event_type = 'Lock'),
				count(*) FILTER (WHERE state IS NULL)
			FROM pg_stat_activity
			WHERE coalesce(backend_type, 'client backend') = 'client backend' AND pid <> pg_backend_pid()
				AND application_name IS DISTINCT FROM 'lethe'`).Scan(&h.ActiveSessions, &h.LockWaiters, &hidden)
		if err != nil {
			return h, classify(op, err)
		}
		if hidden > 0 {
			h.ActiveSessions, h.LockWaiters = -1, -1
			h.Problems = append(h.Problems, fmt.Sprintf("pg_stat_activity hides the state of %d sessions of other users from the DataStore's user: %s", hidden, grantMonitor))
		}
	}
	return h, nil
}

// standbyName names a standby by its application_name and address.
func standbyName(app, addr string) string {
	switch {
	case app == "" && addr == "":
		return "(unnamed)"
	case addr == "":
		return fmt.Sprintf("%q", app)
	case app == "":
		return addr
	}
	return fmt.Sprintf("%q (%s)", app, addr)
}

// walClock remembers, for the last walSamples health readings, when the
// primary's WAL was at which position.
type walClock struct {
	mu      sync.Mutex
	samples []walSample
	// rates holds, per standby, the replay rates measured over a whole
	// span (see slowest) within the last rateWindow, and when (pos is the
	// rate).
	rates map[rateKey][]replaySample
	// standbys holds, per standby, its replay position and how far it was
	// behind at the readings of the last rateWindow.
	standbys map[string][]replaySample
}

type replaySample struct {
	at          time.Time
	pos, behind float64
	// report is when the standby sent the reply that told the primary its
	// replay position (pg_stat_replication.reply_time, PostgreSQL 12 and
	// later; zero when unknown), on the standby's clock.
	report time.Time
}

type walSample struct {
	at  time.Time
	pos float64 // bytes since 0/0
}

// walSamples bounds the positions remembered: at a check interval of a
// second, ten minutes; readings closer than minSpacing share one sample,
// so at least 30 seconds.
const (
	walSamples = 600
	minSpacing = 50 * time.Millisecond
)

func (c *walClock) record(at time.Time, pos float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.samples); n > 0 && pos < c.samples[n-1].pos {
		c.samples = c.samples[:0] // another server answers at the address
	}
	if n := len(c.samples); n >= 2 && c.samples[n-1].at.Sub(c.samples[n-2].at) < minSpacing {
		// Readings as often as every batch (a lag close to its limit):
		// the last sample stands for the latest reading until it is
		// minSpacing after the one before it.
		c.samples[n-1] = walSample{at, pos}
		return
	}
	c.samples = append(c.samples, walSample{at, pos})
	if len(c.samples) > walSamples {
		c.samples = append(c.samples[:0], c.samples[len(c.samples)-walSamples:]...)
	}
}

// since is how long before now the primary wrote the WAL at position
// replayed (the first byte a standby has not replayed): interpolated
// between the last sample at or before it and the first after it. ok is
// false when nothing is behind or no sample is old enough to tell.
func (c *walClock) since(now time.Time, replayed float64) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.samples)
	if n == 0 || replayed >= c.samples[n-1].pos {
		return 0, false
	}
	j := sort.Search(n, func(i int) bool { return c.samples[i].pos > replayed })
	if j == 0 {
		return 0, false
	}
	a, b := c.samples[j-1], c.samples[j]
	written := b.at
	if b.pos > a.pos {
		frac := (replayed - a.pos) / (b.pos - a.pos)
		written = a.at.Add(time.Duration(frac * float64(b.at.Sub(a.at))))
	}
	return now.Sub(written), true
}

// catchUp estimates how long a standby needs to replay the behind bytes
// it has not, and so how late the WAL written now will be replayed: behind
// over its replay rate, plus the longest it stood still while behind
// (stall) — a standby that replays in bursts replays the last byte of its
// backlog up to a standstill later than its average rate says.
//
// The rate is measured over the longest window, ending now, during which
// the standby never ran out of WAL to replay: between each reading of the
// window and the next it replayed less than it was behind at the first, so
// it was busy all along and the rate is what it can do. Within that window
// it is the slowest the standby kept over spans of span (the lag limit: a
// backlog that should take that long to replay), see slowest. Only a
// window of at least minRateWindow is a measurement (measured): over
// shorter windows a standby that replays in bursts shows a burst's rate,
// measured here at 2–5 times its average. Without one (the standby has
// just fallen behind) the rate over the longest window of 100ms to 1s in
// which it replayed anything stands in. Either is never above the slowest
// rate the standby kept over a whole span within rateWindow (see
// slowestRate), which also stands in when it has replayed nothing since it
// fell behind. The gate then sees a standby falling behind at the first
// reading that finds it behind. It returns the lag and the rate (bytes per
// second); ok is false when nothing is behind or no window tells.
func (c *walClock) catchUp(standby string, now, report time.Time, pos, behind float64, span time.Duration) (lag time.Duration, rate float64, measured, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.standbys == nil {
		c.standbys = map[string][]replaySample{}
	}
	h := c.standbys[standby]
	if n := len(h); n > 0 && pos < h[n-1].pos {
		h = nil // another server
	}
	for len(h) > 0 && (now.Sub(h[0].at) > rateWindow || len(h) >= walSamples) {
		h = h[1:]
	}
	cur := replaySample{at: now, pos: pos, behind: behind, report: report}
	if behind > 0 {
		if k := busySince(h, cur); k >= 0 {
			if r, full, ok := slowest(append(h[k:len(h):len(h)], cur), span); ok {
				rate, measured = r, true
				if full {
					c.noteRate(standby, span, now, r)
				}
			}
		}
		if !measured {
			for _, s := range h {
				dt := now.Sub(s.at)
				if dt > time.Second {
					// A longer window of a mostly idle standby would make
					// the bound uselessly low.
					continue
				}
				if replayed := pos - s.pos; dt >= 100*time.Millisecond && replayed > 0 {
					rate = replayed / dt.Seconds()
					break
				}
			}
		}
		// The slowest rate measured over a whole span within rateWindow
		// bounds the estimate: a busy run shorter than a span shows the
		// average of a burst or two (on the benchmark's standby, up to
		// 2.7MB/s after a catch-up where its spans of 2s were 1.7MB/s),
		// and a standby that has just fallen behind, or has replayed
		// nothing since (its replay stalls, or is throttled), has none.
		if slow, ok := c.slowestRate(standby, span, now); ok {
			if rate <= 0 || slow < rate {
				rate = slow
			}
			measured = true
		}
	}
	if n := len(h); n >= 2 && h[n-1].at.Sub(h[n-2].at) < minSpacing {
		h[n-1] = cur
	} else {
		h = append(h, cur)
	}
	c.standbys[standby] = h
	c.forget(now)
	if rate <= 0 {
		return 0, 0, false, false
	}
	return time.Duration(behind/rate*float64(time.Second)) + stall(h), rate, measured, true
}

// noteRate remembers a replay rate measured over a whole span, forgetting
// those older than rateWindow.
func (c *walClock) noteRate(standby string, span time.Duration, now time.Time, rate float64) {
	if c.rates == nil {
		c.rates = map[rateKey][]replaySample{}
	}
	k := rateKey{standby, span}
	rs := c.rates[k]
	for len(rs) > 0 && (now.Sub(rs[0].at) > rateWindow || len(rs) >= walSamples) {
		rs = rs[1:]
	}
	c.rates[k] = append(rs, replaySample{at: now, pos: rate})
}

// slowestRate is the slowest replay rate measured over a whole span within
// the last rateWindow; ok is false when there is none. Rates measured over
// spans of another length (a caller with another lag limit) are not
// taken: over a span shorter than a standby's bursts are apart, the rate
// depends on how many bursts it caught (measured on the benchmark's
// standby over spans of 1s: 2.4MB/s, where it kept 2.1MB/s).
func (c *walClock) slowestRate(standby string, span time.Duration, now time.Time) (rate float64, ok bool) {
	for _, r := range c.rates[rateKey{standby, span}] {
		if now.Sub(r.at) <= rateWindow && (!ok || r.pos < rate) {
			rate, ok = r.pos, true
		}
	}
	return rate, ok
}

// forget drops the standbys and rates not read within rateWindow: a
// standby that reconnects from another address (a restarted pod) is
// another standby, and the old one's readings would stay forever.
func (c *walClock) forget(now time.Time) {
	for k, h := range c.standbys {
		if len(h) == 0 || now.Sub(h[len(h)-1].at) > rateWindow {
			delete(c.standbys, k)
		}
	}
	for k, rs := range c.rates {
		if len(rs) == 0 || now.Sub(rs[len(rs)-1].at) > rateWindow {
			delete(c.rates, k)
		}
	}
}

// rateKey names the rates of one standby measured over spans of one length.
type rateKey struct {
	standby string
	span    time.Duration
}

// busySince is the index of the first reading of the longest run of
// readings, ending with cur, over which the standby never ran out of WAL:
// it was behind at each, and replayed less than that before the next; -1
// when the reading before cur already does not qualify.
func busySince(h []replaySample, cur replaySample) int {
	k, next := -1, cur
	for i := len(h) - 1; i >= 0; i-- {
		s := h[i]
		if s.behind <= 0 || next.pos-s.pos >= s.behind {
			break
		}
		k, next = i, s
	}
	return k
}

// slowest is the replay rate to plan with over the busy readings busy: the
// slowest average over spans of span (at least minRateWindow) — what
// matters is how long the standby takes to replay a backlog that should
// take span, and a standby's rate over a second varies (measured on the
// benchmark's regulated standby: 0.9 to 3.0 MiB/s around a median of
// 2.0) — or, while the readings cover less than that, the average over
// all of them. Positions are timed by the readings, so the replay the
// primary has not been told of yet counts as none: the gate plans with the
// replay it has seen. After a pause the standby's next report (once WAL
// arrives, or every wal_receiver_status_interval) brings the rate back
// up; until it has caught up the span without news holds purges back.
// Planning with what the standby reported (its reports' times) instead
// overshot a 2s limit in 5 of 10 benchmark runs, by up to 0.7s. ok is
// false when they cover less than minRateWindow or show no replay; full
// when they cover a whole span.
func slowest(busy []replaySample, span time.Duration) (rate float64, full, ok bool) {
	span = max(span, minRateWindow)
	first, last := busy[0], busy[len(busy)-1]
	total := last.at.Sub(first.at)
	switch {
	case total < minRateWindow || last.pos <= first.pos:
		return 0, false, false
	case total < span:
		return (last.pos - first.pos) / total.Seconds(), false, true
	}
	rate, i := math.Inf(1), 0
	for _, end := range busy {
		for i+1 < len(busy) && end.at.Sub(busy[i+1].at) >= span {
			i++
		}
		if dt := end.at.Sub(busy[i].at); dt >= span {
			rate = min(rate, (end.pos-busy[i].pos)/dt.Seconds())
		}
	}
	// A span with no replay at all: plan with a hundredth of the average
	// (the lag is then far over any limit, and finite).
	return max(rate, (last.pos-first.pos)/total.Seconds()/100), true, true
}

// stall is the longest a standby stood still while behind, within the
// readings h: over the longest run of readings that were all behind and
// all at the same replay position, the time between the standby's first
// and last report of it (a lower bound of the standstill: it began before
// the first and may end after the last). The report times, from the
// standby's own clock, matter: between its reports the primary shows the
// last position it was told (for up to wal_receiver_status_interval, 10s
// by default, once no WAL arrives), which is no standstill. Without them
// (before PostgreSQL 12) the readings' times stand in.
func stall(h []replaySample) time.Duration {
	var longest time.Duration
	start := -1
	for i, s := range h {
		switch {
		case s.behind <= 0:
			start = -1
		case start < 0 || s.pos != h[start].pos:
			start = i
		case s.report.IsZero() || h[start].report.IsZero():
			longest = max(longest, s.at.Sub(h[start].at))
		default:
			longest = max(longest, s.report.Sub(h[start].report))
		}
	}
	return longest
}

// peakRate is the fastest the primary wrote WAL over the last peakWindow,
// in bytes per second: the largest rate between readings at least
// minSpacing apart (0 when unknown). While jobs wait the primary may write little;
// the peak is the rate their batches wrote at.
func (c *walClock) peakRate(now time.Time) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	peak := 0.0
	var anchor *walSample
	for i := range c.samples {
		s := &c.samples[i]
		if now.Sub(s.at) > peakWindow {
			continue
		}
		if anchor == nil {
			anchor = s
			continue
		}
		if dt := s.at.Sub(anchor.at); dt >= minSpacing {
			peak = max(peak, (s.pos-anchor.pos)/dt.Seconds())
			anchor = s
		}
	}
	return peak
}

// peakWindow bounds how far back the primary's peak write rate is taken.
const peakWindow = 10 * time.Second

// rateWindow bounds how far back a standby's replay rate and standstills
// are measured; minRateWindow is the shortest window a replay rate is
// measured over.
const (
	rateWindow    = 30 * time.Second
	minRateWindow = time.Second
)
