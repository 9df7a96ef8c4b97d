package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bench/receiver"
	"github.com/hookgate/hookgate/bench/upstream"
)

// gatewayProc is the real hookgate binary started by a test, with the
// stderr it wrote kept for inspection.
type gatewayProc struct {
	cmd         *exec.Cmd
	listen, ops string
	mu          sync.Mutex
	logs        strings.Builder
	done        chan struct{}
}

// startGateway starts the binary with args after -listen and -ops-listen
// and waits for /healthz.
func startGateway(t *testing.T, args ...string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{listen: freeAddr(t), ops: freeAddr(t), done: make(chan struct{})}
	g.cmd = exec.Command(binary(t), append([]string{"-listen", g.listen, "-ops-listen", g.ops}, args...)...)
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(g.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			g.mu.Lock()
			g.logs.WriteString(sc.Text() + "\n")
			g.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if g.cmd.ProcessState == nil {
			g.cmd.Process.Kill()
			g.cmd.Wait()
		}
	})
	waitFor(t, "http://"+g.ops+"/healthz")
	return g
}

// stop sends sig and waits for the exit, at most within.
func (g *gatewayProc) stop(t *testing.T, sig syscall.Signal, within time.Duration) (exit int, took time.Duration) {
	t.Helper()
	start := time.Now()
	g.cmd.Process.Signal(sig)
	waited := make(chan struct{})
	go func() { g.cmd.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(within):
		g.cmd.Process.Kill()
		<-waited
		t.Fatalf("hookgate did not exit within %s of %v", within, sig)
	}
	<-g.done
	return g.cmd.ProcessState.ExitCode(), time.Since(start)
}

func (g *gatewayProc) stderr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.String()
}

// metric reads one series from /metrics; -1 if absent.
func (g *gatewayProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.ops + "/metrics")
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
	resp, err := http.Get("http://" + g.ops + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// outcome is one client request: its status (0 for a transport error)
// and how long it took.
type outcome struct {
	status int
	took   time.Duration
}

// mutators posts events.create for alice from n goroutines until stop is
// closed, and returns every outcome.
func mutators(addr string, n int, stop chan struct{}) func() []outcome {
	var mu sync.Mutex
	var all []outcome
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				st, _ := postEvent(addr)
				o := outcome{status: st, took: time.Since(start)}
				mu.Lock()
				all = append(all, o)
				mu.Unlock()
				if st == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	return func() []outcome {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return append([]outcome(nil), all...)
	}
}

// changeStream posts alice's changes from several goroutines and keeps
// count of those answered 2xx and of when the latest was answered.
type changeStream struct {
	mu    sync.Mutex
	acked int
	last  time.Time
	quit  chan struct{}
	wg    sync.WaitGroup
}

// startChanges starts n posting goroutines against addr. With
// untilRefused, a goroutine ends at the first refused connection (the
// gateway is gone); otherwise it waits a little and goes on.
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

// stop ends the stream and returns how many changes were answered 2xx and
// when the latest was.
func (s *changeStream) stop() (acked int, last time.Time) {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked, s.last
}

// TestUpstreamFaults runs the binary in front of an upstream that goes
// down, comes back, turns slow past -upstream-timeout, then flaps every
// 150 ms, while clients keep posting changes. Every client gets an answer
// quickly (2xx, or 502/503/504 in the Pryv error shape), a marker is
// written for exactly the changes answered 2xx, and hookgate recovers by
// itself once the upstream is back.
func TestUpstreamFaults(t *testing.T) {
	upAddr := freeAddr(t)
	var upMu sync.Mutex
	var stopUp func()
	upStart := func(o upstream.Options) {
		upMu.Lock()
		defer upMu.Unlock()
		for i := 0; ; i++ {
			_, stop, err := upstream.New(o).Start(upAddr)
			if err == nil {
				stopUp = stop
				return
			}
			if i == 50 {
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
	stop := make(chan struct{})
	wait := mutators(g.listen, 4, stop)

	phase := func(name string, d time.Duration) {
		t.Logf("upstream %s for %s", name, d)
		time.Sleep(d)
	}
	phase("up", 500*time.Millisecond)
	upStop()
	phase("down", 800*time.Millisecond)
	upStart(upstream.Options{})
	phase("back up", 500*time.Millisecond)
	upStop()
	upStart(upstream.Options{ServiceTime: 3 * timeout})
	phase("slow", 1200*time.Millisecond)
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

	// Recovery: within a second of the upstream coming back for good,
	// changes go through again.
	recovered := time.Now().Add(time.Second)
	for {
		st, _ := postEvent(g.listen)
		if st == 201 {
			break
		}
		if time.Now().After(recovered) {
			t.Fatalf("hookgate did not recover within 1 s of the upstream coming back (last status %d)", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	phase("up, recovered", 300*time.Millisecond)
	close(stop)
	all := wait()

	counts := map[int]int{}
	var slowest time.Duration
	for _, o := range all {
		counts[o.status]++
		slowest = max(slowest, o.took)
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
	// Nothing hangs: the slowest answer is a timed-out upstream, plus slack.
	if slowest > timeout+time.Second {
		t.Errorf("slowest answer took %s; the upstream timeout is %s", slowest, timeout)
	}
	// One marker per change answered 2xx (the recovery probe included),
	// none for the failed ones.
	if got, want := g.metric(t, "hookgate_markers_written_total"), float64(counts[201]+1); got != want {
		t.Errorf("markers written: %v; want %v (one per 2xx answer)", got, want)
	}
	if st, body := g.ready(t); st != 200 {
		t.Errorf("/readyz after recovery: %d %s", st, body)
	}
	if exit, took := g.stop(t, syscall.SIGTERM, 20*time.Second); exit != 0 {
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

func call(addr, method, path, body string) (int, string) {
	req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "alice-app")
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond every 20 ms for at most d.
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
func TestDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=96m"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v): run as root", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)

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
	if !eventually(5*time.Second, func() bool { return recv.Count() >= 1 }) {
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
	time.Sleep(200 * time.Millisecond) // hookgate looks at the disk at most every 100 ms while it has room

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

	// Room again: no restart needed.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the webhook's window
	seen := recv.Count()
	if st, b := postEvent(g.listen); st != 201 {
		t.Fatalf("a change once the disk has room: %d %s", st, b)
	}
	if !eventually(5*time.Second, func() bool { return recv.Count() > seen }) {
		t.Fatal("the change made once the disk had room was not notified")
	}
	if !eventually(2*time.Second, func() bool { st, _ := g.ready(t); return st == 200 }) {
		st, body := g.ready(t)
		t.Fatalf("/readyz once the disk has room: %d %s", st, body)
	}
	if g.metric(t, "hookgate_disk_free_bytes") < reserve {
		t.Errorf("hookgate_disk_free_bytes %v below the reserve after freeing the disk", g.metric(t, "hookgate_disk_free_bytes"))
	}
	if exit, _ := g.stop(t, syscall.SIGTERM, 20*time.Second); exit != 0 {
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
func TestSIGTERMUnderLoad(t *testing.T) {
	up := startUpstream(t, upstream.Options{ServiceTime: 20 * time.Millisecond})
	recvs := startReceivers(t, 3)
	dir := t.TempDir()
	args := []string{"-upstream", up, "-data-dir", dir, "-allow-cidrs", "127.0.0.0/8", "-min-interval", "5s",
		"-shutdown-timeout", "5s", "-log-level", "warn"}
	g := startGateway(t, args...)
	for i, r := range recvs {
		createWebhook(t, g.listen, fmt.Sprintf("http://%s/term%d", r.Addr(), i))
	}

	changes := startChanges(g.listen, 8, false)
	time.Sleep(700 * time.Millisecond)
	exit, took := g.stop(t, syscall.SIGTERM, 10*time.Second)
	n, last := changes.stop()
	if exit != 0 {
		t.Fatalf("exit %d after SIGTERM; logs:\n%s", exit, g.stderr())
	}
	if took > 5*time.Second+2*time.Second {
		t.Errorf("the drain took %s; -shutdown-timeout is 5s", took)
	}
	if n == 0 {
		t.Fatal("no change was answered before SIGTERM")
	}

	// The 5 s window holds the last changes in pending sets; after the
	// restart they must still reach every webhook.
	g = startGateway(t, args...)
	for i, r := range recvs {
		if !eventually(10*time.Second, func() bool { return notifiedAfter(r, last) }) {
			t.Fatalf("webhook %d got no notification after the last change answered before SIGTERM (%d answered)", i, n)
		}
	}
	t.Logf("%d changes answered under load; SIGTERM drained in %s; after restart every webhook was notified", n, took)
	g.stop(t, syscall.SIGTERM, 10*time.Second)
}

// TestReceiverFaults runs the binary with six webhooks on one user: a
// healthy receiver, one slower than -delivery-timeout, one answering 500,
// one answering 429 with Retry-After: 2, one answering 410 and one whose
// port is closed; changes keep coming every 250 ms. SPEC §3.5: 410 turns
// its webhook inactive at once; every other failure is retried after
// minIntervalMs × currentRetries (a longer Retry-After wins) and turns the
// webhook inactive past maxRetries; the healthy webhook is notified on
// time throughout, at most once a window.
func TestReceiverFaults(t *testing.T) {
	up := startUpstream(t, upstream.Options{})
	recv := startReceivers(t, 1)[0]
	g := startGateway(t, "-upstream", up, "-data-dir", t.TempDir(), "-allow-cidrs", "127.0.0.0/8",
		"-min-interval", "1s", "-max-retries", "2", "-delivery-timeout", "500ms", "-log-level", "warn")
	base := "http://" + recv.Addr() + "/r?u="
	urls := map[string]string{
		"healthy":  base + "healthy",
		"slow":     base + "slow&_delayMs=1500",
		"failing":  base + "failing&_status=500",
		"throttle": base + "throttle&_status=429&_retryAfter=2",
		"gone":     base + "gone&_status=410",
		"down":     "http://" + freeAddr(t) + "/r",
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
	if !eventually(time.Second, func() bool { return len(recv.Notifications()) > 0 }) {
		t.Fatal("the healthy webhook was not notified within 1 s")
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
	ok := eventually(12*time.Second, allInactive)
	close(quit)
	<-done
	if !ok {
		for _, name := range failing {
			state, runs := get(name)
			t.Logf("%s: %s %v", name, state, runs)
		}
		t.Fatalf("not every failing webhook turned inactive within 12 s")
	}
	elapsed := time.Since(start)

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
		// jitter; Retry-After: 2 stretches the first wait to 2 s.
		wantFirst := 1.0
		if name == "throttle" {
			wantFirst = 2.0
		}
		if -first < wantFirst-0.05 || -second < 2.0-0.05 {
			t.Errorf("%s: %s waited %.2f s then %.2f s between attempts; want at least %.1f s then 2 s", name, state, -first, -second, wantFirst)
		}
	}
	// The healthy webhook kept its pace next to all that.
	var arrivals []time.Time
	for _, n := range recv.Notifications() {
		if strings.Contains(n.Path, "u=healthy") {
			arrivals = append(arrivals, n.At)
		}
	}
	if need := int(elapsed.Seconds()) - 1; len(arrivals) < need {
		t.Errorf("the healthy webhook got %d notifications in %s of changes; want at least %d", len(arrivals), elapsed.Round(time.Millisecond), need)
	}
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
	t.Logf("%d notifications to the healthy webhook in %s while 5 others failed and turned inactive", len(arrivals), elapsed.Round(time.Millisecond))
}
