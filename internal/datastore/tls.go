package datastore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// TLS modes of Config.TLS (the DataStore's spec.tls).
const (
	TLSDisable    = "Disable"    // no TLS: insecure, stated explicitly
	TLSRequire    = "Require"    // TLS, certificate not verified: insecure, stated explicitly
	TLSVerifyFull = "VerifyFull" // TLS, certificate and host name verified (the default)
)

// TLSMode is the configured mode, VerifyFull when empty: credentials go only
// to a server whose identity was verified unless the DataStore says otherwise.
func (c Config) TLSMode() string {
	if c.TLS == "" {
		return TLSVerifyFull
	}
	return c.TLS
}

// Verified reports whether the connection verifies the server's identity.
func (c Config) Verified() bool { return c.TLSMode() == TLSVerifyFull }

// ClientTLS is the TLS configuration of a connection to serverName: nil for
// Disable, unverified for Require, and for VerifyFull verified against
// CABundle (or the system's roots when empty) and serverName (an empty
// serverName lets an HTTP transport verify each request's host). Any other
// mode is ErrSettings.
func (c Config) ClientTLS(serverName string) (*tls.Config, error) {
	switch c.TLSMode() {
	case TLSDisable:
		return nil, nil
	case TLSRequire:
		return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, nil //nolint:gosec // explicitly unverified: the DataStore shows TLSVerified=False
	case TLSVerifyFull:
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
		if len(c.CABundle) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(c.CABundle) {
				return nil, fmt.Errorf("%w: the CA bundle holds no PEM certificate", ErrSettings)
			}
			cfg.RootCAs = pool
		}
		return cfg, nil
	default:
		return nil, fmt.Errorf("%w: unknown TLS mode %q (Disable, Require or VerifyFull)", ErrSettings, c.TLS)
	}
}

// TLSVerificationProblem says why the server's certificate was refused, in
// words of Lethe's own (never text from the certificate or the server), or
// "" when err is not a certificate verification failure.
func TLSVerificationProblem(err error) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknown):
		return "it is signed by an authority that is not trusted"
	case errors.As(err, &host):
		return "it is not valid for the DataStore's host"
	case errors.As(err, &invalid):
		return "it is expired, not yet valid or not usable for a server"
	case errors.As(err, &verify):
		return "it could not be verified"
	}
	return ""
}
