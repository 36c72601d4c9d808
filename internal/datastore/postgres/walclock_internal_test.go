package postgres

import (
	"math"
	"testing"
	"time"
)

// The WAL clock tells how long ago the first WAL a standby has not
// replayed was written (interpolated between readings), and how long a
// standby that was behind all along needs to replay its backlog.
func TestWALClock(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var c walClock
	if _, ok := c.since(at(0), 0); ok {
		t.Fatal("a lag before any reading")
	}
	c.record(at(0), 1000)
	c.record(at(1000), 2000)
	c.record(at(2000), 4000)
	cases := []struct {
		replayed float64
		want     time.Duration
		ok       bool
	}{
		{4000, 0, false},                      // caught up
		{3000, 500 * time.Millisecond, true},  // written half-way between the 1s and 2s readings
		{2000, 1000 * time.Millisecond, true}, // the 2000th byte was there at 1s: the next one came after
		{1500, 1500 * time.Millisecond, true},
		{500, 0, false}, // older than every reading: unknown
	}
	for _, c2 := range cases {
		got, ok := c.since(at(2000), c2.replayed)
		if ok != c2.ok || got != c2.want {
			t.Errorf("since(replayed %v) = %v, %v; want %v, %v", c2.replayed, got, ok, c2.want, c2.ok)
		}
	}
	// A standby busy all along (it replayed less between readings than it
	// was behind) for a second replays 1000 bytes/s, so 3000 bytes behind
	// is 3s.
	if _, _, _, ok := c.catchUp("s", at(0), time.Time{}, 0, 1000, 0); ok {
		t.Fatal("a rate from one reading")
	}
	c.catchUp("s", at(500), time.Time{}, 500, 1500, 0)
	got, rate, measured, ok := c.catchUp("s", at(1000), time.Time{}, 1000, 3000, 0)
	if !ok || !measured || got != 3*time.Second || rate != 1000 {
		t.Errorf("catchUp = %v, %v B/s, measured %v, %v; want 3s at 1000 B/s, measured", got, rate, measured, ok)
	}
	// Busy for less than a second: a burst may be all it shows (30,000
	// bytes in 300ms), so the rate stands in for a bound but is not a
	// measurement.
	var g walClock
	g.catchUp("s", at(0), time.Time{}, 0, 100_000, 0)
	if _, rate, measured, ok := g.catchUp("s", at(300), time.Time{}, 30_000, 100_000, 0); !ok || measured || rate != 100_000 {
		t.Errorf("catchUp over 300ms = %v B/s, measured %v, %v; want 100,000 B/s, not measured", rate, measured, ok)
	}
	// One that caught up in between (replayed more than it was behind) may
	// have been idle part of the time: its rate over the longest window of
	// 100ms to 1s is a lower bound (5000 bytes in 500ms: at least 10,000
	// bytes/s), so 2000 bytes behind is at most 200ms — an estimate at
	// least the true lag, at the first reading that finds it behind.
	var d walClock
	d.catchUp("s", at(0), time.Time{}, 0, 0, 0)
	d.catchUp("s", at(400), time.Time{}, 4000, 0, 0)
	if got, rate, measured, ok := d.catchUp("s", at(500), time.Time{}, 5000, 2000, 0); !ok || measured || got != 200*time.Millisecond || rate != 10000 {
		t.Errorf("catchUp from a standby that just fell behind = %v, %v B/s, %v; want 200ms at 10,000 B/s", got, rate, ok)
	}
	// A standby measured at 1000 bytes/s while busy, that then caught up
	// and replayed a burst (4000 bytes in 200ms) as it fell behind again,
	// is taken at the 1000 bytes/s it kept before.
	c.catchUp("s", at(1500), time.Time{}, 1500, 3000, 0)
	c.catchUp("s", at(1800), time.Time{}, 4500, 0, 0)
	if got, rate, measured, ok := c.catchUp("s", at(2000), time.Time{}, 8500, 2000, 0); !ok || !measured || rate != 1000 || got != 2*time.Second {
		t.Errorf("catchUp after a burst = %v, %v B/s, %v; want 2s at 1000 B/s", got, rate, ok)
	}
	// One that then replays nothing while it falls behind again is taken at
	// that rate too: 5000 bytes behind, 5s.
	c.catchUp("s", at(2500), time.Time{}, 9500, 0, 0)
	if got, rate, measured, ok := c.catchUp("s", at(2700), time.Time{}, 9500, 5000, 0); !ok || !measured || rate != 1000 || got != 5*time.Second {
		t.Errorf("catchUp of a stalled standby = %v, %v B/s, %v; want 5s at 1000 B/s", got, rate, ok)
	}
	// Nothing replayed: nothing known.
	var e walClock
	e.catchUp("s", at(0), time.Time{}, 0, 100, 0)
	if got, _, _, ok := e.catchUp("s", at(500), time.Time{}, 0, 2000, 0); ok {
		t.Errorf("rate from a standby that replayed nothing: %v", got)
	}
}

// The primary's peak WAL rate is the largest between readings at least
// 50ms apart within the last 10s.
func TestWALClockPeakRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name    string
		samples [][2]float64 // ms, position
		now     int
		want    float64
	}{
		{"no readings", nil, 0, 0},
		{"one reading", [][2]float64{{0, 0}}, 0, 0},
		{"readings too close", [][2]float64{{0, 0}, {30, 1000}}, 30, 0},
		{"steady 10,000 bytes/s", [][2]float64{{0, 0}, {250, 2500}, {500, 5000}}, 500, 10000},
		{"a burst after an idle wait", [][2]float64{{0, 0}, {1000, 0}, {1250, 25000}, {2250, 25000}}, 2250, 100000},
		{"close readings are grouped", [][2]float64{{0, 0}, {20, 1000}, {40, 1000}, {60, 3000}, {100, 3000}}, 100, 50000},
		{"older than 10s: forgotten", [][2]float64{{0, 0}, {250, 100000}, {11000, 100000}, {11250, 102500}}, 11250, 10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c walClock
			for _, s := range tc.samples {
				c.record(at(int(s[0])), s[1])
			}
			if got := c.peakRate(at(tc.now)); got != tc.want {
				t.Errorf("peakRate = %v, want %v", got, tc.want)
			}
		})
	}
}

// A standby that replays in bursts (2000 bytes every 500ms, standing still
// in between) replays its backlog up to a standstill later than its
// average rate says: 10,000 bytes behind at 4000 bytes/s is 2.5s, plus the
// 400ms it was seen standing still.
func TestWALClockStall(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var c walClock
	var got, want time.Duration
	var rate float64
	for ms := 0; ms <= 2000; ms += 100 {
		got, rate, _, _ = c.catchUp("s", t0.Add(time.Duration(ms)*time.Millisecond), time.Time{}, float64(2000*(ms/500)), 10_000, 0)
	}
	want = 2500*time.Millisecond + 400*time.Millisecond
	if got != want || rate != 4000 {
		t.Errorf("catchUp = %v at %v B/s; want %v at 4000 B/s", got, rate, want)
	}
	// With the standby's report times, its standstill is measured between
	// its reports: readings that show a report already seen (the primary
	// hears of the standby's replay only at its next report) are no
	// standstill. Here it reports every 100ms and stands still 300ms;
	// afterwards the primary hears nothing new for 2s (the standby's
	// report stays the one of 2000ms).
	var r walClock
	report := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for ms := 0; ms <= 2000; ms += 100 {
		got, _, _, _ = r.catchUp("s", t0.Add(time.Duration(ms)*time.Millisecond), report(ms), float64(2000*(ms/400)), 10_000, 0)
	}
	// Its slowest second replayed 4000 bytes (5000 bytes/s on average):
	// 2.5s, plus the 300ms.
	if want := 10_000*time.Second/4000 + 300*time.Millisecond; got != want {
		t.Errorf("catchUp with reports = %v; want %v", got, want)
	}
	for ms := 2100; ms <= 4000; ms += 100 {
		got, _, _, _ = r.catchUp("s", t0.Add(time.Duration(ms)*time.Millisecond), report(2000), 10_000, 10_000, 0)
	}
	// The standstill counted is still the 300ms between reports, but the
	// rate planned with is that of the last second, in which the primary
	// heard of no replay: the purge waits for news.
	if got < time.Minute {
		t.Errorf("catchUp without news for 2s = %v; want over a minute (no replay seen for a second)", got)
	}
	if s := stall(r.standbys["s"]); s != 300*time.Millisecond {
		t.Errorf("stall without news = %v; want the 300ms between reports", s)
	}
	// A standby that caught up in between did not stand still while it had
	// nothing to replay.
	var d walClock
	for ms := 0; ms <= 1000; ms += 100 {
		d.catchUp("s", t0.Add(time.Duration(ms)*time.Millisecond), time.Time{}, 0, 0, 0)
	}
	for ms := 1100; ms <= 2200; ms += 100 {
		got, _, _, _ = d.catchUp("s", t0.Add(time.Duration(ms)*time.Millisecond), time.Time{}, float64(ms-1000)*10, 500, 0)
	}
	if want := 50 * time.Millisecond; got != want {
		t.Errorf("catchUp after idling = %v; want %v (no standstill)", got, want)
	}
}

// Readings as often as every batch keep one sample per 50ms, so the
// samples still span the last 30 seconds at least.
func TestWALClockSpacing(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var c walClock
	for ms := 0; ms <= 60_000; ms += 5 {
		c.record(t0.Add(time.Duration(ms)*time.Millisecond), float64(ms))
		c.catchUp("s", t0.Add(time.Duration(ms)*time.Millisecond), time.Time{}, float64(ms)/2, float64(ms)/2, 0)
	}
	if span := c.samples[len(c.samples)-1].at.Sub(c.samples[0].at); span < 29*time.Second {
		t.Errorf("WAL samples span %v, want at least 29s", span)
	}
	if got, ok := c.since(t0.Add(time.Minute), 35_000); !ok || got < 24*time.Second || got > 26*time.Second {
		t.Errorf("since = %v, %v; want about 25s", got, ok)
	}
	if _, rate, _, ok := c.catchUp("s", t0.Add(time.Minute+5*time.Millisecond), time.Time{}, 30_002, 30_000, 0); !ok || rate < 400 || rate > 600 {
		t.Errorf("replay rate %v, %v; want about 500 bytes/s", rate, ok)
	}
}

// A standby's replay rate measured over a whole span (the lag limit) is
// remembered for rateWindow and bounds the estimate of a later, shorter
// busy run of the same standby, which may show the average of a burst or
// two; a rate measured over spans of another length is not taken.
func TestWALClockRememberedRates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	const span = 2 * time.Second
	// history: busy for 2.5s at 1000 bytes/s (measured over a whole
	// span), caught up, and then busy again from start for 1s at 3000
	// bytes/s: a burst.
	history := func(c *walClock, start int) {
		for ms := 0; ms <= 2500; ms += 250 {
			c.catchUp("s", at(ms), time.Time{}, float64(ms), 5000, span)
		}
		c.catchUp("s", at(start-250), time.Time{}, 8000, 0, span)
		for ms := start; ms <= start+1000; ms += 250 {
			c.catchUp("s", at(ms), time.Time{}, 8000+3*float64(ms-start), 9000, span)
		}
	}
	var c walClock
	history(&c, 3000)
	if got, rate, measured, ok := c.catchUp("s", at(4250), time.Time{}, 11750, 9000, span); !ok || !measured || rate != 1000 || got != 9*time.Second {
		t.Errorf("catchUp after a burst = %v at %v B/s, measured %v, %v; want 9s at the 1000 B/s of the last whole span", got, rate, measured, ok)
	}
	// The same readings, asked with spans of a second: the short run
	// covers whole spans of its own, and the rate measured over spans of
	// 2s is not taken.
	if _, rate, _, ok := c.catchUp("s", at(4500), time.Time{}, 12500, 9000, time.Second); !ok || rate != 3000 {
		t.Errorf("catchUp over spans of 1s = %v B/s, %v; want the 3000 B/s of its own spans", rate, ok)
	}
	// Forgotten after rateWindow: the short run stands for itself.
	var d walClock
	late := int(rateWindow/time.Millisecond) + 3000
	history(&d, late)
	if _, rate, measured, ok := d.catchUp("s", at(late+1250), time.Time{}, 8000+3750, 9000, span); !ok || !measured || rate != 3000 {
		t.Errorf("catchUp %v after the whole span = %v B/s, measured %v, %v; want 3000 B/s", rateWindow, rate, measured, ok)
	}
	// A standby not read within rateWindow (it reconnected from another
	// address: another name) is forgotten, its rates with it.
	var e walClock
	history(&e, 3000)
	e.catchUp("s2", at(late+40_000), time.Time{}, 0, 100, span)
	if _, ok := e.standbys["s"]; ok || len(e.rates) != 0 || len(e.standbys) != 1 {
		t.Errorf("after %v without a reading: standbys %v, rates %v; want only s2", rateWindow, len(e.standbys), len(e.rates))
	}
}

// The rate to plan with is the slowest a busy standby kept over spans as
// long as the lag limit (at least a second), or its average while the
// readings span less.
func TestSlowestReplayRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// readings every 250ms at the given positions
	busy := func(pos ...float64) []replaySample {
		var h []replaySample
		for i, p := range pos {
			h = append(h, replaySample{at: at(250 * i), pos: p, behind: 1e9})
		}
		return h
	}
	for _, tc := range []struct {
		name string
		h    []replaySample
		span time.Duration
		want float64
		full bool
		ok   bool
	}{
		{"under a second: no measurement", busy(0, 100, 200, 300), time.Second, 0, false, false},
		{"nothing replayed", busy(0, 0, 0, 0, 0), time.Second, 0, false, false},
		{"a second: its average", busy(0, 100, 200, 300, 400), time.Second, 400, true, true},
		{"steady over 2s", busy(0, 100, 200, 300, 400, 500, 600, 700, 800), time.Second, 400, true, true},
		// 1000 bytes/s, then a second at 200 bytes/s
		{"a slow second", busy(0, 250, 500, 750, 1000, 1050, 1100, 1150, 1200), time.Second, 200, true, true},
		{"the same over a 2s span: the average", busy(0, 250, 500, 750, 1000, 1050, 1100, 1150, 1200), 2 * time.Second, 600, true, true},
		{"shorter than the span: the average, not a whole span", busy(0, 250, 500, 750, 1000, 1050, 1100), 2 * time.Second, 1100.0 / 1.5, false, true},
		{"a span shorter than a second is a second", busy(0, 250, 500, 750, 1000, 1050, 1100, 1150, 1200), 100 * time.Millisecond, 200, true, true},
		// stood still for a whole second: a hundredth of the average
		{"a standstill as long as the span", busy(0, 500, 1000, 1000, 1000, 1000, 1000, 1500, 2000), time.Second, 10, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, full, ok := slowest(tc.h, tc.span)
			if ok != tc.ok || (ok && (math.Abs(got-tc.want) > 1e-9 || full != tc.full)) {
				t.Errorf("slowest = %v, full %v, %v; want %v, full %v, %v", got, full, ok, tc.want, tc.full, tc.ok)
			}
		})
	}
	// Positions are timed by the readings: a standby that reported 400
	// bytes over its first second and nothing new for two seconds since
	// is planned with as standing still for a second (a hundredth of its
	// 133 bytes/s on average).
	h := busy(0, 100, 200, 300, 400, 400, 400, 400, 400, 400, 400, 400, 400)
	for i := range h {
		h[i].report = at(250 * min(i, 4))
	}
	if got, _, ok := slowest(h, time.Second); !ok || math.Abs(got-400.0/3/100) > 1e-9 {
		t.Errorf("slowest with stale reports = %v, %v; want 1.33", got, ok)
	}
}
