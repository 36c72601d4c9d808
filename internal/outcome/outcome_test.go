package outcome

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestResult(t *testing.T) {
	transient := errors.New("connection reset")
	cases := []struct {
		name      string
		err       error
		next      time.Duration
		wantAfter time.Duration
		wantErr   bool
	}{
		{"done", nil, 0, 0, false},
		{"done, periodic", nil, time.Minute, time.Minute, false},
		{"stalled", Stall("InvalidSpec", "bad"), 0, 0, false},
		{"stalled, rechecked", Stall("InvalidSpec", "bad"), time.Hour, time.Hour, false},
		{"wrapped stall", fmt.Errorf("planning: %w", Stall("X", "y")), 0, 0, false},
		{"waiting", Wait(30*time.Second, "LegalHold", "held"), 0, 30 * time.Second, false},
		{"waiting, sooner periodic", Wait(time.Hour, "InReview", "window"), time.Minute, time.Minute, false},
		{"waiting, later periodic", Wait(time.Second, "Queued", "q"), time.Minute, time.Second, false},
		{"transient", transient, time.Minute, 0, true},
		{"wrapped transient", fmt.Errorf("listing: %w", transient), 0, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Result(tc.err, tc.next)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if err != nil && res.RequeueAfter != 0 {
				t.Fatalf("RequeueAfter %s together with an error: controller-runtime would ignore it", res.RequeueAfter)
			}
			if res.RequeueAfter != tc.wantAfter {
				t.Fatalf("RequeueAfter %s, want %s", res.RequeueAfter, tc.wantAfter)
			}
		})
	}
}

func TestAs(t *testing.T) {
	err := fmt.Errorf("a: %w", Stall("DerivationLimit", "too many"))
	if se := AsStall(err); se == nil || se.Reason != "DerivationLimit" || se.Msg != "too many" {
		t.Fatalf("AsStall = %+v", se)
	}
	if AsWait(err) != nil {
		t.Fatal("a stall is not a wait")
	}
	if AsStall(errors.New("x")) != nil {
		t.Fatal("a plain error is not a stall")
	}
}
