package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/internal/testnet"
)

// startNodeWS runs testdata/node-ws.js, on the npm ws package, with env;
// without the package installed (npm install in testdata) the test is
// skipped, or fails where node is required.
func startNodeWS(t *testing.T, env ...string) *testnet.Node {
	t.Helper()
	requireNPM(t)
	return testnet.StartNode(t, "testdata/node-ws.js", env...)
}

// requireNPM skips or fails the test without the npm packages of
// testdata.
func requireNPM(t *testing.T) {
	t.Helper()
	testnet.RequireNPM(t, "testdata", "ws", "socket.io", "socket.io-client")
}

func startWSServer(t *testing.T) (*testnet.Node, string) {
	t.Helper()
	node := startNodeWS(t)
	line, _ := node.Expect(0, "listening ")
	return node, "127.0.0.1:" + strings.TrimPrefix(line, "listening ")
}

// TestNodeWebSocketEcho: a real ws client talks to a real ws server
// through hookgate: text, a binary message of 1 MiB, a fragmented one, a
// ping, and a close code and reason all pass both ways, and the server
// sees the client's address in X-Forwarded-For and no compression offered. Once the connection is
// closed, hookgate holds none.
func TestNodeWebSocketEcho(t *testing.T) {
	server, addr := startWSServer(t)
	ended := make(chan struct{}, 1)
	g := startGateway(t, Options{Upstreams: []string{addr}, webSocketEnded: func() { ended <- struct{}{} }})
	client := startNodeWS(t, "MODE=client", "URL=ws://"+g.addr+"/socket.io/?EIO=4&transport=websocket")
	line, _ := client.Expect(0, "{")
	var seen struct {
		Text, Binary, Fragmented, Pong bool
		CloseCode                      int
		CloseReason, Error             string
	}
	if err := json.Unmarshal([]byte(line), &seen); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if !seen.Text || !seen.Binary || !seen.Fragmented || !seen.Pong || seen.CloseCode != 4001 || seen.CloseReason != "bye" || seen.Error != "" {
		t.Fatalf("through hookgate the client saw %+v", seen)
	}
	up, _ := server.Expect(0, "upgrade ")
	// The client offers permessage-deflate and the server would take it:
	// hookgate offers none, so that it reads every frame.
	if up != "upgrade /socket.io/ xff=127.0.0.1 ext=" {
		t.Fatalf("the server saw %q", up)
	}
	server.Expect(0, "closed 4001")
	waitEnded(t, ended)
	if n := g.wsOpen.Load(); n != 0 {
		t.Fatalf("hookgate holds %d WebSocket connections after the only one closed", n)
	}
}

// waitEnded waits for hookgate to let go of an upgraded connection.
//
// Real time: it waits on the event hookgate signals; the bound only ends
// a failure.
func waitEnded(t *testing.T, ended <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(testnet.NodeBound)
	defer timer.Stop()
	select {
	case <-ended:
	case <-timer.C:
		t.Fatalf("hookgate still held the WebSocket connection after %s", testnet.NodeBound)
	}
}

// handshake sends an upgrade to hookgate over a raw connection and
// returns the connection and the answer's status line.
func handshake(t *testing.T, addr, path string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, err = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: api.example\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(testnet.NodeBound)) // a failure bound only
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	for { // the rest of the head
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "\r\n" {
			break
		}
	}
	return c, br, strings.TrimSpace(status)
}

// TestWebSocketRefusals: an upgrade the upstream refuses gets its answer
// as it is; past MaxWebSockets an upgrade gets 503; a connection idle for
// WebSocketIdleTimeout is closed.
func TestWebSocketRefusals(t *testing.T) {
	_, addr := startWSServer(t)
	ended := make(chan struct{}, 1)
	g := startGateway(t, Options{Upstreams: []string{addr}, MaxWebSockets: 1, WebSocketIdleTimeout: 300 * time.Millisecond,
		webSocketEnded: func() { ended <- struct{}{} }})
	resp, body := do(t, "GET", gwURL(g, "/reject"), nil, header("Upgrade", "websocket"), header("Connection", "Upgrade"),
		header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), header("Sec-WebSocket-Version", "13"))
	if resp.StatusCode != 400 || !strings.Contains(string(body), "Transport unknown") {
		t.Fatalf("a refused upgrade: %d %s", resp.StatusCode, body)
	}
	_, br, status := handshake(t, g.addr, "/socket.io/")
	if status != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("upgrade: %q", status)
	}
	if _, _, status := handshake(t, g.addr, "/socket.io/"); !strings.HasPrefix(status, "HTTP/1.1 503") {
		t.Fatalf("a second upgrade with MaxWebSockets 1: %q; want 503", status)
	}
	// Idle: hookgate closes it. The read ends with the end of the
	// stream, not with the test's own read deadline.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("reading the idle connection: %v; want io.EOF, hookgate closing it", err)
	}
	waitEnded(t, ended)
	if n := g.wsOpen.Load(); n != 0 {
		t.Fatalf("hookgate holds %d WebSocket connections after the idle one closed", n)
	}
}

// TestIsWebSocket: the upgrade is recognised in every spelling the RFC
// allows, and nothing else is.
func TestIsWebSocket(t *testing.T) {
	for _, c := range []struct {
		upgrade, connection string
		want                bool
	}{
		{"websocket", "Upgrade", true},
		{"WebSocket", "keep-alive, upgrade", true},
		{" websocket ", "Keep-Alive,Upgrade", true},
		{"websocket", "keep-alive", false},
		{"h2c", "Upgrade", false},
		{"", "Upgrade", false},
	} {
		raw := "GET / HTTP/1.1\r\nHost: api.example\r\nConnection: " + c.connection + "\r\n"
		if c.upgrade != "" {
			raw += "Upgrade: " + c.upgrade + "\r\n"
		}
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(raw + "\r\n"))); err != nil {
			t.Fatal(err)
		}
		if got := isWebSocket(&h); got != c.want {
			t.Errorf("Upgrade %q, Connection %q: %v; want %v", c.upgrade, c.connection, got, c.want)
		}
	}
}

// TestWebSocketClosedOnShutdown: a shutdown closes the upgraded
// connections rather than wait for them.
func TestWebSocketClosedOnShutdown(t *testing.T) {
	_, addr := startWSServer(t)
	g := startGateway(t, Options{Upstreams: []string{addr}})
	_, br, status := handshake(t, g.addr, "/socket.io/")
	if status != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("upgrade: %q", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testnet.NodeBound)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a WebSocket open: %v", err)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the WebSocket carried a byte after the shutdown")
	}
}
