package window

import (
	"strings"
	"testing"
	"time"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("bad time %q: %v", s, err)
	}
	return v.UTC()
}

func TestAt(t *testing.T) {
	berlin1to5 := []Spec{{Schedule: "0 1 * * *", Duration: "4h", TimeZone: "Europe/Berlin"}}
	tests := []struct {
		name    string
		windows []Spec
		now     string
		open    bool
		change  string // Closes when open, Opens when closed; "" for zero
	}{
		{"no windows: always open, never closes", nil, "2026-06-10T12:00:00Z", true, ""},
		{"Berlin 01:00-05:00 in summer: 02:30 CEST is open", berlin1to5, "2026-06-10T00:30:00Z", true, "2026-06-10T03:00:00Z"},
		{"opens exactly at the start", berlin1to5, "2026-06-09T23:00:00Z", true, "2026-06-10T03:00:00Z"},
		{"closed exactly at the end", berlin1to5, "2026-06-10T03:00:00Z", false, "2026-06-10T23:00:00Z"},
		{"closed in the afternoon: opens at 01:00 CEST", berlin1to5, "2026-06-10T12:00:00Z", false, "2026-06-10T23:00:00Z"},
		{"winter: 01:00 CET is 00:00Z", berlin1to5, "2026-01-10T03:59:00Z", true, "2026-01-10T04:00:00Z"},
		{"spring forward 2026-03-29: 01:00 CET to 05:00 CEST, 3h of elapsed time", berlin1to5, "2026-03-29T02:59:00Z", true, "2026-03-29T03:00:00Z"},
		{"spring forward: closed at 05:00 CEST", berlin1to5, "2026-03-29T03:00:00Z", false, "2026-03-29T23:00:00Z"},
		{"fall back 2026-10-25: 01:00 CEST to 05:00 CET, 5h of elapsed time", berlin1to5, "2026-10-25T03:30:00Z", true, "2026-10-25T04:00:00Z"},
		{"fall back: opened at 01:00 CEST (23:00Z the day before)", berlin1to5, "2026-10-24T22:59:00Z", false, "2026-10-24T23:00:00Z"},
		{
			"a start in the spring-forward gap does not happen that day",
			[]Spec{{Schedule: "30 2 * * *", Duration: "1h", TimeZone: "Europe/Berlin"}}, "2026-03-29T01:00:00Z", false, "2026-03-30T00:30:00Z",
		},
		{
			"an end in the spring-forward gap closes when the clocks jump",
			[]Spec{{Schedule: "30 1 * * *", Duration: "1h", TimeZone: "Europe/Berlin"}}, "2026-03-29T00:59:00Z", true, "2026-03-29T01:00:00Z",
		},
		{
			"an end in the repeated hour closes at its first occurrence",
			[]Spec{{Schedule: "30 1 * * *", Duration: "1h", TimeZone: "Europe/Berlin"}}, "2026-10-25T00:00:00Z", true, "2026-10-25T00:30:00Z",
		},
		{
			"New York 01:00-03:00 on fall-back day 2026-11-01 (01:00 EDT to 03:00 EST)",
			[]Spec{{Schedule: "0 1 * * *", Duration: "2h", TimeZone: "America/New_York"}}, "2026-11-01T07:30:00Z", true, "2026-11-01T08:00:00Z",
		},
		{
			"across midnight: 22:00-02:00 UTC at 23:30",
			[]Spec{{Schedule: "0 22 * * *", Duration: "4h"}}, "2026-06-10T23:30:00Z", true, "2026-06-11T02:00:00Z",
		},
		{
			"across midnight: still open at 01:59 the next day",
			[]Spec{{Schedule: "0 22 * * *", Duration: "4h"}}, "2026-06-11T01:59:00Z", true, "2026-06-11T02:00:00Z",
		},
		{
			"across midnight: closed at 02:00",
			[]Spec{{Schedule: "0 22 * * *", Duration: "4h"}}, "2026-06-11T02:00:00Z", false, "2026-06-11T22:00:00Z",
		},
		{
			"overlapping windows are one open period",
			[]Spec{{Schedule: "0 1 * * *", Duration: "2h"}, {Schedule: "0 2 * * *", Duration: "2h"}}, "2026-06-10T01:30:00Z", true, "2026-06-10T04:00:00Z",
		},
		{
			"touching windows are one open period",
			[]Spec{{Schedule: "0 1 * * *", Duration: "1h"}, {Schedule: "0 2 * * *", Duration: "1h"}, {Schedule: "0 4 * * *", Duration: "1h"}}, "2026-06-10T01:30:00Z", true, "2026-06-10T03:00:00Z",
		},
		{
			"inside the second of two overlapping windows",
			[]Spec{{Schedule: "0 1 * * *", Duration: "2h"}, {Schedule: "0 2 * * *", Duration: "2h"}}, "2026-06-10T03:30:00Z", true, "2026-06-10T04:00:00Z",
		},
		{
			"the nearer of two windows opens next",
			[]Spec{{Schedule: "0 1 * * *", Duration: "1h"}, {Schedule: "0 13 * * *", Duration: "1h", TimeZone: "Asia/Shanghai"}}, "2026-06-10T02:00:00Z", false, "2026-06-10T05:00:00Z",
		},
		{
			"a weekend window: Saturday 01:00 for 48h, open on Sunday",
			[]Spec{{Schedule: "0 1 * * SAT", Duration: "48h"}}, "2026-06-14T12:00:00Z", true, "2026-06-15T01:00:00Z",
		},
		{
			"a weekend window: closed on Wednesday, opens on Saturday",
			[]Spec{{Schedule: "0 1 * * 6", Duration: "48h"}}, "2026-06-10T12:00:00Z", false, "2026-06-13T01:00:00Z",
		},
		{
			"a window longer than its period never closes within the look-ahead",
			[]Spec{{Schedule: "@hourly", Duration: "90m"}}, "2026-06-10T12:34:00Z", true, "2026-07-15T13:30:00Z",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.windows)
			if err != nil {
				t.Fatal(err)
			}
			st := s.At(at(t, tt.now))
			if st.Open != tt.open {
				t.Fatalf("Open = %v, want %v (%+v)", st.Open, tt.open, st)
			}
			got := st.Opens
			if tt.open {
				got = st.Closes
			}
			want := time.Time{}
			if tt.change != "" {
				want = at(t, tt.change)
			}
			if !got.Equal(want) {
				t.Errorf("change at %v, want %v", got, want)
			}
			if tt.open && !st.Opens.IsZero() || !tt.open && !st.Closes.IsZero() {
				t.Errorf("the other field is set: %+v", st)
			}
		})
	}
}

// Walking through a day minute by minute agrees with the declared windows:
// State.Opens and State.Closes are exactly where Open flips.
func TestTransitionsAreWhereOpenFlips(t *testing.T) {
	for _, specs := range [][]Spec{
		{{Schedule: "0 1 * * *", Duration: "4h", TimeZone: "Europe/Berlin"}},
		{{Schedule: "0 22 * * *", Duration: "4h", TimeZone: "America/New_York"}, {Schedule: "0 1 * * *", Duration: "3h", TimeZone: "America/New_York"}},
		{{Schedule: "*/20 9-17 * * 1-5", Duration: "5m", TimeZone: "Australia/Lord_Howe"}},
	} {
		s, err := Parse(specs)
		if err != nil {
			t.Fatal(err)
		}
		for _, day := range []string{"2026-03-07T00:00:00Z", "2026-03-28T12:00:00Z", "2026-04-04T00:00:00Z", "2026-10-24T12:00:00Z", "2026-10-31T00:00:00Z"} {
			from := at(t, day)
			prev := s.At(from)
			for m := 1; m < 3*24*60; m++ {
				now := from.Add(time.Duration(m) * time.Minute)
				st := s.At(now)
				if st.Open != prev.Open {
					want := prev.Opens
					if prev.Open {
						want = prev.Closes
					}
					if !want.Equal(now) {
						t.Fatalf("%v: open=%v at %v, but the state a minute earlier said the change comes at %v", specs, st.Open, now, want)
					}
				}
				prev = st
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tt := range []struct {
		spec Spec
		want string
	}{
		{Spec{Schedule: "0 25 * * *", Duration: "1h"}, "windows[0]: invalid schedule"},
		{Spec{Schedule: "0 0 30 2 *", Duration: "1h"}, "never fires"},
		{Spec{Schedule: "0 1 * * *", Duration: "1h", TimeZone: "Mars/Olympus"}, "invalid time zone"},
		{Spec{Schedule: "0 1 * * *", Duration: "0s"}, "more than 0"},
		{Spec{Schedule: "0 1 * * *", Duration: "169h"}, "at most 7 days"},
		{Spec{Schedule: "0 1 * * *", Duration: "4 hours"}, "invalid duration"},
	} {
		if _, err := Parse([]Spec{tt.spec}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%+v) = %v, want an error containing %q", tt.spec, err, tt.want)
		}
	}
	if _, err := Parse([]Spec{{Schedule: "0 1 * * *", Duration: "168h", TimeZone: "Asia/Shanghai"}}); err != nil {
		t.Errorf("a 7-day window: %v", err)
	}
}
