package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
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
func TestCrashDelivery(t *testing.T) {
	seed := crashSeed()
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("kill moments seeded with HOOKGATE_CRASH_SEED=%d", seed)
	up := startUpstream(t, upstream.Options{})
	const hooks = 3
	recvs := startReceivers(t, hooks)
	dir := t.TempDir()
	listen, ops := freeAddr(t), freeAddr(t)
	start := func() *exec.Cmd {
		cmd := exec.Command(binary(t), "-listen", listen, "-ops-listen", ops, "-upstream", up, "-data-dir", dir,
			"-allow-cidrs", "127.0.0.0/8", "-min-interval", "1s", "-log-level", "warn")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "http://"+ops+"/healthz")
		return cmd
	}
	cmd := start()
	for i, r := range recvs {
		createWebhook(t, listen, fmt.Sprintf("http://%s/hook%d", r.Addr(), i))
	}

	totalAcked, totalDup, totalPost := 0, 0, 0
	for cycle := range crashCycles() {
		changes := startChanges(listen, 4, true)
		time.Sleep(time.Duration(150+rng.IntN(600)) * time.Millisecond)
		if cycle%2 == 1 {
			// Odd cycles: the stream stops first and the engine acknowledges
			// every marker, so the last changes live only in the webhooks'
			// durable pending sets, waiting for their rate window.
			changes.stop()
			waitQueueEmpty(t, ops)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		n, last := changes.stop()
		if n == 0 {
			t.Fatalf("cycle %d: no change was answered before the kill", cycle)
		}
		totalAcked += n

		before := make([]int, hooks)
		for i, r := range recvs {
			before[i] = len(r.Notifications())
		}
		restarted := time.Now()
		cmd = start()
		for i, r := range recvs {
			deadline := time.Now().Add(10 * time.Second)
			for {
				if notifiedAfter(r, last) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("cycle %d: webhook %d got no eventsChanged after the last acknowledged change (%d acknowledged)", cycle, i, n)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		// Two windows with no change: whatever else arrives now is extra.
		time.Sleep(2200 * time.Millisecond)
		dup, post := 0, 0
		for i, r := range recvs {
			after := 0
			for _, nt := range r.Notifications()[before[i]:] {
				if nt.At.After(restarted) {
					after++
				}
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
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	var posts int64
	for _, r := range recvs {
		posts += r.Count()
	}
	t.Logf("crash summary: %d kill -9 cycles survived, %d changes acknowledged, all followed by a notification to each of %d webhooks; "+
		"%d notifications in all, %d after restarts, %d of them duplicates", crashCycles(), totalAcked, hooks, posts, totalPost, totalDup)
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
func waitQueueEmpty(t *testing.T, ops string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + ops + "/metrics")
		if err == nil {
			var b strings.Builder
			buf := make([]byte, 64<<10)
			for {
				n, err := resp.Body.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					break
				}
			}
			resp.Body.Close()
			if strings.Contains(b.String(), "\nhookgate_queue_depth 0\n") {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the queue never drained")
}
