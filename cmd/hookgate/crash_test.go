package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bench/receiver"
	"github.com/hookgate/hookgate/bench/upstream"
	"github.com/hookgate/hookgate/core"
)

// crashCycles is how many kill -9 cycles TestCrashDelivery runs;
// HOOKGATE_CRASH_CYCLES raises it for the long test run.
func crashCycles() int {
	n := 2
	if v := os.Getenv("HOOKGATE_CRASH_CYCLES"); v != "" {
		fmt.Sscan(v, &n)
	}
	return n
}

// crashSeed seeds the moments of the kills; HOOKGATE_CRASH_SEED replays
// a run.
func crashSeed() uint64 {
	if v := os.Getenv("HOOKGATE_CRASH_SEED"); v != "" {
		var n uint64
		fmt.Sscan(v, &n)
		return n
	}
	return uint64(time.Now().UnixNano())
}

// TestCrashDelivery streams changes through the real hookgate binary,
// kills it with SIGKILL at a random moment, restarts it on the same data,
// and checks that every webhook then gets an eventsChanged notification
// that arrives after the last change a client saw answered 2xx (SPEC
// §3.7). No change comes after the kill, so a webhook needs exactly one
// notification after the restart (the boot message, which carries
// whatever was pending): anything more is counted as a duplicate and
// reported (SPEC allows one per webhook per crash).
//
// Duplicates are counted up to a sentinel, not over a sleep: once every
// webhook is notified, the test makes a streams change, and each webhook's
// notifications to count are those after the restart and before the one
// carrying the sentinel (which also carries anything still pending then).
// Markers are dispatched in order and a webhook's notifications go out one
// at a time, so nothing from before the sentinel can arrive after it.
//
// Real time: a real process killed with SIGKILL. The random moment of the
// kill (after at least one change is answered) is the fault injection,
// not an assertion; every wait is for an outcome, bounded by patience.
func TestCrashDelivery(t *testing.T) {
	seed := crashSeed()
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("kill moments seeded with HOOKGATE_CRASH_SEED=%d", seed)
	up := startUpstream(t, upstream.Options{})
	const hooks = 3
	recvs := startReceivers(t, hooks)
	dir := t.TempDir()
	start := func() *gatewayProc {
		return startGateway(t, "-upstream", up, "-data-dir", dir,
			"-allow-cidrs", "127.0.0.0/8", "-min-interval", "1s", "-log-level", "warn")
	}
	g := start()
	for i, r := range recvs {
		createWebhook(t, g.listen, fmt.Sprintf("http://%s/hook%d", r.Addr(), i))
	}

	totalAcked, totalDup, totalPost := 0, 0, 0
	for cycle := range crashCycles() {
		changes := startChanges(g.listen, 4, true)
		changes.waitAcked(t, 1)
		time.Sleep(time.Duration(150+rng.IntN(600)) * time.Millisecond)
		if cycle%2 == 1 {
			// Odd cycles: the stream stops first and the engine acknowledges
			// every marker, so the last changes live only in the webhooks'
			// durable pending sets, waiting for their rate window.
			changes.stop()
			waitQueueEmpty(t, g)
		}
		g.kill(t)
		n, last := changes.stop()
		totalAcked += n

		before := make([]int, hooks)
		for i, r := range recvs {
			before[i] = len(r.Notifications())
		}
		restarted := time.Now()
		g = start()
		for i, r := range recvs {
			if !eventually(patience, func() bool { return notifiedAfter(r, last) }) {
				t.Fatalf("cycle %d: webhook %d got no eventsChanged after the last acknowledged change (%d acknowledged)", cycle, i, n)
			}
		}
		// The sentinel: a streams change, after which nothing of the crash
		// can arrive.
		sentinelAt := time.Now()
		if st, body := call(g.listen, "POST", "/alice/streams", fmt.Sprintf(`{"name":"sentinel %d"}`, cycle)); st != 201 {
			t.Fatalf("cycle %d: sentinel streams change: %d %s", cycle, st, body)
		}
		dup, post := 0, 0
		for i, r := range recvs {
			var at int
			if !eventually(patience, func() bool { at = sentinelIndex(r.Notifications(), before[i], sentinelAt); return at >= 0 }) {
				t.Fatalf("cycle %d: webhook %d got no streamsChanged after the sentinel change", cycle, i)
			}
			got := r.Notifications()
			after := 0
			for _, nt := range got[before[i]:at] {
				if nt.At.After(restarted) {
					after++
				}
			}
			if msgs := messagesOf(got[at]); len(msgs) > 1 || msgs[0] != core.MsgStreamsChanged {
				after++ // the sentinel's notification also carried what was still pending
			}
			// One is expected: the boot message every active webhook gets
			// on start, merged with whatever was pending.
			need := 1
			post += after
			dup += max(after-need, 0)
		}
		if dup > hooks {
			t.Errorf("cycle %d: %d duplicate notifications for %d webhooks; SPEC §3.7 allows one per webhook", cycle, dup, hooks)
		}
		totalDup += dup
		totalPost += post
		t.Logf("cycle %d: %d changes answered 2xx before SIGKILL; after restart every webhook was notified: %d notifications, %d duplicates",
			cycle, n, post, dup)
	}
	if exit, _ := g.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Errorf("exit %d after SIGTERM", exit)
	}
	var posts int64
	for _, r := range recvs {
		posts += r.Count()
	}
	t.Logf("crash summary: %d kill -9 cycles survived, %d changes acknowledged, all followed by a notification to each of %d webhooks; "+
		"%d notifications in all, %d after restarts, %d of them duplicates", crashCycles(), totalAcked, hooks, posts, totalPost, totalDup)
}

// kill kills the process with SIGKILL and waits for it to be gone.
//
// Real time: it waits on a real process; patience is a failure bound.
func (g *gatewayProc) kill(t *testing.T) {
	t.Helper()
	g.cmd.Process.Kill()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	select {
	case <-g.exited:
	case <-timer.C:
		t.Fatalf("hookgate still running %s after SIGKILL", patience)
	}
}

// messagesOf returns the messages of a notification.
func messagesOf(n receiver.Notification) []string {
	var p struct{ Messages []string }
	json.Unmarshal(n.Body, &p)
	return p.Messages
}

// sentinelIndex returns the index in got, from from on, of the first
// notification that arrived after at and carries streamsChanged; -1 if
// none has yet.
func sentinelIndex(got []receiver.Notification, from int, at time.Time) int {
	for i := from; i < len(got); i++ {
		if got[i].At.After(at) && slices.Contains(messagesOf(got[i]), core.MsgStreamsChanged) {
			return i
		}
	}
	return -1
}

// notifiedAfter reports whether r got an eventsChanged notification after t.
func notifiedAfter(r *receiver.Server, t time.Time) bool {
	for _, n := range r.Notifications() {
		var p struct{ Messages []string }
		if json.Unmarshal(n.Body, &p) != nil || !n.At.After(t) {
			continue
		}
		for _, m := range p.Messages {
			if m == core.MsgEventsChanged {
				return true
			}
		}
	}
	return false
}

// waitQueueEmpty waits until hookgate reports no unacknowledged marker.
func waitQueueEmpty(t *testing.T, g *gatewayProc) {
	t.Helper()
	if !eventually(patience, func() bool { return g.metric(t, "hookgate_queue_depth") == 0 }) {
		t.Fatalf("the queue never drained (depth %v after %s)", g.metric(t, "hookgate_queue_depth"), patience)
	}
}
