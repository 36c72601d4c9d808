package datastore_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lethe-dev/lethe/internal/datastore"
)

func TestParseNetworkRules(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // rules joined by ", "; "error" for a refusal
	}{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{" 10.0.0.0/8 , 192.168.1.0/24 ,", "10.0.0.0/8, 192.168.1.0/24"},
		{"10.1.2.3/8", "10.0.0.0/8"}, // masked
		{"10.0.0.0/8:5432", "10.0.0.0/8:5432"},
		{"fd00::/8", "fd00::/8"},
		{"fd00::/8:5432", "fd00::/8:5432"},
		{"10.1.2.3", "10.1.2.3/32"},
		{"::1", "::1/128"},
		{"10.1.2.3:6379", "10.1.2.3/32:6379"},
		{"[::1]:6379", "::1/128:6379"},
		{"", ""},
		{"10.0.0.0/33", "error"},
		{"10.0.0.0/8:0", "error"},
		{"10.0.0.0/8:70000", "error"},
		{"db.example.com", "error"},
		{"::ffff:10.0.0.0/104", "error"},
		{"fe80::1%eth0", "error"},
	} {
		rules, err := datastore.ParseNetworkRules(c.in)
		if c.want == "error" {
			if err == nil {
				t.Errorf("%q: accepted as %v", c.in, rules)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		got := make([]string, len(rules))
		for i, r := range rules {
			got[i] = r.String()
		}
		if strings.Join(got, ", ") != c.want {
			t.Errorf("%q: %q, want %q", c.in, strings.Join(got, ", "), c.want)
		}
	}
	if _, err := datastore.NewNetworkPolicy("", ""); err == nil {
		t.Error("an empty allowed list was accepted")
	}
}

func TestNetworkPolicyAllows(t *testing.T) {
	def := datastore.DefaultNetworkPolicy()
	only10, err := datastore.NewNetworkPolicy("10.0.0.0/8", datastore.DefaultDeniedNetworks)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := datastore.NewNetworkPolicy("10.0.0.0/8:5432,0.0.0.0/0", "10.9.0.0/16,10.8.0.0/16:6379")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		policy *datastore.NetworkPolicy
		ip     string
		port   int
		want   bool
	}{
		{"default: loopback", def, "127.0.0.1", 5432, true},
		{"default: private", def, "10.1.2.3", 5432, true},
		{"default: IPv6 loopback", def, "::1", 6379, true},
		{"default: AWS/GCP/Azure metadata", def, "169.254.169.254", 80, false},
		{"default: link-local", def, "169.254.1.1", 5432, false},
		{"default: IPv6 link-local", def, "fe80::1", 5432, false},
		{"default: IPv6 link-local with zone", def, "fe80::1%eth0", 5432, false},
		{"default: AWS IPv6 metadata", def, "fd00:ec2::254", 80, false},
		{"default: other fd00:ec2:: address", def, "fd00:ec2::253", 80, true},
		{"default: Alibaba metadata", def, "100.100.100.200", 80, false},
		{"default: IPv4-mapped metadata", def, "::ffff:169.254.169.254", 80, false},
		{"only 10/8: inside", only10, "10.200.0.1", 3306, true},
		{"only 10/8: loopback", only10, "127.0.0.1", 3306, false},
		{"only 10/8: IPv6", only10, "fd00::1", 3306, false},
		{"port rule: right port", ports, "10.1.1.1", 5432, true},
		{"port rule: other port, caught by 0.0.0.0/0", ports, "10.1.1.1", 6379, true},
		{"denied wins over allowed", ports, "10.9.1.1", 5432, false},
		{"denied on one port", ports, "10.8.1.1", 6379, false},
		{"denied on one port, other port", ports, "10.8.1.1", 5432, true},
	} {
		if got := c.policy.Allows(netip.MustParseAddr(c.ip), c.port); got != c.want {
			t.Errorf("%s: Allows(%s, %d) = %v, want %v", c.name, c.ip, c.port, got, c.want)
		}
	}
}

// A name is refused when any address it resolves to is refused, even if
// another is allowed; nothing is dialed then, and an allowed name is dialed
// at the checked address, never resolved again.
func TestNetworkPolicyDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	answers := map[string][]string{
		"mixed.test":    {"127.0.0.1", "169.254.169.254"},
		"rebind.test":   {"127.0.0.1"},
		"mapped.test":   {"::ffff:169.254.169.254"},
		"loopback.test": {"127.0.0.1"},
	}
	var lookups, dials atomic.Int32
	var dialed []string
	p := datastore.DefaultNetworkPolicy()
	p.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		lookups.Add(1)
		var out []netip.Addr
		for _, a := range answers[host] {
			out = append(out, netip.MustParseAddr(a))
		}
		if host == "rebind.test" {
			answers[host] = []string{"169.254.169.254"} // a second answer would differ
		}
		return out, nil
	}
	p.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		dialed = append(dialed, addr)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	ctx := context.Background()
	for _, host := range []string{"mixed.test", "mapped.test", "169.254.169.254", "fe80::1%lo"} {
		_, err := p.DialContext(ctx, "tcp", net.JoinHostPort(host, "5432"))
		var na *datastore.NotAllowedError
		if !errors.Is(err, datastore.ErrNotAllowed) || !errors.As(err, &na) {
			t.Errorf("%s: %v, want ErrNotAllowed", host, err)
			continue
		}
		if !strings.Contains(err.Error(), "denied: 169.254.0.0/16") {
			t.Errorf("%s: the message does not name the policy: %q", host, err)
		}
	}
	if _, err := p.DialContext(ctx, "unix", "/var/run/postgresql/.s.PGSQL.5432"); !errors.Is(err, datastore.ErrNotAllowed) {
		t.Errorf("unix socket: %v, want ErrNotAllowed", err)
	}
	if n := dials.Load(); n != 0 {
		t.Fatalf("%d dials for refused addresses: %v", n, dialed)
	}
	na := datastore.AsNotAllowed(func() error {
		_, err := p.DialContext(ctx, "tcp", "mixed.test:5432")
		return err
	}())
	if na == nil || na.Host != "mixed.test" || na.Addr.String() != "169.254.169.254" ||
		!strings.HasPrefix(na.Error(), `host "mixed.test" (address 169.254.169.254) port 5432 is not allowed`) {
		t.Errorf("refusal: %+v %v", na, na)
	}

	lookups.Store(0)
	conn, err := p.DialContext(ctx, "tcp", net.JoinHostPort("rebind.test", itoa(port)))
	if err != nil {
		t.Fatalf("allowed name: %v", err)
	}
	conn.Close()
	if lookups.Load() != 1 || dials.Load() != 1 || dialed[0] != "127.0.0.1:"+itoa(port) {
		t.Errorf("want one lookup and one dial of the checked address: %d lookups, dials %v", lookups.Load(), dialed)
	}

	only10, _ := datastore.NewNetworkPolicy("10.0.0.0/8", "")
	only10.Dial = p.Dial
	if _, err := only10.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", itoa(port))); !errors.Is(err, datastore.ErrNotAllowed) {
		t.Errorf("127.0.0.1 with only 10.0.0.0/8 allowed: %v", err)
	}
	if dials.Load() != 1 {
		t.Errorf("a refused address was dialed: %v", dialed)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
