package erasure

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// apiProxy serves the API server on a loopback port without authentication
// and forwards every request as cfg's identity (its client certificate), so
// the API server sees the manager's ServiceAccount and its RBAC applies,
// counting the calls in calls. It returns the config of the proxy, with
// cfg's QPS and Burst; the proxy stops at cleanup.
func apiProxy(b *testing.B, cfg *rest.Config, calls *callCounter) *rest.Config {
	b.Helper()
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	target, err := url.Parse(cfg.Host)
	if err != nil {
		b.Fatal(err)
	}
	if target.Scheme == "" {
		target, _ = url.Parse("https://" + cfg.Host)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport: calls.wrap(rt),
		// Watches stream: pass every event on at once.
		FlushInterval: -1,
		// The manager's watches end with it (context canceled): not worth
		// a line; any other failure reaches the manager as a 502 and its log.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.Errorf("API proxy: %v", err)
		}
	}()
	b.Cleanup(func() { _ = srv.Close() })
	return &rest.Config{Host: "http://" + l.Addr().String(), QPS: cfg.QPS, Burst: cfg.Burst}
}
