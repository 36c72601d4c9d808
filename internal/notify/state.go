package notify

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Backoff is the retry schedule: the n-th retry waits Base·2^(n-1), at most
// Max, with jitter (a delay drawn between half and all of that). The jitter
// is drawn from the notice's id and the attempt number, so recipients
// notified at the same moment spread out, and a restarted manager keeps the
// schedule it had (the next attempt's time is in the status anyway).
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// DefaultBackoff retries after 30s, 1m, 2m… up to every 6h.
var DefaultBackoff = Backoff{Base: 30 * time.Second, Max: 6 * time.Hour}

// Delay is the wait after the attempt-th attempt (1 for the first).
func (b Backoff) Delay(id string, attempt int32) time.Duration {
	if b.Base <= 0 {
		b = DefaultBackoff
	}
	if b.Max < b.Base {
		b.Max = b.Base
	}
	d := b.Base
	for i := int32(1); i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", id, attempt)))
	frac := float64(binary.BigEndian.Uint64(sum[:8])>>11) / float64(1<<53) // [0, 1)
	return d/2 + time.Duration(frac*float64(d/2))
}

// LateGrace is the least time a notice is given when the erasure completed
// at or after the request's deadline.
const LateGrace = 24 * time.Hour

// Deadline is when a notice fails unless acknowledged: the request's
// deadline, or LateGrace after completion when that is later.
func Deadline(requestDeadline, completed time.Time) time.Time {
	if late := completed.Add(LateGrace); requestDeadline.Before(late) && !completed.Before(requestDeadline) {
		return late
	}
	return requestDeadline
}

// ResultKind is what one attempt gave.
type ResultKind string

// Results of an attempt.
const (
	// Delivered: the endpoint answered 2xx to the notice.
	Delivered ResultKind = "Delivered"
	// Acknowledged: a verified asynchronous acknowledgement.
	Acknowledged ResultKind = "Acknowledged"
	// NotYet: the acknowledgement URL has none yet.
	NotYet ResultKind = "NotYet"
	// Failed: the attempt failed (retried until the deadline).
	Failed ResultKind = "Failed"
	// Forged: an acknowledgement was served whose signature does not verify
	// or that names another notice; rejected (retried until the deadline).
	Forged ResultKind = "Forged"
)

// Result of one attempt. Message never carries identities, nor what the
// endpoint sent beyond its status code.
type Result struct {
	Kind    ResultKind
	Message string
}

// New is the state of a notice not yet sent: Pending, due now.
func New(name, id string, now, deadline time.Time) retentionv1.RecipientNotice {
	return retentionv1.RecipientNotice{
		Name: name, NoticeID: id, State: retentionv1.NoticePending,
		NextAttemptTime: &metav1.Time{Time: now}, DeadlineTime: &metav1.Time{Time: deadline},
		Reason: retentionv1.ReasonNotifying, Message: "Not sent yet",
	}
}

// Due reports whether the notice's next attempt is due at now.
func Due(n retentionv1.RecipientNotice, now time.Time) bool {
	return !n.State.Final() && (n.NextAttemptTime == nil || !now.Before(n.NextAttemptTime.Time))
}

// Step returns the notice after an attempt made at now gave r, for a
// recipient acknowledging with mode:
//
//	Pending  + Delivered    → Acknowledged (Response) or Notified (Async, poll next)
//	Notified + Acknowledged → Acknowledged
//	any      + NotYet, Failed, Forged → same state, next attempt after Backoff
//
// A final state never changes. The deadline is applied by Expire.
func Step(n retentionv1.RecipientNotice, r Result, mode retentionv1.AcknowledgementMode, now time.Time, b Backoff) retentionv1.RecipientNotice {
	if n.State.Final() {
		return n
	}
	n.Attempts++
	n.LastAttemptTime = &metav1.Time{Time: now}
	n.Message = r.Message
	retry := func(reason string) {
		n.Reason = reason
		n.NextAttemptTime = &metav1.Time{Time: now.Add(b.Delay(n.NoticeID, n.Attempts))}
	}
	switch {
	case r.Kind == Acknowledged && n.State == retentionv1.NoticeNotified,
		r.Kind == Delivered && n.State == retentionv1.NoticePending && mode != retentionv1.AcknowledgeAsync:
		n.State, n.Reason, n.NextAttemptTime = retentionv1.NoticeAcknowledged, retentionv1.ReasonNoticeAcknowledged, nil
	case r.Kind == Delivered && n.State == retentionv1.NoticePending:
		n.State = retentionv1.NoticeNotified
		retry(retentionv1.ReasonNoticeDelivered)
	case r.Kind == Forged:
		retry(retentionv1.ReasonForgedAcknowledgement)
	case r.Kind == NotYet:
		retry(retentionv1.ReasonNoticeDelivered)
	default:
		retry(retentionv1.ReasonDeliveryFailed)
	}
	return n
}

// Expire fails a notice whose deadline has passed at now without an
// acknowledgement; it reports whether it did.
func Expire(n retentionv1.RecipientNotice, now time.Time) (retentionv1.RecipientNotice, bool) {
	if n.State.Final() || n.DeadlineTime == nil || now.Before(n.DeadlineTime.Time) {
		return n, false
	}
	last := n.Message
	n.State, n.Reason, n.NextAttemptTime = retentionv1.NoticeFailed, retentionv1.ReasonNoticeDeadlineExceeded, nil
	n.Message = fmt.Sprintf("Not acknowledged by the deadline %s after %d attempts", n.DeadlineTime.UTC().Format(time.RFC3339), n.Attempts)
	if last != "" {
		n.Message += "; last: " + last
	}
	return n, true
}

// Fail makes a notice Failed at once (the Recipient or the notice is gone).
func Fail(n retentionv1.RecipientNotice, reason, msg string) retentionv1.RecipientNotice {
	if n.State.Final() {
		return n
	}
	n.State, n.Reason, n.Message, n.NextAttemptTime = retentionv1.NoticeFailed, reason, msg, nil
	return n
}

// Summary is the RecipientsNotified condition of a set of notices: True
// (AllAcknowledged) when all are acknowledged, False (NotificationFailed)
// once one failed and none is under way, False (Notifying) otherwise.
func Summary(notices []retentionv1.RecipientNotice) (status metav1.ConditionStatus, reason, msg string) {
	var acked, failed, open int
	for _, n := range notices {
		switch n.State {
		case retentionv1.NoticeAcknowledged:
			acked++
		case retentionv1.NoticeFailed:
			failed++
		default:
			open++
		}
	}
	counts := fmt.Sprintf("%d of %d recipients acknowledged, %d failed, %d under way", acked, len(notices), failed, open)
	switch {
	case len(notices) == 0:
		return metav1.ConditionTrue, retentionv1.ReasonNoRecipients, "No Recipient receives data of this erasure's Datasets and identity types"
	case acked == len(notices):
		return metav1.ConditionTrue, retentionv1.ReasonAllAcknowledged, counts
	case open == 0:
		return metav1.ConditionFalse, retentionv1.ReasonNotificationFailed, counts
	default:
		return metav1.ConditionFalse, retentionv1.ReasonNotifying, counts
	}
}

// Next is the earliest due time of the notices still under way (zero when
// none is).
func Next(notices []retentionv1.RecipientNotice) time.Time {
	var next time.Time
	for _, n := range notices {
		if n.State.Final() {
			continue
		}
		for _, t := range []*metav1.Time{n.NextAttemptTime, n.DeadlineTime} {
			if t != nil && (next.IsZero() || t.Before(&metav1.Time{Time: next})) {
				next = t.Time
			}
		}
	}
	return next
}
