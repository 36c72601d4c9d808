package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/datastore"
)

// listener is a throwaway TCP server on 127.0.0.1 that writes banner to
// every connection and closes it, counting connections.
type listener struct {
	port     int
	accepted atomic.Int32
}

func startListener(t *testing.T, banner string) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	l := &listener{port: ln.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			if banner != "" {
				_, _ = c.Write([]byte(banner))
			}
			c.Close()
		}
	}()
	return l
}

// storesAt creates one DataStore of each type pointing at host:port, with
// the given TLS mode, and returns their names.
func storesAt(t *testing.T, ns, prefix, host string, port int, tls retentionv1.TLSMode) []string {
	t.Helper()
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: prefix + "-creds", Labels: marked()},
		StringData: map[string]string{"username": "lethe", "password": "pw", "accessKeyID": "AKIDLETHE", "secretAccessKey": "secret-key-lethe"}})
	creds := &retentionv1.SecretReference{Name: prefix + "-creds"}
	var names []string
	for _, typ := range []retentionv1.DataStoreType{retentionv1.DataStorePostgreSQL, retentionv1.DataStoreMySQL, retentionv1.DataStoreRedis, retentionv1.DataStoreS3} {
		name := prefix + "-" + strings.ToLower(string(typ))
		spec := retentionv1.DataStoreSpec{Type: typ, TLS: tls, CredentialsSecretRef: creds}
		if typ == retentionv1.DataStoreS3 {
			scheme := "https"
			if tls == retentionv1.TLSDisable {
				scheme = "http"
			}
			spec.S3 = &retentionv1.S3Settings{Endpoint: fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(host, fmt.Sprint(port))), Bucket: "lethe-bucket", ForcePathStyle: true}
		} else {
			spec.Host, spec.Port = host, ptr.To(int32(port))
			if typ != retentionv1.DataStoreRedis {
				spec.Database = "app"
			}
		}
		create(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec})
		names = append(names, name)
	}
	return names
}

// The metadata address is refused by the default policy before anything is
// dialed: Stalled NetworkNotAllowed at once (a dial to it would wait for the
// connect timeout), with a message naming the address and the policy.
func TestDataStoreNetworkNotAllowedMetadataAddress(t *testing.T) {
	// The manager also probes DataStores other tests left behind: count
	// the dials to the refused address only. A dial to it hangs for 30s,
	// as to an address that drops packets, so a refusal that waited for
	// one shows in the time taken, however loaded the machine (the bound
	// below is 25s; refusals take well under a second).
	var dials atomic.Int32
	policy := datastore.DefaultNetworkPolicy()
	policy.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, "169.254.") {
			dials.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(30 * time.Second):
			}
			return nil, fmt.Errorf("dial %s: timed out", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	startManager(t, controllers.Options{NetworkPolicy: policy})
	ns := namespace(t)
	start := time.Now()
	names := storesAt(t, ns, "meta", "169.254.169.254", 80, retentionv1.TLSDisable)
	for _, name := range names {
		ds := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, 30*time.Second,
			"Stalled NetworkNotAllowed", func(d *retentionv1.DataStore) bool {
				return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonNetworkNotAllowed)
			})
		msg := condition(ds, retentionv1.ConditionStalled).Message
		for _, want := range []string{"169.254.169.254 port 80 is not allowed by the manager's network policy", "denied: 169.254.0.0/16", "Nothing was sent"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: message lacks %q: %q", name, want, msg)
			}
		}
		if !hasCondition(ds, retentionv1.ConditionReady, metav1.ConditionFalse, retentionv1.ReasonNetworkNotAllowed) || condition(ds, retentionv1.ConditionReconciling) != nil {
			t.Errorf("%s: conditions %+v", name, ds.Status.Conditions)
		}
	}
	if took := time.Since(start); took > 25*time.Second {
		t.Errorf("refusal took %s: something waited for a connection", took)
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d dials to a refused address", n)
	}
}

// With --datastore-allowed-networks=10.0.0.0/8, a DataStore at 127.0.0.1 is
// refused for every store type, and the server listening there never sees
// a connection.
func TestDataStoreNetworkNotAllowedOutsideAllowedNetworks(t *testing.T) {
	policy, err := datastore.NewNetworkPolicy("10.0.0.0/8", datastore.DefaultDeniedNetworks)
	if err != nil {
		t.Fatal(err)
	}
	startManager(t, controllers.Options{NetworkPolicy: policy})
	ns := namespace(t)
	l := startListener(t, "")
	for _, name := range storesAt(t, ns, "local", "127.0.0.1", l.port, retentionv1.TLSDisable) {
		ds := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, 30*time.Second,
			"Stalled NetworkNotAllowed", func(d *retentionv1.DataStore) bool {
				return hasCondition(d, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonNetworkNotAllowed)
			})
		if msg := condition(ds, retentionv1.ConditionStalled).Message; !strings.Contains(msg, "allowed: 10.0.0.0/8;") || !strings.Contains(msg, "127.0.0.1") {
			t.Errorf("%s: message %q", name, msg)
		}
	}
	if n := l.accepted.Load(); n != 0 {
		t.Errorf("the listener at 127.0.0.1 accepted %d connections", n)
	}
}

// Status and events never hold bytes a server sent: a server at the
// DataStore's address that answers with a banner and closes leaves
// PostgreSQL, MySQL, Redis and S3 DataStores (in clear and with TLS)
// ConnectionFailed in fixed words, with no trace of the banner.
func TestDataStoreStatusNeverShowsServerBytes(t *testing.T) {
	const banner = "SECRET-BANNER-123"
	startManager(t, controllers.Options{})
	ns := namespace(t)
	l := startListener(t, banner+"\r\n")
	names := storesAt(t, ns, "clear", "127.0.0.1", l.port, retentionv1.TLSDisable)
	names = append(names, storesAt(t, ns, "tls", "127.0.0.1", l.port, "")...)
	for _, name := range names {
		ds := waitFor(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, 60*time.Second,
			"probed and not Ready", func(d *retentionv1.DataStore) bool {
				c := condition(d, retentionv1.ConditionReady)
				return d.Status.LastProbeTime != nil && c != nil && c.Status == metav1.ConditionFalse
			})
		t.Logf("%s: %s: %s", name, condition(ds, retentionv1.ConditionReady).Reason, condition(ds, retentionv1.ConditionReady).Message)
		if ds.Status.ServerVersion != "" {
			t.Errorf("%s: serverVersion %q", name, ds.Status.ServerVersion)
		}
	}
	if l.accepted.Load() == 0 {
		t.Fatal("no DataStore reached the server: the test proves nothing")
	}
	var haystack strings.Builder
	var stores retentionv1.DataStoreList
	if err := env.Client.List(context.Background(), &stores, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(stores)
	haystack.Write(b)
	var events eventsv1.EventList
	if err := env.Client.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		fmt.Fprintf(&haystack, "%s %s %s\n", e.Reason, e.Note, e.Action)
	}
	for _, s := range []string{banner, "SECRET-BANNER", "BANNER-123"} {
		if strings.Contains(haystack.String(), s) {
			t.Errorf("status or events hold %q, sent by the server:\n%s", s, haystack.String())
		}
	}
}
