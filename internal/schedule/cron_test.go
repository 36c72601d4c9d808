package schedule

import (
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

func utc(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("bad time %q: %v", s, err)
	}
	return v
}

func mustParse(t testing.TB, expr, zone string) *Schedule {
	t.Helper()
	s, err := Parse(expr, zone)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", expr, zone, err)
	}
	return s
}

// TestNextSequence checks successive activations, including every daylight
// saving case the package documentation describes.
func TestNextSequence(t *testing.T) {
	tests := []struct {
		name, expr, zone, from string
		want                   []string
	}{
		{
			name: "Shanghai 03:00 is 19:00 UTC the day before",
			expr: "0 3 * * *", zone: "Asia/Shanghai", from: "2026-11-22T12:00:00Z",
			want: []string{"2026-11-22T19:00:00Z", "2026-11-23T19:00:00Z"},
		},
		{
			name: "Shanghai @daily is 16:00 UTC",
			expr: "@daily", zone: "Asia/Shanghai", from: "2026-11-22T12:00:00Z",
			want: []string{"2026-11-22T16:00:00Z", "2026-11-23T16:00:00Z"},
		},
		{
			name: "Berlin 03:00 across spring forward (2026-03-29 02:00 CET -> 03:00 CEST)",
			expr: "0 3 * * *", zone: "Europe/Berlin", from: "2026-03-27T12:00:00Z",
			want: []string{"2026-03-28T02:00:00Z", "2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z"},
		},
		{
			name: "Berlin 03:00 across fall back (2026-10-25 03:00 CEST -> 02:00 CET), once",
			expr: "0 3 * * *", zone: "Europe/Berlin", from: "2026-10-23T12:00:00Z",
			want: []string{"2026-10-24T01:00:00Z", "2026-10-25T02:00:00Z", "2026-10-26T02:00:00Z"},
		},
		{
			name: "Berlin 02:30 does not exist on 2026-03-29: no run that day (robfig, CronJob)",
			expr: "30 2 * * *", zone: "Europe/Berlin", from: "2026-03-27T12:00:00Z",
			want: []string{"2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"},
		},
		{
			name: "Berlin 02:30 happens twice on 2026-10-25: runs once, at 02:30 CEST",
			expr: "30 2 * * *", zone: "Europe/Berlin", from: "2026-10-23T12:00:00Z",
			want: []string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
		},
		{
			name: "New York 02:30 does not exist on 2026-03-08: no run that day",
			expr: "30 2 * * *", zone: "America/New_York", from: "2026-03-06T12:00:00Z",
			want: []string{"2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"},
		},
		{
			name: "New York 02:30 on fall-back day 2026-11-01 is not repeated: once",
			expr: "30 2 * * *", zone: "America/New_York", from: "2026-10-30T12:00:00Z",
			want: []string{"2026-10-31T06:30:00Z", "2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"},
		},
		{
			name: "New York 01:30 happens twice on 2026-11-01: runs once, at 01:30 EDT",
			expr: "30 1 * * *", zone: "America/New_York", from: "2026-10-30T12:00:00Z",
			want: []string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
		},
		{
			name: "New York 03:00 on spring-forward day exists",
			expr: "0 3 * * *", zone: "America/New_York", from: "2026-03-07T12:00:00Z",
			want: []string{"2026-03-08T07:00:00Z", "2026-03-09T07:00:00Z"},
		},
		{
			name: "New York */15 follows elapsed time through the repeated hour",
			expr: "*/15 * * * *", zone: "America/New_York", from: "2026-11-01T05:00:00Z",
			want: []string{
				"2026-11-01T05:15:00Z", "2026-11-01T05:30:00Z", "2026-11-01T05:45:00Z", // 01:xx EDT
				"2026-11-01T06:00:00Z", "2026-11-01T06:15:00Z", "2026-11-01T06:30:00Z", "2026-11-01T06:45:00Z", // 01:xx EST
				"2026-11-01T07:00:00Z", // 02:00 EST
			},
		},
		{
			name: "New York @hourly follows elapsed time through the repeated hour",
			expr: "@hourly", zone: "America/New_York", from: "2026-11-01T04:30:00Z",
			want: []string{"2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"},
		},
		{
			name: "New York @hourly skips the missing hour on spring forward",
			expr: "@hourly", zone: "America/New_York", from: "2026-03-08T05:30:00Z",
			want: []string{"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"}, // 01:00 EST, 03:00 EDT, 04:00 EDT
		},
		{
			name: "UTC",
			expr: "0 3 * * *", zone: "UTC", from: "2026-11-22T03:00:00Z",
			want: []string{"2026-11-23T03:00:00Z", "2026-11-24T03:00:00Z"},
		},
		{
			name: "empty zone is UTC",
			expr: "0 3 * * *", zone: "", from: "2026-11-22T02:59:59.999Z",
			want: []string{"2026-11-22T03:00:00Z"},
		},
		{
			name: "@hourly",
			expr: "@hourly", zone: "UTC", from: "2026-11-22T10:00:00Z",
			want: []string{"2026-11-22T11:00:00Z", "2026-11-22T12:00:00Z"},
		},
		{
			name: "weekdays MON-FRI from a Friday",
			expr: "0 9 * * MON-FRI", zone: "UTC", from: "2026-11-20T10:00:00Z",
			want: []string{"2026-11-23T09:00:00Z", "2026-11-24T09:00:00Z", "2026-11-25T09:00:00Z", "2026-11-26T09:00:00Z", "2026-11-27T09:00:00Z", "2026-11-30T09:00:00Z"},
		},
		{
			name: "weekdays 1-5",
			expr: "0 9 * * 1-5", zone: "UTC", from: "2026-11-20T10:00:00Z",
			want: []string{"2026-11-23T09:00:00Z"},
		},
		{
			name: "*/15",
			expr: "*/15 * * * *", zone: "UTC", from: "2026-11-22T10:07:30Z",
			want: []string{"2026-11-22T10:15:00Z", "2026-11-22T10:30:00Z", "2026-11-22T10:45:00Z", "2026-11-22T11:00:00Z"},
		},
		{
			name: "day-of-week 7 is Sunday",
			expr: "0 0 * * 7", zone: "UTC", from: "2026-11-20T00:00:00Z",
			want: []string{"2026-11-22T00:00:00Z", "2026-11-29T00:00:00Z"},
		},
		{
			name: "day-of-week FRI-7 is Friday to Sunday",
			expr: "0 0 * * FRI-7", zone: "UTC", from: "2026-11-19T12:00:00Z",
			want: []string{"2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z", "2026-11-27T00:00:00Z"},
		},
		{
			name: "@weekly is Sunday midnight",
			expr: "@weekly", zone: "UTC", from: "2026-11-20T00:00:00Z",
			want: []string{"2026-11-22T00:00:00Z", "2026-11-29T00:00:00Z"},
		},
		{
			name: "@monthly",
			expr: "@monthly", zone: "Europe/Berlin", from: "2026-11-20T00:00:00Z",
			want: []string{"2026-11-30T23:00:00Z", "2026-12-31T23:00:00Z"},
		},
		{
			name: "@yearly",
			expr: "@yearly", zone: "UTC", from: "2026-11-20T00:00:00Z",
			want: []string{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"},
		},
		{
			name: "29 February",
			expr: "0 0 29 2 *", zone: "UTC", from: "2026-11-20T00:00:00Z",
			want: []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"},
		},
		{
			name: "day-of-month or day-of-week when both are restricted",
			expr: "0 0 1 * MON", zone: "UTC", from: "2026-11-28T00:00:00Z",
			want: []string{"2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z", "2026-12-07T00:00:00Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.zone)
			at := utc(t, tt.from)
			for i, w := range tt.want {
				got := s.Next(at)
				if !got.Equal(utc(t, w)) {
					t.Fatalf("activation %d after %s: got %s, want %s", i, at.Format(time.RFC3339), got.Format(time.RFC3339), w)
				}
				if got.Location() != time.UTC {
					t.Fatalf("Next returned location %v, want UTC", got.Location())
				}
				at = got
			}
		})
	}
}

func TestNextIsStrictlyAfter(t *testing.T) {
	s := mustParse(t, "0 3 * * *", "UTC")
	act := utc(t, "2026-11-22T03:00:00Z")
	for _, tc := range []struct {
		after time.Time
		want  time.Time
	}{
		{act.Add(-time.Nanosecond), act},
		{act.Add(-time.Minute), act},
		{act, act.Add(24 * time.Hour)},
		{act.Add(time.Nanosecond), act.Add(24 * time.Hour)},
		{act.In(mustLoc(t, "Asia/Shanghai")), act.Add(24 * time.Hour)}, // the input's zone does not matter
	} {
		if got := s.Next(tc.after); !got.Equal(tc.want) {
			t.Errorf("Next(%s) = %s, want %s", tc.after.Format(time.RFC3339Nano), got, tc.want)
		}
	}
}

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestNextMatchesBruteForce compares Next with a minute-by-minute scan of
// absolute time around DST transitions in several zones, including a
// half-hour shift (Lord Howe) and midnight transitions (Havana, Santiago,
// São Paulo 2018). The expected activations are the minutes whose wall-clock
// time matches the fields, minus, for fixed-time schedules, minutes whose
// wall-clock time already happened earlier.
func TestNextMatchesBruteForce(t *testing.T) {
	windows := []struct{ zone, from string }{
		{"America/New_York", "2026-03-07T00:00:00Z"},
		{"America/New_York", "2026-10-31T00:00:00Z"},
		{"Europe/Berlin", "2026-03-28T00:00:00Z"},
		{"Europe/Berlin", "2026-10-24T00:00:00Z"},
		{"Asia/Shanghai", "2026-11-21T00:00:00Z"},
		{"Australia/Lord_Howe", "2026-04-04T00:00:00Z"},
		{"Australia/Lord_Howe", "2026-10-03T00:00:00Z"},
		{"America/Havana", "2026-03-07T00:00:00Z"},
		{"America/Havana", "2026-10-31T00:00:00Z"},
		{"America/Santiago", "2026-04-03T00:00:00Z"},
		{"America/Santiago", "2026-09-05T00:00:00Z"},
		{"America/Sao_Paulo", "2018-11-03T00:00:00Z"},
		{"America/Sao_Paulo", "2019-02-16T00:00:00Z"},
		{"Asia/Kolkata", "2026-11-21T00:00:00Z"},
		{"Antarctica/Troll", "2026-03-28T00:00:00Z"}, // +00 -> +02
		{"Antarctica/Troll", "2026-10-24T00:00:00Z"}, // +02 -> +00
		{"Pacific/Chatham", "2026-04-04T00:00:00Z"},  // +13:45 -> +12:45
		{"Pacific/Chatham", "2026-09-26T00:00:00Z"},
		{"America/St_Johns", "2026-11-01T00:00:00Z"}, // -02:30 -> -03:30
		{"Africa/Casablanca", "2026-02-14T00:00:00Z"},
		{"Australia/Sydney", "2026-04-04T00:00:00Z"},
		{"UTC", "2026-11-21T00:00:00Z"},
	}
	exprs := []string{
		"0 3 * * *", "30 2 * * *", "30 1 * * *", "0 2 * * *", "0 0 * * *", "30 0 * * *", "59 23 * * *",
		"*/15 * * * *", "15 * * * *", "@hourly", "@daily", "0,30 0-3 * * *", "45 1,2 * * SUN", "* 2 * * *",
		"0 */2 * * *", "5 0 * * 0", "0 1 1 * *",
	}
	for _, w := range windows {
		loc := mustLoc(t, w.zone)
		from := utc(t, w.from)
		to := from.Add(4 * 24 * time.Hour)
		for _, expr := range exprs {
			s := mustParse(t, expr, w.zone)
			var want []time.Time
			for m := from.Add(time.Minute); !m.After(to); m = m.Add(time.Minute) {
				if matchesWall(s, m.In(loc)) && !(s.onceWall && wallSeenBefore(m, loc)) {
					want = append(want, m)
				}
			}
			var got []time.Time
			for n := s.Next(from); !n.IsZero() && !n.After(to); n = s.Next(n) {
				got = append(got, n)
			}
			if !equalTimes(got, want) {
				t.Errorf("%q in %s from %s:\n got %s\nwant %s", expr, w.zone, w.from, fmtTimes(got, loc), fmtTimes(want, loc))
				continue
			}
			// From arbitrary instants too, including inside overlaps.
			for after := from.Add(13 * time.Second); len(want) > 0 && after.Before(want[len(want)-1]); after = after.Add(7*time.Minute + 3*time.Second) {
				k := sort.Search(len(want), func(i int) bool { return want[i].After(after) })
				if got := s.Next(after); !got.Equal(want[k]) {
					t.Errorf("%q in %s: Next(%s) = %s, want %s", expr, w.zone, after.In(loc).Format(time.RFC3339), got.In(loc).Format(time.RFC3339), want[k].In(loc).Format(time.RFC3339))
					break
				}
			}
		}
	}
}

// matchesWall reports whether the wall-clock reading of t matches the
// schedule's fields, with cron's day-of-month/day-of-week rule.
func matchesWall(s *Schedule, t time.Time) bool {
	sp := s.spec
	const star = 1 << 63
	bit := func(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }
	if t.Second() != 0 || !bit(sp.Minute, t.Minute()) || !bit(sp.Hour, t.Hour()) || !bit(sp.Month, int(t.Month())) {
		return false
	}
	dom, dow := bit(sp.Dom, t.Day()), bit(sp.Dow, int(t.Weekday()))
	if sp.Dom&star != 0 || sp.Dow&star != 0 {
		return dom && dow
	}
	return dom || dow
}

// wallSeenBefore reports whether the wall-clock reading of m in loc also
// belongs to an instant up to three hours earlier.
func wallSeenBefore(m time.Time, loc *time.Location) bool {
	const layout = "2006-01-02 15:04"
	wall := m.In(loc).Format(layout)
	for k := time.Minute; k <= 3*time.Hour; k += time.Minute {
		if m.Add(-k).In(loc).Format(layout) == wall {
			return true
		}
	}
	return false
}

func equalTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func fmtTimes(ts []time.Time, loc *time.Location) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.In(loc).Format("01-02T15:04Z07:00 "))
	}
	return b.String()
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		expr, zone, want string
	}{
		{"", "UTC", "empty"},
		{"0 3 * *", "UTC", "found 4 fields"},
		{"0 0 3 * * *", "UTC", "found 6 fields"},
		{"61 3 * * *", "UTC", `invalid schedule "61 3 * * *"`},
		{"0 3 * * 8", "UTC", "above maximum"},
		{"@every 1h", "UTC", "@every is not supported"},
		{"@reboot", "UTC", "unrecognized descriptor"},
		{"TZ=UTC 0 3 * * *", "UTC", "set timeZone instead"},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", "", "set timeZone instead"},
		{"0 0 30 2 *", "UTC", "never fires"},
		{"0 0 31 4,6,9,11 *", "UTC", "never fires"},
		{"0 3 * * *", "Mars/Olympus_Mons", `invalid time zone "Mars/Olympus_Mons": want an IANA time zone name`},
		{"0 3 * * *", "Local", "name an IANA time zone explicitly"},
		{"0 3 * * *", "local", "name an IANA time zone explicitly"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.expr, tt.zone)
		if err == nil {
			t.Errorf("Parse(%q, %q) succeeded, want error containing %q", tt.expr, tt.zone, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q, %q) error %q, want it to contain %q", tt.expr, tt.zone, err, tt.want)
		}
	}
}

// apiCronPattern is the admission pattern of CronSchedule (retentionpolicy_types.go).
var apiCronPattern = regexp.MustCompile(`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(([*]|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[1-9][0-9]?)?)(,(([*]|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[1-9][0-9]?)?))* +(([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]?)?)(,(([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]?)?))* +(([*]|([1-9]|[12][0-9]|3[01])(-([1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]?)?)(,(([*]|([1-9]|[12][0-9]|3[01])(-([1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]?)?))* +(([*]|([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[1-9][0-9]?)?)(,(([*]|([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[1-9][0-9]?)?))* +(([*]|([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[1-9][0-9]?)?)(,(([*]|([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[1-9][0-9]?)?))*)$`)

// TestParseAcceptsAPISchedules checks that what admission accepts, Parse
// accepts too.
func TestParseAcceptsAPISchedules(t *testing.T) {
	for _, expr := range []string{
		"0 3 * * *", "*/15 * * * *", "0 9 * * MON-FRI", "30 6-16/4 * * 1-5", "0 0 1 JAN,JUL *", "0 0 * * 0",
		"0 0 * * 7", "0 0 * * 5-7", "0 0 * * 0-7", "0 0 * * 7/1", "0 0 * * 1-7/2", "0 0 * * SUN,7", "0  3  *  *  *",
		"0-59/5 0-23/2 1-31/3 1-12/2 0-6", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
	} {
		if !apiCronPattern.MatchString(expr) {
			t.Errorf("%q does not match the API pattern; fix the test", expr)
			continue
		}
		if _, err := Parse(expr, "Europe/Berlin"); err != nil {
			t.Errorf("Parse(%q): %v", expr, err)
		}
	}
}

func TestSundaySeven(t *testing.T) {
	for in, want := range map[string]string{
		"*":       "*",
		"1-5":     "1-5",
		"7":       "0",
		"SUN":     "SUN",
		"5-7":     "5,6,0",
		"FRI-7":   "5,6,0",
		"0-7":     "0,1,2,3,4,5,6",
		"1-7/2":   "1,3,5,0",
		"7/3":     "0",
		"MON,7":   "MON,0",
		"*/2":     "*/2",
		"8-7":     "8-7",   // left for robfig to reject
		"7-5":     "7-5",   // idem
		"5-7/0":   "5-7/0", // idem
		"mon-7/x": "mon-7/x",
	} {
		if got := sundaySeven(in); got != want {
			t.Errorf("sundaySeven(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScheduleString(t *testing.T) {
	s := mustParse(t, "0 3 * * *", "Asia/Shanghai")
	if got := s.String(); got != "0 3 * * * Asia/Shanghai" {
		t.Errorf("String() = %q", got)
	}
	if s.Location().String() != "Asia/Shanghai" {
		t.Errorf("Location() = %v", s.Location())
	}
	if got := mustParse(t, "@daily", "").String(); got != "@daily UTC" {
		t.Errorf("String() = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 3 * * *", "*/15 * * * *", "@daily", "0 0 * * 5-7", "1-7/2 * * * *", "0 0 31 2 *", "a b c d e", "0 0 * * 7-"} {
		f.Add(s)
	}
	at := time.Date(2026, 10, 25, 0, 45, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr, "Europe/Berlin")
		if err != nil {
			if s != nil {
				t.Fatal("non-nil schedule with an error")
			}
			return
		}
		if n := s.Next(at); !n.IsZero() && !n.After(at) {
			t.Fatalf("Next(%s) = %s, not after", at, n)
		}
	})
}
