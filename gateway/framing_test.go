package gateway

import (
	"regexp"
	"strings"
	"testing"
)

// TestMalformedFramingIs400: requests a client framed wrongly get 400
// invalid-request-structure from hookgate, never 502, and never count as
// an upstream failure: one such request must not turn /readyz unhealthy
// (a load balancer would pull a healthy instance). The upstream never
// sees them.
func TestMalformedFramingIs400(t *testing.T) {
	up, seen := scriptedUpstream(t, func(int) (string, bool) { return created, false })
	malformedFramingIs400(t, up, seen.Load)
}

// malformedFramingIs400 is TestMalformedFramingIs400 in front of up,
// which has seen() requests.
func malformedFramingIs400(t *testing.T, up string, seen func() int64) {
	g := startGateway(t, Options{Upstreams: []string{up}})
	before := seen()
	for name, raw := range map[string]string{
		"bad chunk size":           "POST /alice/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
		"folded Transfer-Encoding": "POST /alice/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"HTTP/1.0 without Host":    "GET /alice/events HTTP/1.0\r\n\r\n",
		"HTTP/1.1 without Host":    "GET /alice/events HTTP/1.1\r\n\r\n",
		"obs-fold":                 "GET /alice/events HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
		"space in a header name":   "GET /alice/events HTTP/1.1\r\nHost: x\r\nX A: a\r\n\r\n",
		"space before the colon":   "GET /alice/events HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n",
	} {
		failures := upstreamUnavailable.Get()
		resp, b := rawDo(t, g.addr, raw)
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d %s; want 400", name, resp.StatusCode, b)
			continue
		}
		if id, _ := pryvError(t, b); id != "invalid-request-structure" {
			t.Errorf("%s: error id %q", name, id)
		}
		if got := upstreamUnavailable.Get() - failures; got != 0 || !g.UpstreamReachable() {
			t.Errorf("%s: counted as an upstream failure (%d; reachable %v)", name, got, g.UpstreamReachable())
		}
	}
	if n := seen() - before; n != 0 {
		t.Errorf("the upstream got %d of the malformed requests", n)
	}
	// A well-framed chunked body still goes through.
	resp, b := rawDo(t, g.addr, "POST /alice/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n25\r\n{\"streamIds\":[\"s\"],\"type\":\"note/txt\"}\r\n0\r\n\r\n")
	if resp.StatusCode != 201 {
		t.Fatalf("a chunked body: %d %s; want 201", resp.StatusCode, b)
	}
}

// FuzzValidHead: validHead agrees with a plain reading of the rules: every
// non-empty line starts with a token followed by a colon.
func FuzzValidHead(f *testing.F) {
	for _, s := range []string{"Host: x\r\nX-A: a\r\n", "X-A: a\r\n b\r\n", "X A: a\r\n", "X-A : a\r\n", ":a\r\n", "\r\n", "a:\n\tb\n", "Host: x"} {
		f.Add([]byte(s))
	}
	line := regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+:")
	f.Fuzz(func(t *testing.T, raw []byte) {
		want := true
		for _, l := range strings.Split(string(raw), "\n") {
			l = strings.TrimSuffix(l, "\r")
			if l != "" && !line.MatchString(l) {
				want = false
			}
		}
		if got := validHead(raw); got != want {
			t.Fatalf("validHead(%q) = %v; want %v", raw, got, want)
		}
	})
}
