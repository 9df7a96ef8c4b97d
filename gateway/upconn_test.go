package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scriptedUpstream serves raw answers on loopback, chosen per request:
// answer gets the request's number on its connection (from 0) and
// returns what to write, and whether to close the connection once it is
// written. It counts the requests it read in full.
func scriptedUpstream(t testing.TB, answer func(n int) (string, bool)) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					seen.Add(1)
					a, closeAfter := answer(n)
					if _, err := io.WriteString(c, a); err != nil || closeAfter {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String(), &seen
}

const created = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

// TestStaleConnectionSentAgain: an upstream that closes every connection
// after one answer, without saying so, as Node does with a connection
// past its keep-alive timeout. Every POST gets its 201 through hookgate,
// none is sent twice, each is detected once, and the client keeps its
// connection.
func TestStaleConnectionSentAgain(t *testing.T) {
	up, seen := scriptedUpstream(t, func(int) (string, bool) { return created, true })
	g := startGateway(t, Options{Upstreams: []string{up}, MaxIdleConnDuration: time.Minute})
	before := upstreamStaleRetries.Get()
	for i := range 4 {
		resp, b := do(t, "POST", gwURL(g, "/alice/events"), strings.NewReader(`{"streamIds":["s"],"type":"note/txt","content":"x"}`),
			header("Content-Type", "application/json"))
		if resp.StatusCode != 201 || resp.Close {
			t.Fatalf("POST %d: %d %s (close %v); want 201 on a kept connection", i, resp.StatusCode, b, resp.Close)
		}
	}
	if n := seen.Load(); n != 4 {
		t.Fatalf("the upstream got %d requests; want 4, each once", n)
	}
	if got := upstreamStaleRetries.Get() - before; got == 0 {
		t.Fatal("no request was sent again: the test did not reach a closed connection")
	}
	if m := g.markers(t); len(m) != 4 {
		t.Fatalf("%d markers; want 4", len(m))
	}
}

// TestNoRetryOnceAnswerBegun: an upstream that breaks off in the middle
// of an answer on a reused connection: the client gets 502, and the
// request is not sent again (the upstream may have acted on it).
func TestNoRetryOnceAnswerBegun(t *testing.T) {
	up, seen := scriptedUpstream(t, func(n int) (string, bool) {
		if n == 0 {
			return created, false
		}
		return "HTTP/1.1 201 Created\r\nContent-Le", true
	})
	g := startGateway(t, Options{Upstreams: []string{up}, MaxIdleConnDuration: time.Minute})
	if resp, b := do(t, "POST", gwURL(g, "/alice/events"), strings.NewReader(`{}`)); resp.StatusCode != 201 {
		t.Fatalf("first POST: %d %s", resp.StatusCode, b)
	}
	if resp, b := do(t, "POST", gwURL(g, "/alice/events"), strings.NewReader(`{}`)); resp.StatusCode != 502 {
		t.Fatalf("POST answered in part: %d %s; want 502", resp.StatusCode, b)
	}
	if n := seen.Load(); n != 2 {
		t.Fatalf("the upstream got %d requests; want 2: one that broke off is not sent again", n)
	}
}

// TestNoRetryOnNewConnection: an upstream that closes a new connection
// after reading its first request, with no answer: not the keep-alive
// race (the connection served nothing before), so the client gets 502
// and the request is not sent again.
func TestNoRetryOnNewConnection(t *testing.T) {
	up, seen := scriptedUpstream(t, func(int) (string, bool) { return "", true })
	g := startGateway(t, Options{Upstreams: []string{up}, MaxIdleConnDuration: time.Minute})
	if resp, b := do(t, "POST", gwURL(g, "/alice/events"), strings.NewReader(`{}`)); resp.StatusCode != 502 {
		t.Fatalf("POST: %d %s; want 502", resp.StatusCode, b)
	}
	if n := seen.Load(); n != 1 {
		t.Fatalf("the upstream got %d requests; want 1", n)
	}
}
