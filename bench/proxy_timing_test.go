package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/gateway"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/rules"
	"github.com/hookgate/hookgate/gateway/store"
)

// listen serves on a loopback port until the benchmark ends.
func listen(b testing.TB, serve func(net.Listener) error, stop func()) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = serve(ln) }()
	b.Cleanup(func() { stop(); ln.Close(); <-done })
	return ln.Addr().String()
}

// trivialUpstream answers every request with body of the given size, the
// way an API answers a small read: the proxy's own cost dominates.
func trivialUpstream(b testing.TB, size int) string {
	body := []byte(strings.Repeat("x", size))
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("Pryv-Access-Id", "bench")
		if ctx.IsPost() {
			ctx.SetStatusCode(201)
		}
		ctx.SetBody(body)
	}}
	return listen(b, srv.Serve, func() { _ = srv.Shutdown() })
}

func hookgate(b testing.TB, up string, q gateway.Appender) string {
	tb, err := rules.Compile(rules.Pryv(false))
	if err != nil {
		b.Fatal(err)
	}
	if q == nil {
		q = queue.NewMemory(queue.Options{})
	}
	g, err := gateway.New(gateway.Options{Upstreams: []string{up}, Rules: tb, Queue: q})
	if err != nil {
		b.Fatal(err)
	}
	return listen(b, g.Serve, func() { _ = g.Shutdown(context.Background()) })
}

func reverseProxy(b *testing.B, up string) string {
	target, _ := neturl.Parse("http://" + up)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	return listen(b, srv.Serve, func() { _ = srv.Close() })
}

// load drives addr with keep-alive fasthttp clients from RunParallel,
// and reports the process's CPU per request (the clients', the
// upstream's and the proxy's, if any).
func load(b *testing.B, addr, method, path string, body []byte, wantStatus int) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 1024}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	defer func() { reportCPU(b, cpu) }()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + path)
		req.Header.SetMethod(method)
		req.Header.Set("Authorization", "alice-app")
		if body != nil {
			req.Header.SetContentType("application/json")
		}
		for pb.Next() {
			if body != nil {
				req.SetBodyRaw(body)
			}
			if err := c.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if resp.StatusCode() != wantStatus {
				b.Fatalf("status %d; want %d", resp.StatusCode(), wantStatus)
			}
		}
	})
}

// BenchmarkPassThroughGET: a read through hookgate, against the same
// upstream read directly and through httputil.ReverseProxy, in one run.
// Answers up to 64 KiB are buffered, larger ones streamed.
func BenchmarkPassThroughGET(b *testing.B) {
	for _, size := range []int{128, 16 << 10, 256 << 10} {
		up := trivialUpstream(b, size)
		targets := []struct{ name, addr string }{
			{"direct", up},
			{"hookgate", hookgate(b, up, nil)},
			{"reverseproxy", reverseProxy(b, up)},
		}
		for _, tg := range targets {
			b.Run(fmt.Sprintf("size=%d/%s", size, tg.name), func(b *testing.B) {
				b.SetBytes(int64(size))
				load(b, tg.addr, "GET", "/alice/events?limit=20", nil, 200)
			})
		}
	}
}

// BenchmarkUploadPOST: a request body through hookgate on a path that
// changes nothing (an HF series append, opted out of notifications),
// buffered at 1 KiB and streamed at 256 KiB, next to the same upload sent
// directly and through httputil.ReverseProxy.
func BenchmarkUploadPOST(b *testing.B) {
	up := trivialUpstream(b, 64)
	targets := []struct{ name, addr string }{
		{"direct", up},
		{"hookgate", hookgate(b, up, nil)},
		{"reverseproxy", reverseProxy(b, up)},
	}
	for _, size := range []int{1 << 10, 256 << 10} {
		body := []byte(strings.Repeat("x", size))
		for _, tg := range targets {
			b.Run(fmt.Sprintf("size=%d/%s", size, tg.name), func(b *testing.B) {
				b.SetBytes(int64(size))
				load(b, tg.addr, "POST", "/alice/events/ck1/series", body, 201)
			})
		}
	}
}

// BenchmarkMutationPOST: events.create through hookgate with a synced
// Badger queue (the default), an async one and an in-memory one, against
// the upstream directly and through httputil.ReverseProxy.
func BenchmarkMutationPOST(b *testing.B) {
	up := trivialUpstream(b, 256)
	body := []byte(`{"streamIds":["diary"],"type":"note/txt","content":"hello"}`)
	badgerQ := func(async bool) gateway.Appender {
		_, q := openBadger(b, queue.Options{Async: async})
		return q
	}
	targets := []struct{ name, addr string }{
		{"direct", up},
		{"reverseproxy", reverseProxy(b, up)},
		{"hookgate-memory", hookgate(b, up, queue.NewMemory(queue.Options{}))},
		{"hookgate-async", hookgate(b, up, badgerQ(true))},
		{"hookgate-sync", hookgate(b, up, badgerQ(false))},
	}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			b.SetParallelism(16) // many clients, so group commit has company
			load(b, tg.addr, "POST", "/alice/events", body, 201)
		})
	}
}

// openBadger opens a Badger database and its marker queue in a new
// directory, both closed when b ends.
func openBadger(b testing.TB, o queue.Options) (*badger.DB, *queue.Badger) {
	db, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	q, err := queue.OpenBadger(db, o)
	if err != nil {
		db.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close(); db.Close() })
	return db, q
}
