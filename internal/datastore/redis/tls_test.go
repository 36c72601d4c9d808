package redis

import (
	"context"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// TestTLSVerifiedByDefault runs against a TLS-only redis-server whose
// certificate a throwaway authority signed: refused by default (no password
// is sent to an unverified server), accepted with the authority's
// certificate as CA bundle, and with tls Require (explicitly unverified).
func TestTLSVerifiedByDefault(t *testing.T) {
	srv := testharness.RedisTLS(t)
	probe := func(cfg datastore.Config) error {
		d, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = d.Probe(ctx)
		return err
	}
	cfg := datastore.Config{Type: "Redis", Host: srv.Host, Port: srv.Port}
	if err := probe(cfg); datastore.TLSVerificationProblem(err) != "it is signed by an authority that is not trusted" {
		t.Fatalf("default mode against an unknown authority: %v", err)
	}
	cfg.CABundle = srv.CACert
	if err := probe(cfg); err != nil {
		t.Fatalf("with the CA bundle: %v", err)
	}
	if err := probe(datastore.Config{Type: "Redis", Host: srv.Host, Port: srv.Port, TLS: datastore.TLSRequire}); err != nil {
		t.Errorf("tls Require: %v", err)
	}
	if err := probe(datastore.Config{Type: "Redis", Host: srv.Host, Port: srv.Port, TLS: datastore.TLSDisable}); err == nil {
		t.Error("a plain connection to a TLS-only server succeeded")
	}
}
