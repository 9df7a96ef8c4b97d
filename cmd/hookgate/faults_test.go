package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bench/receiver"
	"github.com/hookgate/hookgate/bench/upstream"
	"github.com/hookgate/hookgate/internal/testnet"
)

// metric reads one series from /metrics; -1 if absent.
func (g *gatewayProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := opsClient.Get("http://" + g.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func (g *gatewayProc) ready(t *testing.T) (int, string) {
	t.Helper()
	resp, err := opsClient.Get("http://" + g.ops + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// opsClient reads hookgate's ops endpoints; its timeout only turns a hang
// into an error.
var opsClient = &http.Client{Timeout: patience}

// outcome is one client request: its status (0 for a transport error)
// and how long it took.
type outcome struct {
	status int
	took   time.Duration
}

// loadGen posts events.create for alice from several goroutines until
// finish is called, and keeps every outcome.
type loadGen struct {
	mu     sync.Mutex
	all    []outcome
	counts map[int]int
	quit   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// startLoad starts n posting goroutines against addr.
//
// Real time: after a transport error a goroutine pauses 10 ms before its
// next request, so as not to spin; nothing is asserted on that pause.
func startLoad(addr string, n int) *loadGen {
	l := &loadGen{counts: map[int]int{}, quit: make(chan struct{})}
	for range n {
		l.wg.Go(func() {
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				start := time.Now()
				st, _ := postEvent(addr)
				o := outcome{status: st, took: time.Since(start)}
				l.mu.Lock()
				l.all = append(l.all, o)
				l.counts[st]++
				l.mu.Unlock()
				if st == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	return l
}

// count returns how many requests were answered with status so far.
func (l *loadGen) count(status int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[status]
}

// statuses returns a copy of the counts per status.
func (l *loadGen) statuses() map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.counts)
}

// finish stops the goroutines, waits for their last requests, and returns
// every outcome. It may be called more than once.
func (l *loadGen) finish() []outcome {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]outcome(nil), l.all...)
}

// changeStream posts alice's changes from several goroutines and keeps
// count of those answered 2xx and of when the latest was answered.
type changeStream struct {
	mu    sync.Mutex
	acked int
	last  time.Time
	quit  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// startChanges starts n posting goroutines against addr. With
// untilRefused, a goroutine ends at the first refused connection (the
// gateway is gone); otherwise it waits a little and goes on.
//
// Real time: the little wait (5 ms) only keeps a goroutine from spinning
// against a gateway that is gone; nothing is asserted on it.
func startChanges(addr string, n int, untilRefused bool) *changeStream {
	s := &changeStream{quit: make(chan struct{})}
	for range n {
		s.wg.Go(func() {
			for {
				select {
				case <-s.quit:
					return
				default:
				}
				st, _ := postEvent(addr)
				switch {
				case st == 201:
					s.mu.Lock()
					s.acked++
					s.last = time.Now()
					s.mu.Unlock()
				case st == 0 && untilRefused:
					return
				case st == 0:
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	return s
}

// count returns how many changes were answered 2xx so far.
func (s *changeStream) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// waitAcked waits until at least n changes were answered 2xx, and fails
// the test if that does not happen within patience.
func (s *changeStream) waitAcked(t *testing.T, n int) {
	t.Helper()
	if !eventually(patience, func() bool { return s.count() >= n }) {
		t.Fatalf("only %d changes answered 2xx within %s; waiting for %d", s.count(), patience, n)
	}
}

// stop ends the stream and returns how many changes were answered 2xx and
// when the latest was. It may be called more than once.
func (s *changeStream) stop() (acked int, last time.Time) {
	s.once.Do(func() { close(s.quit) })
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked, s.last
}

// TestUpstreamFaults runs the binary in front of an upstream that goes
// down, comes back, turns slow past -upstream-timeout, then flaps every
// 150 ms, while clients keep posting changes. Every client gets an answer
// (2xx, or 502/503/504 in the Pryv error shape; never a hang), a marker is
// written for exactly the changes answered 2xx, and hookgate recovers by
// itself once the upstream is back.
//
// Real time: a real process in front of a real upstream that is stopped
// and restarted. The phase lengths are the fault schedule, not
// assertions: each phase lasts at least its length and until a client has
// seen its answer (201 up, 502 down, 504 slow), so every count asserted
// is certain. The only duration asserted is a lower bound: a 504 for the
// slow upstream came after at least -upstream-timeout.
func TestUpstreamFaults(t *testing.T) {
	upAddr := freeAddr(t)
	var upMu sync.Mutex
	var stopUp func()
	upStart := func(o upstream.Options) {
		upMu.Lock()
		defer upMu.Unlock()
		deadline := time.Now().Add(patience)
		for {
			_, stop, err := upstream.New(o).Start(upAddr)
			if err == nil {
				stopUp = stop
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("restarting the upstream on %s: %v", upAddr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	upStop := func() {
		upMu.Lock()
		defer upMu.Unlock()
		if stopUp != nil {
			stopUp()
			stopUp = nil
		}
	}
	defer upStop()
	upStart(upstream.Options{})

	const timeout = 400 * time.Millisecond
	g := startGateway(t, "-upstream", upAddr, "-data-dir", t.TempDir(), "-upstream-timeout", timeout.String(),
		"-dial-timeout", "200ms", "-log-level", "debug")
	load := startLoad(g.listen, 4)
	defer load.finish() // on a failure path too: no request outlives the test

	// phase keeps the upstream as it is for at least d, and until a client
	// has been answered want (once more than before the phase).
	phase := func(name string, d time.Duration, want int) {
		t.Helper()
		t.Logf("upstream %s for at least %s, until a client gets %d", name, d, want)
		before := load.count(want)
		time.Sleep(d)
		if !eventually(patience, func() bool { return load.count(want) > before }) {
			t.Fatalf("upstream %s: no client got %d within %s; statuses so far %v", name, want, patience, load.statuses())
		}
	}
	phase("up", 500*time.Millisecond, 201)
	upStop()
	phase("down", 800*time.Millisecond, 502)
	upStart(upstream.Options{})
	phase("back up", 500*time.Millisecond, 201)
	upStop()
	upStart(upstream.Options{ServiceTime: 3 * timeout})
	phase("slow", 1200*time.Millisecond, 504)
	upStop()
	flapEnd := time.Now().Add(1500 * time.Millisecond)
	for up := false; time.Now().Before(flapEnd); up = !up {
		if up {
			upStop()
		} else {
			upStart(upstream.Options{})
		}
		time.Sleep(150 * time.Millisecond)
	}
	upStop()
	upStart(upstream.Options{})
	t.Log("upstream up for good")

	// Recovery: once the upstream is back for good, changes go through
	// again without a restart. The probe stops at its first 201.
	var probe int
	if !eventually(patience, func() bool { probe, _ = postEvent(g.listen); return probe == 201 }) {
		t.Fatalf("hookgate did not recover within %s of the upstream coming back (last status %d)", patience, probe)
	}
	phase("up, recovered", 300*time.Millisecond, 201)
	all := load.finish()

	counts := map[int]int{}
	var slowest, slowest504 time.Duration
	for _, o := range all {
		counts[o.status]++
		slowest = max(slowest, o.took)
		if o.status == 504 {
			slowest504 = max(slowest504, o.took)
		}
	}
	t.Logf("%d requests: %v; slowest answer %s", len(all), counts, slowest)
	for st := range counts {
		switch st {
		case 201, 502, 503, 504:
		default:
			t.Errorf("status %d: only 201, 502, 503 or 504 expected (0 is a hang or a broken connection)", st)
		}
	}
	if counts[201] == 0 || counts[502] == 0 || counts[504] == 0 {
		t.Errorf("each phase should show: 201 (up), 502 (down), 504 (slow); got %v", counts)
	}
	// The slow upstream's 504s waited for the upstream timeout (a lower
	// bound: hookgate must not give up early).
	if slowest504 < timeout {
		t.Errorf("the slowest 504 took %s; the upstream timeout is %s", slowest504, timeout)
	}
	// One marker per change answered 2xx (the recovery probe included),
	// none for the failed ones.
	if got, want := g.metric(t, "hookgate_markers_written_total"), float64(counts[201]+1); got != want {
		t.Errorf("markers written: %v; want %v (one per 2xx answer)", got, want)
	}
	// /readyz follows the latest upstream exchange: once one succeeds it
	// is ready again. (Should the load's very last request have timed out
	// on a loaded machine, the next change is that exchange.)
	if !eventually(patience, func() bool {
		if st, _ := g.ready(t); st == 200 {
			return true
		}
		postEvent(g.listen)
		return false
	}) {
		st, body := g.ready(t)
		t.Errorf("/readyz after recovery: %d %s", st, body)
	}
	if exit, took := g.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Errorf("exit %d after %s", exit, took)
	}
	if logs := g.stderr(); strings.Contains(logs, "alice-app") {
		t.Errorf("a token appears in the logs:\n%s", logs)
	}
}

// postEvent sends one events.create for alice and returns the status
// (0 on a transport error) and body.
func postEvent(addr string) (int, string) {
	return call(addr, "POST", "/alice/events", `{"streamIds":["diary"],"type":"note/txt","content":"x"}`)
}

// startUpstream starts the demo upstream on loopback until the test ends.
func startUpstream(t *testing.T, o upstream.Options) string {
	t.Helper()
	up, stop, err := upstream.New(o).Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return up
}

// startReceivers starts n demo receivers on loopback until the test ends.
func startReceivers(t *testing.T, n int) []*receiver.Server {
	t.Helper()
	var recvs []*receiver.Server
	for range n {
		r := receiver.New(receiver.Options{})
		_, stop, err := r.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		recvs = append(recvs, r)
	}
	return recvs
}

// createWebhook creates alice's webhook to url and fails the test
// otherwise.
func createWebhook(t *testing.T, addr, url string) {
	t.Helper()
	st, body := call(addr, "POST", "/alice/webhooks", `{"url":"`+url+`"}`)
	if st != 201 {
		t.Fatalf("creating a webhook: %d %s", st, body)
	}
}

// apiClient makes the tests' requests to hookgate's proxy; its timeout
// only turns a hang into a transport error (status 0), which every test
// counts as a failure.
var apiClient = &http.Client{Timeout: patience}

// call sends one request with alice's app token and returns the status
// (0 on a transport error) and body.
func call(addr, method, path, body string) (int, string) {
	req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "alice-app")
	req.Header.Set("Content-Type", "application/json")
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond every 20 ms until it holds, for at most d, and
// reports whether it held.
//
// Real time: it polls real processes; d is a failure bound only (callers
// pass patience), and the interval only sets how soon an outcome that is
// already there is seen.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDiskFull runs the binary on a small tmpfs, fills the disk past
// -min-free-disk, and checks that clients still get their answers, the
// failed markers are counted, /readyz fails and names the disk, the
// webhooks API answers 503; then frees the disk and checks that the next
// change is marked and notified and /readyz recovers, without a restart.
// It needs to mount a tmpfs (root, as on CI); elsewhere it is skipped.
//
// Real time: a real process on a real (tmpfs) disk. hookgate looks at a
// disk with room at most every 100 ms, so instead of sleeping past that
// the test waits for /readyz to report the full disk: from then on every
// write looks at the disk, and the counts asserted are certain.
func TestDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=96m"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v): run as root", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) }) // after the gateway is killed

	up := startUpstream(t, upstream.Options{})
	recv := startReceivers(t, 1)[0]
	raddr := recv.Addr()

	const reserve = 16 << 20
	g := startGateway(t, "-upstream", up, "-data-dir", filepath.Join(mnt, "data"), "-min-free-disk", strconv.Itoa(reserve),
		"-allow-cidrs", "127.0.0.0/8", "-min-interval", "1s", "-log-level", "warn")
	createWebhook(t, g.listen, "http://"+raddr+"/disk")
	if st, b := postEvent(g.listen); st != 201 {
		t.Fatalf("a change with room on the disk: %d %s", st, b)
	}
	if !eventually(patience, func() bool { return recv.Count() >= 1 }) {
		t.Fatal("no notification with room on the disk")
	}

	// Fill the disk to below the reserve.
	ballast := filepath.Join(mnt, "ballast")
	f, err := os.Create(ballast)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for free := freeBytes(t, mnt); free >= reserve/2; free = freeBytes(t, mnt) {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	t.Logf("disk filled: %d bytes free, %d reserved", freeBytes(t, mnt), reserve)
	// hookgate sees the full disk at its next look; /readyz makes it look.
	if !eventually(patience, func() bool {
		st, body := g.ready(t)
		return st == 503 && strings.Contains(body, "disk: failing")
	}) {
		st, body := g.ready(t)
		t.Fatalf("/readyz never reported the full disk: %d %q", st, body)
	}

	errorsBefore := g.metric(t, "hookgate_marker_errors_total")
	const n = 20
	for i := range n {
		if st, b := postEvent(g.listen); st != 201 {
			t.Fatalf("change %d with the disk full: %d %s; the client must still get the upstream's answer", i, st, b)
		}
	}
	if got := g.metric(t, "hookgate_marker_errors_total") - errorsBefore; got != n {
		t.Errorf("marker errors counted with the disk full: %v; want %d", got, n)
	}
	if st, body := g.ready(t); st != 503 || !strings.Contains(body, "disk: failing") {
		t.Errorf("/readyz with the disk full: %d %q; want 503 naming the disk", st, body)
	}
	if st, body := call(g.listen, "POST", "/alice/webhooks", `{"url":"http://`+raddr+`/disk2"}`); st != 503 ||
		!strings.Contains(body, `"id":"api-unavailable"`) {
		t.Errorf("creating a webhook with the disk full: %d %s; want 503 api-unavailable", st, body)
	}

	// Room again: no restart needed. The change is notified at once or at
	// the end of the webhook's 1 s window, whichever comes later.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	if st, b := postEvent(g.listen); st != 201 {
		t.Fatalf("a change once the disk has room: %d %s", st, b)
	}
	if !eventually(patience, func() bool { return notifiedAfter(recv, freed) }) {
		t.Fatal("the change made once the disk had room was not notified")
	}
	if !eventually(patience, func() bool { st, _ := g.ready(t); return st == 200 }) {
		st, body := g.ready(t)
		t.Fatalf("/readyz once the disk has room: %d %s", st, body)
	}
	if g.metric(t, "hookgate_disk_free_bytes") < reserve {
		t.Errorf("hookgate_disk_free_bytes %v below the reserve after freeing the disk", g.metric(t, "hookgate_disk_free_bytes"))
	}
	if exit, _ := g.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Errorf("exit %d; logs:\n%s", exit, g.stderr())
	}
}

func freeBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// TestSIGTERMUnderLoad stops the binary with SIGTERM while clients stream
// changes and the webhooks hold changes waiting for their rate window:
// the drain is bounded, every request answered 2xx before the exit is
// followed, after a restart, by a notification to every webhook, and
// clients get either an answer or a refused connection, never a hang.
//
// Real time: a real process under real load. SIGTERM comes once every
// webhook has had its first notification and 20 more changes were
// answered, so changes are certainly waiting in the 5 s windows; the
// drain is only bounded generously (it must not wait forever).
func TestSIGTERMUnderLoad(t *testing.T) {
	up := startUpstream(t, upstream.Options{ServiceTime: 20 * time.Millisecond})
	recvs := startReceivers(t, 3)
	dir := t.TempDir()
	const shutdownTimeout = 5 * time.Second
	args := []string{"-upstream", up, "-data-dir", dir, "-allow-cidrs", "127.0.0.0/8", "-min-interval", "5s",
		"-shutdown-timeout", shutdownTimeout.String(), "-log-level", "warn"}
	g := startGateway(t, args...)
	for i, r := range recvs {
		createWebhook(t, g.listen, fmt.Sprintf("http://%s/term%d", r.Addr(), i))
	}

	changes := startChanges(g.listen, 8, false)
	defer changes.stop()
	for i, r := range recvs {
		if !eventually(patience, func() bool { return r.Count() > 0 }) {
			t.Fatalf("webhook %d got no first notification within %s", i, patience)
		}
	}
	changes.waitAcked(t, changes.count()+20) // these wait for the 5 s window
	exit, took := g.stop(t, syscall.SIGTERM, patience)
	n, last := changes.stop()
	if exit != 0 {
		t.Fatalf("exit %d after SIGTERM; logs:\n%s", exit, g.stderr())
	}
	if bound := shutdownTimeout + 20*time.Second; took > bound {
		t.Errorf("the drain took %s; -shutdown-timeout is %s", took, shutdownTimeout)
	}

	// The 5 s window holds the last changes in pending sets; after the
	// restart they must still reach every webhook.
	g = startGateway(t, args...)
	for i, r := range recvs {
		if !eventually(patience, func() bool { return notifiedAfter(r, last) }) {
			t.Fatalf("webhook %d got no notification after the last change answered before SIGTERM (%d answered)", i, n)
		}
	}
	t.Logf("%d changes answered under load; SIGTERM drained in %s; after restart every webhook was notified", n, took)
	if exit, _ := g.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Errorf("exit %d after the second SIGTERM", exit)
	}
}

// refusedAddr: see testnet.RefusedAddr.
func refusedAddr(t *testing.T) string { return testnet.RefusedAddr(t) }

// TestReceiverFaults runs the binary with six webhooks on one user: a
// healthy receiver, one that never answers (held past -delivery-timeout),
// one answering 500, one answering 429 with Retry-After: 2, one answering
// 410 and one whose port refuses connections; changes keep coming every
// 250 ms. SPEC §3.5: 410 turns its webhook inactive at once; every other
// failure is retried after minIntervalMs × currentRetries (a longer
// Retry-After wins) and turns the webhook inactive past maxRetries; the
// healthy webhook keeps being notified meanwhile, at most once a window.
//
// Real time: a real process delivering over real sockets. Every wait is
// for an outcome, bounded by patience; the durations asserted are lower
// bounds the product must respect (the waits between attempts, the
// healthy webhook's window), never upper ones. The one speed assumed is
// that a loopback delivery answered at once ends within -delivery-timeout
// (2 s, a thousand times what it takes); each attempt to the receiver that
// never answers costs that timeout.
func TestReceiverFaults(t *testing.T) {
	up := startUpstream(t, upstream.Options{})
	recv := startReceivers(t, 1)[0]
	// The slow receiver holds every notification until the test ends:
	// hookgate's delivery timeout is what ends each attempt.
	hold := make(chan struct{})
	var slowHits atomic.Int64
	slow := receiver.New(receiver.Options{OnNotification: func(receiver.Notification) {
		slowHits.Add(1)
		<-hold
	}})
	if _, stop, err := slow.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	} else {
		t.Cleanup(stop)
	}
	t.Cleanup(func() { close(hold) }) // runs before the receiver stops
	g := startGateway(t, "-upstream", up, "-data-dir", t.TempDir(), "-allow-cidrs", "127.0.0.0/8",
		"-min-interval", "1s", "-max-retries", "2", "-delivery-timeout", "2s", "-log-level", "warn")
	base := "http://" + recv.Addr() + "/r?u="
	urls := map[string]string{
		"healthy":  base + "healthy",
		"slow":     "http://" + slow.Addr() + "/r?u=slow",
		"failing":  base + "failing&_status=500",
		"throttle": base + "throttle&_status=429&_retryAfter=2",
		"gone":     base + "gone&_status=410",
		"down":     "http://" + refusedAddr(t) + "/r",
	}
	ids := map[string]string{}
	for name, url := range urls {
		st, body := call(g.listen, "POST", "/alice/webhooks", `{"url":"`+url+`"}`)
		if st != 201 {
			t.Fatalf("creating %s: %d %s", name, st, body)
		}
		var c struct{ Webhook struct{ ID string } }
		if err := json.Unmarshal([]byte(body), &c); err != nil {
			t.Fatal(err)
		}
		ids[name] = c.Webhook.ID
	}
	type run struct {
		Status    int
		Timestamp float64
	}
	get := func(name string) (state string, runs []run) {
		st, body := call(g.listen, "GET", "/alice/webhooks/"+ids[name], "")
		if st != 200 {
			t.Fatalf("reading %s: %d %s", name, st, body)
		}
		var w struct {
			Webhook struct {
				State string
				Runs  []run
			}
		}
		json.Unmarshal([]byte(body), &w)
		return w.Webhook.State, w.Webhook.Runs
	}

	start := time.Now()
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			postEvent(g.listen)
			select {
			case <-quit:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	stopChanges := sync.OnceFunc(func() { close(quit); <-done })
	defer stopChanges()
	healthyArrivals := func() []time.Time {
		var at []time.Time
		for _, n := range recv.Notifications() {
			if strings.Contains(n.Path, "u=healthy") {
				at = append(at, n.At)
			}
		}
		return at
	}
	if !eventually(patience, func() bool { return len(healthyArrivals()) > 0 }) {
		t.Fatalf("the healthy webhook was not notified within %s", patience)
	}
	failing := []string{"slow", "failing", "throttle", "gone", "down"}
	allInactive := func() bool {
		for _, name := range failing {
			if state, _ := get(name); state != "inactive" {
				return false
			}
		}
		return true
	}
	ok := eventually(patience, allInactive)
	stopChanges()
	if !ok {
		for _, name := range failing {
			state, runs := get(name)
			t.Logf("%s: %s %v", name, state, runs)
		}
		t.Fatalf("not every failing webhook turned inactive within %s", patience)
	}
	elapsed := time.Since(start)

	// The span from the first failed attempt to the last, on hookgate's
	// clock: at least 4 s (throttle waits 2 s twice).
	spanFrom, spanTo := math.Inf(1), math.Inf(-1)
	for _, name := range failing {
		state, runs := get(name)
		want := 3 // the first attempt and maxRetries (2) retries
		if name == "gone" {
			want = 1
		}
		if len(runs) != want {
			t.Errorf("%s: %d runs %v; want %d", name, len(runs), runs, want)
			continue
		}
		// Runs are newest first.
		spanFrom, spanTo = min(spanFrom, runs[len(runs)-1].Timestamp), max(spanTo, runs[0].Timestamp)
		for i, r := range runs {
			wantStatus := map[string]int{"slow": 0, "failing": 500, "throttle": 429, "gone": 410, "down": 0}[name]
			if r.Status != wantStatus {
				t.Errorf("%s: run %d status %d; want %d", name, i, r.Status, wantStatus)
			}
		}
		if name == "gone" {
			continue
		}
		first := runs[len(runs)-1].Timestamp - runs[len(runs)-2].Timestamp
		second := runs[len(runs)-2].Timestamp - runs[len(runs)-3].Timestamp
		// Pryv's rule: minIntervalMs × currentRetries, plus a little
		// jitter; Retry-After: 2 stretches the first wait to 2 s. These
		// are lower bounds: hookgate must wait at least that long.
		wantFirst := 1.0
		if name == "throttle" {
			wantFirst = 2.0
		}
		if -first < wantFirst-0.05 || -second < 2.0-0.05 {
			t.Errorf("%s: %s waited %.2f s then %.2f s between attempts; want at least %.1f s then 2 s", name, state, -first, -second, wantFirst)
		}
	}
	// The healthy webhook was served next to all that: it stayed active,
	// every delivery succeeded, it was notified while the others were
	// still failing (an order, not a rate: between their first and last
	// attempts, at least 4 s apart), and never twice within its 1 s window
	// (each notification is sent at least 1 s after the previous one was
	// answered, so this lower bound holds on any machine).
	state, runs := get("healthy")
	if state != "active" {
		t.Errorf("the healthy webhook is %s", state)
	}
	during := 0
	for _, r := range runs {
		if r.Status != 200 {
			t.Errorf("the healthy webhook has a run with status %d: %v", r.Status, runs)
		}
		if r.Timestamp > spanFrom && r.Timestamp < spanTo {
			during++
		}
	}
	if during == 0 {
		t.Errorf("the healthy webhook got no notification between the first failed attempt (%.3f) and the last (%.3f); its runs: %v",
			spanFrom, spanTo, runs)
	}
	arrivals := healthyArrivals()
	for i := 1; i < len(arrivals); i++ {
		if gap := arrivals[i].Sub(arrivals[i-1]); gap < 950*time.Millisecond {
			t.Errorf("the healthy webhook got two notifications %s apart; its window is 1 s", gap)
		}
	}
	if got := g.metric(t, `hookgate_deliveries_total{outcome="gone"}`); got != 1 {
		t.Errorf(`hookgate_deliveries_total{outcome="gone"} = %v; want 1`, got)
	}
	if got := g.metric(t, "hookgate_webhook_deactivations_total"); got != 5 {
		t.Errorf("hookgate_webhook_deactivations_total = %v; want 5", got)
	}
	t.Logf("%d notifications to the healthy webhook (%d while the others failed) in %s; the slow receiver held %d attempts; 5 others turned inactive",
		len(arrivals), during, elapsed.Round(time.Millisecond), slowHits.Load())
}
