package delivery

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	json "github.com/goccy/go-json"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/gateway/webhooks"
)

// hit is one POST a test receiver got.
type hit struct {
	at       time.Time
	messages []string
	header   http.Header
	body     []byte
}

// testReceiver answers with a settable status after a settable delay and
// records every POST and the most it ever had in flight.
type testReceiver struct {
	addr             string
	status           atomic.Int32
	delay            atomic.Int64
	retryAfter       atomic.Value // string
	inflight, maxFly atomic.Int32
	mu               sync.Mutex
	hits             []hit
}

func newReceiver(t *testing.T) *testReceiver {
	r := &testReceiver{}
	r.status.Store(200)
	r.retryAfter.Store("")
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		n := r.inflight.Add(1)
		defer r.inflight.Add(-1)
		for {
			m := r.maxFly.Load()
			if n <= m || r.maxFly.CompareAndSwap(m, n) {
				break
			}
		}
		var p struct{ Messages []string }
		_ = json.Unmarshal(ctx.PostBody(), &p)
		h := http.Header{}
		for k, v := range ctx.Request.Header.All() {
			h.Add(string(k), string(v))
		}
		r.mu.Lock()
		r.hits = append(r.hits, hit{at: time.Now(), messages: p.Messages, header: h, body: append([]byte(nil), ctx.PostBody()...)})
		r.mu.Unlock()
		if d := r.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if ra := r.retryAfter.Load().(string); ra != "" {
			ctx.Response.Header.Set("Retry-After", ra)
		}
		ctx.SetStatusCode(int(r.status.Load()))
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { ln.Close(); srv.Shutdown(); <-done })
	r.addr = ln.Addr().String()
	return r
}

func (r *testReceiver) got() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hit(nil), r.hits...)
}

func (r *testReceiver) url() string { return "http://" + r.addr + "/hook?user=alice" }

// rig is an engine on a real Badger database with a real queue.
type rig struct {
	t      *testing.T
	dir    string
	db     *badger.DB
	q      *queue.Badger
	hooks  *webhooks.Store
	engine *Engine
	opts   EngineOptions
	closed bool
}

func newRig(t *testing.T, dir string, o EngineOptions) *rig {
	t.Helper()
	r := &rig{t: t, dir: dir, opts: o}
	var err error
	if r.db, err = store.Open(dir, store.Options{}); err != nil {
		t.Fatal(err)
	}
	if r.q, err = queue.OpenBadger(r.db, queue.Options{}); err != nil {
		t.Fatal(err)
	}
	if r.hooks, err = webhooks.OpenStore(r.db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

func (r *rig) start() {
	r.t.Helper()
	o := r.opts
	o.Queue, o.DB, o.Webhooks = r.q, r.db, r.hooks
	if o.Sender == nil {
		o.Sender = NewClient(ClientOptions{Timeout: time.Second, Guard: Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	}
	o.Meta = core.Meta{APIVersion: "1.9.3", Serial: "test"}
	o.FlushInterval = 20 * time.Millisecond
	var err error
	if r.engine, err = NewEngine(o); err != nil {
		r.t.Fatal(err)
	}
	go r.engine.Run()
}

func (r *rig) close() {
	if r.closed {
		return
	}
	r.closed = true
	if r.engine != nil {
		r.engine.Stop()
	}
	r.q.Close()
	r.db.Close()
}

var hookSeq atomic.Int64

func (r *rig) hook(user, access, url string, interval time.Duration, maxRetries int) *core.Webhook {
	r.t.Helper()
	w := &core.Webhook{ID: core.NewID(), User: user, AccessID: access, URL: url, State: core.StateActive,
		MinIntervalMs: interval.Milliseconds(), MaxRetries: maxRetries, Runs: []core.Run{},
		Created: float64(hookSeq.Add(1))}
	if err := r.hooks.Create(w, 0); err != nil {
		r.t.Fatal(err)
	}
	return w
}

func (r *rig) change(user string, msgs ...string) {
	r.t.Helper()
	if _, err := r.q.Append(core.AppendMarkerNames(nil, time.Now().UnixNano(), user, msgs)); err != nil {
		r.t.Fatal(err)
	}
}

// deadAddr returns a loopback address where nothing listens (for now).
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// listenAgain serves h on addr, a receiver coming back up, until the test
// ends; it skips the test if the port has been taken meanwhile.
func listenAgain(t *testing.T, addr string, h fasthttp.RequestHandler) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv := &fasthttp.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Shutdown(); ln.Close(); <-done })
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBootAndCoalescing(t *testing.T) {
	r := newRig(t, t.TempDir(), EngineOptions{})
	var recvs []*testReceiver
	for range 3 {
		rc := newReceiver(t)
		recvs = append(recvs, rc)
		r.hook("alice", "app1", rc.url(), time.Second, 5)
	}
	off := newReceiver(t)
	w := r.hook("alice", "app1", off.url(), time.Second, 5)
	r.hooks.Update("alice", w.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil })
	other := newReceiver(t)
	r.hook("carol", "app2", other.url(), time.Second, 5)
	r.start()

	// Boot: every active webhook gets webhooksServiceBoot, at once.
	for _, rc := range recvs {
		waitFor(t, "boot message", 2*time.Second, func() bool { return len(rc.got()) == 1 })
		if m := rc.got()[0].messages; len(m) != 1 || m[0] != core.MsgServiceBoot {
			t.Fatalf("boot message %v", m)
		}
	}
	// A burst of 1,000 changes inside the window after the boot POST.
	start := time.Now()
	for i := range 1000 {
		msg := core.MsgEventsChanged
		if i%3 == 1 {
			msg = core.MsgStreamsChanged
		}
		r.change("alice", msg)
	}
	burstEnd := time.Now()
	for _, rc := range recvs {
		waitFor(t, "trailing-edge POST", 3*time.Second, func() bool { return len(rc.got()) == 2 })
	}
	time.Sleep(300 * time.Millisecond) // nothing more may come in this window
	for _, rc := range recvs {
		hits := rc.got()
		if len(hits) != 2 {
			t.Fatalf("%d POSTs for a burst of 1000 in one window; want exactly 1 after the boot", len(hits)-1)
		}
		if got := hits[1].messages; len(got) != 2 || got[0] != core.MsgEventsChanged || got[1] != core.MsgStreamsChanged {
			t.Fatalf("coalesced messages %v; want the union, in first-arrival order", got)
		}
		if gap := hits[1].at.Sub(hits[0].at); gap < 900*time.Millisecond {
			t.Fatalf("trailing edge %s after the boot POST; want about minIntervalMs (1s)", gap)
		}
	}
	t.Logf("burst of 1000 markers appended in %s; one POST per webhook at the trailing edge", burstEnd.Sub(start))
	// A later window gets the rest.
	time.Sleep(1100 * time.Millisecond)
	r.change("alice", core.MsgAccessesChanged)
	for _, rc := range recvs {
		waitFor(t, "next window", 2*time.Second, func() bool { return len(rc.got()) == 3 })
		if m := rc.got()[2].messages; len(m) != 1 || m[0] != core.MsgAccessesChanged {
			t.Fatalf("later window carried %v", m)
		}
	}
	if n := len(off.got()); n != 0 {
		t.Fatalf("an inactive webhook got %d POSTs (boot included)", n)
	}
	if n := len(other.got()); n != 1 {
		t.Fatalf("carol's webhook got %d POSTs; want only its boot message", n)
	}
	// Run records are kept, in batches.
	waitFor(t, "runs stored", 2*time.Second, func() bool {
		for _, w := range r.hooks.List("alice", "app1") {
			if w.State == core.StateActive && w.RunCount != 3 {
				return false
			}
		}
		return true
	})
	for _, w := range r.hooks.List("alice", "app1") {
		if w.State == core.StateActive && (w.LastRun.Status != 200 || len(w.Runs) != 3 || w.FailCount != 0) {
			t.Fatalf("runs %+v", w)
		}
	}
}

func TestOneInFlightAndIsolation(t *testing.T) {
	r := newRig(t, t.TempDir(), EngineOptions{Sender: NewClient(ClientOptions{Timeout: 500 * time.Millisecond,
		Guard: Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})})
	slow := newReceiver(t)
	slow.delay.Store(int64(300 * time.Millisecond))
	r.hook("alice", "a", slow.url(), 50*time.Millisecond, 5)
	hung := newReceiver(t)
	hung.delay.Store(int64(1500 * time.Millisecond)) // past the client's timeout
	for range 5 {
		r.hook("alice", "a", hung.url()+"&h="+core.NewID(), 50*time.Millisecond, 5)
	}
	dead := "http://" + deadAddr(t) + "/"
	for range 5 {
		r.hook("alice", "a", dead+core.NewID(), 50*time.Millisecond, 5)
	}
	var healthy []*testReceiver
	for range 20 {
		rc := newReceiver(t)
		healthy = append(healthy, rc)
		r.hook("alice", "a", rc.url(), 50*time.Millisecond, 5)
	}
	r.start()
	for _, rc := range healthy {
		waitFor(t, "boot", 2*time.Second, func() bool { return len(rc.got()) == 1 })
	}
	// Changes keep coming while the slow and hung receivers hold their
	// deliveries.
	sent := time.Now()
	for range 20 {
		r.change("alice", core.MsgEventsChanged)
		time.Sleep(20 * time.Millisecond)
	}
	var worst time.Duration
	for _, rc := range healthy {
		waitFor(t, "healthy delivery", 2*time.Second, func() bool { return len(rc.got()) >= 2 })
		if d := rc.got()[1].at.Sub(sent); d > worst {
			worst = d
		}
	}
	if worst > 500*time.Millisecond {
		t.Fatalf("a healthy webhook waited %s behind slow and dead ones", worst)
	}
	if m := slow.maxFly.Load(); m != 1 {
		t.Fatalf("the slow receiver had %d deliveries in flight at once; want 1", m)
	}
	t.Logf("healthy webhooks served within %s of the first change while 5 hung and 5 dead receivers failed", worst)
}

func TestRetriesDeactivationReactivation(t *testing.T) {
	r := newRig(t, t.TempDir(), EngineOptions{})
	rc := newReceiver(t)
	rc.status.Store(500)
	w := r.hook("alice", "a", rc.url(), 200*time.Millisecond, 3)
	r.start()
	waitFor(t, "4 attempts", 5*time.Second, func() bool { return len(rc.got()) == 4 })
	time.Sleep(1200 * time.Millisecond) // a 5th would come 800ms after the 4th
	hits := rc.got()
	if len(hits) != 4 {
		t.Fatalf("%d attempts; want 4 (maxRetries 3 + 1)", len(hits))
	}
	for i := 1; i < 4; i++ {
		gap := hits[i].at.Sub(hits[i-1].at)
		want := time.Duration(i) * 200 * time.Millisecond
		if gap < want || gap > want+150*time.Millisecond {
			t.Errorf("gap %d = %s; want %s plus at most 20ms jitter and some latency", i, gap, want)
		}
	}
	waitFor(t, "inactive state stored", time.Second, func() bool {
		got, _ := r.hooks.Get("alice", w.ID)
		return got.State == core.StateInactive
	})
	got, _ := r.hooks.Get("alice", w.ID)
	if got.RunCount != 4 || got.FailCount != 4 || got.CurrentRetries != 4 || got.LastRun.Status != 500 || got.Runs[0] != got.LastRun {
		t.Fatalf("after giving up: %+v", got)
	}
	// While inactive, changes are not delivered.
	r.change("alice", core.MsgStreamsChanged)
	time.Sleep(300 * time.Millisecond)
	if n := len(rc.got()); n != 4 {
		t.Fatalf("an inactive webhook got a POST (%d)", n)
	}
	// Reactivation through the API's store path: what was pending goes out.
	rc.status.Store(200)
	if _, err := r.hooks.Update("alice", w.ID, func(w *core.Webhook) error {
		w.State, w.CurrentRetries = core.StateActive, 0
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after reactivation", 2*time.Second, func() bool { return len(rc.got()) == 5 })
	if m := rc.got()[4].messages; len(m) == 0 || m[0] != core.MsgServiceBoot {
		t.Fatalf("after reactivation the pending messages %v should go out", m)
	}
	waitFor(t, "success stored", time.Second, func() bool {
		got, _ := r.hooks.Get("alice", w.ID)
		return got.CurrentRetries == 0 && got.LastRun.Status == 200
	})
}

func TestGoneAndRetryAfter(t *testing.T) {
	r := newRig(t, t.TempDir(), EngineOptions{})
	gone := newReceiver(t)
	gone.status.Store(410)
	wg := r.hook("alice", "a", gone.url(), 100*time.Millisecond, 5)
	busy := newReceiver(t)
	busy.status.Store(429)
	busy.retryAfter.Store("1")
	r.hook("alice", "a", busy.url(), 100*time.Millisecond, 5)
	r.start()
	waitFor(t, "410 answered", 2*time.Second, func() bool { return len(gone.got()) == 1 })
	waitFor(t, "410 deactivates", 2*time.Second, func() bool {
		got, _ := r.hooks.Get("alice", wg.ID)
		return got.State == core.StateInactive
	})
	waitFor(t, "429 retried", 3*time.Second, func() bool { return len(busy.got()) == 2 })
	if gap := busy.got()[1].at.Sub(busy.got()[0].at); gap < time.Second {
		t.Fatalf("retry %s after a 429 with Retry-After: 1; want at least 1s", gap)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(gone.got()); n != 1 {
		t.Fatalf("410 receiver got %d POSTs; want 1", n)
	}
}

func TestSignedDeliveries(t *testing.T) {
	r := newRig(t, t.TempDir(), EngineOptions{})
	rc := newReceiver(t)
	w := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: rc.url(), State: core.StateActive,
		MinIntervalMs: 100, MaxRetries: 5, Runs: []core.Run{}, Signed: true, Secret: core.NewSigningSecret()}
	if err := r.hooks.Create(w, 0); err != nil {
		t.Fatal(err)
	}
	r.start()
	waitFor(t, "boot", 3*time.Second, func() bool { return len(rc.got()) == 1 })
	r.change("alice", core.MsgEventsChanged)
	waitFor(t, "2 deliveries", 3*time.Second, func() bool { return len(rc.got()) == 2 })
	v, err := standardwebhooks.NewWebhook(w.Secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range rc.got() {
		if err := v.Verify(h.body, h.header); err != nil {
			t.Fatalf("official verifier refused a delivery: %v (%v)", err, h.header)
		}
	}
	if a, b := rc.got()[0].header.Get("webhook-id"), rc.got()[1].header.Get("webhook-id"); a == b || !strings.HasPrefix(a, "msg_") {
		t.Fatalf("webhook-id %q, %q", a, b)
	}
}

func TestAccessDeletionRetiresAfterDelivery(t *testing.T) {
	r := newRig(t, t.TempDir(), EngineOptions{})
	rc := newReceiver(t)
	mine := r.hook("alice", "doomed", rc.url(), 100*time.Millisecond, 5)
	keep := newReceiver(t)
	r.hook("alice", "survivor", keep.url(), 100*time.Millisecond, 5)
	r.start()
	waitFor(t, "boot", 2*time.Second, func() bool { return len(rc.got()) == 1 && len(keep.got()) == 1 })
	rec := core.AppendDeletedAccesses(core.AppendMarkerNames(nil, time.Now().UnixNano(), "alice", []string{core.MsgAccessesChanged}), []string{"doomed"})
	if _, err := r.q.Append(rec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "accessesChanged delivered", 2*time.Second, func() bool { return len(rc.got()) == 2 })
	if rc.got()[1].at.IsZero() {
		t.Fatal("no time")
	}
	if m := rc.got()[1].messages; len(m) != 1 || m[0] != core.MsgAccessesChanged {
		t.Fatalf("the deleted access's webhook got %v", m)
	}
	waitFor(t, "webhook retired", time.Second, func() bool {
		got, _ := r.hooks.Get("alice", mine.ID)
		return got.State == core.StateInactive
	})
	r.change("alice", core.MsgEventsChanged)
	waitFor(t, "survivor keeps going", 2*time.Second, func() bool { return len(keep.got()) == 3 })
	if n := len(rc.got()); n != 2 {
		t.Fatalf("the retired webhook got %d POSTs; want 2", n)
	}
	if _, ok := r.hooks.Get("alice", mine.ID); !ok {
		t.Fatal("the retired webhook was deleted; it must stay, inactive")
	}
	// Reactivated on purpose, it stays active after its next delivery.
	if _, err := r.hooks.Update("alice", mine.ID, func(w *core.Webhook) error { w.State = core.StateActive; return nil }); err != nil {
		t.Fatal(err)
	}
	r.change("alice", core.MsgEventsChanged)
	waitFor(t, "delivery after reactivation", 2*time.Second, func() bool { return len(rc.got()) >= 3 })
	time.Sleep(100 * time.Millisecond)
	if got, _ := r.hooks.Get("alice", mine.ID); got.State != core.StateActive {
		t.Fatalf("reactivated webhook turned %s again", got.State)
	}
}

// TestRetireSurvivesRestart: the access-deletion marker is acknowledged,
// the engine stops before delivering it (receiver down); after a restart
// the notification goes out and then the webhook retires.
func TestRetireSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	addr := deadAddr(t)
	r := newRig(t, dir, EngineOptions{})
	w := r.hook("alice", "doomed", "http://"+addr+"/hook", 100*time.Millisecond, 50)
	r.start()
	rec := core.AppendDeletedAccesses(core.AppendMarkerNames(nil, time.Now().UnixNano(), "alice", []string{core.MsgAccessesChanged}), []string{"doomed"})
	if _, err := r.q.Append(rec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "marker acknowledged", 2*time.Second, func() bool { return r.q.Len() == 0 })
	r.close()

	var bodies atomic.Int32
	listenAgain(t, addr, func(ctx *fasthttp.RequestCtx) { bodies.Add(1) })
	r2 := newRig(t, dir, EngineOptions{})
	r2.start()
	waitFor(t, "retired after the restart's delivery", 3*time.Second, func() bool {
		got, _ := r2.hooks.Get("alice", w.ID)
		return got.State == core.StateInactive && bodies.Load() == 1
	})
}

// TestPendingSurvivesRestart: a marker acknowledged by the engine is in a
// durable pending set; an engine stopped before delivering it (receiver
// down) delivers it after a restart on the same database.
func TestPendingSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	addr := deadAddr(t)
	r := newRig(t, dir, EngineOptions{})
	w := r.hook("alice", "a", "http://"+addr+"/hook", 100*time.Millisecond, 50)
	r.start()
	r.change("alice", core.MsgEventsChanged)
	waitFor(t, "marker acknowledged", 2*time.Second, func() bool { return r.q.Len() == 0 })
	r.close()

	// The receiver comes up on the same address; the engine restarts.
	var got atomic.Value
	listenAgain(t, addr, func(ctx *fasthttp.RequestCtx) { got.Store(string(ctx.PostBody())) })
	r2 := newRig(t, dir, EngineOptions{})
	r2.start()
	waitFor(t, "delivery after restart", 3*time.Second, func() bool { s, _ := got.Load().(string); return s != "" })
	body := got.Load().(string)
	if !strings.Contains(body, core.MsgEventsChanged) || !strings.Contains(body, core.MsgServiceBoot) {
		t.Fatalf("after restart the receiver got %s; want the pending eventsChanged with the boot message", body)
	}
	_ = w
}

// TestMoreDueThanWorkers: far more webhooks due at once than workers must
// all be delivered, the pool never running more than its size (an engine
// that blocked on a full pool while workers waited on it would hang here).
func TestMoreDueThanWorkers(t *testing.T) {
	r := newRig(t, t.TempDir(), EngineOptions{Workers: 4})
	rc := newReceiver(t)
	rc.delay.Store(int64(20 * time.Millisecond))
	const n = 200
	for i := range n {
		r.hook("alice", "a", rc.url()+"&n="+strconv.Itoa(i), time.Second, 5)
	}
	r.start() // 200 boot messages due at once
	waitFor(t, "every boot message", 20*time.Second, func() bool { return len(rc.got()) == n })
	if m := rc.maxFly.Load(); m > 4 {
		t.Fatalf("%d deliveries at once with 4 workers", m)
	}
}
