package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
)

// TestTLSIsVerifiedByDefault runs against the throwaway server, which has a
// certificate from a throwaway authority: without that authority's
// certificate the connection is refused (by default and with VerifyFull),
// with it the connection is TLS; Require connects unverified; Prefer, which
// falls back to a cleartext password, is not offered.
func TestTLSIsVerifiedByDefault(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	if len(e.pg.CACert) == 0 {
		t.Fatal("the test server has no certificate authority (LETHE_TEST_POSTGRES_DSN?): this test needs the throwaway server of internal/testharness")
	}
	for _, mode := range []string{"", datastore.TLSVerifyFull} {
		cfg := e.cfg()
		cfg.TLS = mode
		_, err := e.driverWith(cfg).Probe(ctx)
		if err == nil {
			t.Fatalf("tls %q: connected to a server whose certificate no trusted authority signed", mode)
		}
		if p := datastore.TLSVerificationProblem(err); p != "it is signed by an authority that is not trusted" {
			t.Errorf("tls %q: %v classified as %q, want a verification failure", mode, err, p)
		}
	}

	cfg := e.cfg()
	cfg.TLS = datastore.TLSVerifyFull
	cfg.CABundle = e.pg.CACert
	if _, err := e.driverWith(cfg).Probe(ctx); err != nil {
		t.Fatalf("with the CA bundle: %v", err)
	}
	var ssl int
	if err := e.admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
		WHERE a.application_name = 'lethe' AND a.datname = $1 AND s.ssl`, e.pg.Database).Scan(&ssl); err != nil {
		t.Fatal(err)
	}
	if ssl == 0 {
		t.Error("the verified connection is not TLS")
	}

	cfg = e.cfg()
	cfg.CABundle = []byte("not a certificate")
	if _, err := postgres.New(ctx, cfg); err != nil {
		t.Fatalf("tls Disable must ignore the CA bundle: %v", err)
	}
	cfg.TLS = datastore.TLSVerifyFull
	if _, err := postgres.New(ctx, cfg); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("a CA bundle without a certificate: %v, want ErrInvalid", err)
	}

	cfg = e.cfg()
	cfg.TLS = datastore.TLSRequire
	if _, err := e.driverWith(cfg).Probe(ctx); err != nil {
		t.Errorf("tls Require (encrypted, unverified): %v", err)
	}

	cfg = e.cfg()
	cfg.TLS = "Prefer"
	if _, err := postgres.New(ctx, cfg); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("tls Prefer: %v, want ErrInvalid", err)
	}
}
