package connect_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
)

// selfSigned returns a PEM certificate of a throwaway authority.
func selfSigned(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func secret(name string, marked bool, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, ResourceVersion: "1"}, Data: map[string][]byte{}}
	if marked {
		s.Labels = map[string]string{retentionv1.LabelSecretConsent: "true"}
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// TestResolveUsesOnlyMarkedSecrets: Lethe reads a Secret only when it
// carries retention.lethe.dev/secret=true, refuses SQL credentials without a
// user name and password (no login as the manager's own user), and checks
// the CA bundle; the errors name Secrets and keys, never their content.
func TestResolveUsesOnlyMarkedSecrets(t *testing.T) {
	caPEM := selfSigned(t)
	r := fake.NewClientBuilder().WithObjects(
		secret("unmarked", false, map[string]string{"username": "admin_user_4711", "password": "pw-4711"}),
		secret("ok", true, map[string]string{"username": "lethe", "password": "pw"}),
		secret("no-password", true, map[string]string{"username": "admin_user_4711"}),
		secret("s3-half", true, map[string]string{"accessKeyID": "AKIA4711"}),
		secret("ca", true, map[string]string{"ca.crt": caPEM}),
		secret("bad-ca", true, map[string]string{"ca.crt": "not a certificate 4711"}),
	).Build()
	pg := func(creds string) *retentionv1.DataStore {
		ds := &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
			Spec: retentionv1.DataStoreSpec{Type: retentionv1.DataStorePostgreSQL, Host: "db", Database: "shop"}}
		if creds != "" {
			ds.Spec.CredentialsSecretRef = &retentionv1.SecretReference{Name: creds}
		}
		return ds
	}
	for _, c := range []struct {
		name   string
		ds     *retentionv1.DataStore
		want   error
		reason string
	}{
		{"unmarked", pg("unmarked"), connect.ErrSecretNotMarked, retentionv1.ReasonSecretNotMarked},
		{"missing", pg("missing"), connect.ErrSecretNotFound, retentionv1.ReasonSecretNotFound},
		{"no password", pg("no-password"), connect.ErrInvalidSecret, retentionv1.ReasonInvalidSecret},
		{"no Secret for SQL", pg(""), connect.ErrInvalidSecret, retentionv1.ReasonInvalidSecret},
		{"half an S3 key pair", &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "s3"},
			Spec: retentionv1.DataStoreSpec{Type: retentionv1.DataStoreS3, S3: &retentionv1.S3Settings{Bucket: "b"},
				CredentialsSecretRef: &retentionv1.SecretReference{Name: "s3-half"}}}, connect.ErrInvalidSecret, retentionv1.ReasonInvalidSecret},
		{"a CA bundle that is not PEM", func() *retentionv1.DataStore {
			ds := pg("ok")
			ds.Spec.CABundleSecretRef = &retentionv1.SecretKeySelector{Name: "bad-ca", Key: "ca.crt"}
			return ds
		}(), connect.ErrInvalidSecret, retentionv1.ReasonInvalidSecret},
	} {
		_, _, err := connect.Resolve(context.Background(), r, c.ds)
		if !errors.Is(err, c.want) || connect.SecretReason(err) != c.reason {
			t.Errorf("%s: %v (reason %q), want %v (%s)", c.name, err, connect.SecretReason(err), c.want, c.reason)
			continue
		}
		if strings.Contains(err.Error(), "4711") {
			t.Errorf("%s: the error shows what the Secret holds: %v", c.name, err)
		}
	}

	ds := pg("ok")
	ds.Spec.CABundleSecretRef = &retentionv1.SecretKeySelector{Name: "ca", Key: "ca.crt"}
	cfg, version, err := connect.Resolve(context.Background(), r, ds)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Username != "lethe" || string(cfg.CABundle) != caPEM || cfg.TLSMode() != "VerifyFull" || version == "" {
		t.Errorf("resolved %s, user %q, CA %d bytes, TLS %s, version %q", cfg, cfg.Username, len(cfg.CABundle), cfg.TLSMode(), version)
	}
}
