package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hookgate/hookgate/bench/receiver"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/gateway/cluster"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/internal/natstest"
	"github.com/hookgate/hookgate/state"
)

// The cluster's figures next to the single instance's, in one run: a
// three-node JetStream cluster runs in the benchmark's process, on the
// same cores as everything else, its streams and buckets replicated
// three times.

// jetstream opens the cluster state on nodes under a name of its own.
func jetstream(b *testing.B, nodes *natstest.Cluster, o cluster.MarkersOptions) (*cluster.Conn, *cluster.Markers) {
	c, err := cluster.Connect(context.Background(), cluster.Options{URLs: nodes.URLs(), Name: "bench" + core.NewID()[:8]})
	if err != nil {
		b.Fatal(err)
	}
	m, err := c.OpenMarkers(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(); c.Close() })
	return c, m
}

// BenchmarkClusterMutationPOST: events.create through hookgate, its
// marker in a synced Badger queue (the single instance) and in the
// cluster's marker log, acknowledged by a quorum of three, against the
// upstream directly, in one run.
func BenchmarkClusterMutationPOST(b *testing.B) {
	nodes := natstest.Start(b, 3)
	up := trivialUpstream(b, 256)
	body := []byte(`{"streamIds":["diary"],"type":"note/txt","content":"hello"}`)
	_, q := openBadger(b, queue.Options{})
	_, m := jetstream(b, nodes, cluster.MarkersOptions{AppendOnly: true})
	targets := []struct{ name, addr string }{
		{"direct", up},
		{"hookgate-badger-sync", hookgate(b, up, q)},
		{"hookgate-jetstream-r3", hookgate(b, up, m)},
	}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			b.SetParallelism(16)
			load(b, tg.addr, "POST", "/alice/events", body, 201)
		})
	}
}

// BenchmarkClusterNotify: change → notification at a steady 2,000
// changes per second (open loop; HOOKGATE_BENCH_RATE sets another, and
// HOOKGATE_BENCH_PARTITIONS the cluster's partitions), on a single instance's Badger state
// and on the cluster's, in one run. Each change is a marker appended
// for one of 2,000 users, each with one webhook, so that a user has a
// change a second and nothing coalesces; the latency runs from the
// append's start to the demo receiver's arrival. b.N is the number of
// changes; it reports p50, p99 and the most, in ms, and the whole
// process's CPU per change (the NATS servers' included).
func BenchmarkClusterNotify(b *testing.B) {
	const users = 2000
	rate := 2000
	if v, err := strconv.Atoi(os.Getenv("HOOKGATE_BENCH_RATE")); err == nil && v > 0 {
		rate = v // changes per second
	}
	nodes := natstest.Start(b, 3)
	var (
		mu      sync.Mutex
		sentAt  = map[string]time.Time{} // by path: the change waiting for its notification
		latency []time.Duration
	)
	recv := receiver.New(receiver.Options{CountOnly: true, OnNotification: func(n receiver.Notification) {
		mu.Lock()
		if at, ok := sentAt[n.Path]; ok {
			latency = append(latency, time.Since(at))
			delete(sentAt, n.Path)
		}
		mu.Unlock()
	}})
	raddr, rstop, err := recv.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rstop)
	hooks := func() []*core.Webhook {
		ws := make([]*core.Webhook, users)
		for i := range ws {
			ws[i] = &core.Webhook{ID: core.NewID(), User: fmt.Sprintf("user-%04d", i), AccessID: "a", URL: fmt.Sprintf("http://%s/hook/%d", raddr, i),
				State: core.StateActive, MaxRetries: 5, Runs: []core.Run{}, Created: 1}
		}
		return ws
	}
	sender := delivery.NewClient(delivery.ClientOptions{Guard: delivery.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})

	run := func(b *testing.B, appendMarker func([]byte) error, o delivery.EngineOptions, ws []*core.Webhook) {
		o.Sender, o.Workers = sender, 256
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		e, err := delivery.NewEngine(o)
		if err != nil {
			b.Fatal(err)
		}
		go e.Run()
		defer e.Stop()
		// Every webhook gets webhooksServiceBoot first (the cluster's only
		// instance gains its partitions at the service's start): wait for
		// them.
		base := recv.Count()
		deadline := time.Now().Add(time.Minute)
		for recv.Count() < base+users && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		latency = latency[:0]
		clear(sentAt)
		mu.Unlock()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		b.ResetTimer()
		cpu := cpuTime(b)
		lost := metrics.GetOrCreateCounter(`hookgate_cluster_partitions_lost_total`).Get()
		for i := range b.N {
			<-tick.C
			w := ws[i%users]
			path := fmt.Sprintf("/hook/%d", i%users)
			at := time.Now()
			mu.Lock()
			if _, waiting := sentAt[path]; !waiting {
				sentAt[path] = at
			}
			mu.Unlock()
			go func() {
				if err := appendMarker(core.AppendMarkerNames(nil, at.UnixNano(), w.User, []string{core.MsgEventsChanged})); err != nil {
					b.Error(err)
				}
			}()
		}
		deadline = time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			left := len(sentAt)
			mu.Unlock()
			if left == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.StopTimer()
		reportCPU(b, cpu)
		// A partition lost and gained again meanwhile (its anchor late on
		// a starved machine) stalls its notifications until it is read
		// again: counted, to tell such a run apart.
		b.ReportMetric(float64(metrics.GetOrCreateCounter(`hookgate_cluster_partitions_lost_total`).Get()-lost), "lost")
		mu.Lock()
		defer mu.Unlock()
		if len(sentAt) > 0 {
			b.Fatalf("%d changes not notified within 30 s", len(sentAt))
		}
		slices.Sort(latency)
		pct := func(p float64) float64 {
			return float64(latency[min(len(latency)-1, int(p*float64(len(latency))))]) / 1e6
		}
		b.ReportMetric(pct(0.5), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		b.ReportMetric(float64(latency[len(latency)-1])/1e6, "max-ms")
		b.ReportMetric(0, "ns/op")
	}

	b.Run("badger-sync", func(b *testing.B) {
		db, q := openBadger(b, queue.Options{})
		st, err := webhooks.OpenStore(db)
		if err != nil {
			b.Fatal(err)
		}
		ws := hooks()
		if err := st.Import(ws); err != nil {
			b.Fatal(err)
		}
		run(b, func(d []byte) error { _, err := q.Append(d); return err },
			delivery.EngineOptions{Queue: q, Pending: store.NewPending(db, nil), Webhooks: st}, ws)
	})
	b.Run("jetstream-r3", func(b *testing.B) {
		parts, _ := strconv.Atoi(os.Getenv("HOOKGATE_BENCH_PARTITIONS")) // 0: the default, 16
		c, m := jetstream(b, nodes, cluster.MarkersOptions{Partitions: parts})
		reg, err := c.OpenRegistry(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		defer reg.Close()
		ws := hooks()
		if err := reg.Import(ws); err != nil {
			b.Fatal(err)
		}
		var _ state.Registry = reg
		run(b, func(d []byte) error { _, err := m.Append(d); return err },
			delivery.EngineOptions{Queue: m, Pending: c.Pending(), Webhooks: reg, Owner: m, AckAtFlush: true}, ws)
	})
}

// BenchmarkFailover: how long the partitions of an instance that dies
// without a word (its connection cut, as by kill -9) take to reach the
// one left, at the default -failover of 5 s; one failover per iteration
// (run it with -benchtime 3x).
func BenchmarkFailover(b *testing.B) {
	nodes := natstest.Start(b, 3)
	o := cluster.MarkersOptions{Partitions: 16}
	var took []time.Duration
	for range b.N {
		name := "fo" + core.NewID()[:8]
		open := func() (*cluster.Conn, *cluster.Markers) {
			c, err := cluster.Connect(context.Background(), cluster.Options{URLs: nodes.URLs(), Name: name})
			if err != nil {
				b.Fatal(err)
			}
			m, err := c.OpenMarkers(context.Background(), o)
			if err != nil {
				b.Fatal(err)
			}
			return c, m
		}
		ca, ma := open()
		for len(ma.Owned()) < o.Partitions {
			time.Sleep(10 * time.Millisecond)
		}
		cb, mb := open()
		killed := time.Now()
		ca.Close() // no hand-back: as kill -9
		for len(mb.Owned()) < o.Partitions {
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(killed))
		ma.Close()
		mb.Close()
		cb.Close()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2])/1e6, "median-ms")
	b.ReportMetric(float64(took[len(took)-1])/1e6, "max-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkClusterAppend: the marker append alone (publish and quorum
// acknowledgement), at the same open-loop rate as BenchmarkClusterNotify
// (HOOKGATE_BENCH_RATE, default 2,000/s): the part of the cluster's
// change-to-notification latency that is the marker's. Reports p50, p99
// and the most, in ms.
func BenchmarkClusterAppend(b *testing.B) {
	rate := 2000
	if v, err := strconv.Atoi(os.Getenv("HOOKGATE_BENCH_RATE")); err == nil && v > 0 {
		rate = v
	}
	nodes := natstest.Start(b, 3)
	_, m := jetstream(b, nodes, cluster.MarkersOptions{AppendOnly: true})
	var (
		mu   sync.Mutex
		took []time.Duration
		wg   sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		wg.Go(func() {
			start := time.Now()
			if _, err := m.Append(core.AppendMarkerNames(nil, start.UnixNano(), fmt.Sprintf("user-%04d", i%2000), []string{core.MsgEventsChanged})); err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			took = append(took, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(took)
	if len(took) == 0 {
		b.Fatal("no append succeeded")
	}
	b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100])/1e6, "p99-ms")
	b.ReportMetric(float64(took[len(took)-1])/1e6, "max-ms")
	b.ReportMetric(0, "ns/op")
}
