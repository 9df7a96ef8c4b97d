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

// rawExchange writes raw to a new connection to addr, then closes its
// sending side, and returns the status line and the whole answer. The
// half close tells the gateway at once that nothing more is coming, so a
// refused body is drained to its end instead of until the gateway's own
// drain deadline, and no answer waits on a timer.
func rawExchange(t *testing.T, addr, raw string) (string, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitBound)) // bounds a failure only
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	// It fails when the gateway has answered and closed already (a head
	// too large is refused before it is read whole): the answer is there
	// to read all the same.
	c.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.Status, string(b)
}

// TestRequestLimits: heads and bodies past the limits get the Pryv error
// answers, and bodies at the limit pass whole.
//
// Real time: real sockets, and the gateway drains a refused body under a
// one-second read deadline of its own. The raw requests are complete and
// half-closed when the gateway reads them, so no answer depends on that
// deadline or on how fast anything runs.
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
			"Content-Type: application/octet-stream\r\nContent-Length: 2000000\r\n\r\n"+strings.Repeat("a", 32<<10))
		if !strings.HasPrefix(status, "413") || !strings.Contains(body, "1048576 bytes") {
			t.Fatalf("%s %s; want 413 naming the limit", status, body)
		}
	})
	chunked := func(n int) string {
		return "POST /alice/events/ck1/series HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n", n) + strings.Repeat("c", n) + "\r\n0\r\n\r\n"
	}
	t.Run("chunked body too large", func(t *testing.T) {
		// One byte past the limit: the gateway finds out while streaming
		// the body upstream.
		status, body := rawExchange(t, g.addr, chunked(1<<20+1))
		if !strings.HasPrefix(status, "413") || !strings.Contains(body, `"id":"invalid-request-structure"`) || !strings.Contains(body, "1048576 bytes") {
			t.Fatalf("%s %s; want 413 naming the limit", status, body)
		}
		if !g.UpstreamReachable() {
			t.Error("a refused body marked the upstream unreachable")
		}
	})
	t.Run("bodies at the limit pass", func(t *testing.T) {
		status, b := rawExchange(t, g.addr, chunked(1<<20))
		var seen echoSeen
		mustJSON(t, []byte(b), &seen)
		if !strings.HasPrefix(status, "200") || seen.Len != 1<<20 || seen.SHA != sha(strings.Repeat("c", 1<<20)) {
			t.Fatalf("raw chunked: %s, upstream got %d bytes", status, seen.Len)
		}
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

// slowHead is what a slow client sends, a byte every slowEvery: 400
// bytes, 40 s, so no slow client finishes its head while a test waits.
var slowHead = "GET /alice/events HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 360)

const slowEvery = 100 * time.Millisecond

// slowAnswer is what the gateway did to a slow connection: its answer, or
// the error that ended the read (a close without an answer).
type slowAnswer struct {
	status int
	body   []byte
	err    error
}

type slowClients struct {
	started chan struct{}   // closed once every connection sent a byte
	answers chan slowAnswer // one per connection, as they come
}

// startSlowClients opens n connections to addr that each send slowHead a
// byte at a time (slowloris) while reading whatever the gateway answers.
// The test's cleanup closes them and waits for their goroutines, which
// block on nothing but those connections and a short timer.
//
// Real time: a slowloris client trickles bytes on a real socket, against
// the gateway's real read deadline. Nothing asserted depends on the pace.
func startSlowClients(t *testing.T, addr string, n int) *slowClients {
	t.Helper()
	s := &slowClients{started: make(chan struct{}), answers: make(chan slowAnswer, n)}
	quit := make(chan struct{})
	var wg, firstBytes sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		close(quit)
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	})
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		firstBytes.Add(1)
		wg.Go(func() {
			first := true
			defer func() {
				if first {
					firstBytes.Done()
				}
			}()
			tick := time.NewTicker(slowEvery)
			defer tick.Stop()
			for i := 0; i < len(slowHead); i++ {
				if _, err := c.Write([]byte{slowHead[i]}); err != nil {
					return // the gateway closed the connection
				}
				if first {
					first = false
					firstBytes.Done()
				}
				select {
				case <-quit:
					return
				case <-tick.C:
				}
			}
		})
		wg.Go(func() {
			var a slowAnswer
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if a.err = err; err == nil {
				a.status = resp.StatusCode
				a.body, a.err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			s.answers <- a // buffered for every connection
		})
	}
	go func() { firstBytes.Wait(); close(s.started) }()
	return s
}

// TestSlowClients: slow clients (slowloris) neither keep ordinary clients
// from being served nor keep their connections past ReadTimeout.
//
// Real time: real gateways on loopback, and ReadTimeout is a network
// deadline. The test waits on events (every slow client has started,
// every slow connection got its answer) with generous bounds, and asserts
// outcomes, never how long they took.
func TestSlowClients(t *testing.T) {
	up := startEcho(t)
	const slow = 300
	t.Run("ordinary clients are served", func(t *testing.T) {
		// ReadTimeout keeps its 60 s default: the slow clients hold their
		// connections mid-head for the whole subtest (their heads take
		// 40 s), and are closed by the subtest's cleanup.
		g := startGateway(t, Options{Upstreams: []string{up}})
		sc := startSlowClients(t, g.addr, slow)
		select {
		case <-sc.started:
		case <-time.After(waitBound):
			t.Fatalf("the %d slow clients did not all start within %s", slow, waitBound)
		}
		for i := range 50 {
			resp, b := do(t, "GET", gwURL(g, fmt.Sprintf("/alice/events?i=%d", i)), nil)
			if resp.StatusCode != 200 {
				t.Fatalf("an ordinary request next to %d slow clients: %d %s", slow, resp.StatusCode, b)
			}
		}
		t.Logf("50 ordinary requests served; %d of %d slow connections answered meanwhile", len(sc.answers), slow)
	})
	t.Run("slow clients are cut off at ReadTimeout", func(t *testing.T) {
		g := startGateway(t, Options{Upstreams: []string{up}, ReadTimeout: time.Second})
		sc := startSlowClients(t, g.addr, slow)
		timeout := time.NewTimer(waitBound) // the heads would take 40 s
		defer timeout.Stop()
		answered408 := 0
		for i := range slow {
			var a slowAnswer
			select {
			case a = <-sc.answers:
			case <-timeout.C:
				t.Fatalf("only %d of %d slow connections cut off within %s; ReadTimeout is 1s", i, slow, waitBound)
			}
			switch {
			case a.status == 408:
				if id, _ := pryvError(t, a.body); id != "invalid-request-structure" {
					t.Fatalf("408 with error id %q", id)
				}
				answered408++
			case a.status != 0:
				t.Fatalf("a slow connection got %d %s; want 408 or a close", a.status, a.body)
			}
			// a.err alone: closed without an answer, for a connection
			// whose first byte the gateway had not read by ReadTimeout.
		}
		t.Logf("%d slow connections cut off, %d of them with 408", slow, answered408)
	})
}

// TestConnectionLimits: past MaxConnsPerIP a new connection from the same
// address is refused, and one is accepted again once others close.
//
// Real time: the gateway forgets a closed connection once its own
// goroutine has seen the close, which no event of the client's reports;
// the test retries the new connection until it is accepted, up to a
// generous bound.
func TestConnectionLimits(t *testing.T) {
	up := startEcho(t)
	g := startGateway(t, Options{Upstreams: []string{up}, MaxConnsPerIP: 5})
	var conns []net.Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	defer closeAll()
	for range 5 {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(waitBound)) // bounds a failure only
		// Served once, and kept open: the gateway has counted it.
		if _, err := io.WriteString(c, "GET /alice/x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("connection %d: %q %v", len(conns), line, err)
		}
	}
	status, _ := rawExchange(t, g.addr, "GET /alice/x HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(status, "429") && !strings.HasPrefix(status, "503") {
		t.Fatalf("a 6th connection from one address: %s; want it refused", status)
	}
	closeAll()
	last := ""
	eventually(t, "a connection accepted once the others closed", func() bool {
		last, _ = rawExchange(t, g.addr, "GET /alice/x HTTP/1.1\r\nHost: x\r\n\r\n")
		if !strings.HasPrefix(last, "200") && !strings.HasPrefix(last, "429") && !strings.HasPrefix(last, "503") {
			t.Fatalf("once the others closed: %s", last)
		}
		return strings.HasPrefix(last, "200")
	})
}
