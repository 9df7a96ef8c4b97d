package delivery

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/state"
)

// gateSender holds every Send until the test opens its gate, and counts
// the sends per URL host and at most at once.
type gateSender struct {
	gate chan struct{} // closed or sent on to let Sends return
	mu   sync.Mutex
	now  map[string]int // sends under way per host
	peak map[string]int
	got  map[string]int // sends per URL
}

func newGateSender() *gateSender {
	return &gateSender{gate: make(chan struct{}), now: map[string]int{}, peak: map[string]int{}, got: map[string]int{}}
}

func (s *gateSender) Send(url string, _ []byte, _ [][2]string) (Answer, error) {
	h := hostOf(url)
	s.mu.Lock()
	s.now[h]++
	s.peak[h] = max(s.peak[h], s.now[h])
	s.got[url]++
	s.mu.Unlock()
	<-s.gate
	s.mu.Lock()
	s.now[h]--
	s.mu.Unlock()
	return Answer{Status: 200}, nil
}

func (s *gateSender) counts() (sending int, peak map[string]int, got map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.now {
		sending += n
	}
	peak, got = map[string]int{}, map[string]int{}
	for k, v := range s.peak {
		peak[k] = v
	}
	for k, v := range s.got {
		got[k] = v
	}
	return sending, peak, got
}

func TestHostOf(t *testing.T) {
	for url, want := range map[string]string{
		"http://127.0.0.1:9000/notify?u=1": "http://127.0.0.1:9000",
		"https://example.com?x=/":          "https://example.com",
		"https://example.com#frag":         "https://example.com",
		"http://a.example":                 "http://a.example",
		"http://A.example:80/":             "http://A.example:80",
	} {
		if got := hostOf(url); got != want {
			t.Errorf("hostOf(%q) = %q; want %q", url, got, want)
		}
	}
}

// TestPerHostParking: no more than MaxPerHost deliveries to one host are
// sent at once, the others wait in the engine without a worker; parked
// and in-flight deliveries together never exceed Workers; every webhook
// gets its one boot notification; and at a stop, parked deliveries are
// not sent but put back.
func TestPerHostParking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, pend := state.NewMemory(), state.NewMemPending()
		var ws []*core.Webhook
		for i := range 10 {
			// Ids in index order: the boot takes them in that order, the
			// hosts alternating.
			w := &core.Webhook{ID: fmt.Sprintf("w%02d", i), User: fmt.Sprintf("u%d", i), AccessID: "a",
				URL:   fmt.Sprintf("http://127.0.0.%d:1/hook?n=%d", 1+i%2, i),
				State: core.StateActive, MinIntervalMs: 1000, MaxRetries: 3, Created: float64(i)}
			ws = append(ws, w)
		}
		if err := reg.Import(ws); err != nil {
			t.Fatal(err)
		}
		s := newGateSender()
		e, err := NewEngine(EngineOptions{Queue: queue.NewMemory(queue.Options{}), Pending: pend, Webhooks: reg,
			Sender: s, Workers: 6, MaxPerHost: 2, FlushInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		go e.Run()
		synctest.Wait()
		sending, peak, _ := s.counts()
		// 6 workers: 2 sending to each host, 2 parked; 4 not taken yet.
		if sending != 4 || peak["http://127.0.0.1:1"] != 2 || peak["http://127.0.0.2:1"] != 2 {
			t.Fatalf("sending %d, per host at most %v; want 4, 2 per host", sending, peak)
		}
		if e.parked != 2 || e.flying != 4 {
			t.Fatalf("parked %d, flying %d; want 2 and 4", e.parked, e.flying)
		}
		for range 4 { // the first four end; parked ones take their place
			s.gate <- struct{}{}
		}
		synctest.Wait()
		sending, peak, got := s.counts()
		if sending != 4 || peak["http://127.0.0.1:1"] != 2 || peak["http://127.0.0.2:1"] != 2 || len(got) != 8 {
			t.Fatalf("after 4 ended: sending %d, peak %v, %d webhooks sent to; want 4, 2 per host, 8", sending, peak, len(got))
		}

		// Stop with 4 in flight and 2 parked: the in-flight ones end, the
		// parked ones are not sent and keep their boot message pending.
		stopped := make(chan struct{})
		go func() { e.Stop(); close(stopped) }()
		synctest.Wait()
		close(s.gate)
		<-stopped
		_, peak, got = s.counts()
		if len(got) != 8 || peak["http://127.0.0.1:1"] != 2 || peak["http://127.0.0.2:1"] != 2 {
			t.Fatalf("after the stop: %d webhooks sent to, peak %v; want 8, 2 per host", len(got), peak)
		}
		left := 0
		for _, w := range ws {
			if n := got[w.URL]; n > 1 {
				t.Errorf("webhook %s sent %d times", w.ID, n)
			} else if n == 0 {
				left++
				// Put back, not in flight. (A boot message is not stored:
				// the next start sends one anyway.)
				if sl := e.sched.Slot(w.ID); sl == nil || sl.Flying || !slices.Equal(sl.Pending, []string{core.MsgServiceBoot}) {
					t.Errorf("webhook %s never sent: slot %+v; want its boot message pending", w.ID, sl)
				}
			}
		}
		if left != 2 {
			t.Fatalf("%d webhooks not sent; want the 2 left", left)
		}
	})
}

// TestBootPacedAndPruned: the boot gives out the next chunk only once
// every slot due has been fired, so the slots held stay about a chunk
// ahead of the deliveries; slots of booted webhooks are pruned during
// the boot; and a change that reaches a pruned webhook brings no second
// boot message, while one that reaches a webhook not booted yet brings
// it first.
func TestBootPacedAndPruned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, pend := state.NewMemory(), state.NewMemPending()
		n := 2*bootChunk + 5
		var ws []*core.Webhook
		for i := range n {
			ws = append(ws, &core.Webhook{ID: core.NewID(), User: fmt.Sprintf("u%05d", i), AccessID: "a",
				URL: fmt.Sprintf("http://127.0.0.1:1/?n=%d", i), State: core.StateActive, MinIntervalMs: 1000, MaxRetries: 3})
		}
		if err := reg.Import(ws); err != nil {
			t.Fatal(err)
		}
		s := newGateSender()
		q := queue.NewMemory(queue.Options{})
		e, err := NewEngine(EngineOptions{Queue: q, Pending: pend, Webhooks: reg,
			Sender: s, Workers: 8, FlushInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		go e.Run()
		synctest.Wait()
		// Held: one chunk booted, 8 of it in flight, the rest waiting.
		if len(e.boot) != n-bootChunk || e.sched.Len() != bootChunk {
			t.Fatalf("%d left to boot, %d slots; want %d and %d", len(e.boot), e.sched.Len(), n-bootChunk, bootChunk)
		}
		// Let the first chunk through (and a little of the second), and
		// wait out the interval: the first chunk's slots are pruned while
		// the boot goes on.
		for range bootChunk + 8 {
			s.gate <- struct{}{}
		}
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if e.bootState == nil || len(e.boot) == 0 {
			t.Fatalf("boot over (%d left): the test needs it under way", len(e.boot))
		}
		first, later := e.boot[0].id, e.boot[len(e.boot)-1].id
		var pruned string
		for _, w := range ws {
			if w.ID < first && e.sched.Slot(w.ID) == nil {
				pruned = w.ID
				break
			}
		}
		if pruned == "" {
			t.Fatal("no booted webhook's slot was pruned during the boot")
		}
		for _, id := range []string{pruned, later} {
			w := reg.ByID(id)
			if _, err := q.Append(core.AppendMarkerNames(nil, time.Now().UnixNano(), w.User, []string{core.MsgEventsChanged})); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if got := e.Pending(pruned); !slices.Equal(got, []string{core.MsgEventsChanged}) {
			t.Errorf("a pruned webhook's change: pending %v; want eventsChanged alone", got)
		}
		if got := e.Pending(later); !slices.Equal(got, []string{core.MsgServiceBoot, core.MsgEventsChanged}) {
			t.Errorf("a webhook not booted yet: pending %v; want its boot message first", got)
		}
		close(s.gate)
		synctest.Wait()
		e.Stop()
		_, _, got := s.counts()
		if len(got) != n {
			t.Fatalf("%d webhooks notified; want %d", len(got), n)
		}
		for _, w := range ws {
			want := 1 // the boot, with the change for later
			if w.ID == pruned {
				want = 2 // the boot, then the change
			}
			if got[w.URL] != want {
				t.Errorf("webhook %s notified %d times; want %d", w.ID, got[w.URL], want)
			}
		}
	})
}

// slowFlush is a registry whose first Flush waits until the test lets
// it go.
type slowFlush struct {
	state.Registry
	release chan struct{}
	flushes atomic.Int64
}

func (r *slowFlush) Flush() error {
	if r.flushes.Add(1) == 1 {
		<-r.release
	}
	return r.Registry.Flush()
}

// TestDeliveriesGoOnDuringFlush: while a run records flush is under way
// the loop goes on delivering; a stop waits for that flush, then flushes
// the runs recorded since, so that every run is counted.
func TestDeliveriesGoOnDuringFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := state.NewMemory()
		w := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: "http://127.0.0.1:1/",
			State: core.StateActive, MinIntervalMs: 100, MaxRetries: 3}
		if err := mem.Import([]*core.Webhook{w}); err != nil {
			t.Fatal(err)
		}
		reg := &slowFlush{Registry: mem, release: make(chan struct{})}
		s := newGateSender()
		close(s.gate)
		q := queue.NewMemory(queue.Options{})
		e, err := NewEngine(EngineOptions{Queue: q, Pending: state.NewMemPending(), Webhooks: reg,
			Sender: s, FlushInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		go e.Run()
		time.Sleep(50 * time.Millisecond) // the boot, and a flush tick: the first flush waits
		synctest.Wait()
		if reg.flushes.Load() != 1 {
			t.Fatalf("%d flushes; want 1 under way", reg.flushes.Load())
		}
		for range 5 {
			if _, err := q.Append(core.AppendMarkerNames(nil, time.Now().UnixNano(), "alice", []string{core.MsgEventsChanged})); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		synctest.Wait()
		if _, _, got := s.counts(); got[w.URL] != 6 {
			t.Fatalf("%d deliveries while a flush was under way; want 6", got[w.URL])
		}
		if reg.flushes.Load() != 1 {
			t.Fatalf("%d flushes; want one at a time", reg.flushes.Load())
		}
		stopped := make(chan struct{})
		go func() { e.Stop(); close(stopped) }()
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("Stop returned while a flush was under way")
		default:
		}
		close(reg.release)
		<-stopped
		if got := mem.ByID(w.ID); got.RunCount != 6 || reg.flushes.Load() < 2 {
			t.Fatalf("runCount %d after %d flushes; want 6 after at least 2", got.RunCount, reg.flushes.Load())
		}
	})
}
