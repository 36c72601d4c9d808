package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
)

// Target is where and how one recipient is reached.
type Target struct {
	// Endpoint the notice is POSTed to (https).
	Endpoint string
	// AckURL is polled for an asynchronous acknowledgement (Async only;
	// default Endpoint).
	AckURL string
	// Key is the signing key (ParseSecret).
	Key []byte
	// CABundle holds PEM certificates to verify the endpoint with; nil uses
	// the system's roots.
	CABundle []byte
}

// ErrInvalidURL: an endpoint that is not https, carries credentials, a
// fragment, or no host. Lethe refuses it before connecting.
var ErrInvalidURL = errors.New("the endpoint must be an https URL with a host, without credentials or fragment")

// ParseEndpoint checks an endpoint or acknowledgement URL (the CRD's CEL
// rule says the same; this is the manager's own check).
func ParseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil, ErrInvalidURL
	}
	return u, nil
}

// Client delivers notices and fetches acknowledgements. Every connection
// goes through Policy (the manager's network policy: a namespace user
// cannot point Lethe at addresses it forbids), verifies TLS, follows no
// redirect and gives up after Timeout.
type Client struct {
	Policy  *datastore.NetworkPolicy
	Timeout time.Duration
	// Now signs and checks timestamps (the real clock when nil: receivers
	// compare them with theirs).
	Now func() time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) http(t Target) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(t.CABundle) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(t.CABundle) {
			return nil, errors.New("the CA bundle holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	policy := c.Policy
	if policy == nil {
		policy = datastore.DefaultNetworkPolicy()
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         policy.DialContext,
			TLSClientConfig:     cfg,
			TLSHandshakeTimeout: timeout,
			DisableKeepAlives:   true,
			Proxy:               nil, // never through a proxy: the policy sees the real address
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// Deliver POSTs the notice, signed, and reports Delivered on a 2xx answer.
func (c *Client) Deliver(ctx context.Context, t Target, id string, body []byte) Result {
	u, err := ParseEndpoint(t.Endpoint)
	if err != nil {
		return Result{Kind: Failed, Message: err.Error()}
	}
	hc, err := c.http(t)
	if err != nil {
		return Result{Kind: Failed, Message: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return Result{Kind: Failed, Message: ErrInvalidURL.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lethe")
	SetHeaders(req.Header, t.Key, id, c.now(), body)
	resp, err := hc.Do(req)
	if err != nil {
		return Result{Kind: Failed, Message: Problem(err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return Result{Kind: Failed, Message: fmt.Sprintf("the endpoint answered HTTP %d", resp.StatusCode)}
	}
	return Result{Kind: Delivered, Message: fmt.Sprintf("Delivered (HTTP %d)", resp.StatusCode)}
}

// Poll asks the acknowledgement URL for the acknowledgement of notice id:
// GET <url>?notice=<id>, signed like a notice over an empty body. 200 with
// an acknowledgement that Verify accepts (signed with the same key, within
// Tolerance) and whose data.noticeId is id is Acknowledged; 200 with
// anything else is Forged; 202, 204 and 404 are NotYet; any other answer
// Failed.
func (c *Client) Poll(ctx context.Context, t Target, id string) Result {
	raw := t.AckURL
	if raw == "" {
		raw = t.Endpoint
	}
	u, err := ParseEndpoint(raw)
	if err != nil {
		return Result{Kind: Failed, Message: err.Error()}
	}
	q := u.Query()
	q.Set("notice", id)
	u.RawQuery = q.Encode()
	hc, err := c.http(t)
	if err != nil {
		return Result{Kind: Failed, Message: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Result{Kind: Failed, Message: ErrInvalidURL.Error()}
	}
	req.Header.Set("User-Agent", "lethe")
	SetHeaders(req.Header, t.Key, id, c.now(), nil)
	resp, err := hc.Do(req)
	if err != nil {
		return Result{Kind: Failed, Message: Problem(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Result{Kind: Failed, Message: "reading the acknowledgement failed"}
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusAccepted, http.StatusNoContent, http.StatusNotFound:
		return Result{Kind: NotYet, Message: fmt.Sprintf("Delivered; not acknowledged yet (HTTP %d)", resp.StatusCode)}
	default:
		return Result{Kind: Failed, Message: fmt.Sprintf("the acknowledgement URL answered HTTP %d", resp.StatusCode)}
	}
	return CheckAcknowledgement(t.Key, id, resp.Header, body, c.now())
}

// CheckAcknowledgement verifies an acknowledgement of notice id: its
// signature (Verify) and that it acknowledges that very notice.
func CheckAcknowledgement(key []byte, id string, h http.Header, body []byte, now time.Time) Result {
	if _, err := Verify(key, h, body, now); err != nil {
		return Result{Kind: Forged, Message: "Rejected an acknowledgement: " + err.Error()}
	}
	var ack Acknowledgement
	if err := json.Unmarshal(body, &ack); err != nil || ack.Type != TypeErasureAcknowledged {
		return Result{Kind: Forged, Message: "Rejected an acknowledgement: the body is not an " + TypeErasureAcknowledged + " message"}
	}
	if ack.Data.NoticeID != id {
		return Result{Kind: Forged, Message: "Rejected an acknowledgement: it names another notice"}
	}
	return Result{Kind: Acknowledged, Message: "Acknowledgement verified"}
}

// Problem describes a failed request in fixed words: the network policy's
// refusal (Lethe's own message), a certificate that did not verify, a
// timeout, a refused connection or an unknown host; never the text of a
// server's answer.
func Problem(err error) string {
	if na := datastore.AsNotAllowed(err); na != nil {
		return na.Error()
	}
	var cve *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var inval x509.CertificateInvalidError
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &cve), errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &inval):
		return "the endpoint's certificate did not verify"
	case errors.As(err, &dns):
		return "the endpoint's host name does not resolve"
	case errors.As(err, &ne) && ne.Timeout():
		return "the endpoint did not answer in time"
	case strings.Contains(err.Error(), "connection refused"):
		return "the endpoint refused the connection"
	case strings.Contains(err.Error(), "tls:"):
		return "the TLS handshake with the endpoint failed"
	default:
		return "the connection to the endpoint failed"
	}
}

// Attempt makes the notice's due attempt at now: a delivery while it is
// Pending, a poll for the acknowledgement while it is Notified. It returns
// the notice after it (Step) and what the attempt gave.
func (c *Client) Attempt(ctx context.Context, t Target, n retentionv1.RecipientNotice, mode retentionv1.AcknowledgementMode, body []byte, now time.Time, b Backoff) (retentionv1.RecipientNotice, Result) {
	var r Result
	switch n.State {
	case retentionv1.NoticePending:
		r = c.Deliver(ctx, t, n.NoticeID, body)
	case retentionv1.NoticeNotified:
		r = c.Poll(ctx, t, n.NoticeID)
	default:
		return n, Result{}
	}
	return Step(n, r, mode, now, b), r
}
