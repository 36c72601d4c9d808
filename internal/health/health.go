// Package health decides whether a store is healthy enough for the next
// batch of a purge: it resolves a DataStore's limits.health (with their
// defaults), compares a driver's reading (datastore.Health) with them, and
// keeps, per DataStore, the last reading so that every job on a store
// shares one reading per check interval (Tracker). It imports nothing of
// the controllers; see docs/design.md §12.
package health

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/schedule"
)

// Defaults of limits.health, as documented on DataStoreHealth.
const (
	DefaultCheckInterval     = 250 * time.Millisecond
	DefaultMaxReplicationLag = 10 * time.Second
	// DefaultMaxReplicationLagBytes applies to PostgreSQL when
	// maxReplicationLagBytes is unset.
	DefaultMaxReplicationLagBytes = 256 << 20
)

// Limits are a DataStore's health limits, resolved; a zero limit is no
// limit.
type Limits struct {
	Type              retentionv1.DataStoreType
	CheckInterval     time.Duration
	MaxLag            time.Duration
	MaxLagBytes       int64
	IgnoredStandbys   []string
	MaxActiveSessions int64
	MaxLockWaiters    int64
	MaxThreadsRunning int64
	// Replicas are the MySQL replicas to read (their Secrets are read by
	// the caller).
	Replicas []retentionv1.MySQLReplica
}

// LimitsFor resolves the health limits of a DataStore, with the defaults
// for what its spec leaves unset. Redis and S3 have none.
func LimitsFor(spec *retentionv1.DataStoreSpec) (Limits, error) {
	h := spec.Limits.Health
	l := Limits{Type: spec.Type, CheckInterval: DefaultCheckInterval}
	if spec.Type != retentionv1.DataStorePostgreSQL && spec.Type != retentionv1.DataStoreMySQL {
		return Limits{Type: spec.Type}, nil
	}
	if h.CheckInterval != "" {
		d, err := schedule.ParseTimeout(string(h.CheckInterval))
		if err != nil {
			return l, fmt.Errorf("limits.health.checkInterval: %w", err)
		}
		l.CheckInterval = d
	}
	switch h.MaxReplicationLag {
	case "":
		l.MaxLag = DefaultMaxReplicationLag
	case "0":
	default:
		d, err := schedule.ParseTimeout(string(h.MaxReplicationLag))
		if err != nil {
			return l, fmt.Errorf("limits.health.maxReplicationLag: %w", err)
		}
		l.MaxLag = d
	}
	switch spec.Type {
	case retentionv1.DataStorePostgreSQL:
		l.MaxLagBytes = DefaultMaxReplicationLagBytes
		if q := h.MaxReplicationLagBytes; q != nil {
			if q.Sign() < 0 {
				return l, fmt.Errorf("limits.health.maxReplicationLagBytes must not be negative")
			}
			l.MaxLagBytes = q.Value()
		}
		l.IgnoredStandbys = h.IgnoredStandbys
		l.MaxActiveSessions = int64(h.MaxActiveSessions)
		l.MaxLockWaiters = int64(h.MaxLockWaiters)
	case retentionv1.DataStoreMySQL:
		l.MaxThreadsRunning = int64(h.MaxThreadsRunning)
		l.Replicas = h.Replicas
	}
	return l, nil
}

// None reports whether nothing is to be checked.
func (l Limits) None() bool {
	return l.Query().empty()
}

// Query is what a driver must read for these limits (without the
// replicas' connections, which the caller resolves).
func (l Limits) Query() Query {
	return Query{
		Replication:    l.Type == retentionv1.DataStorePostgreSQL && (l.MaxLag > 0 || l.MaxLagBytes > 0),
		Sessions:       l.MaxActiveSessions > 0 || l.MaxLockWaiters > 0,
		ThreadsRunning: l.MaxThreadsRunning > 0,
		Replicas:       l.MaxLag > 0 && len(l.Replicas) > 0,
	}
}

// Query says which parts of the health are read.
type Query struct {
	Replication, Sessions, ThreadsRunning, Replicas bool
}

func (q Query) empty() bool { return !q.Replication && !q.Sessions && !q.ThreadsRunning && !q.Replicas }

// Verdict is what a reading means for the next batch.
type Verdict struct {
	// Healthy: every limit holds; the batch may run.
	Healthy bool
	// Reason (a Throttled reason of api/v1alpha1/purgejob_consts.go) and
	// Message (the measured value and the limit) say why not.
	Reason  string
	Message string
	// Until, when positive, is how long a healthy verdict may be reused if
	// that is shorter than the check interval: a quarter of the time a
	// replica whose lag grows (ReplicaHealth.LagGrowth) takes to reach
	// maxReplicationLag. A job near the limit reads again at its next batch
	// rather than a whole interval of batches later.
	Until time.Duration
	// Err, when set, is why the store itself could not be reached for the
	// reading (unavailable, credentials refused, address not allowed, TLS
	// refused): not a health verdict but the store's outage, which a job
	// reports as such (DataStoreAvailable False) rather than as throttling.
	Err error
}

// storeProblem reports whether err is the store's own connection failing,
// as opposed to a health query it could not answer.
func storeProblem(err error) bool {
	return errors.Is(err, datastore.ErrUnavailable) || errors.Is(err, datastore.ErrAuthentication) ||
		errors.Is(err, datastore.ErrNotAllowed) || datastore.TLSVerificationProblem(err) != ""
}

// Judge compares a reading (or the error that kept it from being read)
// with the limits. The first limit exceeded wins, in this order: health
// unknown, replication lag, lock waiters, active sessions, threads running.
// A reading that could not be taken is never healthy.
func Judge(l Limits, h datastore.Health, err error) Verdict {
	if err != nil {
		v := Verdict{Reason: retentionv1.ReasonHealthUnknown, Message: "The store's health could not be read: " + datastore.ConnectionProblem(err) + "; purges wait until it can be"}
		if storeProblem(err) {
			v.Err = err
		}
		return v
	}
	q := l.Query()
	var unknown []string
	unknown = append(unknown, h.Problems...)
	var lagging []string
	kind := "replica"
	if l.Type == retentionv1.DataStorePostgreSQL {
		kind = "standby"
	}
	for _, r := range h.Replicas {
		switch {
		case r.Problem != "":
			unknown = append(unknown, r.Problem)
		case r.Stopped && l.MaxLag > 0:
			lagging = append(lagging, fmt.Sprintf("replica %s is not replicating (its lag is NULL: a replication thread is stopped)", r.Name))
		case r.LagKnown && l.MaxLag > 0 && r.Lag > l.PredictedLagLimit() && r.Predicted:
			lagging = append(lagging, fmt.Sprintf("%s %s would replay WAL written now %s late: %s not replayed at the replay rate seen (limit maxReplicationLag %s; a predicted lag is kept within %s)",
				kind, r.Name, roundLag(r.Lag), Bytes(r.LagBytes), l.MaxLag, roundLag(l.PredictedLagLimit())))
		case r.LagKnown && l.MaxLag > 0 && r.Lag > l.MaxLag:
			lagging = append(lagging, fmt.Sprintf("%s %s lags %s (limit maxReplicationLag %s)", kind, r.Name, roundLag(r.Lag), l.MaxLag))
		case r.BytesKnown && l.MaxLagBytes > 0 && r.LagBytes > l.MaxLagBytes:
			lagging = append(lagging, fmt.Sprintf("standby %s has %s of WAL not replayed (limit maxReplicationLagBytes %s)", r.Name, Bytes(r.LagBytes), Bytes(l.MaxLagBytes)))
		case r.BytesKnown && !r.GrowthKnown && l.MaxLag > 0 && float64(r.LagBytes) > l.PredictedLagLimit().Seconds()*UnmeasuredReplayRate:
			lagging = append(lagging, fmt.Sprintf("standby %s has %s of WAL not replayed and its replay rate is not measured yet: at %s/s it needs more than %s to replay it (limit maxReplicationLag %s; a predicted lag is kept within %s)",
				r.Name, Bytes(r.LagBytes), Bytes(UnmeasuredReplayRate), roundLag(l.PredictedLagLimit()), l.MaxLag, roundLag(l.PredictedLagLimit())))
		}
	}
	if q.Sessions && (h.ActiveSessions < 0 || h.LockWaiters < 0) && len(h.Problems) == 0 {
		unknown = append(unknown, "the sessions of the store could not be counted")
	}
	if q.ThreadsRunning && h.ThreadsRunning < 0 {
		unknown = append(unknown, "Threads_running could not be read")
	}
	switch {
	case len(unknown) > 0:
		return Verdict{Reason: retentionv1.ReasonHealthUnknown, Message: "The store's health could not be read: " + join(unknown) + "; purges wait until it can be"}
	case len(lagging) > 0:
		return Verdict{Reason: retentionv1.ReasonReplicationLag, Message: capitalize(join(lagging))}
	case l.MaxLockWaiters > 0 && h.LockWaiters > l.MaxLockWaiters:
		return Verdict{Reason: retentionv1.ReasonLockWaiters, Message: fmt.Sprintf("%d sessions wait for a lock (limit maxLockWaiters %d)", h.LockWaiters, l.MaxLockWaiters)}
	case l.MaxActiveSessions > 0 && h.ActiveSessions > l.MaxActiveSessions:
		return Verdict{Reason: retentionv1.ReasonActiveSessions, Message: fmt.Sprintf("%d sessions are active (limit maxActiveSessions %d)", h.ActiveSessions, l.MaxActiveSessions)}
	case l.MaxThreadsRunning > 0 && h.ThreadsRunning > l.MaxThreadsRunning:
		return Verdict{Reason: retentionv1.ReasonThreadsRunning, Message: fmt.Sprintf("Threads_running is %d (limit maxThreadsRunning %d)", h.ThreadsRunning, l.MaxThreadsRunning)}
	}
	return Verdict{Healthy: true, Reason: retentionv1.ReasonHealthy, Message: healthyMessage(l, h), Until: headroom(l, h)}
}

// PredictedLagLimit is the most a predicted lag (how late a PostgreSQL
// standby would replay the WAL written now, ReplicaHealth.Predicted) may
// be: three quarters of maxReplicationLag. A prediction extrapolates a
// replay rate that varies, and a standby that replays in bursts replays
// the end of its backlog up to a standstill later than any rate says:
// measured on the replica-lag benchmark's standby (bursts of up to 3.5MB,
// standstills of up to 1.7s), the true lag of WAL admitted at a
// prediction of 2s reached 2.14–2.56s, up to 28% more. A lag already
// there is held to the whole limit. The rest of the limit costs little
// time: a purge throttled on a standby runs at the standby's replay rate
// whatever lag it keeps.
func (l Limits) PredictedLagLimit() time.Duration {
	return l.MaxLag * 3 / 4
}

// Probe is how long a healthy verdict lasts when a PostgreSQL standby's
// lag growth is not known yet (the first readings of a purge, or a
// standby that has just fallen behind): a primary writing many times
// faster than its standby replays builds seconds of lag within one check
// interval, so the gate looks again soon, until the growth is measured.
const Probe = 50 * time.Millisecond

// UnmeasuredReplayRate (bytes per second) is the replay rate a PostgreSQL
// standby is assumed to keep until its rate is measured (the first
// readings of a purge, or a standby that has just fallen behind): a backlog
// it would need longer than maxReplicationLag to replay at this rate pauses
// the purge, and the standby's true rate is measured while it replays
// (internal/datastore/postgres: walClock.catchUp). What was already written
// decides the peak lag, not what the gate sees next: a primary writing
// 25 times faster than its standby replays built 4.7 s of lag against a
// 2 s limit within 200 ms, and a rate counts as measured only over a
// second of replay (internal/datastore/postgres: minRateWindow). Ordinary traffic
// keeps a standby kilobytes behind, far below it.
const UnmeasuredReplayRate = 1 << 20

// growthSafety divides the time a growing lag takes to reach its limit:
// the growth is measured from the primary's WAL rate of the last readings,
// which at the start of a purge is still ramping up (measured: a growth of
// 5 seconds a second 160ms into a purge, 12.5 at full speed), and from a
// replay rate that varies. Readings cost well under a millisecond.
const growthSafety = 4

// headroom is how long the replicas' lag may grow at its measured rate
// before one reaches maxReplicationLag, divided by growthSafety (at least a
// nanosecond: read again at the next batch), Probe for a standby whose
// growth is not known yet, or 0 when no lag is known to grow.
func headroom(l Limits, h datastore.Health) time.Duration {
	if l.MaxLag <= 0 {
		return 0
	}
	var until time.Duration
	for _, r := range h.Replicas {
		var d time.Duration
		switch {
		case r.BytesKnown && !r.GrowthKnown && h.WALRate > 0:
			// The backlog grows at most as fast as the primary writes: read
			// again before it can pass what the assumed rate replays in
			// time.
			left := max(l.PredictedLagLimit().Seconds()*UnmeasuredReplayRate-float64(r.LagBytes), 0)
			d = min(max(time.Duration(left/h.WALRate/growthSafety*float64(time.Second)), time.Nanosecond), Probe)
		case r.BytesKnown && !r.GrowthKnown:
			d = Probe
		case r.LagGrowth <= 0:
			continue
		default:
			limit := l.MaxLag
			if r.Predicted {
				limit = l.PredictedLagLimit()
			}
			d = max(time.Duration(float64(limit-r.Lag)/r.LagGrowth/growthSafety), time.Nanosecond)
		}
		if until == 0 || d < until {
			until = d
		}
	}
	return until
}

// healthyMessage says what was measured when every limit holds.
func healthyMessage(l Limits, h datastore.Health) string {
	var parts []string
	var worst time.Duration
	var worstBytes int64
	for _, r := range h.Replicas {
		worst = max(worst, r.Lag)
		worstBytes = max(worstBytes, r.LagBytes)
	}
	if len(h.Replicas) > 0 {
		s := fmt.Sprintf("%d replicas, largest lag %s", len(h.Replicas), roundLag(worst))
		if l.Type == retentionv1.DataStorePostgreSQL {
			s += fmt.Sprintf(" and %s of WAL", Bytes(worstBytes))
		}
		parts = append(parts, s)
	}
	if h.ActiveSessions >= 0 {
		parts = append(parts, fmt.Sprintf("%d active sessions", h.ActiveSessions))
	}
	if h.LockWaiters >= 0 {
		parts = append(parts, fmt.Sprintf("%d lock waiters", h.LockWaiters))
	}
	if h.ThreadsRunning >= 0 {
		parts = append(parts, fmt.Sprintf("Threads_running %d", h.ThreadsRunning))
	}
	if len(parts) == 0 {
		return "Within every health limit"
	}
	return "Within every health limit: " + strings.Join(parts, ", ")
}

// roundLag shows a lag to the millisecond below a second, to the
// hundredth of a second below ten seconds, else to the tenth.
func roundLag(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < 10*time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// Bytes shows a byte count in binary units (512B, 1.5MiB).
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	exp := int(math.Min(math.Floor(math.Log(float64(n))/math.Log(unit)), 6))
	v := float64(n) / math.Pow(unit, float64(exp))
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	return s + []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}[exp] + "B"
}

// join lists at most three items, saying how many more there are.
func join(items []string) string {
	if len(items) > 3 {
		return strings.Join(items[:3], "; ") + fmt.Sprintf("; and %d more", len(items)-3)
	}
	return strings.Join(items, "; ")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// DriverQuery is the datastore.HealthQuery for these limits, with the
// replicas' connections resolved by the caller.
func (l Limits) DriverQuery(replicas []datastore.Config) datastore.HealthQuery {
	q := l.Query()
	dq := datastore.HealthQuery{Replication: q.Replication, Sessions: q.Sessions, ThreadsRunning: q.ThreadsRunning}
	if q.Replication {
		dq.IgnoredStandbys, dq.LagLimit = l.IgnoredStandbys, l.MaxLag
	}
	if q.Replicas {
		dq.Replicas = replicas
	}
	return dq
}
