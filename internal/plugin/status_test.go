package plugin

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }

func cond(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg}
}

func TestRequestRow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status retentionv1.DeletionRequestStatus
		state  string
		detail string
	}{
		{"new", retentionv1.DeletionRequestStatus{}, StatePending, ""},
		{"reviewing", retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestReviewing, NotBefore: at(2 * time.Hour), DeadlineTime: at(72 * time.Hour)}, StateReviewing, "review window ends in 120m; deadline in 3d"},
		{"awaiting approval", retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestAwaitingApproval}, StateAwaitingApproval, "kubectl lethe approve r"},
		{"held", retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestHeld, HeldBy: []string{"litigation"}, DeadlineTime: at(time.Hour)}, StateHeld, "by litigation; deadline in 60m"},
		{"running", retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestRunning, PurgeJobs: []string{"erase-1"}}, StateRunning, "PurgeJobs erase-1"},
		{"overdue", retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestAwaitingApproval, DeadlineTime: at(-3 * time.Hour)}, StateOverdue, "deadline 3h ago; phase AwaitingApproval"},
		{"completed late is not overdue", retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestCompleted, DeadlineTime: at(-time.Hour), Receipt: &retentionv1.Receipt{SHA256: "0123456789abcdef"}}, StateCompleted, "receipt sha256 0123456789ab"},
		{"stalled and overdue", retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestPending, DeadlineTime: at(-time.Minute),
			Conditions: []metav1.Condition{cond(retentionv1.ConditionStalled, metav1.ConditionTrue, "SecretNotMarked", "label it")}}, StateStalled, "SecretNotMarked: label it; overdue: deadline 60s ago"},
		{"failed", retentionv1.DeletionRequestStatus{Phase: retentionv1.RequestFailed,
			Conditions: []metav1.Condition{cond(retentionv1.ConditionReady, metav1.ConditionFalse, "Failed", "it broke")}}, StateFailed, "Failed: it broke"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dr := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Status: tc.status}
			r := RequestRow(dr, now)
			if r.State != tc.state || r.Detail != tc.detail {
				t.Errorf("got %s %q; want %s %q", r.State, r.Detail, tc.state, tc.detail)
			}
		})
	}
}

func TestPolicyRow(t *testing.T) {
	ready := []metav1.Condition{cond(retentionv1.ConditionReady, metav1.ConditionTrue, "Scheduled", "ok")}
	for _, tc := range []struct {
		name    string
		suspend bool
		status  retentionv1.RetentionPolicyStatus
		state   string
		detail  string
	}{
		{"ready", false, retentionv1.RetentionPolicyStatus{Conditions: ready, NextScheduleTime: at(time.Hour),
			LastRun: &retentionv1.RunSummary{PurgeJob: "p-1", Result: retentionv1.PurgeJobSucceeded}}, StateReady, "next run in 60m; last run p-1 Succeeded"},
		{"running", false, retentionv1.RetentionPolicyStatus{Conditions: ready, Active: []string{"p-2"}}, StateRunning, "runs p-2"},
		{"suspended", true, retentionv1.RetentionPolicyStatus{Conditions: ready}, StateSuspended, "spec.suspend is true"},
		{"overdue", false, retentionv1.RetentionPolicyStatus{Conditions: ready, NextScheduleTime: at(-time.Hour)}, StateOverdue, "next run 60m ago (is the manager running?)"},
		{"due a moment ago", false, retentionv1.RetentionPolicyStatus{Conditions: ready, NextScheduleTime: at(-time.Minute)}, StateReady, "next run 60s ago"},
		{"stalled", false, retentionv1.RetentionPolicyStatus{Conditions: []metav1.Condition{cond(retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonSafetyLimitExceeded, "Run p-3 would exceed")}}, StateStalled, "SafetyLimitExceeded: Run p-3 would exceed"},
		{"not seen", false, retentionv1.RetentionPolicyStatus{}, StatePending, "not yet seen by the manager"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &retentionv1.RetentionPolicy{Spec: retentionv1.RetentionPolicySpec{Suspend: tc.suspend}, Status: tc.status}
			r := PolicyRow(p, now)
			if r.State != tc.state || r.Detail != tc.detail {
				t.Errorf("got %s %q; want %s %q", r.State, r.Detail, tc.state, tc.detail)
			}
		})
	}
}

func TestPurgeJobAndHoldRows(t *testing.T) {
	j := &retentionv1.PurgeJob{ObjectMeta: metav1.ObjectMeta{Name: "p-3"}, Spec: retentionv1.PurgeJobSpec{Mode: retentionv1.ModeEnforce},
		Status: retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobStalled, Matched: 500,
			Conditions: []metav1.Condition{cond(retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonSafetyLimitExceeded, "would touch 500")}}}
	if r := PurgeJobRow(j); r.State != StateStalled || r.Detail != "SafetyLimitExceeded: would touch 500 (kubectl lethe release-run p-3)" {
		t.Errorf("stalled job: %+v", r)
	}
	j.Annotations = map[string]string{retentionv1.AnnotationReleaseSafetyLimit: "true"}
	if r := PurgeJobRow(j); strings.Contains(r.Detail, "release-run") {
		t.Errorf("a released job still suggests release-run: %+v", r)
	}
	j.Status = retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobSucceeded, Matched: 10, Deleted: 7, Anonymized: 1, Held: 2}
	if r := PurgeJobRow(j); r.State != StateSucceeded || r.Detail != "Enforce: 10 matched, 7 deleted, 1 anonymized, 2 held" {
		t.Errorf("succeeded job: %+v", r)
	}
	j.Status = retentionv1.PurgeJobStatus{Phase: retentionv1.PurgeJobSuspended, Matched: 10, Deleted: 4}
	if r := PurgeJobRow(j); r.State != StateSuspended || r.Detail != "Enforce: 10 matched, 4 deleted, 0 anonymized (kubectl lethe resume purgejob p-3)" {
		t.Errorf("suspended job: %+v", r)
	}
	h := &retentionv1.LegalHold{Status: retentionv1.LegalHoldStatus{Phase: retentionv1.HoldActive, Subjects: 2, Derived: 3, Blocking: []string{"DeletionRequest/a"}}}
	if r := HoldRow(h); r.State != StateHolding || r.Detail != "2 subjects, 3 derived; blocking DeletionRequest/a" {
		t.Errorf("active hold: %+v", r)
	}
	h.Status.Phase = retentionv1.HoldReleased
	if r := HoldRow(h); r.State != StateEnded {
		t.Errorf("released hold: %+v", r)
	}
}

func TestReadIdentityValue(t *testing.T) {
	for in, want := range map[string]string{"a@example.com\n": "a@example.com", "a@example.com": "a@example.com", "x\r\nmore\n": "x"} {
		if got, err := readIdentityValue(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("readIdentityValue(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := readIdentityValue(strings.NewReader("")); err == nil {
		t.Error("an empty input was accepted")
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	if err := table(&b, []string{"KIND", "NAME"}, [][]string{{"DataStore", "shop"}, {"Dataset", "s"}}); err != nil {
		t.Fatal(err)
	}
	if want := "KIND        NAME\nDataStore   shop\nDataset     s\n"; b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
