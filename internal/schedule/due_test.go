package schedule

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

func dur(d time.Duration) *time.Duration { return &d }

func TestMostRecent(t *testing.T) {
	daily := mustParse(t, "0 3 * * *", "UTC")
	minutely := mustParse(t, "* * * * *", "UTC")
	tests := []struct {
		name      string
		s         *Schedule
		last, now string
		want      string // "" for none
		count     int
	}{
		{"none yet", daily, "2026-11-22T03:00:00Z", "2026-11-22T12:00:00Z", "", 0},
		{"exactly at the activation", daily, "2026-11-22T03:00:00Z", "2026-11-23T03:00:00Z", "2026-11-23T03:00:00Z", 1},
		{"last is exclusive", daily, "2026-11-23T03:00:00Z", "2026-11-23T03:00:00Z", "", 0},
		{"one", daily, "2026-11-22T03:00:00Z", "2026-11-23T05:00:00Z", "2026-11-23T03:00:00Z", 1},
		{"three", daily, "2026-11-20T03:00:00Z", "2026-11-23T05:00:00Z", "2026-11-23T03:00:00Z", 3},
		{"now before last", daily, "2026-11-23T03:00:00Z", "2026-11-20T03:00:00Z", "", 0},
		{"100 exactly", minutely, "2026-11-22T00:00:00Z", "2026-11-22T01:40:00Z", "2026-11-22T01:40:00Z", 100},
		{"1,000 minutes", minutely, "2026-11-22T00:00:00Z", "2026-11-22T16:40:30Z", "2026-11-22T16:40:00Z", MaxMissedCount},
		{"a year of minutes", minutely, "2025-11-22T00:00:00Z", "2026-11-22T16:40:30Z", "2026-11-22T16:40:00Z", MaxMissedCount},
		{"ten years of minutes", minutely, "2016-11-22T00:00:00Z", "2026-11-22T16:40:30Z", "2026-11-22T16:40:00Z", MaxMissedCount},
		{"daily missed for a year", daily, "2025-11-22T03:00:00Z", "2026-11-22T02:59:59Z", "2026-11-21T03:00:00Z", MaxMissedCount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, count := MostRecent(tt.s, utc(t, tt.last), utc(t, tt.now))
			if tt.want == "" {
				if !got.IsZero() || count != 0 {
					t.Fatalf("got %s, %d; want none", got, count)
				}
				return
			}
			if !got.Equal(utc(t, tt.want)) || count != tt.count {
				t.Fatalf("got %s, %d; want %s, %d", got.Format(time.RFC3339), count, tt.want, tt.count)
			}
		})
	}
}

// TestMostRecentMatchesIteration compares MostRecent with plain iteration of
// Next, for irregular schedules (weekdays, business hours, DST zones) whose
// interval between activations is not constant, with gaps below and above
// the counting cap.
func TestMostRecentMatchesIteration(t *testing.T) {
	short := []time.Duration{time.Hour, 30 * time.Hour, 9 * 24 * time.Hour, 40 * 24 * time.Hour}
	long := append(short, 300*24*time.Hour, 3*365*24*time.Hour)
	cases := []struct {
		s    *Schedule
		gaps []time.Duration
	}{
		{mustParse(t, "30 6-16/4 * * 1-5", "America/New_York"), long},
		{mustParse(t, "*/7 9-17 * * MON-FRI", "Europe/Berlin"), short},
		{mustParse(t, "30 1 * * *", "America/New_York"), long},
		{mustParse(t, "*/15 * * * *", "Australia/Lord_Howe"), short},
		{mustParse(t, "0 0 29 2 *", "UTC"), long},
	}
	base := utc(t, "2026-02-20T00:00:00Z")
	for _, c := range cases {
		s := c.s
		for _, gap := range c.gaps {
			for off := time.Duration(0); off < 14*24*time.Hour; off += 37*time.Hour + 11*time.Minute {
				last := base.Add(off)
				now := last.Add(gap)
				var want time.Time
				n := 0
				for a := s.Next(last); !a.IsZero() && !a.After(now); a = s.Next(a) {
					want = a
					n++
				}
				if n > MaxMissedCount {
					n = MaxMissedCount
				}
				got, count := MostRecent(s, last, now)
				if !got.Equal(want) || count != n {
					t.Fatalf("%s from %s to %s: got %s, %d; want %s, %d", s, last, now, got, count, want, n)
				}
			}
		}
	}
}

func TestDue(t *testing.T) {
	daily := mustParse(t, "0 3 * * *", "UTC")
	minutely := mustParse(t, "* * * * *", "UTC")
	tests := []struct {
		name           string
		s              *Schedule
		last, created  string
		now            string
		deadline       *time.Duration
		wantRun        string // "" for zero
		wantOK         bool
		reasonContains []string // all must appear; nil means the reason is empty
	}{
		{
			name: "no missed run",
			s:    daily, last: "2026-11-22T03:00:00Z", created: "2026-01-01T00:00:00Z", now: "2026-11-22T12:00:00Z",
		},
		{
			name: "one run due now",
			s:    daily, last: "2026-11-21T03:00:00Z", created: "2026-01-01T00:00:00Z", now: "2026-11-22T03:00:00Z",
			wantRun: "2026-11-22T03:00:00Z", wantOK: true,
		},
		{
			name: "one missed run, caught up",
			s:    daily, last: "2026-11-21T03:00:00Z", created: "2026-01-01T00:00:00Z", now: "2026-11-22T09:00:00Z",
			wantRun: "2026-11-22T03:00:00Z", wantOK: true,
		},
		{
			name: "three missed runs: only the most recent",
			s:    daily, last: "2026-11-19T03:00:00Z", created: "2026-01-01T00:00:00Z", now: "2026-11-22T09:00:00Z",
			wantRun: "2026-11-22T03:00:00Z", wantOK: true,
			reasonContains: []string{"3 runs missed since 2026-11-19T03:00:00Z", "only the most recent, 2026-11-22T03:00:00Z, runs"},
		},
		{
			name: "1,000 missed minutes: only the latest",
			s:    minutely, last: "2026-11-22T00:00:00Z", created: "2026-01-01T00:00:00Z", now: "2026-11-22T16:40:10Z",
			wantRun: "2026-11-22T16:40:00Z", wantOK: true,
			reasonContains: []string{"100 or more runs missed"},
		},
		{
			name: "starting deadline exceeded",
			s:    daily, last: "2026-11-21T03:00:00Z", created: "2026-01-01T00:00:00Z", now: "2026-11-22T05:00:00Z",
			deadline: dur(time.Hour),
			wantRun:  "2026-11-22T03:00:00Z", wantOK: false,
			reasonContains: []string{"missed scheduled time 2026-11-22T03:00:00Z by 2h0m0s", "starting deadline of 1h0m0s"},
		},
		{
			name: "starting deadline exceeded after many misses",
			s:    minutely, last: "2026-11-22T00:00:00Z", created: "2026-01-01T00:00:00Z", now: "2026-11-22T16:40:45Z",
			deadline: dur(30 * time.Second),
			wantRun:  "2026-11-22T16:40:00Z", wantOK: false,
			reasonContains: []string{"by 45s", "100 or more runs missed in all"},
		},
		{
			name: "within the starting deadline",
			s:    daily, last: "2026-11-21T03:00:00Z", created: "2026-01-01T00:00:00Z", now: "2026-11-22T05:00:00Z",
			deadline: dur(3 * time.Hour),
			wantRun:  "2026-11-22T03:00:00Z", wantOK: true,
		},
		{
			name: "exactly at the starting deadline",
			s:    daily, last: "2026-11-21T03:00:00Z", created: "2026-01-01T00:00:00Z", now: "2026-11-22T05:00:00Z",
			deadline: dur(2 * time.Hour),
			wantRun:  "2026-11-22T03:00:00Z", wantOK: true,
		},
		{
			name: "zero starting deadline, on time",
			s:    daily, last: "2026-11-21T03:00:00Z", created: "2026-01-01T00:00:00Z", now: "2026-11-22T03:00:00Z",
			deadline: dur(0),
			wantRun:  "2026-11-22T03:00:00Z", wantOK: true,
		},
		{
			name: "never ran: created is the start",
			s:    daily, created: "2026-11-22T02:00:00Z", now: "2026-11-22T03:30:00Z",
			wantRun: "2026-11-22T03:00:00Z", wantOK: true,
		},
		{
			name: "never ran, created after today's activation",
			s:    daily, created: "2026-11-22T03:10:00Z", now: "2026-11-22T12:00:00Z",
		},
		{
			name: "never ran, created long ago: one catch-up",
			s:    daily, created: "2026-01-01T00:00:00Z", now: "2026-11-22T12:00:00Z",
			wantRun: "2026-11-22T03:00:00Z", wantOK: true,
			reasonContains: []string{"100 or more runs missed since 2026-01-01T00:00:00Z"},
		},
		{
			name: "no start at all",
			s:    daily, now: "2026-11-22T12:00:00Z",
		},
		{
			name: "lastScheduled wins over created",
			s:    daily, last: "2026-11-22T03:00:00Z", created: "2026-11-20T00:00:00Z", now: "2026-11-22T12:00:00Z",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var last, created time.Time
			if tt.last != "" {
				last = utc(t, tt.last)
			}
			if tt.created != "" {
				created = utc(t, tt.created)
			}
			run, ok, reason := Due(tt.s, last, created, utc(t, tt.now), tt.deadline)
			var wantRun time.Time
			if tt.wantRun != "" {
				wantRun = utc(t, tt.wantRun)
			}
			if !run.Equal(wantRun) || ok != tt.wantOK {
				t.Fatalf("Due = %s, %v, %q; want %s, %v", run, ok, reason, wantRun, tt.wantOK)
			}
			if tt.reasonContains == nil && reason != "" {
				t.Fatalf("reason %q, want none", reason)
			}
			for _, want := range tt.reasonContains {
				if !strings.Contains(reason, want) {
					t.Fatalf("reason %q does not contain %q", reason, want)
				}
			}
		})
	}
}

func BenchmarkMostRecentMinutelyMissedForAYear(b *testing.B) {
	s := mustParse(b, "* * * * *", "Europe/Berlin")
	last := utc(b, "2025-11-22T00:00:00Z")
	now := utc(b, "2026-11-22T16:40:30Z")
	for b.Loop() {
		MostRecent(s, last, now)
	}
}

func TestRunName(t *testing.T) {
	at := utc(t, "2026-11-22T19:00:00Z")
	if got := RunName("orders", at); got != "orders-29922900" {
		t.Errorf("RunName = %q, want orders-29922900", got)
	}
	if RunName("orders", at) != RunName("orders", at.Add(30*time.Second)) {
		t.Error("not deterministic within a minute")
	}
	if RunName("orders", at) == RunName("orders", at.Add(time.Minute)) {
		t.Error("equal names for distinct minutes")
	}

	long := strings.Repeat("customer-retention-", 4)[:60] // 60 characters
	longOther := long[:59] + "x"
	fits := strings.Repeat("a", 63-len("-29922900")) // exactly 63 with the suffix
	dotted := "orders.eu-west"
	names := map[string]bool{}
	for _, p := range []string{"orders", long, longOther, fits, fits + "b", dotted, "orders-eu-west", strings.Repeat("x.", 126) + "y", "Orders", "-", "9lives"} {
		for _, when := range []time.Time{at, at.Add(time.Minute), at.AddDate(10, 0, 0)} {
			name := RunName(p, when)
			if len(name) > 63 {
				t.Errorf("RunName(%q) = %q: %d characters", p, name, len(name))
			}
			if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
				t.Errorf("RunName(%q) = %q: %v", p, name, errs)
			}
			if names[name] {
				t.Errorf("RunName(%q, %s) = %q collides", p, when, name)
			}
			names[name] = true
			if name != RunName(p, when) {
				t.Errorf("RunName(%q) not deterministic", p)
			}
		}
	}
	if got := RunName(fits, at); got != fits+"-29922900" {
		t.Errorf("a name that fits is changed: %q", got)
	}
	got := RunName(long, at)
	if !strings.HasPrefix(got, long[:40]) || !strings.HasSuffix(got, "-29922900") {
		t.Errorf("RunName(long) = %q: want the start of the policy name and the time", got)
	}
	if RunName(dotted, at) == RunName("orders-eu-west", at) {
		t.Error("a dotted name collides with its dashed twin")
	}
}
