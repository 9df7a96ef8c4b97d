package delivery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
)

func receiver(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Shutdown(); ln.Close(); <-done })
	return ln.Addr().String()
}

var loopback = Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

func TestClientPost(t *testing.T) {
	var got atomic.Value
	addr := receiver(t, func(ctx *fasthttp.RequestCtx) {
		got.Store(string(ctx.Method()) + " " + string(ctx.RequestURI()) + " " + string(ctx.Request.Header.ContentType()) + " " + string(ctx.PostBody()))
		ctx.SetStatusCode(202)
	})
	c := NewClient(ClientOptions{Guard: loopback})
	st, err := c.Post("http://"+addr+"/hook?secret=a%20b", []byte(`{"messages":["test"]}`), nil)
	if err != nil || st != 202 {
		t.Fatalf("Post = %d, %v", st, err)
	}
	if g := got.Load().(string); g != `POST /hook?secret=a%20b application/json {"messages":["test"]}` {
		t.Fatalf("receiver got %q", g)
	}
}

func TestClientRefusesNonGlobal(t *testing.T) {
	var hits atomic.Int32
	addr := receiver(t, func(ctx *fasthttp.RequestCtx) { hits.Add(1) })
	_, port, _ := net.SplitHostPort(addr)
	c := NewClient(ClientOptions{}) // no allow-list
	for _, u := range []string{
		"http://" + addr + "/",
		"http://localhost:" + port + "/", // a name that resolves to loopback
		"http://[::ffff:127.0.0.1]:" + port + "/",
	} {
		if _, err := c.Post(u, []byte("{}"), nil); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("Post(%s): err = %v; want ErrForbiddenAddress", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the receiver was reached %d times", hits.Load())
	}
}

// TestClientRefusesPrivateRanges: for every non-global form, the client
// refuses before dialling. The dial function is replaced so that, were
// the guard wrong, nothing would leave the machine: the test would fail
// instead.
func TestClientRefusesPrivateRanges(t *testing.T) {
	c := NewClient(ClientOptions{Timeout: time.Second})
	var dialled []string
	c.dialContext = func(_ context.Context, _, addr string) (net.Conn, error) {
		dialled = append(dialled, addr)
		return nil, errors.New("test: dialling is not allowed here")
	}
	for _, u := range []string{
		"http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.1.1/", // RFC 1918
		"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", // link-local
		"http://[fd00::1]/", "http://[fc00::2]:8080/", // IPv6 ULA
		"http://[::ffff:10.0.0.1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/", // IPv4-mapped
		"http://[64:ff9b::a00:1]/", "http://[2002:c0a8:101::1]/", // NAT64 and 6to4 of private addresses
		"http://127.0.0.1/", "http://[::1]/", "http://0.0.0.0/", "http://100.64.0.1/",
	} {
		if _, err := c.Post(u, []byte("{}"), nil); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("Post(%s): err = %v; want ErrForbiddenAddress", u, err)
		}
	}
	if len(dialled) != 0 {
		t.Fatalf("the client tried to dial %v", dialled)
	}
}

// TestClientNoRedirectAndTimeout: a redirect is returned as it is, and a
// receiver that never answers costs the timeout, not a hang.
//
// Real time: a real fasthttp client and server on loopback. The hung
// receiver blocks until the test ends (not a sleep); the test asserts the
// timeout error, that the client waited at least its timeout (a lower
// bound: it must not give up early), and a generous upper bound (it did
// not wait forever).
func TestClientNoRedirectAndTimeout(t *testing.T) {
	var followed atomic.Int32
	hold := make(chan struct{})
	addr := receiver(t, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/moved":
			ctx.Redirect("/target", 307)
		case "/target":
			followed.Add(1)
		case "/hung":
			<-hold
		}
	})
	t.Cleanup(func() { close(hold) }) // before the receiver shuts down
	const timeout = 300 * time.Millisecond
	c := NewClient(ClientOptions{Guard: loopback, Timeout: timeout})
	if st, err := c.Post("http://"+addr+"/moved", []byte("{}"), nil); err != nil || st != 307 {
		t.Fatalf("redirect: %d, %v; want 307 returned as is", st, err)
	}
	if followed.Load() != 0 {
		t.Fatal("a redirect was followed")
	}
	start := time.Now()
	st, err := c.Post("http://"+addr+"/hung", []byte("{}"), nil)
	took := time.Since(start)
	if !errors.Is(err, fasthttp.ErrTimeout) || st != 0 {
		t.Fatalf("a receiver that never answers: %d, %v; want 0 and a timeout", st, err)
	}
	if took < timeout {
		t.Errorf("the timeout came after %s; it is %s", took, timeout)
	}
	if took > 20*time.Second {
		t.Errorf("the %s timeout took %s", timeout, took)
	}
}

// clientPatience bounds the waits of the client's tests: a failure bound
// only, a wait ends as soon as its event happens.
const clientPatience = 30 * time.Second

// TestClientWaitsForAConnection: more deliveries at once to one host than
// MaxConnsPerHost wait for a free connection instead of failing (a
// failure would cost the webhook a retry window).
//
// Real time: a real fasthttp client and server on loopback. The receiver
// holds the requests it gets until both connections are busy, so the
// other deliveries certainly wait for one; the generous timeout only
// turns a hang into a failure.
func TestClientWaitsForAConnection(t *testing.T) {
	var inFlight, most atomic.Int64
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	arrivals := make(chan struct{}, 12)
	addr := receiver(t, func(ctx *fasthttp.RequestCtx) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		arrivals <- struct{}{}
		<-hold
		inFlight.Add(-1)
	})
	t.Cleanup(release) // before the receiver shuts down
	c := NewClient(ClientOptions{Guard: loopback, MaxConnsPerHost: 2, Timeout: clientPatience})
	errs := make(chan error, 12)
	for range 12 {
		go func() {
			st, err := c.Post("http://"+addr+"/hook", []byte(`{}`), nil)
			if err == nil && st != 200 {
				err = fmt.Errorf("status %d", st)
			}
			errs <- err
		}()
	}
	timer := time.NewTimer(clientPatience)
	defer timer.Stop()
	for range 2 {
		select {
		case <-arrivals:
		case err := <-errs:
			t.Fatalf("a delivery ended (%v) before both connections were busy", err)
		case <-timer.C:
			t.Fatalf("the receiver did not get two requests within %s", clientPatience)
		}
	}
	// Both connections are held: the ten other deliveries are waiting.
	release()
	for range 12 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("a delivery past MaxConnsPerHost failed: %v", err)
			}
		case <-timer.C:
			t.Fatalf("the deliveries did not all end within %s", clientPatience)
		}
	}
	if m := most.Load(); m != 2 {
		t.Fatalf("%d requests at once reached the receiver; MaxConnsPerHost is 2", m)
	}
}

// TestClientKeepsConnectionsAcrossBodies: answers with a body (up to
// MaxAnswerBody) leave their connection to the next delivery; a larger
// one still gives its status, and costs its connection.
func TestClientKeepsConnectionsAcrossBodies(t *testing.T) {
	var conns atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			switch string(ctx.Path()) {
			case "/small":
				ctx.SetBodyString(`{"ok":true,"note":"` + string(make([]byte, 2000)) + `"}`)
			case "/chunked":
				ctx.SetBodyStreamWriter(func(w *bufio.Writer) { w.WriteString(`{"ok":true}`) })
			case "/large":
				ctx.SetBody(make([]byte, MaxAnswerBody+1))
			}
			ctx.SetStatusCode(201)
		},
		ConnState: func(_ net.Conn, st fasthttp.ConnState) {
			if st == fasthttp.StateNew {
				conns.Add(1)
			}
		},
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Shutdown(); ln.Close(); <-done })
	addr := ln.Addr().String()

	c := NewClient(ClientOptions{Guard: loopback})
	defer c.CloseIdleConnections()
	for i := range 20 {
		path := "/small"
		if i%2 == 1 {
			path = "/chunked"
		}
		if st, err := c.Post("http://"+addr+path, []byte(`{}`), nil); err != nil || st != 201 {
			t.Fatalf("%s: %d, %v", path, st, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 answers with a body took %d connections; want 1", n)
	}
	if st, err := c.Post("http://"+addr+"/large", []byte(`{}`), nil); err != nil || st != 201 {
		t.Fatalf("an answer past MaxAnswerBody: %d, %v; want 201", st, err)
	}
	if st, err := c.Post("http://"+addr+"/small", []byte(`{}`), nil); err != nil || st != 201 {
		t.Fatalf("after a large answer: %d, %v", st, err)
	}
}

// rawReceiver accepts connections on loopback and hands each to serve.
func rawReceiver(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); serve(c) })
		}
	})
	return ln.Addr().String()
}

// TestRunErrorClasses: each way a real delivery fails gets its class,
// and a failed answer's body its first bytes.
func TestRunErrorClasses(t *testing.T) {
	busy := receiver(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(503)
		ctx.SetBodyString(strings.Repeat("overloaded; ", 20))
	})
	// Reads and never answers, until the client gives up and closes.
	silent := rawReceiver(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	dropping := rawReceiver(t, func(c net.Conn) { c.Read(make([]byte, 4096)) })
	garbled := rawReceiver(t, func(c net.Conn) {
		c.Read(make([]byte, 4096))
		c.Write([]byte("HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n"))
	})
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := closed.Addr().String()
	closed.Close()
	noDNS := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no name server here")
	}}
	c := NewClient(ClientOptions{Guard: loopback, Timeout: 200 * time.Millisecond, Resolver: noDNS})
	strict := NewClient(ClientOptions{Timeout: 200 * time.Millisecond})
	for _, tc := range []struct {
		cl         *Client
		url, class string
	}{
		{c, "http://" + busy + "/", core.RunHTTP},
		{c, "http://" + silent + "/", core.RunTimeout},
		{c, "http://" + dropping + "/", core.RunConnection},
		{c, "http://" + garbled + "/", core.RunBadAnswer},
		{c, "http://" + refused + "/", core.RunRefused},
		{c, "https://" + garbled + "/", core.RunTLS},
		{c, "http://receiver.example:80/", core.RunDNS},
		{strict, "http://" + busy + "/", core.RunBlocked},
	} {
		a, err := tc.cl.Send(tc.url, []byte(`{}`), nil)
		if got := ErrorClass(a.Status, err); got != tc.class {
			t.Errorf("%s: class %q (status %d, err %v); want %q", tc.url, got, a.Status, err, tc.class)
		}
		if tc.class == core.RunHTTP && (a.Status != 503 || a.Head != strings.Repeat("overloaded; ", 20)[:core.MaxRunAnswer]) {
			t.Errorf("a 503's answer: %d %q", a.Status, a.Head)
		}
	}
	if a, err := c.Send("http://"+receiver(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("fine") })+"/", nil, nil); err != nil || a.Head != "" || ErrorClass(a.Status, err) != "" {
		t.Fatalf("a success: %+v, %v, class %q; want no head and no class", a, err, ErrorClass(a.Status, err))
	}
}
