package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/internal/natstest"
	"github.com/hookgate/hookgate/state"
)

// scaleSize is how many webhooks TestRegistryScale stores: 4,000 in make
// test (a few seconds), and HOOKGATE_SCALE_N where set (1000000: the
// million run, some ten minutes or more on two cores).
func scaleSize(t *testing.T) int {
	n, err := strconv.Atoi(os.Getenv("HOOKGATE_SCALE_N"))
	if err != nil || n <= 0 {
		return 4000
	}
	t.Logf("HOOKGATE_SCALE_N=%d", n)
	return n
}

// scaleImportBatch is how many webhooks one Import stores, as
// hookgate import does (cmd/hookgate/move.go, importBatch).
const scaleImportBatch = 10_000

// scalePendingBatch is how many pending sets one Write stores.
const scalePendingBatch = 1_000

// scaleHooks returns n webhooks of n/4 users, 4 each, in creation order:
// one in ten signed with a secret, one in fifty inactive, one in three
// with runs counted.
func scaleHooks(n int) []*core.Webhook {
	ws := make([]*core.Webhook, n)
	base := 1_700_000_000.0
	for i := range ws {
		user := fmt.Sprintf("user%07d", i/4)
		id := core.NewID()
		w := &core.Webhook{
			ID: id, User: user, AccessID: fmt.Sprintf("app-%d", i%2), State: core.StateActive,
			URL:           fmt.Sprintf("https://hooks%d.example.com/pryv/%s/notify?hook=%d&token=%s", i%97, user, i%4, id[:16]),
			MinIntervalMs: 5000, MaxRetries: 5, Runs: []core.Run{},
			Created: base + float64(i)/1000, CreatedBy: "ck" + id[:8], Modified: base + float64(i)/1000, ModifiedBy: "ck" + id[:8],
		}
		if i%10 == 0 {
			w.Signed, w.Secret = true, core.NewSigningSecret()
		}
		if i%50 == 1 {
			w.State = core.StateInactive
		}
		if i%3 == 0 {
			w.RunCount, w.FailCount, w.CurrentRetries = 7, 2, 1
			w.LastRun = core.Run{Status: 503, Timestamp: base + float64(i), DurationMs: 12.5, Error: "status"}
		}
		ws[i] = w
	}
	return ws
}

// scaleConnect connects to nodes within two minutes, the connection
// closed at the end of t; it counts the connection's asynchronous
// errors (slow consumers: a subscription dropped messages) in errs.
func scaleConnect(t *testing.T, nodes *natstest.Cluster, name string, sealer *webhooks.Sealer, errs *atomic.Int64) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	count := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, _ error) { errs.Add(1) })
	c, err := Connect(ctx, Options{URLs: nodes.URLs(), Name: name, Sealer: sealer, Timeout: 10 * time.Second, NATS: []nats.Option{count}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// scaleHeap returns the Go heap in use and allocated after a collection.
func scaleHeap() (inuse, alloc uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.HeapAlloc
}

// scalePeakRSS returns the process's peak resident set (VmHWM), or ""
// where /proc does not tell it.
func scalePeakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestRegistryScale stores N webhooks (scaleSize), a pending set for
// one in ten and a run for each on a three-node cluster, then starts a
// second instance: it
// loads every webhook through the bucket's watch, and the pending sets,
// and reads back what was stored. It logs the time of each step, and the
// Go heap the loaded registry holds. The servers run in this process:
// the heap figures include what they keep after the load.
//
// Real time: it measures the wall clock of each step, and waits on the
// cluster's acknowledgements and watches. Every wait is bounded: each
// publication and each pending set by the connection's 10 s request
// timeout, the connections by two minutes, the importing instance's
// catching up with the bucket by 30 request timeouts, the registry's
// load by a deadline of a minute plus a millisecond per webhook. It
// asserts outcomes, never durations.
func TestRegistryScale(t *testing.T) {
	n := scaleSize(t)
	nodes := natstest.Start(t, 3)
	sealer, err := webhooks.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName()
	var asyncErrs atomic.Int64
	c := scaleConnect(t, nodes, name, sealer, &asyncErrs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	r, err := c.OpenRegistry(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}

	// Import, as hookgate import does, scaleImportBatch per call.
	ws := scaleHooks(n)
	start := time.Now()
	for lo := 0; lo < n; lo += scaleImportBatch {
		if err := r.Import(ws[lo:min(lo+scaleImportBatch, n)]); err != nil {
			r.Close()
			t.Fatalf("import of webhooks %d-: %v", lo, err)
		}
	}
	importTime := time.Since(start)
	t.Logf("import: %d webhooks (%d users) in %d calls in %v: %.0f webhooks/s", n, (n+3)/4,
		(n+scaleImportBatch-1)/scaleImportBatch, importTime.Round(time.Millisecond), float64(n)/importTime.Seconds())

	// The importing instance's own watch: how far behind the bucket it
	// is, and how long it takes to catch up (each try bounded by the
	// request timeout). Not asserted: a figure.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	info, err := c.hooks.stream.Info(ctx)
	cancel()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	behind := info.State.LastSeq - r.applied.Load()
	start = time.Now()
	tries := 0
	for err = errors.New("not tried"); err != nil && tries < 30; tries++ {
		err = r.catchUp()
	}
	t.Logf("the importing instance's watch: %d entries behind after the import, caught up in %v (%d tries of %v; last error %v); asynchronous errors (slow consumer) so far: %d",
		behind, time.Since(start).Round(time.Millisecond), tries, c.o.Timeout, err, asyncErrs.Load())
	if err != nil {
		r.Close()
		t.Fatalf("the importing instance's watch did not catch up with the bucket: %v", err)
	}

	// Pending sets for one webhook in ten, scalePendingBatch per Write.
	pending := map[string]int{} // id: messages in its set
	var ps []state.PendingWrite
	for i := 0; i < n; i += 10 {
		set := &state.PendingSet{Messages: []string{core.MsgEventsChanged}}
		if i%20 == 0 {
			set.Messages = append(set.Messages, core.MsgStreamsChanged)
		}
		set.Retire = i%1000 == 0
		ps = append(ps, state.PendingWrite{ID: ws[i].ID, Set: set})
		pending[ws[i].ID] = len(set.Messages)
	}
	start = time.Now()
	for lo := 0; lo < len(ps); lo += scalePendingBatch {
		batch := ps[lo:min(lo+scalePendingBatch, len(ps))]
		if k, err := c.Pending().Bulk().Write(batch); err != nil || k != len(batch) {
			r.Close()
			t.Fatalf("pending sets %d-: %d of %d written: %v", lo, k, len(batch), err)
		}
	}
	pendingTime := time.Since(start)
	t.Logf("pending write: %d sets in %d writes in %v: %.0f sets/s", len(ps),
		(len(ps)+scalePendingBatch-1)/scalePendingBatch, pendingTime.Round(time.Millisecond), float64(len(ps))/pendingTime.Seconds())

	// A boot storm's runs: one run for every webhook, stored by one
	// Flush, each webhook's counters and run as one entry.
	storm := 1_800_000_000.0
	for i, w := range ws {
		run := core.Run{Status: 200, Timestamp: storm + float64(i)}
		if !r.RecordRun(w.ID, run, nil) {
			r.Close()
			t.Fatalf("webhook %s: no run recorded", w.ID)
		}
		w.CountRun(run)
	}
	start = time.Now()
	if err := r.Flush(); err != nil {
		r.Close()
		t.Fatalf("flush of %d webhooks' runs: %v", n, err)
	}
	flushTime := time.Since(start)
	t.Logf("flush: %d webhooks' counters and runs in %v: %.0f webhooks/s", n, flushTime.Round(time.Millisecond), float64(n)/flushTime.Seconds())

	// What to read back: 1,000 webhooks across the range, and the users
	// of the first few.
	step := max(1, n/1000)
	var sample []*core.Webhook
	for i := 0; i < n; i += step {
		sample = append(sample, ws[i].Clone())
	}
	active := 0
	for _, w := range ws {
		if w.State == core.StateActive {
			active++
		}
	}
	// The first instance stops; only the servers hold the webhooks now.
	r.Close()
	c.Close()
	ws, ps, r, c = nil, nil, nil, nil

	// A new instance loads every webhook through the watch.
	inuse0, alloc0 := scaleHeap()
	c2 := scaleConnect(t, nodes, name, sealer, &asyncErrs)
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute+time.Duration(n)*time.Millisecond)
	defer cancel()
	start = time.Now()
	r2, err := c2.OpenRegistry(ctx)
	loadTime := time.Since(start)
	if err != nil {
		t.Fatalf("loading %d webhooks: %v (after %v)", n, err, loadTime)
	}
	defer func() {
		if r2 != nil {
			r2.Close()
		}
	}()
	inuse1, alloc1 := scaleHeap()
	t.Logf("load: %d webhooks in %v: %.0f webhooks/s", n, loadTime.Round(time.Millisecond), float64(n)/loadTime.Seconds())
	t.Logf("heap after the load: in use %+.1f MiB (%.0f B/webhook), allocated %+.1f MiB (%.0f B/webhook)",
		scaleMiB(inuse1, inuse0), scalePerHook(inuse1, inuse0, n), scaleMiB(alloc1, alloc0), scalePerHook(alloc1, alloc0, n))

	// What the new instance holds.
	a, i := r2.Counts()
	if a+i != n || a != active {
		t.Fatalf("the new instance has %d active and %d inactive webhooks; want %d and %d", a, i, active, n-active)
	}
	each := 0
	r2.Each(func(*core.Webhook) bool { each++; return true })
	if each != n {
		t.Fatalf("Each gives %d webhooks; want %d", each, n)
	}
	// The resident record keeps only its last run's status and time; the
	// rest is the run history's (state.LastOfRuns).
	for _, want := range sample {
		got := r2.ByID(want.ID)
		if got == nil {
			t.Fatalf("webhook %s is missing", want.ID)
		}
		if got.User != want.User || got.AccessID != want.AccessID || got.URL != want.URL || got.State != want.State ||
			got.Secret != want.Secret || got.Signed != want.Signed || got.Created != want.Created || got.CreatedBy != want.CreatedBy ||
			got.Modified != want.Modified || got.MinIntervalMs != want.MinIntervalMs || got.MaxRetries != want.MaxRetries ||
			got.RunCount != want.RunCount || got.FailCount != want.FailCount || got.CurrentRetries != want.CurrentRetries ||
			got.LastRun.Status != want.LastRun.Status || got.LastRun.Timestamp != want.LastRun.Timestamp {
			t.Fatalf("webhook %s read back\n %+v\nwant\n %+v", want.ID, got, want)
		}
	}
	// Their run histories: the storm's run, read back from the
	// counters' history (the imported counts have none).
	for _, want := range sample[:min(100, len(sample))] {
		got, ok := r2.Get(want.User, want.ID)
		if !ok || len(got.Runs) != 1 || got.Runs[0] != want.LastRun {
			t.Fatalf("webhook %s's runs read back: %+v; want its last run %+v", want.ID, got.Runs, want.LastRun)
		}
	}
	for _, want := range sample[:min(10, len(sample))] {
		list := r2.List(want.User, "")
		if len(list) != 4 {
			t.Fatalf("user %s has %d webhooks; want 4", want.User, len(list))
		}
	}

	// The new instance loads the pending sets.
	start = time.Now()
	loaded := 0
	err = c2.Pending().Load(func(id string, set state.PendingSet) error {
		want, ok := pending[id]
		if !ok {
			return fmt.Errorf("a pending set for %s, which has none", id)
		}
		if len(set.Messages) != want {
			return fmt.Errorf("pending set of %s: %v; want %d messages", id, set.Messages, want)
		}
		loaded++
		return nil
	})
	pendingLoad := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if loaded != len(pending) {
		t.Fatalf("loaded %d pending sets; want %d", loaded, len(pending))
	}
	t.Logf("pending load: %d sets in %v: %.0f sets/s", loaded, pendingLoad.Round(time.Millisecond), float64(loaded)/pendingLoad.Seconds())

	// What the registry alone holds: the heap with it, less without it.
	inuse2, alloc2 := scaleHeap()
	runtime.KeepAlive(r2)
	r2.Close()
	r2 = nil
	inuse3, alloc3 := scaleHeap()
	t.Logf("heap held by the registry: in use %.1f MiB (%.0f B/webhook), allocated %.1f MiB (%.0f B/webhook)",
		scaleMiB(inuse2, inuse3), scalePerHook(inuse2, inuse3, n), scaleMiB(alloc2, alloc3), scalePerHook(alloc2, alloc3, n))
	t.Logf("asynchronous errors of the connections (slow consumer): %d", asyncErrs.Load())
	if rss := scalePeakRSS(); rss != "" {
		t.Logf("peak RSS of the test process (3 servers and 2 instances): %s", rss)
	}
}

// scaleMiB returns b-a in MiB, negative if b < a.
func scaleMiB(b, a uint64) float64 { return float64(int64(b)-int64(a)) / (1 << 20) }

// scalePerHook returns (b-a)/n.
func scalePerHook(b, a uint64, n int) float64 { return float64(int64(b)-int64(a)) / float64(n) }
