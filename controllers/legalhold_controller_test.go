package controllers_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func holdKey(ns, name string) *retentionv1.LegalHold {
	return &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func holdIn(phase retentionv1.LegalHoldPhase) func(*retentionv1.LegalHold) bool {
	return func(h *retentionv1.LegalHold) bool {
		return h.Status.Phase == phase && h.Status.ObservedGeneration == h.Generation &&
			hasCondition(h, retentionv1.ConditionReady, metav1.ConditionTrue, string(phase))
	}
}

func TestLegalHoldExpiresOnTime(t *testing.T) {
	startLethe(t, time.Minute)
	ns := namespace(t)
	expires := time.Now().Add(3 * time.Second)
	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-1"},
		Spec: retentionv1.LegalHoldSpec{
			Reason:    "case 2026-17",
			Subjects:  []retentionv1.SubjectIdentity{{Type: "email", Value: "ada@example.com"}, {Type: "user_id", Value: "42"}},
			ExpiresAt: &metav1.Time{Time: expires},
		},
	})
	h := waitFor(t, holdKey(ns, "case-1"), 10*time.Second, "phase Active", holdIn("Active"))
	if h.Status.Subjects != 2 || !hasCondition(h, retentionv1.ConditionActive, metav1.ConditionTrue, retentionv1.ReasonActive) {
		t.Errorf("active hold: subjects %d, conditions %+v", h.Status.Subjects, h.Status.Conditions)
	}
	h = waitFor(t, holdKey(ns, "case-1"), 10*time.Second, "phase Expired", holdIn("Expired"))
	// expiresAt is stored to the second; the flip must not come before it.
	if now := time.Now(); now.Before(h.Spec.ExpiresAt.Time) {
		t.Errorf("expired at %s, before expiresAt %s", now, h.Spec.ExpiresAt.Time)
	} else if late := now.Sub(expires); late > 3*time.Second {
		t.Errorf("phase flipped %s after expiresAt", late)
	}
	if !hasCondition(h, retentionv1.ConditionActive, metav1.ConditionFalse, retentionv1.ReasonExpired) ||
		condition(h, retentionv1.ConditionStalled) != nil || condition(h, retentionv1.ConditionReconciling) != nil {
		t.Errorf("expired hold conditions: %+v", h.Status.Conditions)
	}
	assertNoSubjectValues(t, ns, h, "ada@example.com")
}

func TestLegalHoldReleased(t *testing.T) {
	startLethe(t, time.Minute)
	ns := namespace(t)
	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-2"},
		Spec:       retentionv1.LegalHoldSpec{Collections: []retentionv1.Identifier{"orders"}},
	})
	h := waitFor(t, holdKey(ns, "case-2"), 10*time.Second, "phase Active", holdIn("Active"))
	// Read again on a conflict: the controller may write the hold meanwhile.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(h), h); err != nil {
			return err
		}
		h.Spec.Released = true
		return env.Client.Update(context.Background(), h)
	}); err != nil {
		t.Fatal(err)
	}
	h = waitFor(t, holdKey(ns, "case-2"), 10*time.Second, "phase Released", holdIn("Released"))
	if !hasCondition(h, retentionv1.ConditionActive, metav1.ConditionFalse, retentionv1.ReasonReleased) {
		t.Errorf("released hold conditions: %+v", h.Status.Conditions)
	}
	assertEvent(t, ns, "case-2", "Released")
}

func TestLegalHoldCountsSubjectsFromSecret(t *testing.T) {
	startLethe(t, time.Second)
	ns := namespace(t)
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held", Labels: marked()},
		StringData: map[string]string{"user_id": "1\n2\n\n3\n", "email": "grace@example.com\n"},
	})
	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-3"},
		Spec: retentionv1.LegalHoldSpec{
			Subjects:          []retentionv1.SubjectIdentity{{Type: "user_id", Value: "3"}, {Type: "phone", Value: "+4915100000"}},
			SubjectsSecretRef: &retentionv1.SecretReference{Name: "held"},
		},
	})
	// user_id 1, 2, 3 (3 also inline), email, phone: five distinct subjects.
	h := waitFor(t, holdKey(ns, "case-3"), 10*time.Second, "Active with 5 subjects", func(h *retentionv1.LegalHold) bool {
		return holdIn("Active")(h) && h.Status.Subjects == 5
	})
	assertNoSubjectValues(t, ns, h, "grace@example.com", "+4915100000")
}

func TestLegalHoldMissingSecretStalls(t *testing.T) {
	startLethe(t, time.Second)
	ns := namespace(t)
	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-4"},
		Spec:       retentionv1.LegalHoldSpec{SubjectsSecretRef: &retentionv1.SecretReference{Name: "later"}},
	})
	h := waitFor(t, holdKey(ns, "case-4"), 10*time.Second, "Stalled=True SecretNotFound", func(h *retentionv1.LegalHold) bool {
		return hasCondition(h, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonSecretNotFound)
	})
	// The hold still holds: a missing Secret never lets data go.
	if h.Status.Phase != "Active" || !hasCondition(h, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonSecretNotFound) ||
		!hasCondition(h, retentionv1.ConditionActive, metav1.ConditionTrue, retentionv1.ReasonActive) {
		t.Errorf("stalled hold: phase %s, conditions %+v", h.Status.Phase, h.Status.Conditions)
	}
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later", Labels: marked()},
		StringData: map[string]string{"user_id": "7\n8\n"},
	})
	h = waitFor(t, holdKey(ns, "case-4"), 15*time.Second, "Ready once the Secret exists", func(h *retentionv1.LegalHold) bool {
		return holdIn("Active")(h) && h.Status.Subjects == 2
	})
	if condition(h, retentionv1.ConditionStalled) != nil {
		t.Errorf("Stalled must be gone: %+v", h.Status.Conditions)
	}
}

func TestLegalHoldListsWhatItBlocks(t *testing.T) {
	startLethe(t, time.Minute) // no PurgeJob controller: job statuses are set by hand
	ns := namespace(t)
	create(t, &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{
				{Name: "orders", TimestampField: "ts", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}},
				{Name: "events", TimestampField: "ts", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}},
			},
		},
	})
	cutoff := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	job := func(name, collection string) *retentionv1.PurgeJob {
		return &retentionv1.PurgeJob{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: retentionv1.PurgeJobSpec{
				DatasetRef: retentionv1.LocalObjectReference{Name: "app"},
				Mode:       retentionv1.ModeEnforce,
				Cutoff:     &cutoff,
				Operations: []retentionv1.Operation{{Collection: retentionv1.Identifier(collection), Action: retentionv1.ActionDelete, ByAge: true}},
			},
		}
	}
	setStatus := func(j *retentionv1.PurgeJob, phase, opPhase retentionv1.PurgeJobPhase) {
		t.Helper()
		j.Status.Phase = phase
		j.Status.Operations = []retentionv1.OperationStatus{{Collection: string(j.Spec.Operations[0].Collection), Phase: opPhase}}
		if err := env.Client.Status().Update(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	// Later tests' managers run the PurgeJob controller: leave no job behind.
	t.Cleanup(func() {
		_ = env.Client.DeleteAllOf(context.Background(), &retentionv1.PurgeJob{}, client.InNamespace(ns))
	})
	pending := job("pending-orders", "orders")
	create(t, pending)
	other := job("pending-events", "events")
	create(t, other)
	held := job("held-orders", "orders")
	create(t, held)
	setStatus(held, retentionv1.PurgeJobSucceeded, retentionv1.OperationHeld)
	done := job("done-orders", "orders")
	create(t, done)
	setStatus(done, retentionv1.PurgeJobSucceeded, retentionv1.PurgeJobSucceeded)

	create(t, &retentionv1.LegalHold{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-hold"},
		Spec:       retentionv1.LegalHoldSpec{Collections: []retentionv1.Identifier{"orders"}},
	})
	want := []string{"PurgeJob/held-orders", "PurgeJob/pending-orders"}
	waitFor(t, holdKey(ns, "orders-hold"), 10*time.Second, "blocking "+strings.Join(want, ","), func(h *retentionv1.LegalHold) bool {
		return holdIn("Active")(h) && slices.Equal(h.Status.Blocking, want)
	})

	// The pending job finishes: the watch on PurgeJobs refreshes the list.
	setStatus(pending, retentionv1.PurgeJobSucceeded, retentionv1.PurgeJobSucceeded)
	waitFor(t, holdKey(ns, "orders-hold"), 10*time.Second, "blocking only the held job", func(h *retentionv1.LegalHold) bool {
		return slices.Equal(h.Status.Blocking, []string{"PurgeJob/held-orders"})
	})
}

// assertNoSubjectValues checks that a hold's status and events carry none of
// the subject values.
func assertNoSubjectValues(t *testing.T, ns string, h *retentionv1.LegalHold, values ...string) {
	t.Helper()
	status, err := json.Marshal(h.Status)
	if err != nil {
		t.Fatal(err)
	}
	var events eventsv1.EventList
	if err := env.Client.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	texts := []string{string(status)}
	for _, e := range events.Items {
		texts = append(texts, e.Note)
	}
	for _, v := range values {
		for _, text := range texts {
			if strings.Contains(text, v) {
				t.Errorf("subject value %q leaked into %s", v, text)
			}
		}
	}
}
