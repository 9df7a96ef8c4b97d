package delivery

import (
	"errors"
	"fmt"
	"github.com/hookgate/hookgate/gateway/queue"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/state"
)

// testOwner is a share of two partitions: alice's (0) and bob's (1),
// which the test hands to the engine and takes back, as a cluster's
// marker log does (gateway/cluster, tested there against JetStream).
type testOwner struct {
	mu        sync.Mutex
	owned     []int
	restarted bool
	changed   chan struct{}
}

func (o *testOwner) Partitions() int { return 2 }
func (o *testOwner) Partition(user string) int {
	if user == "alice" {
		return 0
	}
	return 1
}
func (o *testOwner) Owned() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.owned)
}
func (o *testOwner) Changed() <-chan struct{} { return o.changed }
func (o *testOwner) Restarted() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.restarted
}

func (o *testOwner) set(restarted bool, owned ...int) {
	o.mu.Lock()
	o.owned, o.restarted = owned, restarted
	o.mu.Unlock()
	o.changed <- struct{}{}
}

// TestOwnership: an engine of a cluster delivers only the webhooks of
// the partitions it owns. A partition gained brings its webhooks' stored
// pending sets, and webhooksServiceBoot only at the service's restart;
// a partition lost stops its deliveries, retries included, and leaves
// what is stored for the next owner.
func TestOwnership(t *testing.T) {
	ra, rb := newReceiver(t), newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		owner := &testOwner{changed: make(chan struct{})}
		r := newRig(t, t.TempDir(), EngineOptions{Owner: owner})
		wa := r.hook("alice", "app", ra.url(), time.Second, 5)
		r.hook("bob", "app", rb.url(), time.Second, 5)
		pending := store.NewPending(r.db, nil)
		if _, err := pending.Write([]state.PendingWrite{{ID: wa.ID, Set: &state.PendingSet{Messages: []string{core.MsgStreamsChanged}}}}); err != nil {
			t.Fatal(err)
		}
		r.start()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if ra.count()+rb.count() != 0 {
			t.Fatalf("an engine that owns nothing delivered %d and %d notifications", ra.count(), rb.count())
		}

		owner.set(false, 0) // alice's, taken over from a dead instance
		synctest.Wait()
		wantCount(t, "alice's stored set", ra, 1)
		if m := ra.got()[0].messages; !slices.Equal(m, []string{core.MsgStreamsChanged}) {
			t.Fatalf("alice's webhook got %v; want her stored set alone, no boot message", m)
		}
		r.change("alice", core.MsgEventsChanged)
		r.change("bob", core.MsgEventsChanged) // not this engine's
		time.Sleep(2 * time.Second)
		synctest.Wait()
		wantCount(t, "alice's change", ra, 2)
		wantCount(t, "bob's webhook, not owned", rb, 0)

		owner.set(true, 0, 1) // bob's, at the service's restart
		synctest.Wait()
		wantCount(t, "bob's boot", rb, 1)
		if m := rb.got()[0].messages; !slices.Equal(m, []string{core.MsgServiceBoot}) {
			t.Fatalf("bob's webhook got %v; want [%s]", m, core.MsgServiceBoot)
		}

		// alice's receiver fails; her partition goes before the retry.
		ra.status.Store(500)
		r.change("alice", core.MsgEventsChanged) // her interval has passed: sent at once
		synctest.Wait()
		wantCount(t, "alice's failing delivery", ra, 3)
		owner.set(false, 1)
		time.Sleep(time.Minute)
		synctest.Wait()
		wantCount(t, "alice's webhook after her partition went", ra, 3)
		if stored := storedSet(t, pending, wa.ID); !slices.Equal(stored, []string{core.MsgEventsChanged}) {
			t.Fatalf("alice's stored set after her partition went: %v; want it kept for the next owner", stored)
		}
	})
}

// countingPending counts the sets written to the real pending store,
// and fails every Load while failLoad is set.
type countingPending struct {
	state.Pending
	mu       sync.Mutex
	sets     int
	failLoad bool
}

func (p *countingPending) Load(f func(id string, set state.PendingSet) error) error {
	p.mu.Lock()
	fail := p.failLoad
	p.mu.Unlock()
	if fail {
		return errors.New("no leader for the pending sets now")
	}
	return p.Pending.Load(f)
}

func (p *countingPending) Write(ws []state.PendingWrite) (int, error) {
	n, err := p.Pending.Write(ws)
	p.mu.Lock()
	p.sets += n
	p.mu.Unlock()
	return n, err
}

func (p *countingPending) written() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sets
}

// TestAckAtFlush: with AckAtFlush, markers are acknowledged at the flush
// tick, after the pending sets of what is still undelivered are written;
// a webhook delivered before it has no set written at all.
func TestAckAtFlush(t *testing.T) {
	rc := newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{AckAtFlush: true})
		pending := &countingPending{Pending: store.NewPending(r.db, nil)}
		r.opts.Pending = pending
		r.hook("alice", "app", rc.url(), time.Second, 5)
		r.start()
		synctest.Wait()
		wantCount(t, "boot", rc, 1)
		time.Sleep(time.Second) // the interval, and a flush tick
		synctest.Wait()
		before := pending.written()

		r.change("alice", core.MsgEventsChanged)
		synctest.Wait()
		wantCount(t, "the change", rc, 2)
		if n := r.q.Len(); n != 1 {
			t.Fatalf("before the flush tick the queue holds %d markers; want the delivered change's, unacknowledged", n)
		}
		time.Sleep(30 * time.Millisecond) // past the flush tick (20 ms in the rig)
		synctest.Wait()
		if n := r.q.Len(); n != 0 {
			t.Fatalf("after the flush tick the queue holds %d markers; want none", n)
		}
		if n := pending.written() - before; n != 0 {
			t.Fatalf("%d pending sets written for a change delivered before the flush; want none", n)
		}

		// Undelivered at the flush: its set is written, then the marker acknowledged.
		rc.status.Store(500)
		time.Sleep(time.Second)
		r.change("alice", core.MsgEventsChanged)
		synctest.Wait()
		wantCount(t, "the failing delivery", rc, 3)
		time.Sleep(30 * time.Millisecond)
		synctest.Wait()
		if n := r.q.Len(); n != 0 {
			t.Fatalf("after the flush tick the queue holds %d markers; want none", n)
		}
		var stored []string
		if err := pending.Load(func(id string, s state.PendingSet) error { stored = s.Messages; return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(stored, []string{core.MsgEventsChanged}) {
			t.Fatalf("the undelivered change's set is %v; want it stored before its marker was acknowledged", stored)
		}
	})
}

// TestGainWaitsForPendingSets: a partition whose stored pending sets
// cannot be loaded is not taken up (a slot without its set would write
// over it); the next flush tries again, and the stored set is delivered.
// A marker the log gives for that partition meanwhile waits,
// unacknowledged, and is delivered with it, whether markers are
// acknowledged as dispatched or at the flush.
func TestGainWaitsForPendingSets(t *testing.T) {
	for _, atFlush := range []bool{false, true} {
		t.Run(fmt.Sprintf("AckAtFlush=%v", atFlush), func(t *testing.T) {
			rc := newReceiver(t)
			synctest.Test(t, func(t *testing.T) {
				owner := &testOwner{changed: make(chan struct{})}
				r := newRig(t, t.TempDir(), EngineOptions{Owner: owner, AckAtFlush: atFlush})
				pending := &countingPending{Pending: store.NewPending(r.db, nil), failLoad: true}
				r.opts.Pending = pending
				var log *unreadLog
				r.queue = func(q *queue.Badger) state.Log { log = &unreadLog{Log: q}; return log }
				w := r.hook("alice", "app", rc.url(), time.Second, 5)
				if _, err := pending.Write([]state.PendingWrite{{ID: w.ID, Set: &state.PendingSet{Messages: []string{core.MsgStreamsChanged}}}}); err != nil {
					t.Fatal(err)
				}
				r.start()
				owner.set(false, 0)
				synctest.Wait()
				r.change("alice", core.MsgEventsChanged)
				synctest.Wait()
				time.Sleep(time.Second) // flush ticks, each trying again
				synctest.Wait()
				wantCount(t, "a partition whose sets do not load", rc, 0)
				if n := r.q.Len(); n != 1 {
					t.Fatalf("the log holds %d markers while the partition is not taken up; want the change's, unacknowledged", n)
				}
				if got := log.unread(); len(got) == 0 || got[0] != 1 {
					t.Fatalf("markers handed back to the log: %v; want the change's (1), so that no acknowledgement takes it", got)
				}
				pending.mu.Lock()
				pending.failLoad = false
				pending.mu.Unlock()
				time.Sleep(30 * time.Millisecond) // a flush tick: tried again
				synctest.Wait()
				wantCount(t, "the stored set and the change, once loaded", rc, 1)
				if m := rc.got()[0].messages; !slices.Equal(m, []string{core.MsgStreamsChanged, core.MsgEventsChanged}) {
					t.Fatalf("got %v; want the stored set and the change", m)
				}
			})
		})
	}
}

// heldPending holds every Write while held is set, until let is
// called; with fail, the Writes so held then fail, as without a quorum.
type heldPending struct {
	state.Pending
	held    atomic.Bool
	fail    bool
	release chan struct{}
	once    sync.Once
}

// newHeldPending wraps the rig's pending store. Its Writes are let go at
// the test's cleanup, before the rig stops the engine: a failing test
// does not hang.
func newHeldPending(t *testing.T, r *rig, fail bool) *heldPending {
	p := &heldPending{Pending: store.NewPending(r.db, nil), fail: fail, release: make(chan struct{})}
	t.Cleanup(p.let)
	r.opts.Pending = p
	return p
}

// let ends the hold: the Writes held return, and none is held again.
func (p *heldPending) let() { p.once.Do(func() { p.held.Store(false); close(p.release) }) }

func (p *heldPending) Write(ws []state.PendingWrite) (int, error) {
	if p.held.Load() {
		<-p.release
		if p.fail {
			return 0, errors.New("no quorum")
		}
	}
	return p.Pending.Write(ws)
}

// storedSet returns the messages p holds for webhook id; nil: none.
func storedSet(t *testing.T, p state.Pending, id string) []string {
	t.Helper()
	var out []string
	if err := p.Load(func(got string, s state.PendingSet) error {
		if got == id {
			out = s.Messages
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSettleLeavesTheLoopFree: with AckAtFlush, a flush tick's pending
// sets and acknowledgement are written beside the loop. While the store
// takes its time (a slow quorum), other changes are still delivered;
// the change whose set was being written is acknowledged only after.
func TestSettleLeavesTheLoopFree(t *testing.T) {
	failing, fine := newReceiver(t), newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{AckAtFlush: true})
		pending := newHeldPending(t, r, false)
		r.hook("alice", "app", failing.url(), time.Second, 5)
		r.hook("bob", "app", fine.url(), time.Second, 5)
		r.start()
		synctest.Wait()
		wantCount(t, "alice's boot", failing, 1)
		wantCount(t, "bob's boot", fine, 1)
		time.Sleep(time.Second)
		synctest.Wait()

		// Alice's delivery fails: her set is written at the tick, and
		// the write stalls.
		failing.status.Store(500)
		pending.held.Store(true)
		r.change("alice", core.MsgEventsChanged)
		synctest.Wait()
		wantCount(t, "alice's failing delivery", failing, 2)
		time.Sleep(30 * time.Millisecond) // the tick: the write starts, and stalls
		synctest.Wait()

		r.change("bob", core.MsgEventsChanged)
		synctest.Wait()
		wantCount(t, "bob's change while alice's set is being written", fine, 2)
		if n := r.q.Len(); n != 2 {
			t.Fatalf("while the set is being written the queue holds %d markers; want both, unacknowledged", n)
		}
		pending.let()
		time.Sleep(30 * time.Millisecond) // the next tick acknowledges bob's too
		synctest.Wait()
		if n := r.q.Len(); n != 0 {
			t.Fatalf("after the write and the next tick the queue holds %d markers; want none", n)
		}
	})
}

// unreadLog notes the markers the engine hands back (Unread).
type unreadLog struct {
	state.Log
	mu   sync.Mutex
	seqs []uint64
}

func (l *unreadLog) Unread(seq uint64) {
	l.mu.Lock()
	l.seqs = append(l.seqs, seq)
	l.mu.Unlock()
}

func (l *unreadLog) unread() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seqs)
}

// TestSettleDeletesWhatADeliveryEmptied: a set written at a tick while
// its delivery is in flight, the delivery ending before the write does,
// is deleted at a later tick: the slot counts it stored from the start
// of the write.
func TestSettleDeletesWhatADeliveryEmptied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sender := newGateSender()
		r := newRig(t, t.TempDir(), EngineOptions{AckAtFlush: true, Sender: sender})
		pending := newHeldPending(t, r, false)
		t.Cleanup(func() { close(sender.gate) })
		const url = "http://127.0.0.1:1/hook"
		w := r.hook("alice", "app", url, time.Second, 5)
		r.start()
		synctest.Wait()
		sender.gate <- struct{}{} // the boot
		time.Sleep(time.Second)   // its interval
		synctest.Wait()
		r.change("alice", core.MsgEventsChanged) // in flight, held
		synctest.Wait()
		pending.held.Store(true)
		time.Sleep(30 * time.Millisecond) // a tick: its set written, stalled
		synctest.Wait()
		sender.gate <- struct{}{} // the delivery ends first
		synctest.Wait()
		if _, _, got := sender.counts(); got[url] != 2 {
			t.Fatalf("%d deliveries; want the boot and the change", got[url])
		}
		pending.let() // then the write
		time.Sleep(60 * time.Millisecond)
		synctest.Wait()
		if left := storedSet(t, pending, w.ID); left != nil {
			t.Fatalf("the set of a delivery done during its write is still stored: %v", left)
		}
	})
}

// TestSettleAfterALoss: a tick's write that fails after the partition
// went does not make the set dirty again: the next tick would delete
// the set the new owner delivers from.
func TestSettleAfterALoss(t *testing.T) {
	rc := newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		owner := &testOwner{changed: make(chan struct{})}
		r := newRig(t, t.TempDir(), EngineOptions{Owner: owner, AckAtFlush: true})
		pending := newHeldPending(t, r, true)
		w := r.hook("alice", "app", rc.url(), time.Second, 5)
		rc.status.Store(500)
		r.start()
		owner.set(true, 0)
		synctest.Wait()
		time.Sleep(30 * time.Millisecond) // the boot failed; its set written at the tick
		synctest.Wait()
		r.change("alice", core.MsgEventsChanged) // the set changes
		synctest.Wait()
		pending.held.Store(true)
		time.Sleep(30 * time.Millisecond) // the next tick's write, held
		synctest.Wait()
		owner.set(false) // the partition goes, to another engine
		synctest.Wait()
		pending.let() // the write fails
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		time.Sleep(100 * time.Millisecond) // ticks
		synctest.Wait()
		if stored := storedSet(t, pending, w.ID); len(stored) == 0 {
			t.Fatal("after a failed write and the partition's loss, the set the next owner needs was deleted")
		}
	})
}
