package delivery

import (
	"net/netip"
	"strings"
)

// nonGlobal lists special-purpose ranges (IANA IPv4 and IPv6
// special-purpose registries) that are not reachable public hosts. The
// standard library's predicates cover loopback, RFC 1918 and ULA,
// link-local and multicast; these are the rest.
var nonGlobal = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"100.64.0.0/10",   // shared address space (CGNAT)
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"192.88.99.0/24",  // 6to4 relay anycast
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"240.0.0.0/4",     // reserved, and 255.255.255.255
		"100::/64",        // discard-only
		"2001::/23",       // IETF protocol assignments (Teredo, ORCHID, ...)
		"2001:db8::/32",   // documentation
		"3fff::/20",       // documentation
		"5f00::/16",       // segment routing
		"64:ff9b:1::/48",  // local-use IPv4/IPv6 translation
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64: embeds an IPv4 address
	sixToFour = netip.MustParsePrefix("2002::/16")    // 6to4: embeds an IPv4 address
)

// Guard decides which addresses the outbound client may connect to.
// The zero value refuses every non-global address.
type Guard struct {
	// Allow lists ranges allowed even though they are not global, e.g.
	// 127.0.0.0/8 for a receiver on the same machine.
	Allow []netip.Prefix
}

// Allowed reports whether a connection to ip may be made.
func (g Guard) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap() // ::ffff:10.0.0.1 is 10.0.0.1
	for _, p := range g.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return Global(ip) && g.embeddedAllowed(ip)
}

// embeddedAllowed checks the IPv4 address that NAT64 and 6to4 addresses
// carry, so 64:ff9b::127.0.0.1 is no way around the guard.
func (g Guard) embeddedAllowed(ip netip.Addr) bool {
	if !ip.Is6() {
		return true
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return g.Allowed(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	case sixToFour.Contains(ip):
		return g.Allowed(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	}
	return true
}

// Global reports whether ip is a public unicast address: not loopback,
// private, link-local, multicast, unspecified or another special-purpose
// range.
func Global(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() ||
		ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonGlobal {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Reachable tells, without resolving any name, whether notifications may
// go to host: for an address (or localhost) that the guard refuses, it
// returns why; a name is left to the check made when the client
// connects. The webhooks API refuses such a URL at creation.
func (g Guard) Reachable(host string) string {
	h := strings.ToLower(host)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		h = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(h)
	if err != nil || g.Allowed(ip) {
		return ""
	}
	return "url points to " + ip.String() + ", a private or special-purpose address that notifications may not reach (the operator's -allow-cidrs can allow a range)"
}
