package s3

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// TestTLSVerifiedByDefault: against an https server whose certificate no
// system root signed, the default refuses the server before a request is
// sent; with its certificate as caBundle the request reaches it. An http
// endpoint needs tls Disable, and Disable needs an http endpoint.
func TestTLSVerifiedByDefault(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	cfg := datastore.Config{Type: "S3", S3Endpoint: srv.URL, S3Region: "us-east-1", S3Bucket: "bucket",
		S3AccessKeyID: "AKIAEXAMPLE", S3SecretAccessKey: "secret", S3ForcePathStyle: true}
	probe := func(cfg datastore.Config) error {
		d, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err = d.Probe(ctx)
		return err
	}
	err := probe(cfg)
	if datastore.TLSVerificationProblem(err) == "" {
		t.Fatalf("an unverified https server: %v, want a verification failure", err)
	}
	if requests.Load() != 0 {
		t.Fatalf("%d requests reached an unverified server", requests.Load())
	}
	cfg.CABundle = ca
	if err := probe(cfg); datastore.TLSVerificationProblem(err) != "" {
		t.Fatalf("with the CA bundle: %v", err)
	}
	if requests.Load() == 0 {
		t.Error("no request reached the verified server")
	}

	for _, c := range []struct{ endpoint, tls string }{{"http://127.0.0.1:9", ""}, {"http://127.0.0.1:9", "Require"}, {srv.URL, "Disable"}} {
		if _, err := New(context.Background(), datastore.Config{S3Endpoint: c.endpoint, S3Bucket: "bucket", TLS: c.tls}); !errors.Is(err, datastore.ErrInvalid) {
			t.Errorf("endpoint %s with tls %q: %v, want ErrInvalid", c.endpoint, c.tls, err)
		}
	}
}
