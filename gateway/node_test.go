package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/testnet"
)

// startNodeUpstream runs testdata/node-upstream.js, a real Node HTTP
// server, with keepAliveMs as its keep-alive timeout, and returns it and
// its address.
func startNodeUpstream(t *testing.T, keepAliveMs string) (*testnet.Node, string) {
	t.Helper()
	node := testnet.StartNode(t, "testdata/node-upstream.js", "KEEPALIVE_MS="+keepAliveMs)
	line, _ := node.Expect(0, "listening ")
	return node, "127.0.0.1:" + strings.TrimPrefix(line, "listening ")
}

// TestNodeKeepAliveNoBadGateway: Node closes a connection idle for its
// keep-alive timeout (200 ms here; 5 s by default), and hookgate, set to
// keep idle connections far longer, finds its pooled one closed when it
// writes. Four POSTs, each sent once Node has closed every connection,
// all get 201; Node answers each exactly once; every one is detected.
//
// No timing window: each POST waits for Node's own report that its
// connections are closed.
func TestNodeKeepAliveNoBadGateway(t *testing.T) {
	node, addr := startNodeUpstream(t, "200")
	g := startGateway(t, Options{Upstreams: []string{addr}, MaxIdleConnDuration: time.Minute})
	retries, failures := upstreamStaleRetries.Get(), upstreamUnavailable.Get()
	for i := range 4 {
		from := node.Lines()
		resp, b := do(t, "POST", gwURL(g, "/alice/events"), strings.NewReader(`{"streamIds":["s"],"type":"note/txt","content":"x"}`),
			header("Content-Type", "application/json"))
		if resp.StatusCode != 201 {
			t.Fatalf("POST %d after Node closed its idle connections: %d %s; want 201", i, resp.StatusCode, b)
		}
		node.Expect(from, "request POST /alice/events")
		node.Expect(from, "open 0") // the next POST finds hookgate's pooled connection closed
	}
	if n := node.Count("request POST"); n != 4 {
		t.Fatalf("Node answered %d POSTs; want 4, each once", n)
	}
	// POSTs 2 and 4 found the pooled connection closed and were sent
	// again; POST 3 found none pooled (the closed one is dropped) and
	// dialed.
	if got := upstreamStaleRetries.Get() - retries; got != 2 {
		t.Fatalf("%d requests sent again on a new connection; want 2", got)
	}
	if got := upstreamUnavailable.Get() - failures; got != 0 {
		t.Fatalf("%d upstream failures counted; want 0", got)
	}
	if m := g.markers(t); len(m) != 4 {
		t.Fatalf("%d markers; want 4", len(m))
	}
}
