// Package window decides when purges may run against a DataStore: its
// spec.windows, each a cron schedule of start times in an IANA time zone
// and a duration. Like internal/schedule, nothing here reads the clock:
// every function takes the instant it answers for.
//
// A window opens at each activation of its schedule (internal/schedule:
// robfig/cron's five fields, with its daylight saving rules: a start in a
// spring-forward gap does not happen that day, a fixed start in a
// fall-back hour happens once) and closes when the zone's wall clock shows
// the start's wall-clock time plus the duration: "0 1 * * *" for 4h in
// Europe/Berlin is open from 01:00 to 05:00 local time every night, also on
// the nights the clocks change (then it lasts 3 or 5 hours of elapsed
// time). A window may cross midnight ("0 22 * * *" for 4h closes at 02:00
// the next day). Windows that overlap or touch are one open period. No
// windows means always open.
package window

import (
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/schedule"
)

// MaxDuration bounds a window's duration (the API allows at most 7 days).
const MaxDuration = 7 * 24 * time.Hour

// maxShift bounds how far a zone's clocks move at one transition, as in
// internal/schedule: a window's elapsed length differs from its duration
// by at most this much.
const maxShift = 3 * time.Hour

// lookAhead bounds how far ahead State follows overlapping windows to find
// when an open period closes, and maxSteps how many starts it looks at: a
// period that is still open then is reported as closing no earlier than
// that (Closes is a lower bound then; Open is always exact).
const (
	lookAhead = 35 * 24 * time.Hour
	maxSteps  = 2000
)

// Spec is one window as the API declares it.
type Spec struct {
	// Schedule is a cron expression of the window's start times.
	Schedule string
	// Duration is how long the window stays open, as time.ParseDuration
	// reads it ("4h", "30m", "1h30m"): more than 0, at most MaxDuration.
	Duration string
	// TimeZone is the IANA zone of the schedule ("" means UTC).
	TimeZone string
}

// Window is one parsed window.
type Window struct {
	sched *schedule.Schedule
	dur   time.Duration
}

// Set is the windows of one DataStore. The zero Set (no windows) is always
// open.
type Set struct {
	windows []Window
}

// Parse parses a DataStore's windows. An error names the window (by its
// index) and what is wrong, without personal data.
func Parse(specs []Spec) (Set, error) {
	var s Set
	for i, sp := range specs {
		sched, err := schedule.Parse(sp.Schedule, sp.TimeZone)
		if err != nil {
			return Set{}, fmt.Errorf("windows[%d]: %w", i, err)
		}
		d, err := time.ParseDuration(sp.Duration)
		if err != nil {
			return Set{}, fmt.Errorf("windows[%d]: invalid duration %q: want a duration such as 4h, 30m or 1h30m", i, sp.Duration)
		}
		if d <= 0 || d > MaxDuration {
			return Set{}, fmt.Errorf("windows[%d]: duration %s: want more than 0 and at most 7 days (168h)", i, sp.Duration)
		}
		s.windows = append(s.windows, Window{sched: sched, dur: d})
	}
	return s, nil
}

// Always reports whether the set has no windows: purges may run at any time.
func (s Set) Always() bool { return len(s.windows) == 0 }

// State is whether purges may run at an instant.
type State struct {
	// Open: a window is open.
	Open bool
	// Opens is, when closed, when the next window opens (zero if none
	// opens within five years, which for a parsed schedule only happens to
	// a 29 February one around 2100).
	Opens time.Time
	// Closes is, when open, when the open period ends: the end of the
	// window open now, extended by every window that overlaps or touches
	// it (zero for a Set with no windows, which never closes).
	Closes time.Time
}

// At returns the state at now.
func (s Set) At(now time.Time) State {
	now = now.UTC()
	if s.Always() {
		return State{Open: true}
	}
	closes := time.Time{}
	for _, w := range s.windows {
		if end, ok := w.openAt(now); ok && end.After(closes) {
			closes = end
		}
	}
	if closes.IsZero() {
		return State{Opens: s.next(now)}
	}
	return State{Open: true, Closes: s.extend(now, closes)}
}

// next returns when the next window opens strictly after now (zero if
// none within five years).
func (s Set) next(now time.Time) time.Time {
	var best time.Time
	for _, w := range s.windows {
		if n := w.sched.Next(now); !n.IsZero() && (best.IsZero() || n.Before(best)) {
			best = n
		}
	}
	return best
}

// end is when the window that opens at start closes.
func (w Window) end(start time.Time) time.Time { return w.sched.AddWall(start, w.dur) }

// openAt reports whether the window is open at now and, if so, when the
// latest of its occurrences open at now closes.
func (w Window) openAt(now time.Time) (time.Time, bool) {
	var closes time.Time
	steps := 0
	// A start that is still open at now lies after now-dur-maxShift.
	for s := w.sched.Next(now.Add(-w.dur - maxShift)); !s.IsZero() && !s.After(now) && steps < maxSteps; s = w.sched.Next(s) {
		steps++
		if e := w.end(s); e.After(now) && e.After(closes) {
			closes = e
		}
	}
	return closes, !closes.IsZero()
}

// extend follows windows that open before the open period ends (overlapping
// or touching it) to find when it really closes.
func (s Set) extend(now, closes time.Time) time.Time {
	limit := now.Add(lookAhead)
	from := make([]time.Time, len(s.windows)) // the last start looked at, per window
	for i := range from {
		from[i] = now
	}
	for steps := 0; steps < maxSteps && closes.Before(limit); {
		grown := false
		for i, w := range s.windows {
			// Every start in (now, closes] keeps the period open until its end.
			for st := w.sched.Next(from[i]); !st.IsZero() && !st.After(closes) && st.Before(limit) && steps < maxSteps; st = w.sched.Next(st) {
				steps++
				from[i] = st
				if e := w.end(st); e.After(closes) {
					closes, grown = e, true
				}
			}
		}
		if !grown {
			break
		}
	}
	return closes
}
