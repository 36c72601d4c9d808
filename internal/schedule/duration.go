package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Unit is the unit of a Retention.
type Unit string

const (
	// UnitHour is 3600 seconds of elapsed time.
	UnitHour Unit = "h"
	// UnitDay is exactly 24 hours of elapsed time, not a calendar day.
	UnitDay Unit = "d"
	// UnitWeek is exactly 7×24 hours of elapsed time.
	UnitWeek Unit = "w"
	// UnitMonth is a calendar month in UTC, clamped to the month's last day.
	UnitMonth Unit = "mo"
	// UnitYear is twelve calendar months in UTC, clamped the same way.
	UnitYear Unit = "y"
)

// MaxCount is the largest number a RetentionDuration or WaitDuration may
// carry: the API pattern allows at most five digits.
const MaxCount = 99999

// MaxYears bounds every RetentionDuration and WaitDuration: at most 100
// years, so that no cutoff, deadline or review window computed from one
// leaves the range of dates the Kubernetes API can store (years 0000–9999).
const MaxYears = 100

// MaxOf returns the largest count allowed for a unit: 99999h (the API's five
// digits), 36525d, 5218w, 1200mo or 100y; 0 for an unknown unit.
func MaxOf(u Unit) int {
	switch u {
	case UnitHour:
		return MaxCount
	case UnitDay:
		return 36525
	case UnitWeek:
		return 5218
	case UnitMonth:
		return MaxYears * 12
	case UnitYear:
		return MaxYears
	}
	return 0
}

// MinTime and MaxTime bound the instants Lethe computes and writes to the
// API: RFC 3339 in the API server has four-digit years.
var (
	MinTime = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC)
)

// Retention is a parsed RetentionDuration or WaitDuration such as 90d or 18mo.
// Use ParseRetention or ParseWait to build one. A Retention that is not Valid
// (unknown unit, negative or too large count, including the zero value
// Retention{}) never produces a cutoff that deletes anything: Before returns
// the zero time and After returns FarFuture.
type Retention struct {
	// Count is the number of units, 0 to MaxOf(Unit).
	Count int
	// Unit is one of UnitHour, UnitDay, UnitWeek, UnitMonth, UnitYear.
	Unit Unit
}

// FarFuture is what After returns for an invalid Retention: a deadline or
// review window that never ends, so nothing is ever released early by mistake.
var FarFuture = time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC)

const (
	retentionWant = "want a positive number and one unit (h, d, w, mo, y), for example 90d"
	waitWant      = "want zero or a positive number and one unit (h, d, w, mo, y), for example 48h or 0h"
	timeoutWant   = "want a positive number and one unit (ms, s, m), for example 5s"
)

// ParseRetention parses a RetentionDuration: a positive whole number of at
// most five digits without leading zeros, then one of h, d, w, mo, y.
func ParseRetention(s string) (Retention, error) {
	r, hint, ok := parseRetention(s, false)
	if !ok {
		return Retention{}, fmt.Errorf("invalid duration %q: %s%s", s, retentionWant, hint)
	}
	return r, nil
}

// ParseWait parses a WaitDuration: like ParseRetention, but zero ("0h", "0d")
// is allowed and means no wait.
func ParseWait(s string) (Retention, error) {
	r, hint, ok := parseRetention(s, true)
	if !ok {
		return Retention{}, fmt.Errorf("invalid wait %q: %s%s", s, waitWant, hint)
	}
	return r, nil
}

// parseRetention implements ^(0|[1-9][0-9]{0,4})(h|d|w|mo|y)$ (without the
// "0|" when allowZero is false). On failure it returns a hint for the error
// message, starting with " (" or empty.
func parseRetention(s string, allowZero bool) (Retention, string, bool) {
	digits, unit := splitNumber(s)
	switch {
	case strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\n\r"):
		return Retention{}, " (no whitespace)", false
	case digits == "":
		return Retention{}, "", false
	case len(digits) > 5:
		return Retention{}, " (at most 5 digits)", false
	case digits == "0" && !allowZero:
		return Retention{}, " (zero is not a retention period)", false
	case digits[0] == '0' && digits != "0":
		return Retention{}, " (no leading zeros)", false
	}
	n, err := strconv.Atoi(digits)
	if err != nil { // cannot happen: at most 5 ASCII digits
		return Retention{}, "", false
	}
	switch u := Unit(unit); u {
	case UnitHour, UnitDay, UnitWeek, UnitMonth, UnitYear:
		if n > MaxOf(u) {
			return Retention{}, fmt.Sprintf(" (at most %d years: at most %d%s)", MaxYears, MaxOf(u), u), false
		}
		return Retention{Count: n, Unit: u}, "", true
	case "m", "min", "mins", "minute", "minutes":
		return Retention{}, fmt.Sprintf(" (minutes are not a unit, so %sm is never read as months: write %smo for months)", digits, digits), false
	case "ms", "s":
		return Retention{}, " (seconds are not a unit)", false
	default:
		if l := Unit(strings.ToLower(unit)); l == UnitHour || l == UnitDay || l == UnitWeek || l == UnitMonth || l == UnitYear {
			return Retention{}, " (units are lowercase)", false
		}
		return Retention{}, "", false
	}
}

// splitNumber splits s into its leading ASCII digits and the rest.
func splitNumber(s string) (digits, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// Valid reports whether r is within the API grammar (a known unit and
// 0 ≤ Count ≤ MaxOf(Unit), at most 100 years). ParseRetention and ParseWait
// only return valid values.
func (r Retention) Valid() bool {
	return MaxOf(r.Unit) > 0 && r.Count >= 0 && r.Count <= MaxOf(r.Unit)
}

// IsZero reports whether r is a zero-length wait such as "0h".
func (r Retention) IsZero() bool { return r.Valid() && r.Count == 0 }

// String returns the canonical form, for example "90d"; for any value
// returned by ParseRetention or ParseWait it is the parsed input.
func (r Retention) String() string {
	return strconv.Itoa(r.Count) + string(r.Unit)
}

// Before returns the cutoff of a run at t, in UTC: records older than the
// returned instant are past their retention period. Hours, days and weeks are
// subtracted as exact elapsed time; months and years are calendar arithmetic
// in UTC, clamped to the last day of the target month (1mo before 31 March is
// 28 or 29 February, never 3 March), so the cutoff is never later than the
// calendar boundary and nothing younger than the promise is deleted. An
// invalid r returns the zero time, which deletes nothing.
func (r Retention) Before(t time.Time) time.Time {
	if !r.Valid() {
		return time.Time{}
	}
	return r.shift(t, -1)
}

// After returns t plus r, in UTC, with the same arithmetic as Before (31
// January + 1mo = 28 or 29 February). It is meant for deadlines and review
// windows. An invalid r returns FarFuture, which never releases anything.
func (r Retention) After(t time.Time) time.Time {
	if !r.Valid() {
		return FarFuture
	}
	return r.shift(t, 1)
}

// Cutoff is Before with an error instead of a silent zero time: when r is
// not valid, or the cutoff would fall before year 1 (which the API cannot
// store), it says so.
func (r Retention) Cutoff(t time.Time) (time.Time, error) {
	if !r.Valid() {
		return time.Time{}, fmt.Errorf("duration %s is out of range (at most %d years)", r, MaxYears)
	}
	c := r.shift(t, -1)
	if c.Before(MinTime) || c.After(t) {
		return time.Time{}, fmt.Errorf("%s before %s is out of the range of dates the API can store", r, t.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// Deadline is After with an error instead of FarFuture: when r is not valid,
// or t plus r would fall after year 9999 (which the API cannot store), it
// says so.
func (r Retention) Deadline(t time.Time) (time.Time, error) {
	if !r.Valid() {
		return time.Time{}, fmt.Errorf("duration %s is out of range (at most %d years)", r, MaxYears)
	}
	d := r.shift(t, 1)
	if d.After(MaxTime) || d.Before(t) {
		return time.Time{}, fmt.Errorf("%s after %s is out of the range of dates the API can store", r, t.UTC().Format(time.RFC3339))
	}
	return d, nil
}

// MaxStartingDeadlineSeconds is the largest startingDeadlineSeconds the API
// accepts: one year.
const MaxStartingDeadlineSeconds = 365 * 24 * 3600

// StartingDeadline converts a RetentionPolicy's startingDeadlineSeconds into
// a duration. Values beyond MaxStartingDeadlineSeconds or negative ones are
// an error rather than a silently overflowed (negative) duration that would
// skip every run.
func StartingDeadline(seconds int64) (time.Duration, error) {
	if seconds < 0 || seconds > MaxStartingDeadlineSeconds {
		return 0, fmt.Errorf("startingDeadlineSeconds %d is out of range: 0 to %d (one year)", seconds, MaxStartingDeadlineSeconds)
	}
	return time.Duration(seconds) * time.Second, nil
}

func (r Retention) shift(t time.Time, sign int64) time.Time {
	n := int64(r.Count) * sign
	switch r.Unit {
	case UnitHour:
		return addHours(t, n)
	case UnitDay:
		return addHours(t, n*24)
	case UnitWeek:
		return addHours(t, n*7*24)
	case UnitMonth:
		return addMonths(t, n)
	default: // UnitYear
		return addMonths(t, n*12)
	}
}

// addHours adds h hours of elapsed time. It works on Unix seconds because
// 99999w is more hours than a time.Duration can hold.
func addHours(t time.Time, h int64) time.Time {
	return time.Unix(t.Unix()+h*3600, int64(t.Nanosecond())).UTC()
}

// addMonths adds n calendar months to t in UTC, keeping the time of day and
// clamping the day of month to the target month's last day.
func addMonths(t time.Time, n int64) time.Time {
	u := t.UTC()
	y, m, d := u.Date()
	total := int64(y)*12 + int64(m-1) + n
	ty := total / 12
	if total%12 < 0 {
		ty--
	}
	tm := time.Month(total-ty*12) + 1
	if last := daysIn(int(ty), tm); d > last {
		d = last
	}
	return time.Date(int(ty), tm, d, u.Hour(), u.Minute(), u.Second(), u.Nanosecond(), time.UTC)
}

// daysIn returns the number of days of month m of year y.
func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// MaxTimeout bounds a Timeout (statement and lock timeouts, probe interval).
const MaxTimeout = 24 * time.Hour

// ParseTimeout parses a Timeout: a positive whole number of at most seven
// digits without leading zeros, then one of ms, s, m; at most MaxTimeout.
func ParseTimeout(s string) (time.Duration, error) {
	digits, unit := splitNumber(s)
	hint := ""
	switch {
	case strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\n\r"):
		hint = " (no whitespace)"
	case digits == "":
	case len(digits) > 7:
		hint = " (at most 7 digits)"
	case digits[0] == '0':
		if digits == "0" {
			hint = " (zero is not a timeout)"
		} else {
			hint = " (no leading zeros)"
		}
	default:
		n, _ := strconv.ParseInt(digits, 10, 64) // at most 7 digits: cannot fail
		var d time.Duration
		switch unit {
		case "ms":
			d = time.Duration(n) * time.Millisecond
		case "s":
			d = time.Duration(n) * time.Second
		case "m":
			d = time.Duration(n) * time.Minute
		case "h":
			hint = fmt.Sprintf(" (hours are not a unit: write %dm)", n*60)
		case "us", "µs", "ns":
			hint = " (use ms)"
		case "MS", "Ms", "S", "M":
			hint = " (units are lowercase)"
		}
		switch {
		case d > MaxTimeout:
			hint = " (at most 24 hours: 1440m)"
		case d > 0:
			return d, nil
		}
	}
	return 0, fmt.Errorf("invalid timeout %q: %s%s", s, timeoutWant, hint)
}
