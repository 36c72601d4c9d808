package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser is robfig/cron's standard parser (five fields plus descriptors), the
// one Kubernetes CronJob uses.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

const scheduleWant = `want five fields (minute hour day-of-month month day-of-week) or one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually, for example "0 3 * * *"`

// neverCheckFrom is the instant Parse checks a schedule fires after. It is
// fixed, so that Parse stays a pure function; robfig/cron looks five years
// ahead, which covers every leap day.
var neverCheckFrom = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// Schedule is a parsed cron schedule in a time zone. Its methods are safe for
// concurrent use.
type Schedule struct {
	spec     *cron.SpecSchedule // fields, with Location UTC: enumerates wall-clock times
	expr     string
	zone     string
	loc      *time.Location
	onceWall bool // fixed minute and hour: run once per wall-clock time on a fall-back day
}

// Parse parses a five-field cron expression or descriptor in the IANA time
// zone timeZone ("" means UTC). The manager imports time/tzdata, so every IANA
// zone loads without the host's zoneinfo.
func Parse(schedule, timeZone string) (*Schedule, error) {
	loc, zone, err := loadZone(timeZone)
	if err != nil {
		return nil, err
	}
	expr := schedule
	switch {
	case strings.TrimSpace(schedule) == "":
		return nil, fmt.Errorf("invalid schedule %q: empty; %s", schedule, scheduleWant)
	case strings.HasPrefix(schedule, "TZ=") || strings.HasPrefix(schedule, "CRON_TZ="):
		return nil, fmt.Errorf("invalid schedule %q: a time zone in the schedule is not supported, set timeZone instead", schedule)
	case strings.HasPrefix(schedule, "@every"):
		return nil, fmt.Errorf("invalid schedule %q: @every is not supported; %s", schedule, scheduleWant)
	}
	fields := strings.Fields(schedule)
	onceWall := true
	if !strings.HasPrefix(schedule, "@") {
		if len(fields) != 5 {
			return nil, fmt.Errorf("invalid schedule %q: found %d fields; %s", schedule, len(fields), scheduleWant)
		}
		fields[4] = sundaySeven(fields[4])
		expr = strings.Join(fields, " ")
		onceWall = !strings.ContainsAny(fields[0], "*?") && !strings.ContainsAny(fields[1], "*?")
	} else if schedule == "@hourly" {
		onceWall = false
	}
	parsed, err := parser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid schedule %q: %w; %s", schedule, err, scheduleWant)
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok { // only @every yields another type, and it is refused above
		return nil, fmt.Errorf("invalid schedule %q: %s", schedule, scheduleWant)
	}
	spec.Location = time.UTC // Next enumerates wall-clock times in UTC and maps them to loc
	s := &Schedule{spec: spec, expr: schedule, zone: zone, loc: loc, onceWall: onceWall}
	if s.Next(neverCheckFrom).IsZero() {
		return nil, fmt.Errorf("invalid schedule %q: it never fires (no such day in any month it names)", schedule)
	}
	return s, nil
}

// loadZone loads an IANA zone; "" means UTC.
func loadZone(timeZone string) (*time.Location, string, error) {
	if timeZone == "" {
		return time.UTC, "UTC", nil
	}
	if strings.EqualFold(timeZone, "Local") {
		return nil, "", fmt.Errorf("invalid time zone %q: name an IANA time zone explicitly, for example Europe/Berlin or UTC", timeZone)
	}
	loc, err := time.LoadLocation(timeZone)
	if err != nil {
		return nil, "", fmt.Errorf("invalid time zone %q: want an IANA time zone name, for example Europe/Berlin, Asia/Shanghai or UTC: %w", timeZone, err)
	}
	return loc, timeZone, nil
}

// sundaySeven rewrites a day-of-week field so that 7 means Sunday, as the API
// pattern and Vixie cron allow; robfig/cron only knows 0-6. Elements without
// a 7 are left alone, and anything it does not understand is passed through
// for robfig/cron to report.
func sundaySeven(field string) string {
	if !strings.Contains(field, "7") {
		return field
	}
	elems := strings.Split(field, ",")
	for i, e := range elems {
		rng, stepStr, hasStep := strings.Cut(e, "/")
		if rng == "*" || rng == "?" {
			continue
		}
		loStr, hiStr, hasHi := strings.Cut(rng, "-")
		lo, ok1 := dowValue(loStr)
		hi := lo
		ok2 := true
		if hasHi {
			hi, ok2 = dowValue(hiStr)
		} else if hasStep {
			hi = 7 // "N/step" means N through the maximum
		}
		step := 1
		if hasStep {
			var err error
			if step, err = strconv.Atoi(stepStr); err != nil || step < 1 {
				continue
			}
		}
		if !ok1 || !ok2 || lo > hi || (lo != 7 && hi != 7) {
			continue
		}
		var vals []string
		seen := map[int]bool{}
		for d := lo; d <= hi; d += step {
			v := d % 7
			if !seen[v] {
				seen[v] = true
				vals = append(vals, strconv.Itoa(v))
			}
		}
		elems[i] = strings.Join(vals, ",")
	}
	return strings.Join(elems, ",")
}

func dowValue(s string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, n >= 0 && n <= 7
	}
	for i, name := range []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} {
		if strings.EqualFold(s, name) {
			return i, true
		}
	}
	return 0, false
}

// String returns the schedule as written, with its zone, for example
// "0 3 * * * Asia/Shanghai".
func (s *Schedule) String() string { return s.expr + " " + s.zone }

// Location returns the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next returns the first activation strictly after after, in UTC. Activations
// are on whole minutes. On a spring-forward day an activation in the missing
// hour does not happen; on a fall-back day a schedule with a fixed minute and
// hour runs at the first occurrence of the repeated wall-clock time only (see
// the package documentation). Next returns the zero time when there is no
// activation within five years, which for a schedule Parse accepted only
// happens to a 29 February schedule around 2100.
//
// robfig/cron steps through wall-clock time in the schedule's zone by adding
// hours to instants, which goes wrong for DST shifts that are not a whole hour
// (Australia/Lord_Howe moves by 30 minutes: robfig skips whole days there).
// Next therefore uses robfig/cron only to enumerate matching wall-clock times
// (in UTC, where nothing shifts) and maps each to the instants that show it in
// the zone: none in a spring-forward gap, two in a fall-back overlap. For
// whole-hour shifts the result is the same as robfig/cron's, apart from the
// fall-back rule above.
func (s *Schedule) Next(after time.Time) time.Time {
	la := after.In(s.loc)
	from := wallOf(la)
	if _, end := la.ZoneBounds(); !end.IsZero() && end.Sub(after) <= maxShift {
		// The clocks may go back soon: an instant after after can show an
		// earlier wall-clock time than after does.
		from = from.Add(-maxShift)
	}
	var best, stop time.Time
	for w := s.spec.Next(from); !w.IsZero(); w = s.spec.Next(w) {
		if !best.IsZero() && w.After(stop) {
			break
		}
		for _, i := range s.instants(w) {
			if !i.After(after) || (s.onceWall && isRepeat(i)) {
				continue
			}
			if best.IsZero() || i.Before(best) {
				best, stop = i, w
				if start, _ := i.ZoneBounds(); start.After(after) {
					// A zone change lies between after and best: a later
					// wall-clock time may still map to an earlier instant.
					stop = w.Add(maxShift)
				}
			}
			break // instants are ascending
		}
	}
	if best.IsZero() {
		return time.Time{}
	}
	return best.UTC()
}

// maxShift bounds how far a zone's clocks move at one transition (in practice
// at most two hours: Antarctica/Troll).
const maxShift = 3 * time.Hour

// wallOf returns the wall-clock reading of t as a UTC instant.
func wallOf(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	return time.Date(y, mo, d, h, mi, sec, t.Nanosecond(), time.UTC)
}

// instants returns, in ascending order, the instants whose wall-clock reading
// in the schedule's zone is w (given as a UTC instant): usually one, none in a
// spring-forward gap, two in a fall-back overlap.
func (s *Schedule) instants(w time.Time) []time.Time {
	y, mo, d := w.Date()
	h, mi, sec := w.Clock()
	g := time.Date(y, mo, d, h, mi, sec, 0, s.loc)
	start, end := g.ZoneBounds()
	_, off := g.Zone()
	offs := []int{off}
	if !start.IsZero() {
		_, o := start.Add(-time.Nanosecond).Zone()
		offs = append(offs, o)
	}
	if !end.IsZero() {
		_, o := end.Zone()
		offs = append(offs, o)
	}
	var out []time.Time
	for _, o := range offs {
		i := w.Add(-time.Duration(o) * time.Second).In(s.loc)
		if !wallOf(i).Equal(w) {
			continue
		}
		dup := false
		for _, e := range out {
			dup = dup || e.Equal(i)
		}
		if !dup {
			out = append(out, i)
		}
	}
	if len(out) == 2 && out[1].Before(out[0]) {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

// isRepeat reports whether the wall-clock reading of t (in t's location)
// already happened earlier, because the clocks were set back less than that
// long before t.
func isRepeat(t time.Time) bool {
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return false
	}
	_, offNow := t.Zone()
	_, offBefore := start.Add(-time.Nanosecond).Zone()
	back := time.Duration(offBefore-offNow) * time.Second
	return back > 0 && t.Sub(start) < back
}

// AddWall returns the first instant after t at which the schedule's zone's
// wall clock shows t's wall-clock reading plus d (d > 0): a purge window
// that opens at 01:00 for 4h closes when the clocks show 05:00, also on the
// nights the clocks change. A wall-clock time that happens twice (fall back)
// is taken at its first occurrence after t; one that does not exist (spring
// forward) is taken as the instant the clocks jump over it.
func (s *Schedule) AddWall(t time.Time, d time.Duration) time.Time {
	w := wallOf(t.In(s.loc)).Add(d)
	for _, i := range s.instants(w) {
		if i.After(t) {
			return i.UTC()
		}
	}
	// In a spring-forward gap: the first instant showing a later wall-clock
	// time is the transition that jumps over w, the start or the end of the
	// zone period time.Date picked for w.
	y, mo, day := w.Date()
	h, mi, sec := w.Clock()
	g := time.Date(y, mo, day, h, mi, sec, w.Nanosecond(), s.loc)
	start, end := g.ZoneBounds()
	for _, tr := range []time.Time{start, end} {
		if !tr.IsZero() && tr.After(t) && wallOf(tr.In(s.loc)).After(w) && !wallOf(tr.Add(-time.Nanosecond).In(s.loc)).After(w) {
			return tr.UTC()
		}
	}
	if end := t.Add(d); end.After(t) {
		return end.UTC()
	}
	return t.UTC()
}
