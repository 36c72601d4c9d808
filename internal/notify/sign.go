// Package notify sends the erasure notices of completed DeletionRequests to
// the Recipients that received the subject's data (docs/design.md §11): the
// notice's JSON body (Build), its Standard Webhooks signature (Sign,
// Verify), the retry schedule (Backoff), the state of one notice (Step,
// Expire) and the HTTPS client that delivers notices and fetches
// asynchronous acknowledgements through the manager's network policy
// (Client). It imports nothing of a cluster client; the DeletionRequest
// controller (controllers/deletionrequest_notify.go) wires it.
//
// Identities appear only in the notice's body, sent over TLS; errors,
// results and states never carry them, nor anything an endpoint answered
// beyond its status code.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts a Standard Webhooks signing secret: "whsec_" followed
// by the base64 (standard alphabet, padded) of the key's bytes.
const SecretPrefix = "whsec_"

// Tolerance is how far a signed message's timestamp may be from now, either
// way, for Verify to accept it (the Standard Webhooks default): older ones
// are replays.
const Tolerance = 5 * time.Minute

// ErrInvalidSecret: the signing secret is not "whsec_" + base64 of 24 to 64
// bytes. The error never quotes the secret.
var ErrInvalidSecret = errors.New(`the signing secret must be "whsec_" followed by the base64 of 24 to 64 random bytes`)

// ParseSecret returns the key of a Standard Webhooks signing secret.
func ParseSecret(secret string) ([]byte, error) {
	s := strings.TrimSpace(secret)
	if !strings.HasPrefix(s, SecretPrefix) {
		return nil, ErrInvalidSecret
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, ErrInvalidSecret
	}
	return key, nil
}

// Sign returns the webhook-signature value of a message: "v1," followed by
// the base64 of HMAC-SHA256(key, id + "." + unix seconds + "." + body).
func Sign(key []byte, id string, at time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(at.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SetHeaders signs a message into h: webhook-id, webhook-timestamp and
// webhook-signature.
func SetHeaders(h http.Header, key []byte, id string, at time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderSignature, Sign(key, id, at, body))
}

// Errors of Verify.
var (
	ErrMissingHeaders = errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	ErrBadTimestamp   = errors.New("webhook-timestamp is not a number of seconds")
	ErrStale          = errors.New("webhook-timestamp is outside the tolerance (a replay, or a clock far off)")
	ErrNoSignature    = errors.New("no v1 signature matches")
)

// Verify checks a signed message as the Standard Webhooks reference
// verification does: the three headers present, the timestamp within
// Tolerance of now, and one of the space-separated "v1,<base64>" signatures
// equal (in constant time) to Sign's. It returns the message's id.
func Verify(key []byte, h http.Header, body []byte, now time.Time) (string, error) {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return "", ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", ErrBadTimestamp
	}
	at := time.Unix(sec, 0)
	if now.Sub(at) > Tolerance || at.Sub(now) > Tolerance {
		return "", ErrStale
	}
	want := []byte(strings.TrimPrefix(Sign(key, id, at, body), "v1,"))
	for _, s := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(s, ",")
		if ok && version == "v1" && hmac.Equal([]byte(sig), want) {
			return id, nil
		}
	}
	return "", ErrNoSignature
}
