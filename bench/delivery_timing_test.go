package bench

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/bench/receiver"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/gateway/webhooks"
)

// reportCPU reports the process's CPU time per op since cpu.
func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkDelivery: change → notification through the engine (a marker
// appended to a synced Badger queue, dispatched, made durable as pending,
// POSTed by the pool, answered by the demo receiver), closed loop per
// webhook, one webhook per client so nothing coalesces; next to the raw
// fasthttp client → receiver rate in the same run. ns/op of "engine" is
// the change → notification latency at that concurrency; b.N/s the
// deliveries per second; cpu-µs/op the whole process's CPU per
// notification, the receiver's included. engine-ack-at-flush runs the
// engine with EngineOptions.AckAtFlush (the cluster's mode).
func BenchmarkDelivery(b *testing.B) {
	const hooks = 64
	var (
		mu      sync.Mutex
		signals = map[string]chan struct{}{}
	)
	recv := receiver.New(receiver.Options{CountOnly: true, OnNotification: func(n receiver.Notification) {
		mu.Lock()
		c := signals[n.Path]
		mu.Unlock()
		if c != nil {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}})
	raddr, rstop, err := recv.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rstop)

	b.Run("raw-client", func(b *testing.B) {
		c := &fasthttp.HostClient{Addr: raddr, MaxConns: 1024}
		body := []byte(`{"messages":["eventsChanged"],"meta":{"apiVersion":"1.9.3","serverTime":1795436682.278,"serial":"hookgate"}}`)
		b.ReportAllocs()
		b.SetParallelism(hooks / 2)
		cpu := cpuTime(b)
		defer func() { reportCPU(b, cpu) }()
		b.RunParallel(func(pb *testing.PB) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://" + raddr + "/raw")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			for pb.Next() {
				req.SetBodyRaw(body)
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Fatal(err, resp.StatusCode())
				}
			}
		})
	})

	for _, atFlush := range []bool{false, true} {
		name := "engine"
		if atFlush {
			name = "engine-ack-at-flush"
		}
		b.Run(name, func(b *testing.B) {
			db, q := openBadger(b, queue.Options{})
			st, err := webhooks.OpenStore(db)
			if err != nil {
				b.Fatal(err)
			}
			for i := range hooks {
				path := fmt.Sprintf("/hook/%d", i)
				mu.Lock()
				signals[path] = make(chan struct{}, 1)
				mu.Unlock()
				w := &core.Webhook{ID: core.NewID(), User: fmt.Sprintf("user-%04d", i), AccessID: "a", URL: "http://" + raddr + path,
					State: core.StateInactive, MinIntervalMs: 0, MaxRetries: 5, Runs: []core.Run{}}
				if err := st.Create(w, 0); err != nil {
					b.Fatal(err)
				}
				// Active, but with no boot message in flight when timing starts.
				st.RecordRun(w.ID, core.Run{Status: 200}, func(w *core.Webhook) { w.State = core.StateActive })
			}
			e, err := delivery.NewEngine(delivery.EngineOptions{Queue: q, Pending: store.NewPending(db, nil), Webhooks: st, Workers: 256, AckAtFlush: atFlush,
				Sender: delivery.NewClient(delivery.ClientOptions{Guard: delivery.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})})
			if err != nil {
				b.Fatal(err)
			}
			go e.Run()
			defer e.Stop()
			// Drain the boot messages.
			for i := range hooks {
				mu.Lock()
				c := signals[fmt.Sprintf("/hook/%d", i)]
				mu.Unlock()
				select {
				case <-c:
				case <-time.After(5 * time.Second):
					b.Fatal("no boot message")
				}
			}
			var next atomic.Int32
			b.ReportAllocs()
			b.SetParallelism(hooks / 2)
			b.ResetTimer()
			cpu := cpuTime(b)
			defer func() { reportCPU(b, cpu) }()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1) - 1)
				user := fmt.Sprintf("user-%04d", i)
				mu.Lock()
				c := signals[fmt.Sprintf("/hook/%d", i)]
				mu.Unlock()
				for pb.Next() {
					if _, err := q.Append(core.AppendMarkerNames(nil, time.Now().UnixNano(), user, []string{core.MsgEventsChanged})); err != nil {
						b.Fatal(err)
					}
					select {
					case <-c:
					case <-time.After(10 * time.Second):
						b.Fatal("notification never arrived")
					}
				}
			})
		})
	}
	_ = strings.Contains
}
