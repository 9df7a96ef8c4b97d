package delivery

import (
	"net/netip"
	"testing"
)

func TestGuard(t *testing.T) {
	var g Guard
	f := func(g Guard, ip string, want bool) {
		t.Helper()
		if got := g.Allowed(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Allowed(%s) = %v; want %v", ip, got, want)
		}
	}
	for _, ip := range []string{
		"127.0.0.1", "127.255.0.9", "::1", // loopback
		"10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", // RFC 1918
		"169.254.169.254", "fe80::1", // link-local (cloud metadata)
		"fc00::1", "fd12:3456::1", // IPv6 ULA
		"0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255", // unspecified, multicast, broadcast
		"100.64.0.1", "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "240.0.0.1", // special-purpose IPv4
		"2001:db8::1", "100::1", "2001::1", // special-purpose IPv6
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped
		"64:ff9b::7f00:1", "64:ff9b::a00:1", // NAT64 of loopback, of 10.0.0.1
		"2002:7f00:1::1", "2002:c0a8:101::1", // 6to4 of loopback, of 192.168.1.1
	} {
		f(g, ip, false)
	}
	for _, ip := range []string{"1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"} {
		f(g, ip, true)
	}
	loop := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	f(loop, "127.0.0.1", true)
	f(loop, "::ffff:127.0.0.1", true)
	f(loop, "::1", true)
	f(loop, "10.0.0.1", false)
}

func FuzzGuard(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add([]byte{0x20, 0x02, 0x7f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		var g Guard
		if g.Allowed(ip) && (ip.Unmap().IsLoopback() || ip.Unmap().IsPrivate() || ip.Unmap().IsLinkLocalUnicast()) {
			t.Fatalf("%s allowed", ip)
		}
	})
}

// TestGuardReachable: addresses the guard refuses are named, localhost
// among them; an allowed range, a public address and a name pass.
func TestGuardReachable(t *testing.T) {
	g := Guard{}
	for _, host := range []string{"169.254.169.254", "127.0.0.1", "localhost", "api.localhost", "10.0.0.1", "::1", "fd00::1", "::ffff:192.168.1.1"} {
		if msg := g.Reachable(host); msg == "" {
			t.Errorf("%s passed", host)
		}
	}
	for _, host := range []string{"93.184.215.14", "example.com", "2606:4700::1111"} {
		if msg := g.Reachable(host); msg != "" {
			t.Errorf("%s refused: %s", host, msg)
		}
	}
	if msg := (Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}).Reachable("localhost"); msg != "" {
		t.Errorf("localhost refused with 127.0.0.0/8 allowed: %s", msg)
	}
}
