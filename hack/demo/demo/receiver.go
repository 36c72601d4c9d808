package demo

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/internal/servers"
)

// ReceivedNotice is one request the demo's receiver answered. It holds no
// identity value: only the types of the identities a notice carried.
type ReceivedNotice struct {
	// NoticeID is the webhook-id header.
	NoticeID string
	// RequestID is data.requestId (the DeletionRequest's UID), Request its
	// namespace/name and Recipient data.recipient, from a verified notice.
	RequestID, Request, Recipient string
	// IdentityTypes are the keys of data.identities, sorted.
	IdentityTypes []string
	// Verified says the Standard Webhooks signature checked out; Problem
	// says why not.
	Verified bool
	Problem  string
	// Status is the HTTP status the receiver answered.
	Status int
}

// receiverTolerance is how far a notice's webhook-timestamp may be from the
// receiver's clock, either way (the Standard Webhooks recommendation).
const receiverTolerance = 5 * time.Minute

// receiver plays the Recipient's endpoint (the CRM vendor of
// config/samples/retention_v1alpha1_recipient.yaml): an HTTPS server on a
// free loopback port, with a certificate from a throwaway CA of its own,
// that verifies each erasure notice with the Standard Webhooks rules on
// its own (not with internal/notify, which signs them) and answers 200 to a
// valid notice and 401 to any other request. It logs through the demo's
// printer, never an identity value.
type receiver struct {
	name  string // the Recipient it plays
	key   []byte // the signing key shared with Lethe
	CAPEM []byte // what the Recipient's caBundleSecretRef holds
	URL   string // https://127.0.0.1:<port>/lethe/erasures
	now   func() time.Time
	log   func(format string, args ...any)

	srv *http.Server
	mu  sync.Mutex
	got []ReceivedNotice
}

// receiverPath is where the receiver takes notices.
const receiverPath = "/lethe/erasures"

// startReceiver starts the receiver for the Recipient name with the
// Standard Webhooks signing secret secret ("whsec_" + base64).
func startReceiver(name, secret string, logf func(format string, args ...any)) (*receiver, error) {
	key, err := webhookKey(secret)
	if err != nil {
		return nil, err
	}
	caPEM, cert, err := servers.ThrowawayTLS("Lethe demo receiver CA")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rc := &receiver{name: name, key: key, CAPEM: caPEM, now: time.Now, log: logf,
		URL: fmt.Sprintf("https://%s%s", ln.Addr(), receiverPath)}
	rc.srv = &http.Server{
		Handler:           rc,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
		// TLS handshake failures (a client that does not trust the CA)
		// show in the demo's output, not on the standard logger.
		ErrorLog: log.New(logWriter(func(line string) { rc.log("Receiver of Recipient %s: %s", name, line) }), "", 0),
	}
	go func() { _ = rc.srv.ServeTLS(ln, "", "") }()
	return rc, nil
}

// Close stops the receiver.
func (rc *receiver) Close() {
	if rc != nil && rc.srv != nil {
		_ = rc.srv.Close()
	}
}

// Received lists what the receiver answered, in order.
func (rc *receiver) Received() []ReceivedNotice {
	if rc == nil {
		return nil
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// ServeHTTP answers one request.
func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got := ReceivedNotice{NoticeID: r.Header.Get("webhook-id"), Status: http.StatusUnauthorized}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	switch {
	case r.Method != http.MethodPost || r.URL.Path != receiverPath:
		got.Problem = fmt.Sprintf("%s %s is not a notice", r.Method, r.URL.Path)
	case err != nil:
		got.Problem = "the body could not be read"
	default:
		if err := verifyWebhook(rc.key, r.Header, body, rc.now()); err != nil {
			got.Problem = err.Error()
			break
		}
		got.Verified = true
		var n struct {
			Type string `json:"type"`
			Data struct {
				RequestID  string                     `json:"requestId"`
				Namespace  string                     `json:"namespace"`
				Name       string                     `json:"name"`
				Recipient  string                     `json:"recipient"`
				Identities map[string]json.RawMessage `json:"identities"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &n); err != nil || n.Type != "erasure.completed" || n.Data.RequestID == "" {
			// Signed by Lethe but not a notice: nothing to act on.
			got.Problem, got.Status = "the body is not an erasure.completed notice", http.StatusBadRequest
			break
		}
		got.RequestID, got.Request, got.Recipient = n.Data.RequestID, n.Data.Namespace+"/"+n.Data.Name, n.Data.Recipient
		for t := range n.Data.Identities {
			got.IdentityTypes = append(got.IdentityTypes, t)
		}
		slices.Sort(got.IdentityTypes)
		got.Status = http.StatusOK
	}
	rc.mu.Lock()
	rc.got = append(rc.got, got)
	rc.mu.Unlock()
	if got.Status == http.StatusOK {
		rc.log("Receiver of Recipient %s: notice %s for request %s (deletionrequest %s), identities of types %s; signature verified; answered %d",
			rc.name, got.NoticeID, got.RequestID, got.Request, strings.Join(got.IdentityTypes, ", "), got.Status)
	} else {
		rc.log("Receiver of Recipient %s: rejected a request (webhook-id %q): %s; answered %d", rc.name, got.NoticeID, got.Problem, got.Status)
	}
	w.WriteHeader(got.Status)
}

// logWriter passes each write (one line of a log.Logger) to a function.
type logWriter func(line string)

func (f logWriter) Write(p []byte) (int, error) {
	f(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// webhookKey decodes a Standard Webhooks signing secret: "whsec_" followed by
// the base64 of the key.
func webhookKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(secret), "whsec_")
	if !ok {
		return nil, errors.New(`the signing secret does not start with "whsec_"`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return nil, errors.New("the signing secret is not whsec_ followed by base64")
	}
	return key, nil
}

// verifyWebhook checks a message as a Standard Webhooks receiver does:
// webhook-id, webhook-timestamp (unix seconds, within receiverTolerance of
// now, either way) and webhook-signature, a space-separated list of
// "v1,<base64>" of which one must equal base64(HMAC-SHA256(key,
// id + "." + timestamp + "." + body)), compared in constant time. Its
// errors never quote the body.
func verifyWebhook(key []byte, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhook-timestamp is not a number")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > receiverTolerance || d < -receiverTolerance {
		return fmt.Errorf("webhook-timestamp is %s away from now, more than the tolerance of %s", d.Abs().Round(time.Second), receiverTolerance)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sigs) {
		if v, sig, ok := strings.Cut(s, ","); ok && v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no v1 signature matches")
}
