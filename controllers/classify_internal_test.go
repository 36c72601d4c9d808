package controllers

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
)

// classify describes a driver's error by its class, never by its text (a
// server's reply can end up in it); only Lethe's own messages (Secrets,
// settings, the network policy) are shown as they are.
func TestClassifyNeverShowsDriverText(t *testing.T) {
	const reply = "SERVER-SAID-THIS"
	refused := &datastore.NotAllowedError{Host: "meta.internal", Port: 80, Network: "tcp",
		Addr: netip.MustParseAddr("169.254.169.254"), Policy: datastore.DefaultNetworkPolicy().String()}
	for _, c := range []struct {
		err        error
		reason     string
		shows      string // in the message
		showsReply bool
	}{
		{fmt.Errorf("redis: probe: %w: can't parse reply %q: %w", datastore.ErrUnavailable, reply, io.ErrUnexpectedEOF), retentionv1.ReasonDataStoreUnavailable, "the server closed the connection", false},
		{fmt.Errorf("redis: probe: %w: %s", datastore.ErrUnavailable, reply), retentionv1.ReasonDataStoreUnavailable, "unavailable", false},
		{fmt.Errorf("redis: probe: %w: ERR %s", datastore.ErrInvalid, reply), retentionv1.ReasonConnectionFailed, "could not be used", false},
		{fmt.Errorf("s3: probe: %w: %s", datastore.ErrNotFound, reply), retentionv1.ReasonConnectionFailed, "does not exist", false},
		{fmt.Errorf("pg: %w: %s", datastore.ErrAuthentication, reply), retentionv1.ReasonAuthenticationFailed, "refused the credentials", false},
		{fmt.Errorf("postgres: probe: %s: %w", reply, refused), retentionv1.ReasonNetworkNotAllowed, `host "meta.internal" (address 169.254.169.254) port 80 is not allowed`, false},
		{fmt.Errorf("%w: s3: endpoint must be an http or https URL", datastore.ErrSettings), retentionv1.ReasonConnectionFailed, "endpoint must be an http or https URL", false},
		{fmt.Errorf("%w: Secret %q", connect.ErrSecretNotFound, "creds"), retentionv1.ReasonSecretNotFound, `Secret "creds"`, false},
		{errors.New("the API server said " + reply), retentionv1.ReasonConnectionFailed, reply, true}, // not a driver's
	} {
		reason, msg := classify(c.err)
		if reason != c.reason || !strings.Contains(msg, c.shows) {
			t.Errorf("%v: %s %q, want %s with %q", c.err, reason, msg, c.reason, c.shows)
		}
		if strings.Contains(msg, reply) != c.showsReply {
			t.Errorf("%v: message %q (showing the reply: %v)", c.err, msg, c.showsReply)
		}
	}
}
