package datastore_test

import (
	"errors"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// TestClientTLS: every store's driver builds its TLS from Config.ClientTLS;
// the default verifies the server, and only Disable and Require (stated
// explicitly) do not.
func TestClientTLS(t *testing.T) {
	for _, c := range []struct {
		mode              string
		nilConfig, verify bool
		err               bool
	}{
		{mode: "", verify: true},
		{mode: datastore.TLSVerifyFull, verify: true},
		{mode: datastore.TLSRequire},
		{mode: datastore.TLSDisable, nilConfig: true},
		{mode: "Prefer", err: true},
		{mode: "verifyfull", err: true},
	} {
		cfg := datastore.Config{TLS: c.mode}
		tc, err := cfg.ClientTLS("db.example.com")
		switch {
		case c.err:
			if !errors.Is(err, datastore.ErrInvalid) {
				t.Errorf("mode %q: %v, want ErrInvalid", c.mode, err)
			}
			continue
		case err != nil:
			t.Errorf("mode %q: %v", c.mode, err)
			continue
		case c.nilConfig:
			if tc != nil {
				t.Errorf("mode %q: a TLS config for a plain connection", c.mode)
			}
			continue
		}
		if tc == nil || tc.InsecureSkipVerify == c.verify {
			t.Errorf("mode %q: config %+v, want verification %v", c.mode, tc, c.verify)
		}
		if c.verify && tc.ServerName != "db.example.com" {
			t.Errorf("mode %q: server name %q", c.mode, tc.ServerName)
		}
		if cfg.Verified() != c.verify {
			t.Errorf("mode %q: Verified() = %v", c.mode, cfg.Verified())
		}
	}
	if _, err := (datastore.Config{CABundle: []byte("junk")}).ClientTLS("x"); !errors.Is(err, datastore.ErrInvalid) {
		t.Errorf("a CA bundle without a certificate: %v, want ErrInvalid", err)
	}
}
