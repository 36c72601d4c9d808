package datastore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrNotAllowed: the manager's network policy does not allow the address a
// DataStore names. Nothing was sent to it; it needs a human (another host,
// or a cluster admin changing the policy), so it is never retried as
// transient. The error in the chain is a *NotAllowedError.
var ErrNotAllowed = errors.New("address not allowed by the manager's network policy")

// Defaults of the manager's --datastore-allowed-networks and
// --datastore-denied-networks: every address except link-local ones
// (169.254.0.0/16, fe80::/10) and the cloud metadata services (AWS
// 169.254.169.254 and fd00:ec2::254, GCP and Azure at 169.254.169.254,
// Alibaba 100.100.100.200).
const (
	DefaultAllowedNetworks = "0.0.0.0/0,::/0"
	DefaultDeniedNetworks  = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32"
)

// NetworkRule matches addresses in Prefix, on Port only when Port is not 0.
type NetworkRule struct {
	Prefix netip.Prefix
	Port   int
}

func (r NetworkRule) String() string {
	if r.Port == 0 {
		return r.Prefix.String()
	}
	return r.Prefix.String() + ":" + strconv.Itoa(r.Port)
}

func (r NetworkRule) matches(ip netip.Addr, port int) bool {
	return r.Prefix.Contains(ip) && (r.Port == 0 || r.Port == port)
}

// ParseNetworkRules parses a comma-separated list of rules: a CIDR
// (10.0.0.0/8, fd00::/8) or a single address (10.1.2.3, ::1), each
// optionally followed by :port (10.0.0.0/8:5432, fd00::/8:5432,
// 10.1.2.3:6379, [::1]:6379) to match that port only. Empty items are
// skipped.
func ParseNetworkRules(s string) ([]NetworkRule, error) {
	var rules []NetworkRule
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		r, err := parseNetworkRule(item)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseNetworkRule(s string) (NetworkRule, error) {
	bad := func(why string) (NetworkRule, error) {
		return NetworkRule{}, fmt.Errorf("network %q: %s (want a CIDR such as 10.0.0.0/8 or fd00::/8, optionally with :port)", s, why)
	}
	port := 0
	parsePort := func(p string) error {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
		port = n
		return nil
	}
	if addr, bits, ok := strings.Cut(s, "/"); ok {
		// The prefix length holds no colon: anything after one is the port.
		if b, p, ok := strings.Cut(bits, ":"); ok {
			if err := parsePort(p); err != nil {
				return bad(err.Error())
			}
			bits = b
		}
		prefix, err := netip.ParsePrefix(addr + "/" + bits)
		if err != nil || prefix.Addr().Zone() != "" {
			return bad("not a CIDR")
		}
		if prefix.Addr().Is4In6() {
			return bad("an IPv4-mapped IPv6 prefix; write the IPv4 prefix")
		}
		return NetworkRule{Prefix: prefix.Masked(), Port: port}, nil
	}
	if ip, err := netip.ParseAddr(s); err == nil && ip.Zone() == "" {
		ip = ip.Unmap()
		return NetworkRule{Prefix: netip.PrefixFrom(ip, ip.BitLen())}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Addr().Zone() != "" {
		return bad("not an address or CIDR")
	}
	if err := parsePort(strconv.Itoa(int(ap.Port()))); err != nil {
		return bad(err.Error())
	}
	ip := ap.Addr().Unmap()
	return NetworkRule{Prefix: netip.PrefixFrom(ip, ip.BitLen()), Port: port}, nil
}

// NetworkPolicy says which addresses the manager may connect to for a
// DataStore (the manager-wide --datastore-allowed-networks and
// --datastore-denied-networks). An address is allowed when an Allowed rule
// matches it and no Denied rule does: denied wins.
//
// DialContext enforces it where connections are made: it resolves the host
// itself, checks every address the name resolves to (one refused address
// refuses the name), then connects to the checked addresses, never
// resolving the name again (a second answer could differ: DNS rebinding).
// TLS is unaffected: drivers verify the certificate against the DataStore's
// host, only the TCP connection goes through the policy.
type NetworkPolicy struct {
	Allowed []NetworkRule
	Denied  []NetworkRule
	// Lookup resolves a host name; nil uses the system's resolver.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// Dial connects to an address already checked ("ip:port"); nil uses a
	// net.Dialer. Tests count connections with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewNetworkPolicy parses the allowed and denied lists (ParseNetworkRules).
// The allowed list must not be empty: a manager that may connect nowhere is
// a mistake, not a policy.
func NewNetworkPolicy(allowed, denied string) (*NetworkPolicy, error) {
	a, err := ParseNetworkRules(allowed)
	if err != nil {
		return nil, fmt.Errorf("allowed networks: %w", err)
	}
	if len(a) == 0 {
		return nil, errors.New("allowed networks: the list is empty, so no DataStore could connect (the default is " + DefaultAllowedNetworks + ")")
	}
	d, err := ParseNetworkRules(denied)
	if err != nil {
		return nil, fmt.Errorf("denied networks: %w", err)
	}
	return &NetworkPolicy{Allowed: a, Denied: d}, nil
}

// DefaultNetworkPolicy allows DefaultAllowedNetworks except
// DefaultDeniedNetworks. It is the policy of a Config without one.
func DefaultNetworkPolicy() *NetworkPolicy {
	p, err := NewNetworkPolicy(DefaultAllowedNetworks, DefaultDeniedNetworks)
	if err != nil {
		panic(err)
	}
	return p
}

var defaultPolicy = DefaultNetworkPolicy()

// Allows reports whether the policy allows connecting to ip on port.
func (p *NetworkPolicy) Allows(ip netip.Addr, port int) bool {
	ip = ip.WithZone("").Unmap()
	for _, r := range p.Denied {
		if r.matches(ip, port) {
			return false
		}
	}
	for _, r := range p.Allowed {
		if r.matches(ip, port) {
			return true
		}
	}
	return false
}

// String lists the rules, as a DataStore's status shows them.
func (p *NetworkPolicy) String() string {
	list := func(rules []NetworkRule) string {
		if len(rules) == 0 {
			return "none"
		}
		s := make([]string, len(rules))
		for i, r := range rules {
			s[i] = r.String()
		}
		return strings.Join(s, ", ")
	}
	return "allowed: " + list(p.Allowed) + "; denied: " + list(p.Denied)
}

// NotAllowedError is a connection the policy refused before anything was
// sent. Its message is Lethe's own: the DataStore's host, the refused
// address and the policy.
type NotAllowedError struct {
	Host    string     // as the DataStore names it
	Port    int        // 0 when the network is not TCP
	Network string     // tcp, or what was asked instead (unix)
	Addr    netip.Addr // the refused address; invalid when Host names none
	Policy  string     // NetworkPolicy.String()
}

func (e *NotAllowedError) Error() string {
	var target string
	switch {
	case e.Network != "" && !strings.HasPrefix(e.Network, "tcp"):
		return fmt.Sprintf("%s connection to %q refused: DataStores connect over TCP only", e.Network, e.Host)
	case !e.Addr.IsValid() || e.Addr.String() == e.Host:
		target = fmt.Sprintf("address %s port %d", e.Host, e.Port)
	default:
		target = fmt.Sprintf("host %q (address %s) port %d", e.Host, e.Addr, e.Port)
	}
	return fmt.Sprintf("%s is not allowed by the manager's network policy (%s)", target, e.Policy)
}

// Is makes errors.Is(err, ErrNotAllowed) true.
func (e *NotAllowedError) Is(target error) bool { return target == ErrNotAllowed }

// AsNotAllowed returns the *NotAllowedError in err's chain, or nil. Drivers
// return it without the client library's wrapping (whose text can name the
// user or a request URL).
func AsNotAllowed(err error) *NotAllowedError {
	var e *NotAllowedError
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Resolve returns the addresses host (a name or an address literal) stands
// for, every one of them allowed on port; if any is not, it returns a
// *NotAllowedError and no address.
func (p *NetworkPolicy) Resolve(ctx context.Context, host string, port int) ([]netip.Addr, error) {
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		lookup := p.Lookup
		if lookup == nil {
			lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			}
		}
		if ips, err = lookup(ctx, host); err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if !p.Allows(ip, port) {
			return nil, &NotAllowedError{Host: host, Port: port, Network: "tcp", Addr: ip.WithZone("").Unmap(), Policy: p.String()}
		}
		if ip.Is4In6() {
			ip = ip.Unmap()
		}
		out = append(out, ip)
	}
	return out, nil
}

// DialContext connects to addr ("host:port") over TCP if the policy allows
// every address host resolves to, trying them in order; it has the
// signature of net.Dialer.DialContext.
func (p *NetworkPolicy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &NotAllowedError{Host: addr, Network: network, Policy: p.String()}
	}
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, &NotAllowedError{Host: host, Network: network, Policy: p.String()}
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return nil, &NotAllowedError{Host: host, Network: network, Policy: p.String()}
	}
	ips, err := p.Resolve(ctx, host, port)
	if err != nil {
		return nil, err
	}
	dial := p.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	var first error
	for i, ip := range ips {
		actx, cancel := attemptContext(ctx, len(ips)-i)
		conn, err := dial(actx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		cancel()
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// attemptContext shares what is left of ctx's deadline between the
// remaining addresses (at least 2s each), so one address that does not
// answer leaves time for the next, as net.Dialer does.
func attemptContext(ctx context.Context, remaining int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || remaining <= 1 {
		return ctx, func() {}
	}
	share := time.Until(deadline) / time.Duration(remaining)
	if share < 2*time.Second {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, share)
}

// NetworkPolicy is the policy connections of this configuration go
// through: Network, or DefaultNetworkPolicy when nil.
func (c Config) NetworkPolicy() *NetworkPolicy {
	if c.Network != nil {
		return c.Network
	}
	return defaultPolicy
}

// DialContext connects through the configuration's network policy; drivers
// make every TCP connection with it.
func (c Config) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.NetworkPolicy().DialContext(ctx, network, addr)
}
