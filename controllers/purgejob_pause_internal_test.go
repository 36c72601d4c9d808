package controllers

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

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

// The window gate: open lets the batch through; closed pauses with the next
// start as Until and a recheck within a minute; invalid windows pause too;
// an erasure passes by default.
func TestWindowGate(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 30, 0, time.UTC)
	policyRun := &retentionv1.PurgeJob{Spec: retentionv1.PurgeJobSpec{Operations: []retentionv1.Operation{{Collection: "events", ByAge: true}}}}
	erasure := &retentionv1.PurgeJob{Spec: retentionv1.PurgeJobSpec{Operations: []retentionv1.Operation{{Collection: "events", BySubject: true}}}}
	for _, tt := range []struct {
		name     string
		job      *retentionv1.PurgeJob
		schedule retentionv1.CronSchedule
		until    time.Time
		after    time.Duration
		message  string
	}{
		{name: "open", job: policyRun, schedule: "0 11 * * *"},
		{name: "closed", job: policyRun, schedule: "0 1 * * *", until: time.Date(2026, 6, 11, 1, 0, 0, 0, time.UTC), after: time.Minute,
			message: "Outside the purge windows of DataStore db; the next opens at 2026-06-11T01:00:00Z"},
		{name: "closed, opening in 30s: asked again then", job: policyRun, schedule: "1 12 * * *", until: now.Add(30 * time.Second), after: 30 * time.Second},
		{name: "closed, an erasure runs anyway", job: erasure, schedule: "0 1 * * *"},
		{name: "never opens", job: policyRun, schedule: "0 0 30 2 *", after: time.Minute,
			message: "The purge windows of DataStore db are invalid (windows[0]: invalid schedule \"0 0 30 2 *\": it never fires (no such day in any month it names)); the job waits until they are fixed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := &retentionv1.DataStore{Spec: retentionv1.DataStoreSpec{Windows: []retentionv1.PurgeWindow{{Schedule: tt.schedule, Duration: "2h"}}}}
			store.Name = "db"
			j := &jobRun{r: &PurgeJobReconciler{Deps: Deps{Clock: func() time.Time { return now }}}, job: tt.job, store: store}
			p, err := j.windowGate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tt.after == 0 {
				if p != nil {
					t.Fatalf("paused: %v", p)
				}
				return
			}
			if p == nil || p.Reason != retentionv1.ReasonOutsideWindow || !p.Until.Equal(tt.until) || p.After(now) != tt.after {
				t.Fatalf("pause %+v (after %v), want until %v after %v", p, p.After(now), tt.until, tt.after)
			}
			if tt.message != "" && p.Message != tt.message {
				t.Errorf("message %q, want %q", p.Message, tt.message)
			}
		})
	}
}

// The suspend gate reads the job as it is now (the client's view), not the
// copy the reconcile started from.
func TestSuspendGateReadsTheCurrentJob(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := retentionv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	stored := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "run"}, Spec: retentionv1.PurgeJobSpec{Suspend: true}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(stored).Build()
	started := stored.DeepCopy()
	started.Spec.Suspend = false // the copy read when the reconcile began
	j := &jobRun{r: &PurgeJobReconciler{Deps: Deps{Client: c}}, job: started}
	p, err := j.suspendGate(context.Background())
	if err != nil || p == nil || p.Reason != retentionv1.ReasonSuspended {
		t.Fatalf("suspended job: pause %v, %v", p, err)
	}
	stored.Spec.Suspend = false
	if err := c.Update(context.Background(), stored); err != nil {
		t.Fatal(err)
	}
	if p, err := j.suspendGate(context.Background()); err != nil || p != nil {
		t.Fatalf("resumed job: pause %v, %v", p, err)
	}
	if err := c.Delete(context.Background(), stored); err != nil {
		t.Fatal(err)
	}
	if p, err := j.suspendGate(context.Background()); err != nil || p != nil {
		t.Fatalf("deleted job: pause %v, %v", p, err)
	}
}

// The gate keeps the window state for a slice, until it changes: a window
// that closes during the slice pauses the batch right after.
func TestWindowGateNoticesTheCloseWithinASlice(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 59, 0, 0, time.UTC)
	store := &retentionv1.DataStore{Spec: retentionv1.DataStoreSpec{Windows: []retentionv1.PurgeWindow{{Schedule: "0 11 * * *", Duration: "2h"}}}}
	job := &retentionv1.PurgeJob{Spec: retentionv1.PurgeJobSpec{Operations: []retentionv1.Operation{{Collection: "events", ByAge: true}}}}
	j := &jobRun{r: &PurgeJobReconciler{Deps: Deps{Clock: func() time.Time { return now }}}, job: job, store: store}
	for _, step := range []struct {
		at     time.Duration
		paused bool
	}{{0, false}, {59 * time.Second, false}, {time.Minute, true}, {2 * time.Minute, true}, {22 * time.Hour, true}, {22*time.Hour + time.Minute, false}} {
		now = time.Date(2026, 6, 10, 12, 59, 0, 0, time.UTC).Add(step.at)
		p, err := j.windowGate(context.Background())
		if err != nil || (p != nil) != step.paused {
			t.Fatalf("at %v: pause %v, %v; want paused=%v", now, p, err, step.paused)
		}
	}
}
