package backups

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func TestExpiryAndConditionOnAFakeClock(t *testing.T) {
	completed := time.Date(2030, 1, 31, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		stores  []Store
		expiry  time.Time
		unknown int
	}{
		{"longest retention wins", []Store{{"db", "30d"}, {"cache", "0h"}, {"objects", "6w"}}, completed.AddDate(0, 0, 42), 0},
		{"calendar months", []Store{{"db", "1mo"}}, time.Date(2030, 2, 28, 12, 0, 0, 0, time.UTC), 0},
		{"no backups: expired at completion", []Store{{"cache", "0h"}}, completed, 0},
		{"undeclared store", []Store{{"db", "30d"}, {"legacy", ""}}, time.Time{}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expiry, unknown, err := Expiry(completed, tc.stores)
			if err != nil {
				t.Fatal(err)
			}
			if !expiry.Equal(tc.expiry) || len(unknown) != tc.unknown {
				t.Fatalf("expiry %s unknown %v, want %s and %d unknown", expiry, unknown, tc.expiry, tc.unknown)
			}
			if tc.unknown > 0 {
				if s, r, _, wait := Condition(expiry, unknown, completed.AddDate(10, 0, 0)); s != metav1.ConditionUnknown || r != retentionv1.ReasonBackupRetentionUnknown || wait != 0 {
					t.Fatalf("condition %s %s wait %s", s, r, wait)
				}
				return
			}
			// The fake clock: a second before, at, and after the expiry.
			if expiry.After(completed) {
				s, r, _, wait := Condition(expiry, nil, expiry.Add(-time.Second))
				if s != metav1.ConditionFalse || r != retentionv1.ReasonBackupsRetained || wait != time.Second {
					t.Fatalf("a second before: %s %s wait %s", s, r, wait)
				}
			}
			for _, now := range []time.Time{expiry, expiry.Add(time.Hour)} {
				if s, r, _, wait := Condition(expiry, nil, now); s != metav1.ConditionTrue || r != retentionv1.ReasonBackupsExpired || wait != 0 {
					t.Fatalf("at %s: %s %s wait %s", now, s, r, wait)
				}
			}
		})
	}
	if _, _, err := Expiry(completed, []Store{{"db", "soon"}}); err == nil {
		t.Fatal("an invalid retention was accepted")
	}
}
