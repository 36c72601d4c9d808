package demo

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/notify"
)

// The signing secret of config/samples/secrets.yaml.
const sampleSecret = "whsec_ZXhhbXBsZS1vbmx5LWNoYW5nZS1tZS0wMTIzNDU2Nzg5YWI="

// TestReceiver sends the receiver notices signed the way Lethe signs them
// (internal/notify) and tampered ones, over TLS trusting only its CA: it
// answers 200 to a valid notice and 401 to anything else, and logs no
// identity value.
func TestReceiver(t *testing.T) {
	var mu sync.Mutex
	var logged []string
	rc, err := startReceiver("crm-vendor", sampleSecret, func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, fmt.Sprintf(format, args...))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rc.CAPEM) {
		t.Fatal("the receiver's CA is not PEM")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	key, err := notify.ParseSecret(sampleSecret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"erasure.completed","timestamp":"2026-12-06T22:00:00Z","data":{"requestId":"5b0f6e1c-uid","namespace":"shop","name":"minor-5c1e2d","reason":"Minor","deadline":"2027-01-05T22:00:00Z","recipient":"crm-vendor","datasets":["shop"],"identities":{"email":["kid@example.com"],"user_id":["100271"]},"acknowledge":"Response"}}`)
	other, err := notify.ParseSecret("whsec_" + "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC0wMTIzNDU2Nzg5")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   []byte
		sign   func(h http.Header, body []byte)
		want   int
	}{
		{"signed by Lethe", http.MethodPost, receiverPath, body, func(h http.Header, b []byte) {
			notify.SetHeaders(h, key, "msg_1", time.Now(), b)
		}, http.StatusOK},
		{"one of several signatures matches", http.MethodPost, receiverPath, body, func(h http.Header, b []byte) {
			notify.SetHeaders(h, key, "msg_2", time.Now(), b)
			h.Set("webhook-signature", notify.Sign(other, "msg_2", time.Now(), b)+" "+h.Get("webhook-signature"))
		}, http.StatusOK},
		{"another key", http.MethodPost, receiverPath, body, func(h http.Header, b []byte) {
			notify.SetHeaders(h, other, "msg_3", time.Now(), b)
		}, http.StatusUnauthorized},
		{"body changed after signing", http.MethodPost, receiverPath, body, func(h http.Header, b []byte) {
			notify.SetHeaders(h, key, "msg_4", time.Now(), bytes.Replace(b, []byte("100271"), []byte("100272"), 1))
		}, http.StatusUnauthorized},
		{"id changed after signing", http.MethodPost, receiverPath, body, func(h http.Header, b []byte) {
			notify.SetHeaders(h, key, "msg_5", time.Now(), b)
			h.Set("webhook-id", "msg_6")
		}, http.StatusUnauthorized},
		{"stale timestamp", http.MethodPost, receiverPath, body, func(h http.Header, b []byte) {
			notify.SetHeaders(h, key, "msg_7", time.Now().Add(-6*time.Minute), b)
		}, http.StatusUnauthorized},
		{"timestamp in the future", http.MethodPost, receiverPath, body, func(h http.Header, b []byte) {
			notify.SetHeaders(h, key, "msg_8", time.Now().Add(6*time.Minute), b)
		}, http.StatusUnauthorized},
		{"within the tolerance", http.MethodPost, receiverPath, body, func(h http.Header, b []byte) {
			notify.SetHeaders(h, key, "msg_9", time.Now().Add(-4*time.Minute), b)
		}, http.StatusOK},
		{"unsigned", http.MethodPost, receiverPath, body, func(http.Header, []byte) {}, http.StatusUnauthorized},
		{"v2 scheme", http.MethodPost, receiverPath, body, func(h http.Header, b []byte) {
			notify.SetHeaders(h, key, "msg_10", time.Now(), b)
			h.Set("webhook-signature", strings.Replace(h.Get("webhook-signature"), "v1,", "v2,", 1))
		}, http.StatusUnauthorized},
		{"GET", http.MethodGet, receiverPath, nil, func(h http.Header, b []byte) {
			notify.SetHeaders(h, key, "msg_11", time.Now(), b)
		}, http.StatusUnauthorized},
		{"signed, not a notice", http.MethodPost, receiverPath, []byte(`{"type":"erasure.acknowledged"}`), func(h http.Header, b []byte) {
			notify.SetHeaders(h, key, "msg_12", time.Now(), b)
		}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := strings.TrimSuffix(rc.URL, receiverPath) + tc.path
			req, err := http.NewRequest(tc.method, url, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			tc.sign(req.Header, tc.body)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("answered %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}

	got := rc.Received()
	if len(got) == 0 || !got[0].Verified || got[0].RequestID != "5b0f6e1c-uid" || got[0].Request != "shop/minor-5c1e2d" ||
		strings.Join(got[0].IdentityTypes, ",") != "email,user_id" {
		t.Errorf("first notice recorded as %+v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logged) == 0 || !strings.Contains(logged[0], "signature verified") || !strings.Contains(logged[0], "email, user_id") {
		t.Errorf("log %q", logged)
	}
	for _, line := range logged {
		for _, v := range []string{"100271", "kid@example.com"} {
			if strings.Contains(line, v) {
				t.Errorf("the receiver logged identity value %s: %s", v, line)
			}
		}
	}

	// A client that does not trust the receiver's CA is refused.
	if resp, err := http.Post(rc.URL, "application/json", bytes.NewReader(body)); err == nil {
		resp.Body.Close()
		t.Errorf("a client with the system's roots reached the receiver")
	}
}
