package schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxMissedCount is where MostRecent stops counting missed activations, as
// the CronJob controller does: a count of MaxMissedCount means "at least".
const MaxMissedCount = 100

// MostRecent returns the latest activation t of s with lastScheduled < t <= now
// (in UTC), and how many activations fall in (lastScheduled, now], counted up
// to MaxMissedCount. It returns the zero time and 0 when none does. Beyond
// MaxMissedCount it finds the latest activation by bisection, so its cost is
// bounded by about MaxMissedCount + 64 calls to Next whatever the gap.
func MostRecent(s *Schedule, lastScheduled, now time.Time) (missed time.Time, count int) {
	if s == nil || !lastScheduled.Before(now) {
		return time.Time{}, 0
	}
	due := func(t time.Time) bool { // is there an activation in (t, now]?
		n := s.Next(t)
		return !n.IsZero() && !n.After(now)
	}
	t := lastScheduled
	for count < MaxMissedCount {
		n := s.Next(t)
		if n.IsZero() || n.After(now) {
			return missed, count
		}
		missed, t = n, n
		count++
	}
	if !due(missed) {
		return missed, count
	}
	// At least MaxMissedCount+1 activations were missed. due is monotone (true
	// before the latest activation L, false from L on), so bisect for L.
	lo, hi := missed, now // due(lo) && !due(hi)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if due(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	// Activations are on whole seconds and (lo, hi] spans at most one second,
	// so the activation after lo is the latest one.
	return s.Next(lo), count
}

// Due decides whether a run is due at now, given the time of the last
// scheduled run (zero if there was none, in which case created, the policy's
// creation time, is the starting point; if both are zero nothing is due).
//
// At most one run is caught up: when several activations were missed only the
// most recent, runAt, is due. When a startingDeadline is set and runAt is
// more than startingDeadline before now, the run is skipped: ok is false and
// skippedReason says by how much it was missed. runAt is returned in that case
// too, so that the caller can record it (for example as lastScheduleTime) and
// report the miss once rather than on every reconcile.
//
// When ok is true and older activations were passed over, skippedReason says
// how many; it is empty otherwise. When nothing is due, runAt is zero, ok is
// false and skippedReason is empty: requeue at s.Next(now).
func Due(s *Schedule, lastScheduled, created, now time.Time, startingDeadline *time.Duration) (runAt time.Time, ok bool, skippedReason string) {
	start := lastScheduled
	if start.IsZero() {
		start = created
	}
	if start.IsZero() {
		return time.Time{}, false, ""
	}
	runAt, count := MostRecent(s, start, now)
	if runAt.IsZero() {
		return time.Time{}, false, ""
	}
	if startingDeadline != nil && runAt.Add(*startingDeadline).Before(now) {
		late := now.Sub(runAt).Truncate(time.Second)
		reason := fmt.Sprintf("missed scheduled time %s by %s, more than the starting deadline of %s",
			runAt.Format(time.RFC3339), late, startingDeadline.String())
		if count > 1 {
			reason += fmt.Sprintf("; %s missed in all", missedCount(count))
		}
		return runAt, false, reason
	}
	if count > 1 {
		return runAt, true, fmt.Sprintf("%s missed since %s; only the most recent, %s, runs",
			missedCount(count), start.UTC().Format(time.RFC3339), runAt.Format(time.RFC3339))
	}
	return runAt, true, ""
}

func missedCount(count int) string {
	if count >= MaxMissedCount {
		return fmt.Sprintf("%d or more runs", MaxMissedCount)
	}
	return fmt.Sprintf("%d runs", count)
}

const (
	maxNameLength = 63 // DNS-1123 label
	nameHashLen   = 8  // hex characters of SHA-256 of the full policy name
)

// RunName returns the deterministic name of the PurgeJob of policyName's run
// scheduled at scheduled: the policy name, "-", and the scheduled time in Unix
// minutes, as CronJob names its Jobs (for example "orders-29922900" for
// 2026-11-22T19:00Z). When the policy name is too long for a 63-character
// DNS-1123 label, or has characters a label cannot hold (a policy name may
// contain dots), its part is shortened or rewritten and followed by "-" and
// eight hex digits of the SHA-256 of the full policy name, so distinct
// policies still get distinct names.
func RunName(policyName string, scheduled time.Time) string {
	minutes := scheduled.Unix() / 60
	if scheduled.Unix()%60 < 0 {
		minutes-- // floor, so that a time before 1970 does not share a name
	}
	suffix := "-" + strconv.FormatInt(minutes, 10)
	if len(policyName)+len(suffix) <= maxNameLength && isLabelPrefix(policyName) {
		return policyName + suffix
	}
	sum := sha256.Sum256([]byte(policyName))
	hash := hex.EncodeToString(sum[:])[:nameHashLen]
	room := maxNameLength - len(suffix) - 1 - nameHashLen
	var b strings.Builder
	for i := 0; i < len(policyName) && b.Len() < room; i++ {
		c := policyName[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte('-')
		}
	}
	prefix := strings.Trim(b.String(), "-")
	if prefix == "" {
		return hash + suffix
	}
	return prefix + "-" + hash + suffix
}

// isLabelPrefix reports whether name can start a DNS-1123 label that goes on
// with "-digits": non-empty lowercase letters, digits and '-', starting with a
// letter or digit.
func isLabelPrefix(name string) bool {
	if name == "" || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
