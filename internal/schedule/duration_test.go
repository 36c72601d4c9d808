package schedule

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseRetention(t *testing.T) {
	valid := map[string]Retention{
		"36h":    {36, UnitHour},
		"90d":    {90, UnitDay},
		"6w":     {6, UnitWeek},
		"18mo":   {18, UnitMonth},
		"3y":     {3, UnitYear},
		"1h":     {1, UnitHour},
		"100y":   {100, UnitYear},
		"1200mo": {1200, UnitMonth},
		"5218w":  {5218, UnitWeek},
		"36525d": {36525, UnitDay},
		"99999h": {99999, UnitHour},
	}
	for in, want := range valid {
		got, err := ParseRetention(in)
		if err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("String() = %q, want %q", got.String(), in)
		}
	}
	invalid := map[string]string{
		"":            "",
		"90 days":     " (no whitespace)",
		"90days":      "",
		"0d":          " (zero is not a retention period)",
		"090d":        " (no leading zeros)",
		"-1d":         "",
		"+1d":         "",
		"100000d":     " (at most 5 digits)",
		"6m":          " (minutes are not a unit, so 6m is never read as months: write 6mo for months)",
		"30s":         " (seconds are not a unit)",
		"90D":         " (units are lowercase)",
		"1MO":         " (units are lowercase)",
		"d":           "",
		"90":          "",
		"1.5d":        "",
		"1d2h":        "",
		"90d ":        " (no whitespace)",
		"1y\n":        " (no whitespace)",
		"９０d":         "",
		"90dd":        "",
		"1month":      "",
		"P90D":        "",
		"2147483648h": " (at most 5 digits)",
		// At most 100 years, whatever the unit.
		"101y":    " (at most 100 years: at most 100y)",
		"5000y":   " (at most 100 years: at most 100y)",
		"99999y":  " (at most 100 years: at most 100y)",
		"1201mo":  " (at most 100 years: at most 1200mo)",
		"99999mo": " (at most 100 years: at most 1200mo)",
		"5219w":   " (at most 100 years: at most 5218w)",
		"36526d":  " (at most 100 years: at most 36525d)",
	}
	for in, hint := range invalid {
		_, err := ParseRetention(in)
		if err == nil {
			t.Errorf("ParseRetention(%q) succeeded", in)
			continue
		}
		want := `invalid duration "` + strings.ReplaceAll(in, "\n", `\n`) + `": want a positive number and one unit (h, d, w, mo, y), for example 90d` + hint
		if err.Error() != want {
			t.Errorf("ParseRetention(%q) error\n got %s\nwant %s", in, err, want)
		}
	}
	if _, err := ParseRetention("90 days"); err == nil || err.Error() != `invalid duration "90 days": want a positive number and one unit (h, d, w, mo, y), for example 90d (no whitespace)` {
		t.Errorf("the example from the brief: %v", err)
	}
}

func TestParseWait(t *testing.T) {
	for in, want := range map[string]Retention{"0h": {0, UnitHour}, "0d": {0, UnitDay}, "48h": {48, UnitHour}, "30d": {30, UnitDay}, "1mo": {1, UnitMonth}} {
		got, err := ParseWait(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseWait(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "00h", "01h", "-0h", "0", "h", "0m", "100000h"} {
		_, err := ParseWait(in)
		if err == nil || !strings.HasPrefix(err.Error(), `invalid wait "`+in+`": want zero or a positive number and one unit (h, d, w, mo, y), for example 48h or 0h`) {
			t.Errorf("ParseWait(%q) error = %v", in, err)
		}
	}
	z, _ := ParseWait("0h")
	if !z.IsZero() {
		t.Error("0h is not IsZero")
	}
	at := utc(t, "2026-11-22T19:00:00Z")
	if !z.After(at).Equal(at) || !z.Before(at).Equal(at) {
		t.Error("a zero wait moves time")
	}
	if (Retention{}).IsZero() {
		t.Error("the invalid zero value Retention{} reports IsZero")
	}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"500ms": 500 * time.Millisecond, "5s": 5 * time.Second, "2m": 2 * time.Minute, "1ms": time.Millisecond,
		"1440m": 24 * time.Hour, "86400s": 24 * time.Hour, "9999999ms": 9999999 * time.Millisecond,
	} {
		if got, err := ParseTimeout(in); err != nil || got != want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, hint := range map[string]string{
		"":          "",
		"0s":        " (zero is not a timeout)",
		"05s":       " (no leading zeros)",
		"5":         "",
		"1h":        " (hours are not a unit: write 60m)",
		"10us":      " (use ms)",
		"5S":        " (units are lowercase)",
		"1m30s":     "",
		"1.5s":      "",
		"5 s":       " (no whitespace)",
		"10000000s": " (at most 7 digits)",
		"-5s":       "",
		"1441m":     " (at most 24 hours: 1440m)",
		"9999999m":  " (at most 24 hours: 1440m)",
		"86401s":    " (at most 24 hours: 1440m)",
	} {
		_, err := ParseTimeout(in)
		want := `invalid timeout "` + in + `": want a positive number and one unit (ms, s, m), for example 5s` + hint
		if err == nil || err.Error() != want {
			t.Errorf("ParseTimeout(%q) error\n got %v\nwant %s", in, err, want)
		}
	}
}

func TestBefore(t *testing.T) {
	tests := []struct {
		r, at, want string
	}{
		// Exact units.
		{"36h", "2026-11-22T19:00:00Z", "2026-11-21T07:00:00Z"},
		{"90d", "2026-06-30T12:34:56.789Z", "2026-04-01T12:34:56.789Z"},
		{"6w", "2026-11-22T19:00:00Z", "2026-10-11T19:00:00Z"},
		// 90d is 2160 hours of elapsed time, whatever Berlin's clocks did
		// (the span crosses the 2026-03-29 spring forward).
		{"90d", "2026-04-15T12:00:00+02:00", "2026-01-15T10:00:00Z"},
		// Calendar months in UTC, clamped to the last day of the month.
		{"1mo", "2026-03-31T10:00:00Z", "2026-02-28T10:00:00Z"}, // AddDate would give 2026-03-03
		{"1mo", "2024-03-31T10:00:00Z", "2024-02-29T10:00:00Z"}, // leap year
		{"1mo", "2026-03-28T10:00:00Z", "2026-02-28T10:00:00Z"},
		{"1mo", "2026-03-01T10:00:00Z", "2026-02-01T10:00:00Z"},
		{"1mo", "2026-05-31T23:59:59.999999999Z", "2026-04-30T23:59:59.999999999Z"},
		{"1mo", "2026-01-15T00:00:00Z", "2025-12-15T00:00:00Z"},
		{"13mo", "2026-01-15T00:00:00Z", "2024-12-15T00:00:00Z"},
		{"18mo", "2026-08-31T00:00:00Z", "2025-02-28T00:00:00Z"},
		{"12mo", "2028-02-29T00:00:00Z", "2027-02-28T00:00:00Z"},
		// Calendar in UTC, not in the input's zone: 2026-04-01T01:00+02:00 is 31 March in UTC.
		{"1mo", "2026-04-01T01:00:00+02:00", "2026-02-28T23:00:00Z"},
		// Years.
		{"1y", "2028-02-29T00:00:00Z", "2027-02-28T00:00:00Z"}, // AddDate would give 2027-03-01
		{"4y", "2028-02-29T00:00:00Z", "2024-02-29T00:00:00Z"},
		{"1y", "2025-02-28T12:00:00Z", "2024-02-28T12:00:00Z"},
		{"1y", "2029-03-01T00:00:00Z", "2028-03-01T00:00:00Z"},
		{"3y", "2026-11-22T19:00:00Z", "2023-11-22T19:00:00Z"},
		{"3y", "2027-02-28T00:00:00Z", "2024-02-28T00:00:00Z"},
		{"3y", "2027-03-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		// The largest values stay exact.
		{"99999h", "2026-11-22T19:00:00Z", "2015-06-27T04:00:00Z"},
		{"5218w", "2026-11-22T19:00:00Z", "1926-11-21T19:00:00Z"},
		{"100y", "2026-11-22T19:00:00Z", "1926-11-22T19:00:00Z"},
	}
	for _, tt := range tests {
		r, err := ParseRetention(tt.r)
		if err != nil {
			t.Fatal(err)
		}
		at, want := utc(t, tt.at), utc(t, tt.want)
		got := r.Before(at)
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s before %s = %s, want %s", tt.r, tt.at, got.Format(time.RFC3339Nano), tt.want)
		}
		// After undoes Before whenever no clamping happened.
		if back := r.After(got); r.Unit != UnitMonth && r.Unit != UnitYear && !back.Equal(at) {
			t.Errorf("%s after %s = %s, want %s", tt.r, got, back, at)
		}
	}
	// Exact units agree with time.Duration arithmetic.
	at := utc(t, "2026-11-22T19:00:00Z")
	for _, r := range []Retention{{90, UnitDay}, {6, UnitWeek}, {36, UnitHour}, {36525, UnitDay}} {
		unit := map[Unit]time.Duration{UnitHour: time.Hour, UnitDay: 24 * time.Hour, UnitWeek: 7 * 24 * time.Hour}[r.Unit]
		if got, want := r.Before(at), at.Add(-time.Duration(r.Count)*unit); !got.Equal(want) {
			t.Errorf("%s before %s = %s, want %s", r, at, got, want)
		}
	}
	// The largest year count does not panic or wrap.
	if got := (Retention{MaxYears, UnitYear}).Before(at); got.Year() != 2026-MaxYears {
		t.Errorf("100y before %s = %s", at, got)
	}
}

func TestAfter(t *testing.T) {
	tests := []struct {
		r, at, want string
	}{
		{"48h", "2026-11-22T19:00:00Z", "2026-11-24T19:00:00Z"},
		{"30d", "2026-10-20T12:00:00Z", "2026-11-19T12:00:00Z"},
		{"1mo", "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"1mo", "2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z"},
		{"1mo", "2026-12-15T08:00:00Z", "2027-01-15T08:00:00Z"},
		{"1y", "2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"},
		{"2w", "2026-03-20T12:00:00+01:00", "2026-04-03T11:00:00Z"},
	}
	for _, tt := range tests {
		r, err := ParseWait(tt.r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.After(utc(t, tt.at)); !got.Equal(utc(t, tt.want)) || got.Location() != time.UTC {
			t.Errorf("%s after %s = %s, want %s", tt.r, tt.at, got, tt.want)
		}
	}
}

// TestBeforeNeverDeletesYoungData checks the promise of the clamping: a
// record just older than the cutoff is at least the full period old (adding
// the period to it, with the same arithmetic, does not pass the run's
// instant), and the clamped cutoff is never later than Go's AddDate.
func TestBeforeNeverDeletesYoungData(t *testing.T) {
	start := utc(t, "2023-01-01T10:00:00Z")
	for _, r := range []Retention{{1, UnitMonth}, {2, UnitMonth}, {11, UnitMonth}, {18, UnitMonth}, {1, UnitYear}, {3, UnitYear}} {
		for day := 0; day < 6*366; day++ {
			now := start.AddDate(0, 0, day)
			cut := r.Before(now)
			if oldest := cut.Add(-time.Nanosecond); r.After(oldest).After(now) {
				t.Fatalf("%s at %s: a record at %s is deleted but is only %s old", r, now, oldest, r)
			}
			months := r.Count
			if r.Unit == UnitYear {
				months *= 12
			}
			if norm := now.AddDate(0, -months, 0); cut.After(norm) {
				t.Fatalf("%s at %s: cutoff %s is later than AddDate's %s", r, now, cut, norm)
			}
			if now.Sub(cut) < time.Duration(months)*28*24*time.Hour {
				t.Fatalf("%s at %s: cutoff %s is less than %d×28 days back", r, now, cut, months)
			}
		}
	}
}

func TestInvalidRetentionIsSafe(t *testing.T) {
	at := utc(t, "2026-11-22T19:00:00Z")
	for _, r := range []Retention{{}, {Count: 5}, {Count: -1, Unit: UnitDay}, {Count: MaxCount + 1, Unit: UnitDay},
		{Count: 101, Unit: UnitYear}, {Count: 5000, Unit: UnitYear}, {Count: 1201, Unit: UnitMonth}, {Count: 36526, Unit: UnitDay}, {Count: 3, Unit: "m"}} {
		if r.Valid() {
			t.Errorf("%#v is Valid", r)
		}
		if got := r.Before(at); !got.IsZero() {
			t.Errorf("%#v.Before = %s, want the zero time (deletes nothing)", r, got)
		}
		if got := r.After(at); !got.Equal(FarFuture) {
			t.Errorf("%#v.After = %s, want FarFuture", r, got)
		}
		if got, err := r.Cutoff(at); err == nil {
			t.Errorf("%#v.Cutoff = %s, want an error", r, got)
		}
		if got, err := r.Deadline(at); err == nil {
			t.Errorf("%#v.Deadline = %s, want an error", r, got)
		}
	}
}

// TestCutoffAndDeadlineStayInTheAPIRange: a computed instant the API server
// cannot store (years outside 0001–9999) is an error, never a silly time
// that fails the status write and leaves the object without conditions.
func TestCutoffAndDeadlineStayInTheAPIRange(t *testing.T) {
	tests := []struct {
		r, at         string
		cutoffErr     bool
		deadlineErr   bool
		cutoff, until string
	}{
		{"100y", "2026-11-22T19:00:00Z", false, false, "1926-11-22T19:00:00Z", "2126-11-22T19:00:00Z"},
		{"1200mo", "2026-01-31T00:00:00Z", false, false, "1926-01-31T00:00:00Z", "2126-01-31T00:00:00Z"},
		{"99999h", "2026-11-22T19:00:00Z", false, false, "2015-06-27T04:00:00Z", "2038-04-20T10:00:00Z"},
		// Near the ends of the API's range.
		{"100y", "0050-06-01T00:00:00Z", true, false, "", "0150-06-01T00:00:00Z"},
		{"1y", "9999-06-01T00:00:00Z", false, true, "9998-06-01T00:00:00Z", ""},
		{"36525d", "9950-01-01T00:00:00Z", false, true, "9849-12-31T00:00:00Z", ""},
		{"1h", "9999-12-31T23:30:00Z", false, true, "9999-12-31T22:30:00Z", ""},
	}
	for _, tt := range tests {
		r, err := ParseRetention(tt.r)
		if err != nil {
			t.Fatal(err)
		}
		at := utc(t, tt.at)
		c, err := r.Cutoff(at)
		if (err != nil) != tt.cutoffErr || (!tt.cutoffErr && !c.Equal(utc(t, tt.cutoff))) {
			t.Errorf("%s.Cutoff(%s) = %s, %v", tt.r, tt.at, c, err)
		}
		d, err := r.Deadline(at)
		if (err != nil) != tt.deadlineErr || (!tt.deadlineErr && !d.Equal(utc(t, tt.until))) {
			t.Errorf("%s.Deadline(%s) = %s, %v", tt.r, tt.at, d, err)
		}
		if err != nil && !strings.Contains(err.Error(), "out of the range of dates the API can store") {
			t.Errorf("%s.Deadline(%s) error %q does not say why", tt.r, tt.at, err)
		}
	}
}

func TestStartingDeadline(t *testing.T) {
	for secs, want := range map[int64]time.Duration{0: 0, 3600: time.Hour, MaxStartingDeadlineSeconds: 365 * 24 * time.Hour} {
		if got, err := StartingDeadline(secs); err != nil || got != want {
			t.Errorf("StartingDeadline(%d) = %s, %v; want %s", secs, got, err, want)
		}
	}
	// 10000000000 s overflows time.Duration (int64 nanoseconds) into a
	// negative value that would skip every run: an error instead.
	for _, secs := range []int64{-1, MaxStartingDeadlineSeconds + 1, 10000000000, 1 << 62} {
		if got, err := StartingDeadline(secs); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("StartingDeadline(%d) = %s, %v; want an out-of-range error", secs, got, err)
		}
	}
}

// The admission patterns of RetentionDuration and WaitDuration (common_types.go).
var (
	apiRetentionPattern = withinBound{regexp.MustCompile(`^[1-9][0-9]{0,4}(h|d|w|mo|y)$`)}
	apiWaitPattern      = withinBound{regexp.MustCompile(`^(0|[1-9][0-9]{0,4})(h|d|w|mo|y)$`)}
	apiTimeoutPattern   = timeoutBound{regexp.MustCompile(`^[1-9][0-9]{0,6}(ms|s|m)$`)}
)

// withinBound adds the second CEL rule of RetentionDuration and WaitDuration:
// at most 100y, 1200mo, 5218w, 36525d.
type withinBound struct{ re *regexp.Regexp }

func (b withinBound) MatchString(s string) bool {
	if !b.re.MatchString(s) {
		return false
	}
	digits, unit := splitNumber(s)
	n, _ := strconv.Atoi(digits)
	return n <= map[string]int{"h": 99999, "d": 36525, "w": 5218, "mo": 1200, "y": 100}[unit]
}

// timeoutBound adds the second CEL rule of Timeout: at most 24 hours.
type timeoutBound struct{ re *regexp.Regexp }

func (b timeoutBound) MatchString(s string) bool {
	if !b.re.MatchString(s) {
		return false
	}
	digits, unit := splitNumber(s)
	n, _ := strconv.Atoi(digits)
	return n <= map[string]int{"ms": 86400000, "s": 86400, "m": 1440}[unit]
}

func FuzzParseRetention(f *testing.F) {
	for _, s := range []string{"36h", "90d", "6w", "18mo", "3y", "0h", "99999y", "100000d", "6m", "90 days", "0", "mo", "1mo1", "٣d", "\xff"} {
		f.Add(s)
	}
	at := time.Date(2028, 2, 29, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRetention(s)
		if (err == nil) != apiRetentionPattern.MatchString(s) {
			t.Fatalf("ParseRetention(%q) error %v disagrees with the admission pattern", s, err)
		}
		if err != nil {
			if !strings.Contains(err.Error(), "want a positive number and one unit") {
				t.Fatalf("error %q does not name the grammar", err)
			}
		} else {
			if r.String() != s || !r.Valid() {
				t.Fatalf("ParseRetention(%q) = %#v, String() = %q", s, r, r.String())
			}
			if r2, err := ParseRetention(r.String()); err != nil || r2 != r {
				t.Fatalf("round trip of %q: %v, %v", s, r2, err)
			}
			if cut := r.Before(at); !cut.Before(at) || r.After(cut).After(at) {
				t.Fatalf("%s before %s = %s", s, at, cut)
			}
		}
		w, err := ParseWait(s)
		if (err == nil) != apiWaitPattern.MatchString(s) {
			t.Fatalf("ParseWait(%q) error %v disagrees with the admission pattern", s, err)
		}
		if err == nil && w.String() != s {
			t.Fatalf("ParseWait(%q).String() = %q", s, w.String())
		}
		if _, err := ParseTimeout(s); (err == nil) != apiTimeoutPattern.MatchString(s) {
			t.Fatalf("ParseTimeout(%q) error %v disagrees with the admission pattern", s, err)
		}
	})
}
