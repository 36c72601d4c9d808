package controllers

import (
	"testing"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Which PurgeJobs keep to their DataStore's windows: RetentionPolicy runs
// always; erasures of DeletionRequests only with windowsApplyTo All.
func TestKeepsToWindows(t *testing.T) {
	windows := []retentionv1.PurgeWindow{{Schedule: "0 1 * * *", Duration: "4h"}}
	byAge := &retentionv1.PurgeJob{Spec: retentionv1.PurgeJobSpec{Operations: []retentionv1.Operation{{Collection: "events", ByAge: true}}}}
	bySubject := &retentionv1.PurgeJob{Spec: retentionv1.PurgeJobSpec{Operations: []retentionv1.Operation{{Collection: "events", BySubject: true}}}}
	withSecret := &retentionv1.PurgeJob{Spec: retentionv1.PurgeJobSpec{SubjectsSecretRef: &retentionv1.SecretReference{Name: "s"}, Operations: []retentionv1.Operation{{Collection: "events", ByAge: true}}}}
	for _, tt := range []struct {
		name    string
		job     *retentionv1.PurgeJob
		windows []retentionv1.PurgeWindow
		applyTo retentionv1.WindowsApplyTo
		want    bool
	}{
		{"no windows", byAge, nil, retentionv1.WindowsApplyToAll, false},
		{"a policy run, default", byAge, windows, "", true},
		{"a policy run, RetentionRuns", byAge, windows, retentionv1.WindowsApplyToRetentionRuns, true},
		{"an erasure, default: any time", bySubject, windows, "", false},
		{"an erasure with a subjects Secret, RetentionRuns: any time", withSecret, windows, retentionv1.WindowsApplyToRetentionRuns, false},
		{"an erasure, All", bySubject, windows, retentionv1.WindowsApplyToAll, true},
	} {
		store := &retentionv1.DataStore{Spec: retentionv1.DataStoreSpec{Windows: tt.windows, WindowsApplyTo: tt.applyTo}}
		if got := keepsToWindows(tt.job, store); got != tt.want {
			t.Errorf("%s: keepsToWindows = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The DataStore's status shows the window state and when it changes.
func TestWindowStatus(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	ds := &retentionv1.DataStore{Spec: retentionv1.DataStoreSpec{Windows: []retentionv1.PurgeWindow{{Schedule: "0 1 * * *", Duration: "4h", TimeZone: "Europe/Berlin"}}}}
	if d := windowStatus(ds, now); ds.Status.Window != retentionv1.WindowClosed || ds.Status.NextWindow == nil ||
		!ds.Status.NextWindow.Time.Equal(time.Date(2026, 6, 10, 23, 0, 0, 0, time.UTC)) || d != 11*time.Hour || ds.Status.WindowClosesAt != nil {
		t.Errorf("closed: %+v, next change in %v", ds.Status, d)
	}
	if d := windowStatus(ds, now.Add(12*time.Hour)); ds.Status.Window != retentionv1.WindowOpen || ds.Status.WindowClosesAt == nil ||
		!ds.Status.WindowClosesAt.Time.Equal(time.Date(2026, 6, 11, 3, 0, 0, 0, time.UTC)) || d != 3*time.Hour || ds.Status.NextWindow != nil {
		t.Errorf("open: %+v, next change in %v", ds.Status, d)
	}
	ds.Spec.Windows[0].Schedule = "0 0 30 2 *"
	if d := windowStatus(ds, now); ds.Status.Window != retentionv1.WindowInvalid || d != 0 {
		t.Errorf("invalid: %+v, %v", ds.Status, d)
	}
	ds.Spec.Windows = nil
	if d := windowStatus(ds, now); ds.Status.Window != "" || d != 0 {
		t.Errorf("no windows: %+v, %v", ds.Status, d)
	}
}
