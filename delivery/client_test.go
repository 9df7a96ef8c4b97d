package delivery

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
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
	st, err := c.Post("http://"+addr+"/hook?secret=a%20b", []byte(`{"messages":["test"]}`))
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
		if _, err := c.Post(u, []byte("{}")); !errors.Is(err, ErrForbiddenAddress) {
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
		if _, err := c.Post(u, []byte("{}")); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("Post(%s): err = %v; want ErrForbiddenAddress", u, err)
		}
	}
	if len(dialled) != 0 {
		t.Fatalf("the client tried to dial %v", dialled)
	}
}

func TestClientNoRedirectAndTimeout(t *testing.T) {
	var followed atomic.Int32
	addr := receiver(t, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/moved":
			ctx.Redirect("/target", 307)
		case "/target":
			followed.Add(1)
		case "/slow":
			time.Sleep(1 * time.Second)
		}
	})
	c := NewClient(ClientOptions{Guard: loopback, Timeout: 300 * time.Millisecond})
	if st, err := c.Post("http://"+addr+"/moved", []byte("{}")); err != nil || st != 307 {
		t.Fatalf("redirect: %d, %v; want 307 returned as is", st, err)
	}
	if followed.Load() != 0 {
		t.Fatal("a redirect was followed")
	}
	start := time.Now()
	if _, err := c.Post("http://"+addr+"/slow", []byte("{}")); err == nil {
		t.Fatal("a 1 s answer did not time out at 300 ms")
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("timeout took %s", d)
	}
}

// TestClientWaitsForAConnection: more deliveries at once to one host than
// MaxConnsPerHost wait for a free connection instead of failing (a
// failure would cost the webhook a retry window).
func TestClientWaitsForAConnection(t *testing.T) {
	var inFlight, most atomic.Int64
	addr := receiver(t, func(ctx *fasthttp.RequestCtx) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(50 * time.Millisecond)
		inFlight.Add(-1)
	})
	c := NewClient(ClientOptions{Guard: loopback, MaxConnsPerHost: 2, Timeout: 5 * time.Second})
	errs := make(chan error, 12)
	for range 12 {
		go func() {
			st, err := c.Post("http://"+addr+"/hook", []byte(`{}`))
			if err == nil && st != 200 {
				err = errors.New("status " + time.Duration(st).String())
			}
			errs <- err
		}()
	}
	for range 12 {
		if err := <-errs; err != nil {
			t.Fatalf("a delivery past MaxConnsPerHost failed: %v", err)
		}
	}
	if m := most.Load(); m > 2 {
		t.Fatalf("%d requests at once reached the receiver; MaxConnsPerHost is 2", m)
	}
}
