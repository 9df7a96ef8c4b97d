package delivery

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dgraph-io/badger/v4"
	json "github.com/goccy/go-json"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/state"
)

// The engine's tests run in a synctest bubble: its windows, retries,
// jitter and flushes follow the bubble's fake clock, which moves only
// when every goroutine of the bubble is blocked. Deliveries still go
// over real loopback sockets to real fasthttp receivers, started outside
// the bubble (a listener inside would keep it from ever being idle);
// while a POST is on the wire the fake clock stands still. So a POST
// takes no fake time, and every gap asserted below is exact, whatever
// the speed of the disk or the CPU.

// hit is one POST a test receiver got.
type hit struct {
	messages []string
	header   http.Header
	body     []byte
}

// testReceiver answers with a settable status and records every POST
// and the most it ever had in flight. A receiver with hold set keeps
// each request until hold is closed.
type testReceiver struct {
	addr             string
	status           atomic.Int32
	retryAfter       atomic.Value // string
	inflight, maxFly atomic.Int32
	hold             chan struct{} // nil: answer at once
	arrived          chan struct{} // gets a value per POST, after its hit is recorded; never blocks
	mu               sync.Mutex
	hits             []hit
}

// newReceiver starts a receiver. Call it outside the synctest bubble.
func newReceiver(t *testing.T) *testReceiver { return startReceiver(t, nil) }

// newHoldingReceiver starts a receiver that keeps every request until
// the returned release is called (also called at cleanup, before the
// server shuts down).
func newHoldingReceiver(t *testing.T) (*testReceiver, func()) {
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	r := startReceiver(t, hold)
	t.Cleanup(release) // runs before the server's cleanup, registered earlier
	return r, release
}

func startReceiver(t *testing.T, hold chan struct{}) *testReceiver {
	t.Helper()
	r := &testReceiver{hold: hold, arrived: make(chan struct{}, 1024)}
	r.status.Store(200)
	r.retryAfter.Store("")
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		n := r.inflight.Add(1)
		defer r.inflight.Add(-1)
		for m := r.maxFly.Load(); n > m && !r.maxFly.CompareAndSwap(m, n); m = r.maxFly.Load() {
		}
		var p struct{ Messages []string }
		_ = json.Unmarshal(ctx.PostBody(), &p)
		h := http.Header{}
		for k, v := range ctx.Request.Header.All() {
			h.Add(string(k), string(v))
		}
		r.mu.Lock()
		r.hits = append(r.hits, hit{messages: p.Messages, header: h, body: append([]byte(nil), ctx.PostBody()...)})
		r.mu.Unlock()
		select {
		case r.arrived <- struct{}{}:
		default:
		}
		if r.hold != nil {
			<-r.hold
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

func (r *testReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hits)
}

func (r *testReceiver) url() string { return "http://" + r.addr + "/hook?user=alice" }

// sent is one Send as the engine made it, at the engine's clock.
type sent struct {
	url    string
	at     time.Time
	status int
}

// timedSender records when the engine calls the real client: inside a
// bubble, at the fake clock.
type timedSender struct {
	next Sender
	mu   sync.Mutex
	log  []sent
}

func (s *timedSender) Send(url string, body []byte, headers [][2]string) (Answer, error) {
	at := time.Now()
	a, err := s.next.Send(url, body, headers)
	s.mu.Lock()
	s.log = append(s.log, sent{url: url, at: at, status: a.Status})
	s.mu.Unlock()
	return a, err
}

// times returns when each POST to url started, in order.
func (s *timedSender) times(url string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for _, e := range s.log {
		if e.url == url {
			out = append(out, e.at)
		}
	}
	return out
}

// rig is an engine on a real Badger database with a real queue and the
// real delivery client. Inside a bubble, build it inside the bubble too.
type rig struct {
	t      *testing.T
	dir    string
	db     *badger.DB
	q      *queue.Badger
	hooks  *webhooks.Store
	engine *Engine
	client *Client
	sender *timedSender
	opts   EngineOptions
	closed bool
	// realTime: built outside a bubble, on the wall clock.
	realTime bool
	// queue, if set, is the log the engine reads, around the rig's.
	queue func(*queue.Badger) state.Log
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
	r.client = NewClient(ClientOptions{Timeout: 5 * time.Second, Guard: Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	r.sender = &timedSender{next: r.client}
	t.Cleanup(r.close)
	return r
}

func (r *rig) start() {
	r.t.Helper()
	o := r.opts
	o.Queue, o.Webhooks = r.q, r.hooks
	if r.queue != nil {
		o.Queue = r.queue(r.q)
	}
	if o.Pending == nil {
		o.Pending = store.NewPending(r.db, nil)
	}
	if o.Sender == nil {
		o.Sender = r.sender
	}
	o.Meta = core.Meta{APIVersion: "1.9.3", Serial: "test"}
	o.FlushInterval = 20 * time.Millisecond
	var err error
	if r.engine, err = NewEngine(o); err != nil {
		r.t.Fatal(err)
	}
	go r.engine.Run()
}

// close stops everything the rig started, then lets the fake clock run
// past the client's idle-connection cleaners, so that no goroutine of
// the bubble outlives the test.
//
// Fake time: except in a rig marked realTime.
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
	r.client.CloseIdleConnections()
	if !r.realTime {
		time.Sleep(time.Minute)
	}
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

// verifyAll checks every POST with the official Standard Webhooks
// verifier, at the clock of the bubble that signed them.
func verifyAll(t *testing.T, secret string, posts []hit) {
	t.Helper()
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range posts {
		if err := v.Verify(h.body, h.header); err != nil {
			t.Fatalf("POST %d: the official verifier refused it: %v (%v)", i, err, h.header)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// signedHook creates an active signed webhook of alice to url, with an
// interval of 100ms.
func (r *rig) signedHook(t *testing.T, url string) *core.Webhook {
	t.Helper()
	w := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: url, State: core.StateActive,
		MinIntervalMs: 100, MaxRetries: 5, Runs: []core.Run{}, Signed: true, Secret: core.NewSigningSecret()}
	if err := r.hooks.Create(w, 0); err != nil {
		t.Fatal(err)
	}
	return w
}

func (r *rig) change(user string, msgs ...string) {
	r.t.Helper()
	if _, err := r.q.Append(core.AppendMarkerNames(nil, time.Now().UnixNano(), user, msgs)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) get(user, id string) *core.Webhook {
	r.t.Helper()
	w, ok := r.hooks.Get(user, id)
	if !ok {
		r.t.Fatalf("webhook %s is gone", id)
	}
	return w
}

// wantCount fails unless rc got exactly n POSTs.
func wantCount(t *testing.T, what string, rc *testReceiver, n int) {
	t.Helper()
	if got := rc.count(); got != n {
		t.Fatalf("%s: %d POSTs; want %d", what, got, n)
	}
}

func TestBootAndCoalescing(t *testing.T) {
	var recvs []*testReceiver
	for range 3 {
		recvs = append(recvs, newReceiver(t))
	}
	off, other := newReceiver(t), newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{})
		for _, rc := range recvs {
			r.hook("alice", "app1", rc.url(), time.Second, 5)
		}
		w := r.hook("alice", "app1", off.url(), time.Second, 5)
		r.hooks.Update("alice", w.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil })
		r.hook("carol", "app2", other.url(), time.Second, 5)
		r.start()
		synctest.Wait()

		// Boot: every active webhook gets webhooksServiceBoot, at once.
		boot := time.Now()
		for _, rc := range recvs {
			wantCount(t, "boot", rc, 1)
			if m := rc.got()[0].messages; len(m) != 1 || m[0] != core.MsgServiceBoot {
				t.Fatalf("boot message %v", m)
			}
			if at := r.sender.times(rc.url()); at[0] != boot {
				t.Fatalf("boot POST at %s; want at the start, %s", at[0], boot)
			}
		}
		// A burst of 1,000 changes right after the boot POST: however long
		// the fsyncs take, they fall inside the window.
		for i := range 1000 {
			msg := core.MsgEventsChanged
			if i%3 == 1 {
				msg = core.MsgStreamsChanged
			}
			r.change("alice", msg)
		}
		synctest.Wait()
		for _, rc := range recvs {
			wantCount(t, "inside the window", rc, 1)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		for _, rc := range recvs {
			wantCount(t, "after the window", rc, 2)
			if got := rc.got()[1].messages; len(got) != 2 || got[0] != core.MsgEventsChanged || got[1] != core.MsgStreamsChanged {
				t.Fatalf("coalesced messages %v; want the union, in first-arrival order", got)
			}
			if at := r.sender.times(rc.url()); at[1].Sub(at[0]) != time.Second {
				t.Fatalf("trailing edge %s after the boot POST; want minIntervalMs, 1s", at[1].Sub(at[0]))
			}
		}
		// Nothing more comes while nothing changes.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		for _, rc := range recvs {
			wantCount(t, "idle", rc, 2)
		}
		// A webhook idle for longer than its window is notified at once
		// (leading edge).
		changed := time.Now()
		r.change("alice", core.MsgAccessesChanged)
		synctest.Wait()
		for _, rc := range recvs {
			wantCount(t, "next window", rc, 3)
			if m := rc.got()[2].messages; len(m) != 1 || m[0] != core.MsgAccessesChanged {
				t.Fatalf("later window carried %v", m)
			}
			if at := r.sender.times(rc.url())[2]; at != changed {
				t.Fatalf("leading edge %s after the change; want at once", at.Sub(changed))
			}
		}
		wantCount(t, "inactive webhook (boot included)", off, 0)
		wantCount(t, "carol's webhook (only its boot)", other, 1)
		// Run records are kept, in batches of the flush interval.
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		for _, w := range r.hooks.List("alice", "app1") {
			if w.State == core.StateActive && (w.RunCount != 3 || w.LastRun.Status != 200 || len(w.Runs) != 3 || w.FailCount != 0) {
				t.Fatalf("runs %+v", w)
			}
		}
	})
}

// TestOneInFlightAndIsolation: webhooks whose receivers hang, refuse
// connections or answer slowly never hold up the others, and a webhook
// never has two deliveries in flight.
//
// Real time: the hung receivers hold real sockets open, so the engine
// runs on the wall clock; every wait is for an outcome, bounded by 60 s.
func TestOneInFlightAndIsolation(t *testing.T) {
	slow, releaseSlow := newHoldingReceiver(t)
	hung, releaseHung := newHoldingReceiver(t)
	var healthy []*testReceiver
	for range 20 {
		healthy = append(healthy, newReceiver(t))
	}
	r := newRig(t, t.TempDir(), EngineOptions{})
	r.realTime = true
	t.Cleanup(releaseHung) // before the rig's cleanup waits for deliveries in flight
	r.client = NewClient(ClientOptions{Timeout: time.Minute, Guard: Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	r.sender.next = r.client
	r.hook("alice", "a", slow.url(), 50*time.Millisecond, 5)
	for range 5 {
		r.hook("alice", "a", hung.url()+"&h="+core.NewID(), 50*time.Millisecond, 5)
	}
	dead := "http://" + deadAddr(t) + "/"
	for range 5 {
		r.hook("alice", "a", dead+core.NewID(), 50*time.Millisecond, 5)
	}
	for _, rc := range healthy {
		r.hook("alice", "a", rc.url(), 50*time.Millisecond, 5)
	}
	r.start()
	for _, rc := range healthy {
		rc.waitCount(t, "boot", 1)
	}
	slow.waitCount(t, "the slow receiver's boot POST", 1)
	// Changes come while the slow and hung receivers hold their POSTs.
	for range 20 {
		r.change("alice", core.MsgEventsChanged)
	}
	for _, rc := range healthy {
		rc.waitCount(t, "healthy delivery", 2)
	}
	if n, fly := hung.count(), hung.inflight.Load(); n != 5 || fly != 5 {
		t.Fatalf("hung receiver: %d POSTs, %d in flight; want its 5 boot POSTs, all still held", n, fly)
	}
	wantCount(t, "slow receiver while its first POST is held", slow, 1)
	releaseSlow()
	slow.waitCount(t, "the slow receiver's coalesced change", 2)
	if m := slow.got()[1].messages; len(m) != 1 || m[0] != core.MsgEventsChanged {
		t.Fatalf("slow receiver's second POST carried %v; want the 20 changes coalesced", m)
	}
	if m := slow.maxFly.Load(); m != 1 {
		t.Fatalf("the slow receiver had %d deliveries in flight at once; want 1", m)
	}
}

func TestRetriesDeactivationReactivation(t *testing.T) {
	rc := newReceiver(t)
	rc.status.Store(500)
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		alerts := make(chan Deactivation, 1)
		r := newRig(t, t.TempDir(), EngineOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			OnDeactivate: func(d Deactivation) { alerts <- d }})
		w := r.hook("alice", "a", rc.url(), 200*time.Millisecond, 3)
		r.start()
		time.Sleep(time.Minute)
		synctest.Wait()
		wantCount(t, "after giving up", rc, 4) // maxRetries 3, plus the first attempt
		// The operator is told: a failure (one line in 10 s at most), and
		// the deactivation with its reason.
		if l := logs.String(); strings.Count(l, "a delivery failed") < 1 || strings.Count(l, "webhook deactivated") != 1 ||
			!strings.Contains(l, "maxRetries failed attempts") || !strings.Contains(l, w.ID) {
			t.Fatalf("logs:\n%s", l)
		}
		at := r.sender.times(rc.url())
		for i := 1; i < 4; i++ {
			// Pryv's linear backoff, plus at most a tenth of the interval
			// of jitter.
			gap, want := at[i].Sub(at[i-1]), time.Duration(i)*200*time.Millisecond
			if gap < want || gap > want+20*time.Millisecond {
				t.Errorf("gap %d = %s; want %s plus at most 20ms of jitter", i, gap, want)
			}
		}
		got := r.get("alice", w.ID)
		if got.State != core.StateInactive || got.RunCount != 4 || got.FailCount != 4 || got.CurrentRetries != 4 ||
			got.LastRun.Status != 500 || got.Runs[0] != got.LastRun || got.LastRun.Error != core.RunHTTP {
			t.Fatalf("after giving up: %+v", got)
		}
		if l := logs.String(); !strings.Contains(l, "class=http") {
			t.Fatalf("the failure's log line has no class:\n%s", l)
		}
		select {
		case d := <-alerts:
			if d.ID != w.ID || d.URL != rc.url() || d.Failures != 4 || d.LastRun.Status != 500 || !strings.Contains(d.Reason, "maxRetries") {
				t.Fatalf("the deactivation alert: %+v", d)
			}
		default:
			t.Fatal("no deactivation alert")
		}
		// While inactive, changes are neither delivered nor kept.
		r.change("alice", core.MsgStreamsChanged)
		time.Sleep(time.Minute)
		synctest.Wait()
		wantCount(t, "inactive", rc, 4)
		// Reactivation through the API's store path: what was pending when
		// it gave up goes out at once.
		rc.status.Store(200)
		if _, err := r.hooks.Update("alice", w.ID, func(w *core.Webhook) error {
			w.State, w.CurrentRetries = core.StateActive, 0
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		wantCount(t, "after reactivation", rc, 5)
		if m := rc.got()[4].messages; len(m) != 1 || m[0] != core.MsgServiceBoot {
			t.Fatalf("after reactivation %v went out; want what was pending, the boot message", m)
		}
		time.Sleep(100 * time.Millisecond) // a flush
		synctest.Wait()
		if got := r.get("alice", w.ID); got.CurrentRetries != 0 || got.LastRun.Status != 200 || got.RunCount != 5 {
			t.Fatalf("after the successful delivery: %+v", got)
		}
	})
}

func TestGoneAndRetryAfter(t *testing.T) {
	gone, busy := newReceiver(t), newReceiver(t)
	gone.status.Store(410)
	busy.status.Store(429)
	busy.retryAfter.Store("1")
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{})
		wg := r.hook("alice", "a", gone.url(), 100*time.Millisecond, 5)
		r.hook("alice", "a", busy.url(), 100*time.Millisecond, 5)
		r.start()
		synctest.Wait()
		wantCount(t, "410 receiver", gone, 1)
		wantCount(t, "429 receiver before its Retry-After", busy, 1)
		time.Sleep(time.Second)
		synctest.Wait()
		wantCount(t, "429 receiver after its Retry-After", busy, 2)
		if at := r.sender.times(busy.url()); at[1].Sub(at[0]) != time.Second {
			t.Fatalf("retry %s after a 429 with Retry-After: 1; want 1s (not the 100ms backoff)", at[1].Sub(at[0]))
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if got := r.get("alice", wg.ID); got.State != core.StateInactive || got.LastRun.Status != 410 {
			t.Fatalf("after a 410: %+v; want inactive", got)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		wantCount(t, "410 receiver a minute later", gone, 1)
	})
}

func TestSignedDeliveries(t *testing.T) {
	rc := newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{})
		w := r.signedHook(t, rc.url())
		r.start()
		synctest.Wait()
		r.change("alice", core.MsgEventsChanged)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		wantCount(t, "boot and change", rc, 2)
		verifyAll(t, w.Secret, rc.got())
		if a, b := rc.got()[0].header.Get("webhook-id"), rc.got()[1].header.Get("webhook-id"); a == b || !strings.HasPrefix(a, "msg_") {
			t.Fatalf("webhook-id %q, %q", a, b)
		}
	})
}

// TestSignedRetriesKeepTheirID: Standard Webhooks asks that a message
// sent again keep its webhook-id. Three attempts of one notification (two
// 500s, then 200) carry one id, each verified by the official library;
// the next notification gets another.
func TestSignedRetriesKeepTheirID(t *testing.T) {
	rc := newReceiver(t)
	rc.status.Store(500)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{})
		w := r.signedHook(t, rc.url())
		r.start()
		synctest.Wait()
		time.Sleep(150 * time.Millisecond) // the first retry: 100ms and at most 10ms of jitter
		synctest.Wait()
		wantCount(t, "two failed attempts", rc, 2)
		rc.status.Store(200)
		time.Sleep(250 * time.Millisecond) // the second retry: 200ms and jitter
		synctest.Wait()
		wantCount(t, "the attempt that succeeds", rc, 3)
		r.change("alice", core.MsgEventsChanged)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		wantCount(t, "the next notification", rc, 4)
		got := rc.got()
		verifyAll(t, w.Secret, got)
		id := got[0].header.Get("webhook-id")
		if got[1].header.Get("webhook-id") != id || got[2].header.Get("webhook-id") != id {
			t.Fatalf("webhook-id of three attempts of one notification: %q, %q, %q; want one", id, got[1].header.Get("webhook-id"), got[2].header.Get("webhook-id"))
		}
		if next := got[3].header.Get("webhook-id"); next == id || next == "" {
			t.Fatalf("the next notification's webhook-id is %q", next)
		}
	})
}

func TestAccessDeletionRetiresAfterDelivery(t *testing.T) {
	rc, keep := newReceiver(t), newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{})
		mine := r.hook("alice", "doomed", rc.url(), 100*time.Millisecond, 5)
		r.hook("alice", "survivor", keep.url(), 100*time.Millisecond, 5)
		r.start()
		synctest.Wait()
		wantCount(t, "boot", rc, 1)
		rec := core.AppendDeletedAccesses(core.AppendMarkerNames(nil, time.Now().UnixNano(), "alice", []string{core.MsgAccessesChanged}), []string{"doomed"})
		if _, err := r.q.Append(rec); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		wantCount(t, "the deleted access's webhook", rc, 2)
		if m := rc.got()[1].messages; len(m) != 1 || m[0] != core.MsgAccessesChanged {
			t.Fatalf("the deleted access's webhook got %v", m)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if got := r.get("alice", mine.ID); got.State != core.StateInactive {
			t.Fatalf("the deleted access's webhook is %s after its last delivery; want inactive", got.State)
		}
		r.change("alice", core.MsgEventsChanged)
		time.Sleep(time.Second)
		synctest.Wait()
		wantCount(t, "survivor", keep, 3)
		wantCount(t, "retired webhook", rc, 2)
		// Reactivated on purpose, it stays active after its next delivery.
		if _, err := r.hooks.Update("alice", mine.ID, func(w *core.Webhook) error { w.State = core.StateActive; return nil }); err != nil {
			t.Fatal(err)
		}
		r.change("alice", core.MsgEventsChanged)
		time.Sleep(time.Second)
		synctest.Wait()
		wantCount(t, "reactivated webhook", rc, 3)
		if got := r.get("alice", mine.ID); got.State != core.StateActive {
			t.Fatalf("reactivated webhook turned %s again", got.State)
		}
	})
}

// TestRetireSurvivesRestart: the access-deletion marker is acknowledged,
// the engine stops before delivering it (the receiver fails); after a
// restart the notification goes out and then the webhook retires.
func TestRetireSurvivesRestart(t *testing.T) {
	rc := newReceiver(t)
	rc.status.Store(503)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		r := newRig(t, dir, EngineOptions{})
		w := r.hook("alice", "doomed", rc.url(), 100*time.Millisecond, 50)
		r.start()
		rec := core.AppendDeletedAccesses(core.AppendMarkerNames(nil, time.Now().UnixNano(), "alice", []string{core.MsgAccessesChanged}), []string{"doomed"})
		if _, err := r.q.Append(rec); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := r.q.Len(); n != 0 {
			t.Fatalf("%d markers unacknowledged", n)
		}
		r.close()
		if got := r.get("alice", w.ID); got.State != core.StateActive {
			t.Fatalf("retired before its notification went out: %+v", got)
		}

		rc.status.Store(200)
		before := rc.count()
		r2 := newRig(t, dir, EngineOptions{})
		r2.start()
		time.Sleep(time.Second)
		synctest.Wait()
		if n := rc.count() - before; n != 1 {
			t.Fatalf("%d POSTs after the restart; want 1", n)
		}
		if m := rc.got()[before].messages; len(m) != 2 || m[0] != core.MsgServiceBoot || m[1] != core.MsgAccessesChanged {
			t.Fatalf("after the restart %v went out; want the boot message and the access change", m)
		}
		if got := r2.get("alice", w.ID); got.State != core.StateInactive {
			t.Fatalf("after the restart's delivery the webhook is %s; want inactive", got.State)
		}
	})
}

// TestPendingSurvivesRestart: a marker acknowledged by the engine is in a
// durable pending set; an engine stopped before delivering it (receiver
// failing) delivers it after a restart on the same database.
func TestPendingSurvivesRestart(t *testing.T) {
	rc := newReceiver(t)
	rc.status.Store(503)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		r := newRig(t, dir, EngineOptions{})
		r.hook("alice", "a", rc.url(), 100*time.Millisecond, 50)
		r.start()
		r.change("alice", core.MsgEventsChanged)
		synctest.Wait()
		if n := r.q.Len(); n != 0 {
			t.Fatalf("%d markers unacknowledged", n)
		}
		r.close()

		rc.status.Store(200)
		before := rc.count()
		r2 := newRig(t, dir, EngineOptions{})
		r2.start()
		synctest.Wait()
		if n := rc.count() - before; n != 1 {
			t.Fatalf("%d POSTs after the restart; want 1", n)
		}
		body := string(rc.got()[before].body)
		if !strings.Contains(body, core.MsgEventsChanged) || !strings.Contains(body, core.MsgServiceBoot) {
			t.Fatalf("after restart the receiver got %s; want the pending eventsChanged with the boot message", body)
		}
	})
}

// TestMoreDueThanWorkers: far more webhooks due at once than workers must
// all be delivered, the pool never running more than its size (an engine
// that blocked on a full pool while workers waited on it would hang here).
func TestMoreDueThanWorkers(t *testing.T) {
	rc := newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{Workers: 4})
		const n = 200
		for i := range n {
			r.hook("alice", "a", rc.url()+"&n="+strconv.Itoa(i), time.Second, 5)
		}
		r.start() // 200 boot messages due at once
		synctest.Wait()
		wantCount(t, "boot messages", rc, n)
		if m := rc.maxFly.Load(); m > 4 {
			t.Fatalf("%d deliveries at once with 4 workers", m)
		}
	})
}

// deadAddr returns a loopback address where nothing listens.
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

// waitCount waits until r got at least n POSTs, woken by each arrival,
// and fails the test after a minute.
//
// Real time: for the few engine tests whose receivers hold real sockets
// open; the bound only ends a failure.
func (r *testReceiver) waitCount(t *testing.T, what string, n int) {
	t.Helper()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for r.count() < n {
		select {
		case <-r.arrived:
		case <-timeout.C:
			t.Fatalf("gave up after a minute waiting for %s: %d of %d POSTs", what, r.count(), n)
		}
	}
}

// TestBootRunsDurableAtScale: the boot notifications of more webhooks
// than one Badger transaction can hold (about 1,750 did not fit) leave
// every run record and emptied pending set on disk after a graceful stop.
func TestBootRunsDurableAtScale(t *testing.T) {
	rc := newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		r := newRig(t, dir, EngineOptions{})
		const n = 4000
		pad := "&secret=" + strings.Repeat("s", 600) // records of about 1 KiB, as with signing secrets and long URLs
		ws := make([]*core.Webhook, n)
		for i := range ws {
			ws[i] = &core.Webhook{ID: core.NewID(), User: "user" + strconv.Itoa(i%500), AccessID: "a", URL: rc.url() + pad + "&n=" + strconv.Itoa(i),
				State: core.StateActive, MinIntervalMs: 1000, MaxRetries: 5, Runs: []core.Run{}, Created: float64(i)}
		}
		if err := r.hooks.Import(ws); err != nil {
			t.Fatal(err)
		}
		r.start()
		synctest.Wait()
		wantCount(t, "boot messages", rc, n)
		r.close()

		r2 := newRig(t, dir, EngineOptions{})
		for _, w := range ws {
			if got := r2.get(w.User, w.ID); got.RunCount != 1 || got.LastRun.Status != 200 {
				t.Fatalf("after a restart %s has runCount %d, lastRun %+v; want its boot run", w.ID, got.RunCount, got.LastRun)
			}
		}
		if err := store.NewPending(r2.db, nil).Load(func(id string, set state.PendingSet) error {
			return fmt.Errorf("pending set of %s left after every notification went out: %v", id, set)
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestScopedWebhookMatching: a scoped webhook hears only of the changes
// its scopes match, with their keys as messages; its access's deletion
// reaches it, and retires it, whatever its scopes.
func TestScopedWebhookMatching(t *testing.T) {
	rc := newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{})
		w := r.hook("alice", "doomed", rc.url(), 100*time.Millisecond, 5)
		if _, err := r.hooks.Update("alice", w.ID, func(w *core.Webhook) error {
			w.Scopes = &core.Scopes{List: []core.Scope{{Key: "notes", Kind: core.KindEvents, Types: []string{"note/txt"}}}}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		r.start()
		synctest.Wait()
		wantCount(t, "boot", rc, 1)
		event := func(typ string) []byte {
			return core.AppendExtras(core.AppendMarkerNames(nil, time.Now().UnixNano(), "alice", []string{core.MsgEventsChanged}), nil,
				[]core.Touch{{Kind: core.TouchEvent, Streams: []string{"diary"}, Type: typ}})
		}
		for _, rec := range [][]byte{
			event("mass/kg"),
			core.AppendMarkerNames(nil, time.Now().UnixNano(), "alice", []string{core.MsgStreamsChanged}),
			event("note/txt"),
		} {
			if _, err := r.q.Append(rec); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		wantCount(t, "scoped webhook", rc, 2)
		if m := rc.got()[1].messages; len(m) != 1 || m[0] != "notes" {
			t.Fatalf("scoped webhook got %v; want [notes]", m)
		}
		rec := core.AppendDeletedAccesses(core.AppendMarkerNames(nil, time.Now().UnixNano(), "alice", []string{core.MsgAccessesChanged}), []string{"doomed"})
		if _, err := r.q.Append(rec); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		wantCount(t, "scoped webhook after its access's deletion", rc, 3)
		if m := rc.got()[2].messages; len(m) != 1 || m[0] != core.MsgAccessesChanged {
			t.Fatalf("scoped webhook got %v on its access's deletion", m)
		}
		if got := r.get("alice", w.ID); got.State != core.StateInactive {
			t.Fatalf("scoped webhook is %s after its access's deletion; want inactive", got.State)
		}
	})
}

// TestRetrySchedule: with a retry schedule, the waits between failed
// attempts are its steps, the last repeating, instead of Pryv's
// minIntervalMs × failures; the webhook still turns inactive after its
// maxRetries failures.
func TestRetrySchedule(t *testing.T) {
	rc := newReceiver(t)
	rc.status.Store(500)
	synctest.Test(t, func(t *testing.T) {
		schedule, err := core.ParseSchedule("1s, 5s,30s")
		if err != nil {
			t.Fatal(err)
		}
		r := newRig(t, t.TempDir(), EngineOptions{RetrySchedule: schedule})
		w := r.hook("alice", "a", rc.url(), 200*time.Millisecond, 4)
		r.start()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		wantCount(t, "after giving up", rc, 5) // maxRetries 4, plus the first attempt
		at := r.sender.times(rc.url())
		for i, want := range []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 30 * time.Second} {
			// At most a tenth of the step of jitter, and never more than
			// MaxJitter (1s).
			gap := at[i+1].Sub(at[i])
			if gap < want || gap > want+min(want/10, time.Second) {
				t.Errorf("gap %d = %s; want %s plus at most %s of jitter", i+1, gap, want, min(want/10, time.Second))
			}
		}
		if got := r.get("alice", w.ID); got.State != core.StateInactive || got.FailCount != 5 {
			t.Fatalf("after the schedule: %+v", got)
		}
	})
}

func TestParseSchedule(t *testing.T) {
	if s, err := core.ParseSchedule("5s,5m,30m,2h,5h,10h"); err != nil || len(s) != 6 || s[5] != 10*time.Hour {
		t.Fatalf("Svix's schedule: %v, %v", s, err)
	}
	if s, err := core.ParseSchedule(" "); err != nil || s != nil {
		t.Fatalf("no schedule: %v, %v", s, err)
	}
	for _, bad := range []string{"5s,,1m", "5", "-1s", "0s", "200h", "1s;2s"} {
		if _, err := core.ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
}

// TestRotatedSecretSignsDuringGrace: while a rotated secret's grace
// lasts, a notification verifies under the new and the previous secret;
// after it, under the new one only.
func TestRotatedSecretSignsDuringGrace(t *testing.T) {
	rc := newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{})
		w := r.signedHook(t, rc.url())
		previous := w.Secret
		fresh := core.NewSigningSecret()
		until := float64(time.Now().Add(time.Minute).UnixMilli()) / 1000
		if _, err := r.hooks.Update("alice", w.ID, func(w *core.Webhook) error {
			w.Secret, w.PreviousSecret, w.PreviousUntil = fresh, previous, until
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		r.start()
		synctest.Wait()
		wantCount(t, "boot", rc, 1)
		verifyAll(t, fresh, rc.got())
		verifyAll(t, previous, rc.got())
		time.Sleep(2 * time.Minute)
		r.change("alice", core.MsgEventsChanged)
		time.Sleep(time.Second)
		synctest.Wait()
		wantCount(t, "after the grace", rc, 2)
		verifyAll(t, fresh, rc.got()[1:])
		v, _ := standardwebhooks.NewWebhook(previous)
		if h := rc.got()[1]; v.Verify(h.body, h.header) == nil {
			t.Fatalf("after the grace the previous secret still verifies: %v", h.header)
		}
	})
}
