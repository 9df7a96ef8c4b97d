package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/webhooks"
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

// TestNodeCORSAsPryv: hookgate's own answers carry the same CORS headers
// as the Node upstream, which runs Pryv.io's CORS middleware, gives for
// the same request: a preflight of a webhooks route (hookgate's) against
// one of an events route (Node's, passed through), with and without the
// browser's asks. API-Version is the upstream's, learned at start.
func TestNodeCORSAsPryv(t *testing.T) {
	node, addr := startNodeUpstream(t, "5000")
	e := startWebhooks(t, t.TempDir(), Options{Upstreams: []string{addr}, Meta: core.FollowMeta("1.9.3", "hookgate", false, false)}, webhooks.Options{})
	if err := e.gw.LearnMeta(); err != nil {
		t.Fatal(err)
	}
	for _, asks := range [][]reqOpt{
		{header("Origin", "https://app.example.com"), header("Access-Control-Request-Method", "PUT"), header("Access-Control-Request-Headers", "authorization,content-type")},
		nil,
	} {
		from := node.Lines()
		own, ownBody := do(t, "OPTIONS", gwURL(e.gw, "/alice/webhooks/abc"), nil, asks...)
		pryv, pryvBody := do(t, "OPTIONS", gwURL(e.gw, "/alice/events"), nil, asks...)
		node.Expect(from, "request OPTIONS /alice/events")
		if own.StatusCode != 200 || pryv.StatusCode != 200 || string(ownBody) != string(pryvBody) {
			t.Fatalf("preflights: hookgate %d %q, Node %d %q", own.StatusCode, ownBody, pryv.StatusCode, pryvBody)
		}
		for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
			"Access-Control-Allow-Credentials", "Access-Control-Expose-Headers", "Access-Control-Max-Age", "API-Version"} {
			if a, b := own.Header.Get(k), pryv.Header.Get(k); a != b || a == "" {
				t.Errorf("%s: hookgate %q, Pryv's middleware %q", k, a, b)
			}
		}
	}
	if n := node.Count("request OPTIONS /alice/webhooks"); n != 0 {
		t.Fatalf("a preflight of a webhooks route reached the upstream %d times", n)
	}
}

// TestNodeMixedBatchInOrder is TestMixedBatchInOrder in front of Node.
func TestNodeMixedBatchInOrder(t *testing.T) {
	_, addr := startNodeUpstream(t, "5000")
	mixedBatchInOrder(t, []string{addr})
}

// TestNodeSignedWebhookTest is TestSignedWebhookTest in front of Node.
func TestNodeSignedWebhookTest(t *testing.T) {
	_, addr := startNodeUpstream(t, "5000")
	signedWebhookTest(t, []string{addr})
}

// TestNodeMalformedFramingIs400 is TestMalformedFramingIs400 in front of
// Node: nothing malformed reaches it, and /readyz stays ready.
func TestNodeMalformedFramingIs400(t *testing.T) {
	node, addr := startNodeUpstream(t, "5000")
	malformedFramingIs400(t, addr, func() int64 { return int64(node.Count("request ")) })
}
