package bench

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/gateway"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/rules"
	"github.com/hookgate/hookgate/gateway/webhooks"
)

// cpuTime is the CPU time, user and system, this process has used.
func cpuTime(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWebhookCreate: POST /{user}/webhooks through hookgate, the
// webhook stored in a synced Badger registry and the caller's access-info
// answer cached; next to a change proxied to the same upstream (its
// marker in the same Badger, synced) in the same run. cpu-µs/op is the
// whole process's CPU per request (client, hookgate and upstream alike,
// in both rows); access-info/op counts the upstream's access-info calls.
func BenchmarkWebhookCreate(b *testing.B) {
	var accessInfo atomic.Int64
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		if strings.HasSuffix(string(ctx.Path()), "/access-info") {
			accessInfo.Add(1)
			ctx.SetBodyString(`{"id":"bench-access","type":"app","name":"bench","meta":{"apiVersion":"1.9.3","serial":"bench"}}`)
			return
		}
		ctx.SetStatusCode(201)
		ctx.SetBodyString(`{"event":{"id":"e"}}`)
	}}
	up := listen(b, srv.Serve, func() { _ = srv.Shutdown() })
	tb, err := rules.Compile(rules.Pryv(false))
	if err != nil {
		b.Fatal(err)
	}
	db, q := openBadger(b, queue.Options{})
	st, err := webhooks.OpenStore(db)
	if err != nil {
		b.Fatal(err)
	}
	g, err := gateway.New(gateway.Options{Upstreams: []string{up}, Rules: tb, Queue: q,
		Webhooks: webhooks.NewAPI(st, webhooks.Options{MaxPerAccess: -1})})
	if err != nil {
		b.Fatal(err)
	}
	addr := listen(b, g.Serve, func() { _ = g.Shutdown(context.Background()) })
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 1024}
	var n atomic.Int64
	const users = 1000
	run := func(b *testing.B, path func() string, body func() []byte) {
		b.ReportAllocs()
		b.SetParallelism(16) // concurrent clients, so synced writes share their syncs
		calls, cpu := accessInfo.Load(), cpuTime(b)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod("POST")
			req.Header.Set("Authorization", "bench-token")
			req.Header.SetContentType("application/json")
			for pb.Next() {
				req.SetRequestURI("http://" + addr + path())
				req.SetBodyRaw(body())
				if err := c.Do(req, resp); err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode() != 201 {
					b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
				}
			}
		})
		b.StopTimer()
		reportCPU(b, cpu)
		b.ReportMetric(float64(accessInfo.Load()-calls)/float64(b.N), "access-info/op")
	}
	change := []byte(`{"streamIds":["diary"],"type":"note/txt","content":"hello"}`)
	b.Run("proxied-change", func(b *testing.B) {
		run(b, func() string { return "/alice/events" }, func() []byte { return change })
	})
	b.Run("create", func(b *testing.B) {
		// Spread over users, a few webhooks each, as in life: the
		// duplicate check reads the user's webhooks.
		var i atomic.Int64
		run(b, func() string { return "/user" + strconv.FormatInt(i.Add(1)%users, 10) + "/webhooks" }, func() []byte {
			return []byte(`{"url":"http://127.0.0.1:1/hook/` + strconv.FormatInt(n.Add(1), 10) + `"}`)
		})
	})
}
