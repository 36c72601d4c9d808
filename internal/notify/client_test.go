package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// referenceVerify is the Standard Webhooks reference verification, written
// here from the specification and independent of Sign and Verify: decode
// the secret after "whsec_", HMAC-SHA256 over "<id>.<timestamp>.<body>",
// base64, and compare with each "v1,<sig>" of the space-separated header;
// reject timestamps more than five minutes off.
func referenceVerify(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts, sig := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature")
	if id == "" || ts == "" || sig == "" {
		return errors.New("missing required headers")
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("invalid timestamp")
	}
	if d := now.Sub(time.Unix(n, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp outside tolerance")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	expected := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sig) {
		if v, rest, ok := strings.Cut(s, ","); ok && v == "v1" && hmac.Equal([]byte(rest), []byte(expected)) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// receiver is a real HTTPS endpoint on loopback with its own CA
// (httptest's), recording what it received.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []received
	// answer decides the answer to the n-th request (0-based).
	answer func(n int, r *http.Request, w http.ResponseWriter)
}

type received struct {
	method, id string
	body       []byte
	verified   error
	query      string
}

func newReceiver(t *testing.T, answer func(n int, r *http.Request, w http.ResponseWriter)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, received{method: r.Method, id: r.Header.Get("webhook-id"), body: body, query: r.URL.RawQuery,
			verified: referenceVerify(testSecret, r.Header, body, time.Now())})
		rc.mu.Unlock()
		rc.answer(n, r, w)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// target reaches the receiver, trusting its CA only.
func (rc *receiver) target(t *testing.T) Target {
	t.Helper()
	key, err := ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rc.srv.Certificate().Raw})
	return Target{Endpoint: rc.srv.URL + "/lethe/notices", Key: key, CABundle: ca}
}

// run drives one notice as the controller does, on a simulated clock: an
// attempt whenever one is due, until it is final or the deadline passes.
func run(t *testing.T, c *Client, tg Target, mode retentionv1.AcknowledgementMode, body []byte, deadline time.Duration) retentionv1.RecipientNotice {
	t.Helper()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b := Backoff{Base: time.Minute, Max: time.Hour}
	n := New("r", "msg_test", now, now.Add(deadline))
	for i := 0; i < 100; i++ {
		var expired bool
		if n, expired = Expire(n, now); expired || n.State.Final() {
			return n
		}
		if Due(n, now) {
			n, _ = c.Attempt(context.Background(), tg, n, mode, body, now, b)
			continue
		}
		now = Next([]retentionv1.RecipientNotice{n})
	}
	t.Fatal("the notice never settled")
	return n
}

func TestNoticeVerifiesWithTheReferenceVerification(t *testing.T) {
	rc := newReceiver(t, func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) })
	body := []byte(`{"type":"erasure.completed","data":{"identities":{"email":["ada@example.com"]}}}`)
	n := run(t, &Client{}, rc.target(t), retentionv1.AcknowledgeResponse, body, time.Hour)
	if n.State != retentionv1.NoticeAcknowledged || n.Attempts != 1 {
		t.Fatalf("notice %+v", n)
	}
	got := rc.requests()
	if len(got) != 1 || got[0].method != http.MethodPost || got[0].id != "msg_test" || string(got[0].body) != string(body) {
		t.Fatalf("received %+v", got)
	}
	if got[0].verified != nil {
		t.Fatalf("the reference verification refused the notice: %v", got[0].verified)
	}
	// And the receiver would refuse a notice signed with another secret.
	h := http.Header{}
	SetHeaders(h, []byte("not the shared secret, 32 bytes!"), "msg_test", time.Now(), body)
	if referenceVerify(testSecret, h, body, time.Now()) == nil {
		t.Fatal("the reference verification accepted a wrong signature: it proves nothing")
	}
}

func TestReceiverFailingThreeTimesThenSucceeding(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	body := []byte(`{"type":"erasure.completed"}`)
	n := run(t, &Client{}, rc.target(t), retentionv1.AcknowledgeResponse, body, 24*time.Hour)
	if n.State != retentionv1.NoticeAcknowledged || n.Attempts != 4 {
		t.Fatalf("notice %+v", n)
	}
	got := rc.requests()
	if len(got) != 4 {
		t.Fatalf("%d requests, want 4", len(got))
	}
	for i, r := range got {
		if r.id != "msg_test" || string(r.body) != string(body) || r.verified != nil {
			t.Errorf("attempt %d: id %s, body %s, verification %v: every retry must be the same signed message", i, r.id, r.body, r.verified)
		}
	}
}

func TestReceiverThatNeverAnswersFailsAtTheDeadline(t *testing.T) {
	stop := make(chan struct{})
	rc := newReceiver(t, func(_ int, r *http.Request, _ http.ResponseWriter) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})
	defer close(stop)
	c := &Client{Timeout: 200 * time.Millisecond}
	n := run(t, c, rc.target(t), retentionv1.AcknowledgeResponse, []byte(`{}`), 10*time.Minute)
	if n.State != retentionv1.NoticeFailed || n.Reason != retentionv1.ReasonNoticeDeadlineExceeded {
		t.Fatalf("notice %+v", n)
	}
	if !strings.Contains(n.Message, "did not answer in time") || n.Attempts < 3 {
		t.Fatalf("message %q after %d attempts", n.Message, n.Attempts)
	}
	if len(rc.requests()) != int(n.Attempts) {
		t.Fatalf("%d requests for %d attempts", len(rc.requests()), n.Attempts)
	}
}

// ack serves an acknowledgement of notice id signed with secret.
func ack(w http.ResponseWriter, secret, id string) {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	body, _ := json.Marshal(map[string]any{"type": TypeErasureAcknowledged, "timestamp": time.Now().UTC(), "data": map[string]string{"noticeId": id}})
	SetHeaders(w.Header(), key, "ack_"+id, time.Now(), body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func TestAsynchronousAcknowledgementAndAForgedOne(t *testing.T) {
	const forger = "whsec_Zm9yZ2VkIGFja25vd2xlZGdlbWVudCBrZXkh"
	rc := newReceiver(t, func(n int, r *http.Request, w http.ResponseWriter) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		id := r.URL.Query().Get("notice")
		switch n {
		case 1: // not yet
			w.WriteHeader(http.StatusNotFound)
		case 2: // forged: signed with another key
			ack(w, forger, id)
		case 3: // forged: a genuine acknowledgement of another notice
			ack(w, testSecret, "msg_other")
		default:
			ack(w, testSecret, id)
		}
	})
	tg := rc.target(t)
	tg.AckURL = rc.srv.URL + "/lethe/acks?tenant=eu"
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	n := New("r", "msg_test", now, now.Add(24*time.Hour))
	var reasons []string
	c := &Client{}
	for !n.State.Final() && len(reasons) < 10 {
		n, _ = c.Attempt(context.Background(), tg, n, retentionv1.AcknowledgeAsync, []byte(`{}`), now, DefaultBackoff)
		reasons = append(reasons, string(n.State)+"/"+n.Reason)
		now = n.LastAttemptTime.Add(time.Hour)
	}
	want := []string{"Notified/NoticeDelivered", "Notified/NoticeDelivered", "Notified/ForgedAcknowledgement", "Notified/ForgedAcknowledgement", "Acknowledged/NoticeAcknowledged"}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Fatalf("states %v, want %v", reasons, want)
	}
	got := rc.requests()
	for _, r := range got[1:] {
		if r.method != http.MethodGet || r.query != "notice=msg_test&tenant=eu" || r.verified != nil {
			t.Errorf("poll %+v: want a signed GET of the acknowledgement URL naming the notice", r)
		}
	}
	// A forged acknowledgement says why it was rejected, without trusting it.
	key, _ := ParseSecret(testSecret)
	w := httptest.NewRecorder()
	ack(w, forger, "msg_test")
	if r := CheckAcknowledgement(key, "msg_test", w.Header(), w.Body.Bytes(), time.Now()); r.Kind != Forged {
		t.Fatalf("forged acknowledgement: %+v", r)
	}
	// A replayed (old) acknowledgement is rejected too.
	old := httptest.NewRecorder()
	ack(old, testSecret, "msg_test")
	if r := CheckAcknowledgement(key, "msg_test", old.Header(), old.Body.Bytes(), time.Now().Add(time.Hour)); r.Kind != Forged {
		t.Fatalf("replayed acknowledgement: %+v", r)
	}
}

func TestTheNetworkPolicyRefusesAForbiddenEndpointBeforeSending(t *testing.T) {
	rc := newReceiver(t, func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(http.StatusOK) })
	policy, err := datastore.NewNetworkPolicy("0.0.0.0/0,::/0", "127.0.0.0/8,::1/128")
	if err != nil {
		t.Fatal(err)
	}
	r := (&Client{Policy: policy}).Deliver(context.Background(), rc.target(t), "msg_test", []byte(`{}`))
	if r.Kind != Failed || !strings.Contains(r.Message, "not allowed by the manager's network policy") {
		t.Fatalf("result %+v", r)
	}
	if len(rc.requests()) != 0 {
		t.Fatal("the receiver got a request the policy forbids")
	}
}

func TestEndpointChecks(t *testing.T) {
	rc := newReceiver(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		http.Redirect(w, &http.Request{}, "https://169.254.169.254/latest", http.StatusTemporaryRedirect)
	})
	// A redirect is an answer other than 2xx: never followed.
	if r := (&Client{}).Deliver(context.Background(), rc.target(t), "msg_test", []byte(`{}`)); r.Kind != Failed || r.Message != "the endpoint answered HTTP 307" {
		t.Fatalf("redirect: %+v", r)
	}
	// Without the receiver's CA, its certificate does not verify.
	tg := rc.target(t)
	tg.CABundle = nil
	if r := (&Client{}).Deliver(context.Background(), tg, "msg_test", []byte(`{}`)); r.Kind != Failed || r.Message != "the endpoint's certificate did not verify" {
		t.Fatalf("unknown CA: %+v", r)
	}
	for _, bad := range []string{"http://example.com/", "https://user:pw@example.com/", "https:///path", "https://example.com/#x", "ftp://example.com"} {
		if _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", bad)
		}
	}
	if _, err := ParseEndpoint("https://hooks.example.com:8443/lethe?tenant=1"); err != nil {
		t.Errorf("a good endpoint refused: %v", err)
	}
}
