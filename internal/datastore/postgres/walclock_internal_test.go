package postgres

import (
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
	// A standby 1000 bytes behind replays 100 bytes per 100ms while still
	// behind: 1000 bytes/s, so 3000 bytes behind is 3s.
	if _, ok := c.catchUp("s", at(0), 0, 1000); ok {
		t.Fatal("a rate from one reading")
	}
	c.catchUp("s", at(100), 100, 1500)
	got, ok := c.catchUp("s", at(300), 300, 3000)
	if !ok || got != 3*time.Second {
		t.Errorf("catchUp = %v, %v; want 3s", got, ok)
	}
	// One that caught up in between (replayed more than it was behind) says
	// nothing of its rate.
	var d walClock
	d.catchUp("s", at(0), 0, 100)
	if got, ok := d.catchUp("s", at(500), 5000, 2000); ok {
		t.Errorf("rate from a standby that ran out of WAL: %v", got)
	}
}
