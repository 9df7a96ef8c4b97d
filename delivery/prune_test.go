package delivery

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/hookgate/hookgate/core"
)

// TestIdleSlotsPruned: once a webhook's delivery succeeded with nothing
// left and its interval has passed, its slot goes; the next change makes
// it again from the registry and is delivered at once, and the rate
// limit still holds within the interval after that.
func TestIdleSlotsPruned(t *testing.T) {
	rc := newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{})
		w := r.hook("alice", "app", rc.url(), time.Second, 5)
		r.start()
		synctest.Wait()
		wantCount(t, "boot", rc, 1)
		boot := r.sender.times(rc.url())[0]

		// Within the interval the slot stays: a change now waits for the
		// trailing edge.
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if r.engine.sched.Slot(w.ID) == nil {
			t.Fatal("the slot went before its interval passed")
		}
		r.change("alice", core.MsgEventsChanged)
		time.Sleep(time.Second)
		synctest.Wait()
		wantCount(t, "trailing edge", rc, 2)
		second := r.sender.times(rc.url())[1]
		if second.Sub(boot) != time.Second {
			t.Fatalf("trailing edge %s after the boot POST; want 1s", second.Sub(boot))
		}

		// Idle past its interval: the slot goes at a flush tick.
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if sl := r.engine.sched.Slot(w.ID); sl != nil {
			t.Fatalf("the slot of a webhook idle past its interval is still there: %+v", sl)
		}
		// The next change makes it again and is delivered at once.
		changed := time.Now()
		r.change("alice", core.MsgStreamsChanged)
		synctest.Wait()
		wantCount(t, "after the slot went", rc, 3)
		if at := r.sender.times(rc.url())[2]; at != changed {
			t.Fatalf("delivered %s after the change; want at once", at.Sub(changed))
		}
		if m := rc.got()[2].messages; len(m) != 1 || m[0] != core.MsgStreamsChanged {
			t.Fatalf("messages %v", m)
		}
		// And the rate limit holds after it.
		r.change("alice", core.MsgEventsChanged)
		synctest.Wait()
		wantCount(t, "inside the window again", rc, 3)
		time.Sleep(time.Second)
		synctest.Wait()
		wantCount(t, "trailing edge again", rc, 4)
		if gap := r.sender.times(rc.url())[3].Sub(changed); gap != time.Second {
			t.Fatalf("trailing edge %s after the previous POST; want 1s", gap)
		}
		time.Sleep(100 * time.Millisecond) // a flush tick: the run records
		synctest.Wait()
		if got := r.get("alice", w.ID); got.RunCount != 4 || len(got.Runs) != 4 {
			t.Fatalf("run records %+v; want 4 runs", got)
		}
	})
}

// TestIdlePruneOrder: a webhook with a long interval, idle first, does
// not hold back the pruning of one with a short interval idle after it.
func TestIdlePruneOrder(t *testing.T) {
	slow, fast := newReceiver(t), newReceiver(t)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, t.TempDir(), EngineOptions{})
		long := r.hook("alice", "app", slow.url(), time.Hour, 5)
		short := r.hook("bob", "app", fast.url(), time.Second, 5)
		r.hooks.Update("bob", short.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil })
		r.start()
		synctest.Wait()
		wantCount(t, "the long one's boot", slow, 1)
		// The short one succeeds after the long one.
		r.hooks.Update("bob", short.ID, func(w *core.Webhook) error { w.State = core.StateActive; return nil })
		r.change("bob", core.MsgEventsChanged)
		synctest.Wait()
		wantCount(t, "the short one's change", fast, 1)
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if sl := r.engine.sched.Slot(short.ID); sl != nil {
			t.Fatal("the short-interval slot is still there behind the long one's")
		}
		if r.engine.sched.Slot(long.ID) == nil {
			t.Fatal("the long-interval slot went before its interval passed")
		}
		if n := len(r.engine.idle); n != 1 {
			t.Fatalf("%d idle entries left; want the long one's", n)
		}
	})
}
