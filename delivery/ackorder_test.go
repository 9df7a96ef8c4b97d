package delivery

import (
	"os"
	"slices"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/internal/testproc"
	"github.com/hookgate/hookgate/state"
)

// TestAckAfterPending shows the acknowledgement rule of package state: a
// marker is acknowledged only after the pending set it produced is
// written. A child process runs the engine on a real Badger directory and
// is killed (SIGKILL, by itself) between the pending write and the
// acknowledgement; after the crash the marker is still queued, its
// message is pending, and a restarted engine delivers it once.
//
// The child is a process of its own, waited for at most a minute
// (testproc.RunKilled).
func TestAckAfterPending(t *testing.T) {
	if dir := os.Getenv("HOOKGATE_ACK_CHILD"); dir != "" {
		ackChild(t, dir, os.Getenv("HOOKGATE_ACK_URL"))
		return
	}
	rc := newReceiver(t)
	rc.status.Store(503) // the child's boot message fails, and stays pending
	dir := t.TempDir()
	testproc.RunKilled(t, "TestAckAfterPending", "HOOKGATE_ACK_CHILD="+dir, "HOOKGATE_ACK_URL="+rc.url())

	rc.status.Store(200)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, dir, EngineOptions{})
		if n := r.q.Len(); n != 1 {
			t.Fatalf("%d markers queued after the crash; want the unacknowledged one", n)
		}
		var pending []string
		if err := store.NewPending(r.db, nil).Load(func(id string, s state.PendingSet) error {
			pending = append(pending, s.Messages...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(pending, core.MsgEventsChanged) {
			t.Fatalf("pending after the crash: %v; want the marker's eventsChanged", pending)
		}
		before := rc.count()
		r.start()
		synctest.Wait()
		if n := rc.count() - before; n != 1 {
			t.Fatalf("%d POSTs after the restart; want 1", n)
		}
		if m := rc.got()[before].messages; !slices.Contains(m, core.MsgEventsChanged) {
			t.Fatalf("after the restart %v went out; want eventsChanged", m)
		}
		if n := r.q.Len(); n != 0 {
			t.Fatalf("%d markers still queued after the restart's dispatch", n)
		}
	})
}

// ackChild is the child's side: an engine whose first dispatch kills the
// process once its pending write returned, before the acknowledgement.
func ackChild(t *testing.T, dir, url string) {
	r := newRig(t, dir, EngineOptions{})
	r.realTime = true
	r.hook("alice", "a", url, time.Hour, 5)
	o := r.opts
	o.Queue, o.Pending, o.Webhooks, o.Sender = r.q, store.NewPending(r.db, nil), r.hooks, r.sender
	e, err := NewEngine(o)
	if err != nil {
		t.Fatal(err)
	}
	e.beforeAck = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	r.engine = e
	go e.Run()
	r.change("alice", core.MsgEventsChanged)
	select {} // killed by beforeAck
}
