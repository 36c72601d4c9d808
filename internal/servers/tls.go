package servers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// serverCert is a throwaway certificate authority and a server certificate
// it signed, for 127.0.0.1 and localhost, written into a server's directory.
type serverCert struct {
	CAPEM    []byte // the authority's certificate, PEM: what a client trusts
	CertFile string // the server's certificate, PEM
	KeyFile  string // its private key, PEM, readable only by the server's user
}

// ThrowawayTLS makes, in memory, a certificate authority that lives a day and
// a server certificate it signs for 127.0.0.1 and localhost: the
// authority's certificate as PEM (what a client trusts) and the server's
// certificate with its key. Throwaway servers, the tests' HTTPS receivers
// and the demo's receiver use it.
func ThrowawayTLS(authority string) (caPEM []byte, cert tls.Certificate, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, cert, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: authority},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, cert, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, cert, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, cert, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, cert, err
	}
	cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), cert, nil
}

// newServerCert writes a ThrowawayTLS certificate and key into dir; cred,
// when set, owns the files (servers refuse keys others can read).
func newServerCert(dir string, cred *syscall.Credential) (serverCert, error) {
	caPEM, cert, err := ThrowawayTLS("Lethe test CA")
	if err != nil {
		return serverCert{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		return serverCert{}, err
	}
	c := serverCert{
		CAPEM:    caPEM,
		CertFile: filepath.Join(dir, "server.crt"),
		KeyFile:  filepath.Join(dir, "server.key"),
	}
	if err := os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		return serverCert{}, err
	}
	if err := os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return serverCert{}, err
	}
	if cred != nil {
		for _, f := range []string{c.CertFile, c.KeyFile} {
			if err := os.Chown(f, int(cred.Uid), int(cred.Gid)); err != nil {
				return serverCert{}, err
			}
		}
	}
	return c, nil
}
