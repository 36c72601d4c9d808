package notify

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func TestBackoffDoublesWithJitterAndIsTheSameAfterARestart(t *testing.T) {
	b := Backoff{Base: 30 * time.Second, Max: time.Hour}
	for attempt := int32(1); attempt <= 12; attempt++ {
		full := min(b.Base<<(attempt-1), b.Max)
		d := b.Delay("msg_a", attempt)
		if d < full/2 || d > full {
			t.Errorf("attempt %d: delay %s outside [%s, %s]", attempt, d, full/2, full)
		}
		if again := b.Delay("msg_a", attempt); again != d {
			t.Errorf("attempt %d: %s then %s: the schedule must not depend on the process", attempt, d, again)
		}
	}
	// Jitter: notices sent at the same moment spread out.
	seen := map[time.Duration]bool{}
	for _, id := range []string{"msg_a", "msg_b", "msg_c", "msg_d", "msg_e"} {
		seen[b.Delay(id, 3)] = true
	}
	if len(seen) < 4 {
		t.Errorf("five notices drew %d distinct delays: no jitter", len(seen))
	}
	if d := (Backoff{}).Delay("msg_a", 1); d < DefaultBackoff.Base/2 || d > DefaultBackoff.Base {
		t.Errorf("zero Backoff: %s, want the default", d)
	}
}

func TestDeadline(t *testing.T) {
	created := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	deadline := created.Add(30 * 24 * time.Hour)
	for _, tc := range []struct {
		name      string
		completed time.Time
		want      time.Time
	}{
		{"in time: the request's deadline", created.Add(time.Hour), deadline},
		{"at the deadline: one more day", deadline, deadline.Add(LateGrace)},
		{"overdue: one day from completion", deadline.Add(48 * time.Hour), deadline.Add(48*time.Hour + LateGrace)},
	} {
		if got := Deadline(deadline, tc.completed); !got.Equal(tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestStep(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b := Backoff{Base: time.Minute, Max: time.Hour}
	pending := New("crm", "msg_1", now, now.Add(time.Hour))
	notified := pending
	notified.State = retentionv1.NoticeNotified
	acked := pending
	acked.State = retentionv1.NoticeAcknowledged
	for _, tc := range []struct {
		name       string
		from       retentionv1.RecipientNotice
		result     ResultKind
		mode       retentionv1.AcknowledgementMode
		want       retentionv1.NoticeState
		reason     string
		retryAfter bool
	}{
		{"2xx acknowledges (Response)", pending, Delivered, retentionv1.AcknowledgeResponse, retentionv1.NoticeAcknowledged, retentionv1.ReasonNoticeAcknowledged, false},
		{"2xx acknowledges (mode unset)", pending, Delivered, "", retentionv1.NoticeAcknowledged, retentionv1.ReasonNoticeAcknowledged, false},
		{"2xx only delivers (Async)", pending, Delivered, retentionv1.AcknowledgeAsync, retentionv1.NoticeNotified, retentionv1.ReasonNoticeDelivered, true},
		{"failure retries", pending, Failed, retentionv1.AcknowledgeResponse, retentionv1.NoticePending, retentionv1.ReasonDeliveryFailed, true},
		{"no acknowledgement yet", notified, NotYet, retentionv1.AcknowledgeAsync, retentionv1.NoticeNotified, retentionv1.ReasonNoticeDelivered, true},
		{"forged acknowledgement rejected", notified, Forged, retentionv1.AcknowledgeAsync, retentionv1.NoticeNotified, retentionv1.ReasonForgedAcknowledgement, true},
		{"failed poll stays notified", notified, Failed, retentionv1.AcknowledgeAsync, retentionv1.NoticeNotified, retentionv1.ReasonDeliveryFailed, true},
		{"verified acknowledgement", notified, Acknowledged, retentionv1.AcknowledgeAsync, retentionv1.NoticeAcknowledged, retentionv1.ReasonNoticeAcknowledged, false},
		{"an acknowledgement before delivery counts for nothing", pending, Acknowledged, retentionv1.AcknowledgeAsync, retentionv1.NoticePending, retentionv1.ReasonDeliveryFailed, true},
		{"final stays final", acked, Failed, retentionv1.AcknowledgeResponse, retentionv1.NoticeAcknowledged, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Step(tc.from, Result{Kind: tc.result, Message: "m"}, tc.mode, now, b)
			if got.State != tc.want {
				t.Fatalf("state %s, want %s", got.State, tc.want)
			}
			if tc.reason != "" && got.Reason != tc.reason {
				t.Errorf("reason %s, want %s", got.Reason, tc.reason)
			}
			if tc.from.State.Final() {
				if got.Attempts != tc.from.Attempts {
					t.Errorf("a final notice counted an attempt")
				}
				return
			}
			if got.Attempts != tc.from.Attempts+1 || got.LastAttemptTime == nil || !got.LastAttemptTime.Equal(&metav1.Time{Time: now}) {
				t.Errorf("attempts %d, last %v", got.Attempts, got.LastAttemptTime)
			}
			if tc.retryAfter != (got.NextAttemptTime != nil) {
				t.Fatalf("next attempt %v, want one: %v", got.NextAttemptTime, tc.retryAfter)
			}
			if tc.retryAfter {
				if d := got.NextAttemptTime.Sub(now); d < b.Base/2 || d > b.Base {
					t.Errorf("first retry after %s, want within [%s, %s]", d, b.Base/2, b.Base)
				}
			}
		})
	}
}

func TestExpireAndSummary(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	n := New("crm", "msg_1", now, now.Add(time.Hour))
	if _, expired := Expire(n, now.Add(time.Hour-time.Second)); expired {
		t.Fatal("expired before the deadline")
	}
	failed, expired := Expire(n, now.Add(time.Hour))
	if !expired || failed.State != retentionv1.NoticeFailed || failed.Reason != retentionv1.ReasonNoticeDeadlineExceeded || failed.NextAttemptTime != nil {
		t.Fatalf("at the deadline: %+v", failed)
	}
	acked := Step(n, Result{Kind: Delivered}, retentionv1.AcknowledgeResponse, now, DefaultBackoff)
	if _, expired := Expire(acked, now.Add(2*time.Hour)); expired {
		t.Fatal("an acknowledged notice expired")
	}
	for _, tc := range []struct {
		notices []retentionv1.RecipientNotice
		status  metav1.ConditionStatus
		reason  string
	}{
		{nil, metav1.ConditionTrue, retentionv1.ReasonNoRecipients},
		{[]retentionv1.RecipientNotice{acked}, metav1.ConditionTrue, retentionv1.ReasonAllAcknowledged},
		{[]retentionv1.RecipientNotice{acked, n}, metav1.ConditionFalse, retentionv1.ReasonNotifying},
		{[]retentionv1.RecipientNotice{acked, failed}, metav1.ConditionFalse, retentionv1.ReasonNotificationFailed},
		{[]retentionv1.RecipientNotice{failed, n}, metav1.ConditionFalse, retentionv1.ReasonNotifying},
	} {
		status, reason, _ := Summary(tc.notices)
		if status != tc.status || reason != tc.reason {
			t.Errorf("Summary(%d notices): %s %s, want %s %s", len(tc.notices), status, reason, tc.status, tc.reason)
		}
	}
	if next := Next([]retentionv1.RecipientNotice{acked, failed}); !next.IsZero() {
		t.Errorf("Next of final notices: %s", next)
	}
	if next := Next([]retentionv1.RecipientNotice{acked, n}); !next.Equal(now) {
		t.Errorf("Next: %s, want %s", next, now)
	}
}
