package controllers_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/metrics"
	"github.com/lethe-dev/lethe/internal/notify"
	"github.com/lethe-dev/lethe/internal/receipt"
)

// The Recipients' signing secret, and one a forger would use.
const (
	recipientSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	forgerSecret    = "whsec_Zm9yZ2VkIGFja25vd2xlZGdlbWVudCBrZXkh"
)

// standardWebhooksVerify is the reference verification of the Standard
// Webhooks specification, written from it and independent of
// internal/notify: HMAC-SHA256 keyed with the base64-decoded secret after
// "whsec_", over "<webhook-id>.<webhook-timestamp>.<body>", base64, equal to
// one "v1,<sig>" of the header; timestamps more than five minutes off are
// refused.
func standardWebhooksVerify(secret string, h http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts, sig := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sig == "" {
		return errors.New("missing required headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("invalid timestamp")
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp too old or too new")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sig) {
		if v, got, ok := strings.Cut(s, ","); ok && v == "v1" && hmac.Equal([]byte(got), []byte(want)) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// partyReceiver is a recipient's HTTPS endpoint on loopback, with its own CA.
type partyReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []partyRequest
	answer func(n int, r *http.Request, w http.ResponseWriter)
}

type partyRequest struct {
	at       time.Time
	method   string
	id       string
	body     []byte
	verified error
}

func newPartyReceiver(t *testing.T, answer func(n int, r *http.Request, w http.ResponseWriter)) *partyReceiver {
	t.Helper()
	p := &partyReceiver{answer: answer}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		n := len(p.got)
		p.got = append(p.got, partyRequest{at: time.Now(), method: r.Method, id: r.Header.Get("webhook-id"), body: body,
			verified: standardWebhooksVerify(recipientSecret, r.Header, body)})
		answer := p.answer
		p.mu.Unlock()
		answer(n, r, w)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *partyReceiver) requests() []partyRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]partyRequest(nil), p.got...)
}

func (p *partyReceiver) posts() []partyRequest {
	var out []partyRequest
	for _, r := range p.requests() {
		if r.method == http.MethodPost {
			out = append(out, r)
		}
	}
	return out
}

// signedAck serves an asynchronous acknowledgement of notice id, signed
// with secret, as a party would.
func signedAck(w http.ResponseWriter, secret, id string) {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	body, _ := json.Marshal(map[string]any{"type": "erasure.acknowledged", "timestamp": time.Now().UTC(), "data": map[string]string{"noticeId": id}})
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("ack_" + id + "." + ts + "." + string(body)))
	w.Header().Set("webhook-id", "ack_"+id)
	w.Header().Set("webhook-timestamp", ts)
	w.Header().Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	_, _ = w.Write(body)
}

// recipientFor creates a Recipient of the receiver, trusting its CA, with
// its signing and CA Secrets.
func recipientFor(t *testing.T, ns, name string, p *partyReceiver, edit func(*retentionv1.RecipientSpec)) {
	t.Helper()
	data := map[string]string{"secret": recipientSecret}
	if p != nil {
		data["ca.crt"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}))
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-webhook", Labels: marked()}, StringData: data})
	spec := retentionv1.RecipientSpec{
		Datasets:         []retentionv1.ObjectName{"app"},
		IdentityTypes:    []retentionv1.IdentityType{"email"},
		Endpoint:         "https://127.0.0.1:9/unused",
		SigningSecretRef: retentionv1.SecretKeySelector{Name: name + "-webhook", Key: "secret"},
	}
	if p != nil {
		spec.Endpoint = p.srv.URL + "/lethe/erasures"
		spec.CABundleSecretRef = &retentionv1.SecretKeySelector{Name: name + "-webhook", Key: "ca.crt"}
	}
	if edit != nil {
		edit(&spec)
	}
	create(t, &retentionv1.Recipient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec})
}

// noticeOf returns the request's notice to a recipient (nil when none).
func noticeOf(dr *retentionv1.DeletionRequest, name string) *retentionv1.RecipientNotice {
	for i := range dr.Status.Recipients {
		if dr.Status.Recipients[i].Name == name {
			return &dr.Status.Recipients[i]
		}
	}
	return nil
}

func noticeIn(dr *retentionv1.DeletionRequest, name string, state retentionv1.NoticeState) bool {
	n := noticeOf(dr, name)
	return n != nil && n.State == state
}

// identitiesSent decodes the identities of a notice body.
func identitiesSent(t *testing.T, body []byte) map[string][]string {
	t.Helper()
	var n struct {
		Type string `json:"type"`
		Data struct {
			RequestID  string              `json:"requestId"`
			Identities map[string][]string `json:"identities"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &n); err != nil || n.Type != "erasure.completed" || n.Data.RequestID == "" {
		t.Fatalf("notice body %q: %v", body, err)
	}
	return n.Data.Identities
}

func secretGone(t *testing.T, ns, name string) bool {
	t.Helper()
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})
	return apierrors.IsNotFound(err)
}

var fastNotices = controllers.Options{NotifyBackoff: notify.Backoff{Base: 300 * time.Millisecond, Max: time.Second}}

func TestRecipientsAreSentSignedNoticesWithOnlyTheirIdentityTypes(t *testing.T) {
	startManager(t, fastNotices)
	ns, _ := appFixture(t)
	// crm fails three times, then answers 200 (acknowledgement: Response).
	crm := newPartyReceiver(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	// analytics accepts the notice, acknowledges it later: first nothing,
	// then a forged acknowledgement, then its own.
	analytics := newPartyReceiver(t, func(n int, r *http.Request, w http.ResponseWriter) {
		id := r.URL.Query().Get("notice")
		switch {
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusAccepted)
		case n == 1:
			w.WriteHeader(http.StatusNotFound)
		case n == 2:
			signedAck(w, forgerSecret, id)
		default:
			signedAck(w, recipientSecret, id)
		}
	})
	recipientFor(t, ns, "crm", crm, nil)
	recipientFor(t, ns, "analytics", analytics, func(s *retentionv1.RecipientSpec) {
		s.IdentityTypes = []retentionv1.IdentityType{"user_id"}
		s.Acknowledgement = retentionv1.RecipientAcknowledgement{Mode: retentionv1.AcknowledgeAsync, URL: analytics.srv.URL + "/lethe/acks"}
	})
	// Not concerned: another Dataset; an identity type the subject lacks.
	billing := newPartyReceiver(t, func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(http.StatusOK) })
	recipientFor(t, ns, "billing", billing, func(s *retentionv1.RecipientSpec) { s.Datasets = []retentionv1.ObjectName{"billing"} })
	recipientFor(t, ns, "devices", billing, func(s *retentionv1.RecipientSpec) { s.IdentityTypes = []retentionv1.IdentityType{"device_id"} })

	waitFor(t, &retentionv1.Recipient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "crm"}}, 30*time.Second, "Recipient Ready",
		func(r *retentionv1.Recipient) bool {
			return hasCondition(r, retentionv1.ConditionReady, metav1.ConditionTrue, retentionv1.ReasonValid)
		})
	create(t, adaRequest(ns, "erase-ada"))
	dr := waitRequest(t, ns, "erase-ada", retentionv1.RequestCompleted)
	ledgerSHA := dr.Status.Receipt.SHA256
	dr = waitFor(t, dr, 60*time.Second, "both notices acknowledged", func(d *retentionv1.DeletionRequest) bool {
		return hasCondition(d, retentionv1.ConditionRecipientsNotified, metav1.ConditionTrue, retentionv1.ReasonAllAcknowledged)
	})
	if len(dr.Status.Recipients) != 2 || noticeOf(dr, "billing") != nil || noticeOf(dr, "devices") != nil {
		t.Fatalf("recipients %+v: want crm and analytics only", dr.Status.Recipients)
	}
	if len(billing.requests()) != 0 {
		t.Fatal("a recipient that does not receive this data was sent a notice")
	}

	// crm: four deliveries of one message, each verified by the reference
	// verification; email only.
	posts := crm.posts()
	if len(posts) != 4 {
		t.Fatalf("crm got %d notices, want 4 (three failures, then a success)", len(posts))
	}
	for i, p := range posts {
		if p.verified != nil {
			t.Errorf("crm notice %d: the reference verification refused it: %v", i, p.verified)
		}
		if p.id != noticeOf(dr, "crm").NoticeID || string(p.body) != string(posts[0].body) {
			t.Errorf("crm notice %d: id %s, body differs: %v; every retry is the same message", i, p.id, string(p.body) != string(posts[0].body))
		}
	}
	if got := identitiesSent(t, posts[0].body); len(got) != 1 || len(got["email"]) != 1 || got["email"][0] != adaEmail {
		t.Errorf("crm received identities %v, want only the email", got)
	}
	if n := noticeOf(dr, "crm"); n.Attempts != 4 || n.Reason != retentionv1.ReasonNoticeAcknowledged {
		t.Errorf("crm notice %+v", n)
	}

	// analytics: delivered, then polled; the forged acknowledgement was
	// rejected, its own accepted; user_id only.
	got := analytics.requests()
	if len(got) != 4 || got[0].method != http.MethodPost || got[0].verified != nil {
		t.Fatalf("analytics requests: %d (%+v)", len(got), got)
	}
	for _, r := range got[1:] {
		if r.method != http.MethodGet || r.verified != nil {
			t.Errorf("analytics poll %s verified %v: polls are signed GETs", r.method, r.verified)
		}
	}
	if ids := identitiesSent(t, got[0].body); len(ids) != 1 || len(ids["user_id"]) != 1 || ids["user_id"][0] != adaID {
		t.Errorf("analytics received identities %v, want only the user_id", ids)
	}
	assertEvent(t, ns, "erase-ada", retentionv1.ReasonForgedAcknowledgement)
	assertEvent(t, ns, "erase-ada", retentionv1.ReasonNoticeAcknowledged)

	// The receipt lists both acknowledgements; its SHA-256 is still the one
	// the ledger recorded.
	if acks := dr.Status.Receipt.Acknowledgements; len(acks) != 2 {
		t.Fatalf("receipt acknowledgements %+v", acks)
	}
	if sum, _ := receipt.SHA256(dr.Status.Receipt); sum != ledgerSHA || dr.Status.Receipt.SHA256 != ledgerSHA {
		t.Fatalf("receipt SHA-256 changed: %s, ledger %s", sum, ledgerSHA)
	}
	if v := testutil.ToFloat64(metrics.RecipientNotices.WithLabelValues(ns, "crm", "retried")); v != 3 {
		t.Errorf("retried notices to crm: %v, want 3", v)
	}
	if v := testutil.ToFloat64(metrics.RecipientNotices.WithLabelValues(ns, "analytics", "forged")); v != 1 {
		t.Errorf("forged acknowledgements from analytics: %v, want 1", v)
	}
	// Every notice final: the bodies (identities) are deleted.
	waitGone(t, ns, "erase-ada-notices")
	assertNoPersonalData(t, ns)
}

func TestANoticeSurvivesAManagerRestartAndIsNeverSentAgainAfterItsAcknowledgement(t *testing.T) {
	opts := controllers.Options{NotifyBackoff: notify.Backoff{Base: 4 * time.Second, Max: 4 * time.Second}}
	first := startManager(t, opts)
	ns, _ := appFixture(t)
	crm := newPartyReceiver(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 0 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	recipientFor(t, ns, "crm", crm, nil)
	create(t, adaRequest(ns, "erase-ada"))
	dr := waitFor(t, &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erase-ada"}}, 90*time.Second, "a first failed attempt",
		func(d *retentionv1.DeletionRequest) bool {
			n := noticeOf(d, "crm")
			return n != nil && n.Attempts == 1 && n.State == retentionv1.NoticePending
		})
	before := *noticeOf(dr, "crm")
	// The manager stops between two attempts; another starts.
	first.stop()
	if len(crm.posts()) != 1 {
		t.Fatalf("%d notices before the restart, want 1", len(crm.posts()))
	}
	second := startManager(t, opts)
	dr = waitFor(t, dr, 30*time.Second, "acknowledged after the restart", func(d *retentionv1.DeletionRequest) bool {
		return noticeIn(d, "crm", retentionv1.NoticeAcknowledged)
	})
	posts := crm.posts()
	if len(posts) != 2 {
		t.Fatalf("%d notices, want 2", len(posts))
	}
	if posts[1].id != before.NoticeID || posts[0].id != before.NoticeID || string(posts[1].body) != string(posts[0].body) || posts[1].verified != nil {
		t.Fatalf("after the restart: id %s (before %s), same body %v, verified %v", posts[1].id, before.NoticeID, string(posts[1].body) == string(posts[0].body), posts[1].verified)
	}
	// The second attempt kept the schedule the first manager had set.
	if posts[1].at.Before(before.NextAttemptTime.Add(-time.Second)) {
		t.Fatalf("the retry came at %s, before its time %s", posts[1].at, before.NextAttemptTime)
	}
	if n := noticeOf(dr, "crm"); n.Attempts != 2 {
		t.Fatalf("attempts %d, want 2", n.Attempts)
	}
	// Restart again once acknowledged: nothing is sent any more.
	second.stop()
	startManager(t, opts)
	touch(t, dr)
	time.Sleep(6 * time.Second)
	if n := len(crm.requests()); n != 2 {
		t.Fatalf("%d requests after the acknowledgement and a restart, want still 2", n)
	}
}

func TestANoticeNobodyAnswersFailsAtItsDeadline(t *testing.T) {
	clock := &shiftableClock{}
	startManagerWithClock(t, controllers.Options{NotifyBackoff: notify.Backoff{Base: time.Second, Max: time.Minute}, NotifyTimeout: 300 * time.Millisecond}, clock.now)
	ns, _ := appFixture(t)
	stop := make(chan struct{})
	silent := newPartyReceiver(t, func(_ int, r *http.Request, _ http.ResponseWriter) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(stop) })
	recipientFor(t, ns, "silent", silent, nil)
	dr := adaRequest(ns, "erase-ada")
	dr.Spec.Deadline = "24h"
	create(t, dr)
	dr = waitFor(t, dr, 90*time.Second, "two attempts", func(d *retentionv1.DeletionRequest) bool {
		n := noticeOf(d, "silent")
		return n != nil && n.Attempts >= 2
	})
	n := noticeOf(dr, "silent")
	if n.State != retentionv1.NoticePending || n.Reason != retentionv1.ReasonDeliveryFailed || !strings.Contains(n.Message, "did not answer in time") {
		t.Fatalf("notice %+v", n)
	}
	if !n.DeadlineTime.Equal(dr.Status.DeadlineTime) {
		t.Fatalf("notice deadline %s, request deadline %s", n.DeadlineTime, dr.Status.DeadlineTime)
	}
	clock.shift(25 * time.Hour)
	touch(t, dr)
	dr = waitFor(t, dr, 30*time.Second, "failed at the deadline", func(d *retentionv1.DeletionRequest) bool {
		return noticeIn(d, "silent", retentionv1.NoticeFailed)
	})
	if n := noticeOf(dr, "silent"); n.Reason != retentionv1.ReasonNoticeDeadlineExceeded {
		t.Fatalf("notice %+v", n)
	}
	if !hasCondition(dr, retentionv1.ConditionRecipientsNotified, metav1.ConditionFalse, retentionv1.ReasonNotificationFailed) {
		t.Fatalf("conditions %+v", dr.Status.Conditions)
	}
	assertWarning(t, ns, "erase-ada", retentionv1.ReasonNoticeDeadlineExceeded)
	waitGone(t, ns, "erase-ada-notices")
	assertNoPersonalData(t, ns)
}

func TestBackupsExpiredTurnsTrueAtTheDeclaredTime(t *testing.T) {
	clock := &shiftableClock{}
	startManagerWithClock(t, controllers.Options{}, clock.now)
	ns := namespace(t)
	pg := postgresStoreWith(t, ns, "db", func(s *retentionv1.DataStoreSpec) {
		s.Backups = &retentionv1.DataStoreBackups{Retention: "30d"}
	})
	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	seedApp(t, conn)
	create(t, appDataset(ns))
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada", Labels: marked()},
		StringData: map[string]string{"user_id": adaID, "email": adaEmail}})
	create(t, adaRequest(ns, "erase-ada"))
	dr := waitRequest(t, ns, "erase-ada", retentionv1.RequestCompleted)
	dr = waitFor(t, dr, 30*time.Second, "BackupsRetained", func(d *retentionv1.DeletionRequest) bool {
		return hasCondition(d, retentionv1.ConditionBackupsExpired, metav1.ConditionFalse, retentionv1.ReasonBackupsRetained)
	})
	want := dr.Status.CompletionTime.AddDate(0, 0, 30)
	if dr.Status.BackupsExpireTime == nil || !dr.Status.BackupsExpireTime.Time.Equal(want) {
		t.Fatalf("backupsExpireTime %v, want %s", dr.Status.BackupsExpireTime, want)
	}
	// An hour before: still retained.
	clock.shift(time.Until(want) - time.Hour)
	touch(t, dr)
	time.Sleep(2 * time.Second)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(dr), dr); err != nil {
		t.Fatal(err)
	}
	if !hasCondition(dr, retentionv1.ConditionBackupsExpired, metav1.ConditionFalse, retentionv1.ReasonBackupsRetained) {
		t.Fatalf("an hour before the expiry: %+v", dr.Status.Conditions)
	}
	// At the declared time it flips (the controller requeues the request for
	// then; on the fake clock the test wakes it).
	clock.shift(time.Hour)
	touch(t, dr)
	waitFor(t, dr, 30*time.Second, "BackupsExpired", func(d *retentionv1.DeletionRequest) bool {
		return hasCondition(d, retentionv1.ConditionBackupsExpired, metav1.ConditionTrue, retentionv1.ReasonBackupsExpired)
	})
}

func TestARecipientOutsideTheNetworkPolicyIsStalled(t *testing.T) {
	policy, err := datastore.NewNetworkPolicy(datastore.DefaultAllowedNetworks, datastore.DefaultDeniedNetworks+",127.0.0.2/32")
	if err != nil {
		t.Fatal(err)
	}
	startManager(t, controllers.Options{NetworkPolicy: policy})
	ns := namespace(t)
	recipientFor(t, ns, "internal", nil, func(s *retentionv1.RecipientSpec) { s.Endpoint = "https://127.0.0.2:8443/hooks" })
	recipientFor(t, ns, "unsigned", nil, func(s *retentionv1.RecipientSpec) { s.SigningSecretRef.Key = "missing" })
	waitFor(t, &retentionv1.Recipient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "internal"}}, 30*time.Second, "NetworkNotAllowed",
		func(r *retentionv1.Recipient) bool {
			return hasCondition(r, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonNetworkNotAllowed)
		})
	waitFor(t, &retentionv1.Recipient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unsigned"}}, 30*time.Second, "SecretNotFound",
		func(r *retentionv1.Recipient) bool {
			return hasCondition(r, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonSecretNotFound)
		})
	// The API refuses what is not an https URL without credentials.
	for _, bad := range []string{"http://hooks.example.com/", "https://user:pw@hooks.example.com/"} {
		err := env.Client.Create(context.Background(), &retentionv1.Recipient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}, Spec: retentionv1.RecipientSpec{
			Datasets: []retentionv1.ObjectName{"app"}, IdentityTypes: []retentionv1.IdentityType{"email"}, Endpoint: bad,
			SigningSecretRef: retentionv1.SecretKeySelector{Name: "s", Key: "k"},
		}})
		if !apierrors.IsInvalid(err) {
			t.Errorf("endpoint %s: %v, want Invalid", bad, err)
		}
	}
}

func assertWarning(t *testing.T, ns, name, reason string) {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason && e.Type == corev1.EventTypeWarning {
			return
		}
	}
	t.Fatalf("no Warning event %s for %s", reason, name)
}

func waitGone(t *testing.T, ns, secret string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !secretGone(t, ns, secret) {
		if time.Now().After(deadline) {
			t.Fatalf("Secret %s outlived the notices", secret)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A request completed before Lethe sent notices (an upgrade) is not
// notified when the new manager starts: the parties are not told of old
// erasures all at once.
func TestRequestsCompletedBeforeTheUpgradeAreNotNotified(t *testing.T) {
	ns := namespace(t)
	party := newPartyReceiver(t, func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(http.StatusOK) })
	recipientFor(t, ns, "crm", party, nil)
	dr := &retentionv1.DeletionRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "old"},
		Spec: retentionv1.DeletionRequestSpec{
			Subject: retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "email", Value: adaEmail}}},
			Reason:  retentionv1.ReasonSubjectRequest,
		},
	}
	create(t, dr)
	now := metav1.Now()
	deadline := metav1.NewTime(now.Add(30 * 24 * time.Hour))
	dr.Status = retentionv1.DeletionRequestStatus{
		ObservedGeneration: dr.Generation, Phase: retentionv1.RequestCompleted, CompletionTime: &now, DeadlineTime: &deadline,
		Plan:    []retentionv1.PlannedCollection{{Dataset: "app", Collection: "users", Action: retentionv1.ActionDelete}},
		Receipt: &retentionv1.Receipt{SubjectDigest: "hmac-sha256:x", Verified: true, CompletedAt: &now},
	}
	if err := env.Client.Status().Update(context.Background(), dr); err != nil {
		t.Fatal(err)
	}
	startManager(t, fastNotices)
	// The manager has looked at it: BackupsExpired says the Dataset's store
	// is unknown.
	waitFor(t, dr, 30*time.Second, "BackupsExpired Unknown", func(d *retentionv1.DeletionRequest) bool {
		return hasCondition(d, retentionv1.ConditionBackupsExpired, metav1.ConditionUnknown, retentionv1.ReasonBackupRetentionUnknown)
	})
	time.Sleep(2 * time.Second)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(dr), dr); err != nil {
		t.Fatal(err)
	}
	if len(party.requests()) != 0 || len(dr.Status.Recipients) != 0 || condition(dr, retentionv1.ConditionRecipientsNotified) != nil {
		t.Fatalf("an erasure completed before the upgrade was notified: %d requests, status %+v", len(party.requests()), dr.Status.Recipients)
	}
}
