package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawExchange writes raw to a new connection to addr and returns the
// status line and whole answer (up to the server's close or 5 s).
func rawExchange(t *testing.T, addr, raw string) (string, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.Status, string(b)
}

func TestRequestLimits(t *testing.T) {
	up := startEcho(t)
	g := startGateway(t, Options{Upstreams: []string{up}, MaxHeaderSize: 4 << 10, MaxBodySize: 1 << 20})

	t.Run("head too large", func(t *testing.T) {
		status, body := rawExchange(t, g.addr, "GET /alice/events HTTP/1.1\r\nHost: x\r\nX-Big: "+
			strings.Repeat("a", 8<<10)+"\r\n\r\n")
		if !strings.HasPrefix(status, "431") || !strings.Contains(body, `"id":"invalid-request-structure"`) {
			t.Fatalf("%s %s; want 431 in the Pryv error shape", status, body)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		status, body := rawExchange(t, g.addr, "GET /alice/events HTTP/1.1\r\nHost x\r\n\r\n")
		if !strings.HasPrefix(status, "400") || !strings.Contains(body, `"error"`) {
			t.Fatalf("%s %s; want 400 in the Pryv error shape", status, body)
		}
	})
	t.Run("declared body too large", func(t *testing.T) {
		status, body := rawExchange(t, g.addr, "POST /alice/events/ck1/series HTTP/1.1\r\nHost: x\r\n"+
			"Content-Type: application/octet-stream\r\nContent-Length: 2000000\r\n\r\n"+strings.Repeat("a", 100<<10))
		if !strings.HasPrefix(status, "413") || !strings.Contains(body, "1048576 bytes") {
			t.Fatalf("%s %s; want 413 naming the limit", status, body)
		}
	})
	t.Run("chunked body too large", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			chunk := make([]byte, 64<<10)
			for range 40 { // 2.5 MiB, past the 1 MiB limit
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", gwURL(g, "/alice/events/ck1/series"), pr)
		req.ContentLength = -1 // chunked
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		pr.CloseWithError(io.ErrClosedPipe)
		if resp.StatusCode != 413 || !strings.Contains(string(b), `"id":"invalid-request-structure"`) {
			t.Fatalf("%d %s; want 413", resp.StatusCode, b)
		}
		if !g.UpstreamReachable() {
			t.Error("a refused body marked the upstream unreachable")
		}
	})
	t.Run("bodies at the limit pass", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			body := strings.Repeat("b", 1<<20)
			req, _ := http.NewRequest("POST", gwURL(g, "/alice/events/ck1/series"), io.MultiReader(strings.NewReader(body)))
			if !chunked {
				req.ContentLength = int64(len(body))
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var seen echoSeen
			mustJSON(t, b, &seen)
			if resp.StatusCode != 200 || seen.Len != 1<<20 || seen.SHA != sha(body) {
				t.Fatalf("chunked=%v: %d, upstream got %d bytes", chunked, resp.StatusCode, seen.Len)
			}
		}
	})
}

// TestSlowClients opens many connections that send their request head a
// byte at a time (slowloris) and checks that ordinary clients are still
// served at once, and that the slow connections are closed once
// ReadTimeout has passed.
func TestSlowClients(t *testing.T) {
	up := startEcho(t)
	const readTimeout = 1 * time.Second
	g := startGateway(t, Options{Upstreams: []string{up}, ReadTimeout: readTimeout, IdleTimeout: readTimeout})

	const slow = 300
	var wg sync.WaitGroup
	closedAfter := make(chan time.Duration, slow)
	start := time.Now()
	for range slow {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Go(func() {
			head := "GET /alice/events HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 200)
			for i := 0; i < len(head); i++ {
				if _, err := c.Write([]byte{head[i]}); err != nil {
					closedAfter <- time.Since(start)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			closedAfter <- -1 // never closed
		})
	}
	time.Sleep(200 * time.Millisecond)
	// Ordinary clients meanwhile.
	var worst time.Duration
	for i := range 50 {
		t0 := time.Now()
		resp, _ := do(t, "GET", gwURL(g, fmt.Sprintf("/alice/events?i=%d", i)), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("an ordinary request next to %d slow clients: %d", slow, resp.StatusCode)
		}
		worst = max(worst, time.Since(t0))
	}
	if worst > 500*time.Millisecond {
		t.Errorf("the slowest ordinary request took %s next to %d slow clients", worst, slow)
	}
	wg.Wait()
	close(closedAfter)
	var latest time.Duration
	for d := range closedAfter {
		if d < 0 {
			t.Fatal("a slow client was never disconnected")
		}
		latest = max(latest, d)
	}
	// A write fails only once the close has come back; allow for that.
	if latest > readTimeout+2*time.Second {
		t.Errorf("the last slow client was disconnected after %s; ReadTimeout is %s", latest, readTimeout)
	}
	t.Logf("%d slow clients, all disconnected within %s; the slowest of 50 ordinary requests took %s", slow, latest, worst)
}

// TestConnectionLimits: past MaxConnsPerIP a new connection from the same
// address is refused, and one is accepted again once others close.
func TestConnectionLimits(t *testing.T) {
	up := startEcho(t)
	g := startGateway(t, Options{Upstreams: []string{up}, MaxConnsPerIP: 5})
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, "GET /alice/x HTTP/1.1\r\nHost: x\r\n\r\n") // keep it busy and open
		bufio.NewReader(c).ReadString('\n')
	}
	status, _ := rawExchange(t, g.addr, "GET /alice/x HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(status, "429") && !strings.HasPrefix(status, "503") {
		t.Fatalf("a 6th connection from one address: %s; want it refused", status)
	}
	for _, c := range conns {
		c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	if status, _ := rawExchange(t, g.addr, "GET /alice/x HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(status, "200") {
		t.Fatalf("once the others closed: %s", status)
	}
}
