// Command scale measures hookgate's state layer at scale: how long a
// restart with N webhooks takes to be ready, hookgate's resident memory
// per webhook, how long one flush of N dirty records takes, and how fast
// the boot notifications of N active webhooks go out, with their run
// records durable after a graceful stop. It prints each figure next to
// its target and asserts nothing about the numbers: it exits non-zero
// only when a step fails (hookgate never became ready or did not stop,
// the boot storm stalled, a webhook could not be created through the API,
// run records were not durable).
//
// The steps:
//
//  1. start the demo upstream and the bench receiver (in this process);
//  2. start bin/hookgate on a fresh data directory, create M webhooks
//     through its API with 64 concurrent clients, stop it;
//  3. with hookgate stopped, import N inactive webhooks into the data
//     directory, 100,000 per Import call;
//  4. restart hookgate: time to /healthz and /readyz, then its RSS once
//     it has logged that the webhooks are loaded (and the garbage of the
//     load given back);
//  5. offline, record a run on each of the N webhooks, making it active,
//     and write them all in one Flush;
//  6. restart hookgate: every active webhook gets a webhooksServiceBoot
//     notification; time the storm, hookgate's CPU and RSS, stop it;
//  7. offline, count the webhooks whose latest run (status 200) is stored,
//     and read back the run histories of 1,000 of them;
//  8. restart hookgate once more, as an operator would: time to /healthz
//     and /readyz, then stop it;
//  9. print the table.
//
// Everything runs on 127.0.0.1. hookgate is a child process in a process
// group of its own, stopped on every exit path (Ctrl-C included; a
// second Ctrl-C ends this command at once, and hookgate with it). Every
// wait is bounded. Linux only: figures come from /proc.
//
// Usage:
//
//	make scale N=1000000 M=100
//	bin/scale -n 1000000 -api 100 [-hookgate bin/hookgate] [-dir /tmp] [-keep]
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/hookgate/hookgate/bench/receiver"
	"github.com/hookgate/hookgate/bench/upstream"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/state"

	"github.com/hookgate/hookgate/internal/procstat"
)

// Bounds of the waits, and the shape of the load.
const (
	readyBound    = 10 * time.Minute // process start to /readyz 200
	stopBound     = 5 * time.Minute  // SIGTERM to exit
	stormBound    = 30 * time.Minute // ready to the last boot notification
	stallBound    = 60 * time.Second // longest time the storm may not move
	settle        = 2 * time.Second  // wait before reading RSS
	createClients = 64               // concurrent API clients
	importChunk   = 100_000          // webhooks per Import call
	hooksPerUser  = 10               // API webhooks per demo user
)

// config is the command line.
type config struct {
	n, api   int    // webhooks imported, and created through the API
	hookgate string // path of the hookgate binary
	dir      string // parent of the work directory ("" for the system's)
	keep     bool   // keep the work directory
	profile  bool   // save CPU and heap profiles of the boot storm
	reuse    string // work directory of an earlier run: only the storm and after
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 1_000_000, "webhooks imported offline (`count`)")
	flag.IntVar(&c.api, "api", 100, "webhooks created through hookgate's API (`count`)")
	flag.StringVar(&c.hookgate, "hookgate", "bin/hookgate", "hookgate `binary`")
	flag.StringVar(&c.dir, "dir", "", "`directory` in which the work directory (data directory and hookgate logs) is created; default the system's temporary directory")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory at the end")
	flag.BoolVar(&c.profile, "profile", false, "save hookgate's CPU profile of the boot storm's first 20 s (storm-cpu.pprof) and its heap after the storm (storm-heap.pprof) in the work directory")
	flag.StringVar(&c.reuse, "reuse", "", "run only the boot storm, the run records check and the last restart, on the work `directory` an earlier run kept with -keep; the bench receiver listens where its webhooks point")
	flag.Parse()
	if c.n < 1 || c.api < 0 {
		fmt.Fprintln(os.Stderr, "scale: -n must be at least 1 and -api at least 0")
		os.Exit(2)
	}

	ctx, cancel := context.WithCancel(context.Background())
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigc
		signal.Stop(sigc) // a second signal ends this process at once
		fmt.Fprintf(os.Stderr, "scale: %v: stopping hookgate and cleaning up\n", s)
		cancel()
	}()
	err := run(ctx, c, os.Stdout)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// figures are the measurements, filled in step by step.
type figures struct {
	created, createFailures int
	createRate              float64 // per second

	importTime time.Duration

	idleHealth, idleReady time.Duration
	idleRSS               int64

	flushTime time.Duration
	flushed   int

	bootHealth, bootReady time.Duration
	warmHealth, warmReady time.Duration // the restart after the storm's graceful stop
	beforeReady           int64         // boot notifications that arrived before /readyz said ready
	stormRate             float64       // deliveries per second, ready to the last
	stormTime             time.Duration
	cpuPerDelivery        float64 // µs, ready to the last
	recvPerDelivery       float64 // µs of this process (the receiver), likewise
	stormRSS              int64

	durable, stored int
	stormStart      float64 // Unix seconds: runs at or after it are the storm's
	histories       int     // histories read back whose newest run is the storm's
}

// bench is one run: its directories, the servers in this process and the
// figures so far.
type bench struct {
	cfg      config
	ctx      context.Context
	out      io.Writer
	data     string // hookgate's data directory
	work     string // holds data and the logs
	upstream string // address of the demo upstream
	users    []string
	recv     *receiver.Server
	recvAddr string
	ids      []string // the imported webhooks
	starts   int      // hookgate starts so far, to name the logs
	lastLog  string
	ticks    int64 // clock ticks per second
	f        figures
}

// run does every step and prints the table. It stops what it started
// whatever happens.
func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	work, recvAt := cfg.reuse, "127.0.0.1:0"
	if work != "" {
		if cfg.n, recvAt, err = reused(work); err != nil {
			return err
		}
		cfg.api = 0
	} else {
		if work, err = os.MkdirTemp(cfg.dir, "hookgate-scale-"); err != nil {
			return err
		}
		if cfg.keep {
			defer fmt.Fprintf(out, "work directory kept: %s\n", work)
		} else {
			defer os.RemoveAll(work)
		}
	}

	up := upstream.New(upstream.Options{Users: (cfg.api + hooksPerUser - 1) / hooksPerUser})
	upAddr, stopUp, err := up.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer stopUp()
	recv := receiver.New(receiver.Options{TotalOnly: true})
	recvAddr, stopRecv, err := recv.Start(recvAt)
	if err != nil {
		return err
	}
	defer stopRecv()

	b := &bench{cfg: cfg, ctx: ctx, out: out, work: work, data: filepath.Join(work, "data"),
		upstream: upAddr, users: up.Users(), recv: recv, recvAddr: recvAddr, ticks: procstat.ClockTicks()}
	loadStart := loadAvg()
	b.printf("machine: %s; load average %s; N=%d imported, M=%d through the API\n", machine(runtime.NumCPU()), loadStart, cfg.n, cfg.api)
	b.printf("work directory %s; demo upstream %s, bench receiver %s, hookgate %s\n", work, upAddr, recvAddr, cfg.hookgate)

	steps := []struct {
		name string
		do   func() error
	}{
		{"create through the API", b.createThroughAPI},
		{"import offline", b.importOffline},
		{"idle restart", b.idleRestart},
		{"activate offline", b.activateOffline},
		{"boot storm", b.bootStorm},
		{"run records", b.countDurable},
		{"restart again", b.warmRestart},
	}
	if cfg.reuse != "" {
		steps = steps[4:] // every webhook is active already
		logs, _ := filepath.Glob(filepath.Join(work, "hookgate-*.log"))
		b.starts = len(logs)
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			if t := tail(b.lastLog, 15); t != "" && !errors.Is(err, context.Canceled) {
				b.printf("--- last lines of %s:\n%s\n---\n", b.lastLog, t)
			}
			return fmt.Errorf("step %d (%s): %w", i+1, s.name, err)
		}
	}
	b.printTable(loadStart)

	var fails []string
	if b.f.createFailures > 0 {
		fails = append(fails, fmt.Sprintf("%d webhooks could not be created through the API", b.f.createFailures))
	}
	if want := cfg.n + cfg.api; b.f.durable != want {
		fails = append(fails, fmt.Sprintf("run records durable: %d of %d", b.f.durable, want))
	}
	if fails != nil {
		return errors.New(strings.Join(fails, "; "))
	}
	return nil
}

func (b *bench) printf(format string, a ...any) { fmt.Fprintf(b.out, format, a...) }

// total is how many webhooks the data directory should hold.
func (b *bench) total() int { return b.cfg.n + b.f.created }

// start starts hookgate on the data directory, its log numbered.
func (b *bench) start() (*hookgate, error) {
	b.starts++
	b.lastLog = filepath.Join(b.work, fmt.Sprintf("hookgate-%d.log", b.starts))
	return startHookgate(b.cfg.hookgate, b.data, b.upstream, b.lastLog)
}

// startReady starts hookgate and waits until it is ready, with the
// seconds to /healthz and to /readyz in health and ready. On an error
// hookgate is stopped.
func (b *bench) startReady(health, ready *time.Duration) (*hookgate, error) {
	h, err := b.start()
	if err != nil {
		return nil, err
	}
	if *health, *ready, err = h.waitReady(b.ctx, readyBound); err != nil {
		h.kill()
		return nil, err
	}
	return h, nil
}

// sleep waits d, unless the run is cancelled or h exits first.
func (b *bench) sleep(d time.Duration, h *hookgate) error {
	select {
	case <-time.After(d):
		return nil
	case <-b.ctx.Done():
		return b.ctx.Err()
	case <-h.done:
		return h.exitError()
	}
}

// createThroughAPI starts hookgate on a fresh data directory and creates
// M webhooks with 64 concurrent clients, each webhook for a demo user's
// app access, at most hooksPerUser per user; then stops hookgate.
func (b *bench) createThroughAPI() error {
	var health, ready time.Duration
	h, err := b.startReady(&health, &ready)
	if err != nil {
		return err
	}
	defer h.kill()

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: createClients}}
	defer client.CloseIdleConnections()
	create := func(i int) error {
		user := b.users[i%len(b.users)]
		body := fmt.Sprintf(`{"url":"http://%s/notify?u=api%d"}`, b.recvAddr, i)
		req, err := http.NewRequestWithContext(b.ctx, "POST", "http://"+h.api+"/"+user+"/webhooks", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", user+"-app")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		}
		return nil
	}

	var created, failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range createClients {
		wg.Go(func() {
			for i := range jobs {
				if err := create(i); err != nil {
					failed.Add(1)
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					continue
				}
				created.Add(1)
			}
		})
	}
	start := time.Now()
feed:
	for i := range b.cfg.api {
		select {
		case jobs <- i:
		case <-b.ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	took := time.Since(start)
	if err := b.ctx.Err(); err != nil {
		return err
	}

	b.f.created, b.f.createFailures = int(created.Load()), int(failed.Load())
	if b.f.created > 0 {
		b.f.createRate = float64(b.f.created) / took.Seconds()
	}
	b.printf("create: %d of %d webhooks created through the API by %d clients in %.3f s (%.0f created/s), %d failures\n",
		b.f.created, b.cfg.api, createClients, took.Seconds(), b.f.createRate, b.f.createFailures)
	if firstErr != nil {
		b.printf("create: first failure: %v\n", firstErr)
	}
	return h.stop(stopBound)
}

// openStore opens the data directory as hookgate does, hookgate being
// stopped.
func (b *bench) openStore() (*badger.DB, *webhooks.Store, error) {
	db, err := store.Open(b.data, store.Options{})
	if err != nil {
		return nil, nil, err
	}
	key, err := webhooks.LoadOrCreateKey(filepath.Join(b.data, "secrets.key"))
	if err == nil {
		var sealer *webhooks.Sealer
		if sealer, err = webhooks.NewSealer(key); err == nil {
			var hooks *webhooks.Store
			if hooks, err = webhooks.OpenSealedStore(db, sealer); err == nil {
				return db, hooks, nil
			}
		}
	}
	db.Close()
	return nil, nil, err
}

// closeStore closes db and gives the memory of the offline step back, so
// that hookgate, started next, has the machine to itself.
func closeStore(db *badger.DB) error {
	err := db.Close()
	runtime.GC()
	debug.FreeOSMemory()
	return err
}

// importOffline imports N inactive webhooks, 4 per user, importChunk per
// Import call. Inactive, they cost the next start nothing but loading.
func (b *bench) importOffline() error {
	db, hooks, err := b.openStore()
	if err != nil {
		return err
	}
	defer db.Close()
	n := b.cfg.n
	base := float64(time.Now().Add(-24*time.Hour).UnixMilli()) / 1000
	b.ids = make([]string, 0, n)
	start := time.Now()
	for lo := 0; lo < n; lo += importChunk {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+importChunk, n)
		ws := make([]*core.Webhook, 0, hi-lo)
		for i := lo; i < hi; i++ {
			created := base + float64(i)/1000 // 1 ms apart, in creation order
			w := &core.Webhook{
				ID: core.NewID(), User: fmt.Sprintf("u%07d", i/4), AccessID: "scale",
				URL:           fmt.Sprintf("http://%s/notify?u=%d", b.recvAddr, i),
				MinIntervalMs: 5000, MaxRetries: 5, State: core.StateInactive, Runs: []core.Run{},
				Created: created, CreatedBy: "scale", Modified: created, ModifiedBy: "scale",
			}
			ws = append(ws, w)
			b.ids = append(b.ids, w.ID)
		}
		if err := hooks.Import(ws); err != nil {
			return err
		}
	}
	b.f.importTime = time.Since(start)
	b.printf("import: %d inactive webhooks in %d Import calls in %.2f s (%.0f/s)\n",
		n, (n+importChunk-1)/importChunk, b.f.importTime.Seconds(), float64(n)/b.f.importTime.Seconds())
	return closeStore(db)
}

// idleRestart restarts hookgate with N inactive and M active webhooks:
// time to healthy and ready, and RSS once settled.
func (b *bench) idleRestart() error {
	h, err := b.startReady(&b.f.idleHealth, &b.f.idleReady)
	if err != nil {
		return err
	}
	defer h.kill()
	// Ready comes before the garbage the load left is given back: RSS is
	// read once hookgate logs that it has been.
	if err := h.waitLog(b.ctx, `msg="webhooks loaded"`, readyBound); err != nil {
		return err
	}
	if err := b.sleep(settle, h); err != nil {
		return err
	}
	if b.f.idleRSS, err = h.rss(); err != nil {
		return err
	}
	b.printf("idle restart (%d inactive, %d active): /healthz 200 after %.3f s, /readyz 200 after %.3f s; RSS %.1f MiB = %d B per webhook\n",
		b.cfg.n, b.f.created, b.f.idleHealth.Seconds(), b.f.idleReady.Seconds(), mib(b.f.idleRSS), b.f.idleRSS/int64(b.total()))
	return h.stop(stopBound)
}

// activateOffline makes every imported webhook active with a run
// recorded by RecordRun, and writes them all in one Flush.
func (b *bench) activateOffline() error {
	start := time.Now()
	db, hooks, err := b.openStore()
	if err != nil {
		return err
	}
	defer db.Close()
	loaded := time.Since(start)
	start = time.Now()
	run := core.Run{Status: 200, Timestamp: float64(time.Now().UnixMilli()) / 1000}
	for _, id := range b.ids {
		if !hooks.RecordRun(id, run, func(w *core.Webhook) { w.State = core.StateActive }) {
			return fmt.Errorf("imported webhook %s is not in the store", id)
		}
	}
	mutated := time.Since(start)
	start = time.Now()
	if err := hooks.Flush(); err != nil {
		return err
	}
	b.f.flushTime, b.f.flushed = time.Since(start), len(b.ids)
	b.printf("activate: store loaded in %.2f s; %d runs recorded in %.2f s; one Flush of %d dirty webhooks in %.2f s (%.0f/s)\n",
		loaded.Seconds(), len(b.ids), mutated.Seconds(), b.f.flushed, b.f.flushTime.Seconds(), float64(b.f.flushed)/b.f.flushTime.Seconds())
	return closeStore(db)
}

// bootStorm restarts hookgate with every webhook active: each gets a boot
// notification. It waits for all of them at the receiver, then measures
// the rate, hookgate's CPU per delivery and its RSS, and stops hookgate
// gracefully (which flushes the run records).
func (b *bench) bootStorm() error {
	c0 := b.recv.Count()
	b.f.stormStart = float64(time.Now().UnixMilli()) / 1000
	h, err := b.startReady(&b.f.bootHealth, &b.f.bootReady)
	if err != nil {
		return err
	}
	defer h.kill()
	readyAt := time.Now()
	own0 := ownCPU()
	cpu0, err := h.cpuTicks()
	if err != nil {
		return err
	}
	b.f.beforeReady = b.recv.Count() - c0
	var profiled chan error
	if b.cfg.profile {
		profiled = make(chan error, 1)
		go func() { profiled <- h.saveProfile("profile?seconds=20", filepath.Join(b.work, "storm-cpu.pprof")) }()
	}

	want := int64(b.total())
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(stormBound)
	last, moved := b.f.beforeReady, time.Now()
	for last < want {
		select {
		case <-b.ctx.Done():
			return b.ctx.Err()
		case <-h.done:
			return h.exitError()
		case <-deadline:
			return fmt.Errorf("boot storm: %d of %d notifications within %v", last, want, stormBound)
		case now := <-tick.C:
			if c := b.recv.Count() - c0; c != last {
				last, moved = c, now
			} else if now.Sub(moved) > stallBound {
				return fmt.Errorf("boot storm stalled: %d of %d notifications, none for %v", last, want, stallBound)
			}
		}
	}
	b.f.stormTime = time.Since(readyAt)
	own := ownCPU() - own0
	cpu1, err := h.cpuTicks()
	if err != nil {
		return err
	}
	if phase := last - b.f.beforeReady; phase > 0 {
		b.f.stormRate = float64(phase) / b.f.stormTime.Seconds()
		b.f.cpuPerDelivery = float64(cpu1-cpu0) * 1e6 / float64(b.ticks) / float64(phase)
		b.f.recvPerDelivery = float64(own.Microseconds()) / float64(phase)
	}
	if err := b.sleep(settle, h); err != nil {
		return err
	}
	if b.f.stormRSS, err = h.rss(); err != nil {
		return err
	}
	if b.cfg.profile {
		if err := <-profiled; err != nil {
			return err
		}
		if err := h.saveProfile("heap", filepath.Join(b.work, "storm-heap.pprof")); err != nil {
			return err
		}
		b.printf("boot storm: profiles in %s (storm-cpu.pprof, storm-heap.pprof); %s\n", b.work, h.memStatus())
	}
	b.printf("boot restart (%d active): /healthz 200 after %.3f s, /readyz 200 after %.3f s\n",
		want, b.f.bootHealth.Seconds(), b.f.bootReady.Seconds())
	b.printf("boot storm: %d notifications (%d before ready); the rest in %.2f s after ready = %.0f deliveries/s; hookgate CPU %.2f s = %.1f µs per delivery; total CPU since its start %.2f s\n",
		last, b.f.beforeReady, b.f.stormTime.Seconds(), b.f.stormRate, float64(cpu1-cpu0)/float64(b.ticks),
		b.f.cpuPerDelivery, float64(cpu1)/float64(b.ticks))
	b.printf("boot storm: this process (bench receiver, demo upstream) CPU %.2f s = %.1f µs per delivery\n",
		own.Seconds(), b.f.recvPerDelivery)
	b.printf("boot storm: RSS %.1f MiB %v after the last delivery = %d B per webhook\n",
		mib(b.f.stormRSS), settle, b.f.stormRSS/want)
	start := time.Now()
	if err := h.stop(stopBound); err != nil {
		return err
	}
	b.printf("boot storm: graceful stop (run records flushed) in %.2f s\n", time.Since(start).Seconds())
	return nil
}

// countDurable counts, offline, the webhooks whose boot delivery is on
// disk: the latest run is the storm's, with status 200. It reads back
// the run history of up to 1,000 of them: every run counted (up to the
// 50 kept), newest first, the storm's first.
func (b *bench) countDurable() error {
	db, hooks, err := b.openStore()
	if err != nil {
		return err
	}
	defer db.Close()
	active, inactive := hooks.Counts()
	b.f.stored = active + inactive
	var sample []*core.Webhook
	hooks.EachActive(func(w *core.Webhook) {
		if w.LastRun.Status == 200 && w.LastRun.Timestamp >= b.f.stormStart {
			b.f.durable++
			if len(sample) < 1000 {
				sample = append(sample, w.Clone())
			}
		}
	})
	for _, w := range sample {
		got, ok := hooks.Get(w.User, w.ID)
		// The resident lastRun holds the status and time; the history, the
		// duration too.
		if !ok || len(got.Runs) != min(w.RunCount, state.RunsKept) || got.Runs[0].Status != w.LastRun.Status ||
			got.Runs[0].Timestamp != w.LastRun.Timestamp ||
			!slices.IsSortedFunc(got.Runs, func(a, b core.Run) int { return cmp.Compare(b.Timestamp, a.Timestamp) }) {
			return fmt.Errorf("webhook %s: run history %v; want its %d runs, newest first, the boot run %v first", w.ID, got.Runs, w.RunCount, w.LastRun)
		}
		b.f.histories++
	}
	b.printf("run records durable: %d of %d (store holds %d webhooks: %d active, %d inactive); %d run histories read back\n",
		b.f.durable, b.cfg.n+b.cfg.api, b.f.stored, active, inactive, b.f.histories)
	return closeStore(db)
}

// reused reads what a kept work directory holds: how many webhooks, and
// the address of the receiver they point to.
func reused(work string) (n int, recvAddr string, err error) {
	b := &bench{data: filepath.Join(work, "data")}
	if _, err := os.Stat(b.data); err != nil {
		return 0, "", fmt.Errorf("-reuse: %w", err)
	}
	db, hooks, err := b.openStore()
	if err != nil {
		return 0, "", err
	}
	defer closeStore(db)
	active, inactive := hooks.Counts()
	if inactive > 0 || active == 0 {
		return 0, "", fmt.Errorf("-reuse: %s holds %d active and %d inactive webhooks; want every webhook active, as a run leaves it", work, active, inactive)
	}
	hooks.EachActive(func(w *core.Webhook) {
		if u, perr := url.Parse(w.URL); recvAddr == "" && perr == nil {
			recvAddr = u.Host
		}
	})
	return active, recvAddr, nil
}

// printTable prints the figures next to their targets. A target stated
// for 100k or 1M webhooks is judged only when N is that.
func (b *bench) printTable(loadStart string) {
	f, n := b.f, b.cfg.n
	total := int64(b.total())
	judge := func(scale int, ok bool) string {
		switch {
		case n != scale:
			return fmt.Sprintf("n/a (N=%d)", n)
		case ok:
			return "yes"
		}
		return "NO"
	}
	yesNo := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	// Restart to ready: the slowest of the three restarts.
	slower := max(f.idleReady, f.bootReady, f.warmReady).Seconds()
	restart := fmt.Sprintf("%.3f s idle, %.3f s all active after the offline writes, %.3f s after a graceful stop (N=%d)",
		f.idleReady.Seconds(), f.bootReady.Seconds(), f.warmReady.Seconds(), n)
	perIdle, perStorm := f.idleRSS/total, f.stormRSS/total
	storm := fmt.Sprintf("%.0f deliveries/s (%.1f µs CPU each; receiver %.1f µs), %d of %d durable", f.stormRate, f.cpuPerDelivery, f.recvPerDelivery, f.durable, n+b.cfg.api)
	rows := [][]string{
		{"measure", "target", "measured", "met?"},
		{"100k webhooks: restart to ready", "≤ 0.3 s", restart, judge(100_000, slower <= 0.3)},
		{"1M webhooks: restart to ready", "≤ 2 s", restart, judge(1_000_000, slower <= 2)},
		{"RSS per webhook at 1M, idle", "≤ 1 KiB", fmt.Sprintf("%d B (RSS %.1f MiB / %d)", perIdle, mib(f.idleRSS), total), judge(1_000_000, perIdle <= 1024)},
		{"RSS per webhook at 1M, after the boot storm", "≤ 1.5 KiB", fmt.Sprintf("%d B (RSS %.1f MiB / %d)", perStorm, mib(f.stormRSS), total), judge(1_000_000, perStorm <= 1536)},
		{"boot storm at 1M against the bench receiver", "≥ 20k deliveries/s, every run record durable", storm,
			judge(1_000_000, f.stormRate >= 20_000 && f.durable == n+b.cfg.api)},
		{"create through the API, 64 clients", "0 failures", fmt.Sprintf("%d failures of %d (%.0f created/s)", f.createFailures, b.cfg.api, f.createRate), yesNo(f.createFailures == 0)},
	}
	if b.cfg.reuse != "" { // no idle restart, no API creation
		restart = fmt.Sprintf("%.3f s all active, %.3f s after a graceful stop (N=%d, reused)", f.bootReady.Seconds(), f.warmReady.Seconds(), n)
		rows[1][2], rows[2][2] = restart, restart
		rows = slices.Delete(rows, 3, 4)
		rows = rows[:len(rows)-1]
	}
	b.printf("\nhookgate scale: %s\nN=%d imported, M=%d through the API; load average %s at the start, %s at the end\n",
		machine(runtime.NumCPU()), n, b.cfg.api, loadStart, loadAvg())
	b.printf("also: import %.2f s, one flush of %d dirty webhooks %.2f s; restart to /healthz %.3f s idle, %.3f s all active, %.3f s after a graceful stop; 'restart to ready' is met when the slowest restart is\n\n",
		f.importTime.Seconds(), f.flushed, f.flushTime.Seconds(), f.idleHealth.Seconds(), f.bootHealth.Seconds(), f.warmHealth.Seconds())
	printTable(b.out, rows)
}

// warmRestart starts hookgate once more, as an operator restarts it:
// after the graceful stop of the storm, every webhook active. It times
// /healthz and /readyz and stops it again (another boot storm starts).
func (b *bench) warmRestart() error {
	h, err := b.startReady(&b.f.warmHealth, &b.f.warmReady)
	if err != nil {
		return err
	}
	defer h.kill()
	b.printf("restart after the graceful stop (%d active): /healthz 200 after %.3f s, /readyz 200 after %.3f s\n",
		b.total(), b.f.warmHealth.Seconds(), b.f.warmReady.Seconds())
	return h.stop(stopBound)
}

// printTable prints rows as a Markdown table, the first row the header.
func printTable(w io.Writer, rows [][]string) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(r []string) {
		for i, c := range r {
			fmt.Fprintf(w, "| %s%s ", c, strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)))
		}
		fmt.Fprintln(w, "|")
	}
	line(rows[0])
	sep := make([]string, len(width))
	for i, n := range width {
		sep[i] = strings.Repeat("-", n)
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
}

// mib is bytes in MiB.
func mib(b int64) float64 { return float64(b) / (1 << 20) }
