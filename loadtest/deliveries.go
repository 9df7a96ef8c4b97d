package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookgate/hookgate/internal/procstat"
)

// userName is the name of demo-upstream's i-th seeded user (from 1).
func userName(i int) string { return fmt.Sprintf("user%05d", i) }

// createWebhooks gives users 1..n one webhook each through hookgate,
// pointing at the receiver's /path with key u=i, 16 at a time, as
// deliver.js's setup would.
func createWebhooks(ctx context.Context, n int, path string) error {
	client := &http.Client{Timeout: 30 * time.Second}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n || ctx.Err() != nil {
					return
				}
				body := fmt.Sprintf(`{"url":"http://%s/%s?u=%d"}`, receiverAddr, path, i)
				req, err := http.NewRequestWithContext(ctx, "POST", "http://"+hookgateAddr+"/"+userName(i)+"/webhooks", bytes.NewBufferString(body))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Authorization", userName(i)+"-app")
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					errs <- fmt.Errorf("creating a webhook: %w", err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("creating a webhook for %s: %d %s", userName(i), resp.StatusCode, b)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// report fetches the receiver's report and keeps a copy as raw output.
func (r *runner) report(ctx context.Context, name string) (receiverReport, string, error) {
	var rep receiverReport
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+receiverAddr+"/_report", nil)
	if err != nil {
		return rep, "", err
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return rep, "", fmt.Errorf("the receiver's report: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return rep, "", fmt.Errorf("the receiver's report: %w", err)
	}
	r.seq++
	raw := fmt.Sprintf("%03d-%s.report.json", r.seq, name)
	if err := os.WriteFile(filepath.Join(r.raw, raw), b, 0o644); err != nil {
		return rep, raw, err
	}
	if rep, err = parseReceiverReport(b); err != nil {
		return rep, raw, fmt.Errorf("the receiver's report (%s): %w", raw, err)
	}
	return rep, raw, nil
}

// quantile returns the p-quantile of sorted (nearest rank, rounding
// down), NaN for none.
func quantile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return nan
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// deliverWorkers is how many changes vegeta has in flight in the
// deliveries scenario, over as many connections: as many as k6 had
// virtual users, so that hookgate's change path (fsyncs grouped over
// the changes in flight) runs as before, on a generator that uses a
// fraction of its core for it.
const deliverWorkers = 32

// deliveryWait bounds the wait for the last notifications of a
// delivery or burst run once the changes have been answered.
const deliveryWait = time.Minute

// deliveries measures delivery throughput: users webhooks, then one
// change per user, sent by vegeta, counted at the receiver; then
// bin/raw-post posts as many notifications straight to the receiver, on
// the server core, as the baseline.
func (r *runner) deliveries(ctx context.Context) error {
	for _, n := range r.cfg.DeliverUsers {
		for rep := 1; rep <= r.cfg.Reps; rep++ {
			if err := r.delivery(ctx, n, rep); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) delivery(ctx context.Context, n, rep int) error {
	defer r.fleet.stop()
	name := fmt.Sprintf("deliveries-%d-r%d", n, rep)
	hg, err := r.startDelivery(ctx, name, n)
	if err != nil {
		return err
	}
	t0, err := procstat.ReadPid(hg.pid())
	if err != nil {
		return err
	}
	if err := createWebhooks(ctx, n, "d"); err != nil {
		return err
	}
	u0, err := r.fleet.usage()
	if err != nil {
		return err
	}
	start := time.Now()
	res, gen, raw, err := r.vegetaEachOnce(ctx, name, vegetaUserTargets("http://"+hookgateAddr, n), deliverWorkers)
	if err != nil {
		return err
	}
	if sent := res.Requests - res.Errors; sent != int64(n) {
		return fmt.Errorf("%s: %d of %d changes answered 2xx; see %s", name, sent, n, filepath.Join(r.raw, raw))
	}
	st, stRaw, err := waitChanged(ctx, &http.Client{Timeout: 30 * time.Second}, "http://"+receiverAddr, int64(n), deliveryWait)
	wall := time.Since(start)
	if stRaw != nil {
		r.seq++
		os.WriteFile(filepath.Join(r.raw, fmt.Sprintf("%03d-%s.stats.json", r.seq, name)), stRaw, 0o644)
	}
	if err != nil {
		return err
	}
	u1, err := r.fleet.usage()
	if err != nil {
		return err
	}
	r.seq++
	out := filepath.Join(r.raw, fmt.Sprintf("%03d-%s.raw-post.json", r.seq, name))
	post, err := runChild(ctx, r.cfg.ServerCPU, []string{"GOMAXPROCS=1"}, 5*time.Minute, out,
		r.bin("raw-post"), "-url", "http://"+receiverAddr+"/raw", "-n", fmt.Sprint(n), "-c", "64")
	if err != nil {
		return err
	}
	c2, err := procstat.ReadCPU()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	rp, err := parseClientResult(b)
	if err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	own := procstat.TicksDuration(u1.procs[hg].Sub(u0.procs[hg]).Total(), r.clk)
	row := deliveryRow{Webhooks: n, Rep: rep, Generator: "vegeta", Delivered: st.changed(), PerS: st.perSecond(),
		RawPerS: rp.Rate, CPUUs: us(own) / float64(n),
		RawCPUUs:    us(post.User+post.System) / float64(n),
		CreateCPUUs: us(procstat.TicksDuration(u0.procs[hg].Sub(t0).Total(), r.clk)) / float64(n),
		ServerPct:   100 * float64(own) / float64(wall), ServersPct: serversPercent(u0.procs, u1.procs, wall, r.clk),
		GenPct: gen.percent(), Raw: raw}
	if r.cfg.ServerCPU >= 0 {
		row.CoreBusyPct = procstat.BusyPercent(u0.cores[r.cfg.ServerCPU], u1.cores[r.cfg.ServerCPU])
		row.RawBusyPct = procstat.BusyPercent(u1.cores[r.cfg.ServerCPU], c2[r.cfg.ServerCPU])
	}
	row.Limit = heldBy(row.GenPct, row.ServersPct, row.CoreBusyPct)
	r.progress("%-40s %8.0f deliveries/s (raw-post %.0f/s)  %6.1f µs/delivery (raw-post %.1f µs/POST)  gen %5.1f %%  limit %s", name,
		row.PerS, row.RawPerS, row.CPUUs, row.RawCPUUs, row.GenPct, row.Limit)
	if err := r.deliveriesTSV.add(row); err != nil {
		return err
	}
	if row.Delivered < int64(n) {
		return fmt.Errorf("%s: %d of %d changes notified within %s of the last answer", name, row.Delivered, n, deliveryWait)
	}
	return nil
}

// vegetaEachOnce runs vegeta on the load CPU, sending every target of
// targets once with workers requests in flight (vegetaEachOnceArgs),
// eventBody as the body. It returns what vegeta measured (the results
// without a status that end a lazy run count among Errors), its own CPU
// and the name of its JSON report in the raw directory.
func (r *runner) vegetaEachOnce(ctx context.Context, name, targets string, workers int) (loadResult, childRun, string, error) {
	tf := filepath.Join(r.work, name+".targets")
	if err := os.WriteFile(tf, []byte(targets), 0o644); err != nil {
		return loadResult{}, childRun{}, "", err
	}
	bin := filepath.Join(r.work, name+".vegeta.bin")
	r.seq++
	base := fmt.Sprintf("%03d-%s.vegeta", r.seq, name)
	run, err := runChild(ctx, r.cfg.LoadCPU, nil, 5*time.Minute, filepath.Join(r.raw, base+"-attack.txt"),
		append([]string{r.cfg.Vegeta}, vegetaEachOnceArgs(tf, r.eventBody, workers, bin)...)...)
	if err != nil {
		return loadResult{}, run, base, err
	}
	if _, err := runChild(ctx, -1, nil, time.Minute, filepath.Join(r.raw, base+".txt"), r.cfg.Vegeta, "report", "-type", "text", bin); err != nil {
		return loadResult{}, run, base, err
	}
	js := filepath.Join(r.raw, base+".json")
	if _, err := runChild(ctx, -1, nil, time.Minute, js, r.cfg.Vegeta, "report", "-type", "json", bin); err != nil {
		return loadResult{}, run, base, err
	}
	b, err := os.ReadFile(js)
	if err != nil {
		return loadResult{}, run, base, err
	}
	res, err := parseVegeta(b)
	if err != nil {
		return res, run, base, fmt.Errorf("%s: %w", js, err)
	}
	return res, run, base + ".json", nil
}

// serversPercent returns the CPU time every server in s1 used since s0
// as a share of one core over wall, in percent.
func serversPercent(s0, s1 map[*server]procstat.CPUTime, wall time.Duration, clk int64) float64 {
	var ticks int64
	for s, t := range s1 {
		ticks += t.Sub(s0[s]).Total()
	}
	return 100 * float64(procstat.TicksDuration(ticks, clk)) / float64(wall)
}

// burstConns is how many changes the burst client has in flight, over
// as many connections.
const burstConns = 64

// burst measures change to notification latency in a burst: BurstUsers
// idle webhooks, one per user, then one change per user sent as fast as
// the burst client (pinned to the load CPU) gets them answered, each
// answer time reported to the receiver, which gives the latencies.
func (r *runner) burst(ctx context.Context) error {
	for rep := 1; rep <= r.cfg.Reps; rep++ {
		if err := r.burstRun(ctx, r.cfg.BurstUsers, rep); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) burstRun(ctx context.Context, n, rep int) error {
	defer r.fleet.stop()
	name := fmt.Sprintf("burst-%d-r%d", n, rep)
	hg, err := r.startDelivery(ctx, name, n)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := createWebhooks(ctx, n, "b"); err != nil {
		return err
	}
	u0, err := r.fleet.usage()
	if err != nil {
		return err
	}
	start := time.Now()
	r.seq++
	out := filepath.Join(r.raw, fmt.Sprintf("%03d-%s.client.json", r.seq, name))
	if _, err := runChild(ctx, r.cfg.LoadCPU, []string{"GOMAXPROCS=1"}, 5*time.Minute, out, self, "burst-client",
		"-target", "http://"+hookgateAddr, "-receiver", "http://"+receiverAddr, "-users", fmt.Sprint(n),
		"-conns", fmt.Sprint(burstConns), "-wait", deliveryWait.String()); err != nil {
		return err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	cl, err := parseClientResult(b)
	if err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	// The client reported the answer times once every notification was
	// counted (or after deliveryWait): the report is complete.
	rp, raw, err := r.report(ctx, name)
	if err != nil {
		return err
	}
	u1, err := r.fleet.usage()
	if err != nil {
		return err
	}
	wall := time.Since(start)
	row := burstRowOf(rp, cl, n, rep)
	row.CPUUs = float64(procstat.TicksDuration(u1.procs[hg].Sub(u0.procs[hg]).Total(), r.clk)) / float64(time.Microsecond) / float64(n)
	row.ServersPct = serversPercent(u0.procs, u1.procs, wall, r.clk)
	row.Raw = raw
	if r.cfg.ServerCPU >= 0 {
		row.CoreBusyPct = procstat.BusyPercent(u0.cores[r.cfg.ServerCPU], u1.cores[r.cfg.ServerCPU])
	}
	r.progress("%-40s %8.0f changes/s  p50 %.3f ms  p99 %.3f ms  max %.3f ms  %d/%d notified  gen %5.1f %%", name,
		row.ChangesPerS, row.P50Ms, row.P99Ms, row.MaxMs, row.Notified, n, row.GenPct)
	if err := r.burstTSV.add(row); err != nil {
		return err
	}
	if row.Notified < n || row.Changes < n {
		return fmt.Errorf("%s: %d of %d changes reported, %d notified; see %s", name, row.Changes, n, row.Notified,
			filepath.Join(r.raw, raw))
	}
	return nil
}

// burstRowOf makes the row of a burst run of n changes from the
// receiver's report and the burst client's result.
func burstRowOf(rp receiverReport, cl clientResult, n, rep int) burstRow {
	lat := rp.LatencyMs
	early, _ := slices.BinarySearch(lat, 0)
	return burstRow{Webhooks: n, Rep: rep, Changes: rp.Answered, Notified: rp.Notified, Early: early, ChangesPerS: cl.Rate,
		P50Ms: quantile(lat, 0.5), P95Ms: quantile(lat, 0.95), P99Ms: quantile(lat, 0.99), MaxMs: quantile(lat, 1),
		GenPct: cl.genPercent()}
}

// latency measures change to notification latency for idle webhooks at
// 100 changes/s, all healthy, then next to 10 webhooks that time out
// (-delivery-timeout 2s, the receiver answers after 3 s) and 10 that
// answer 500, all changed once a second.
func (r *runner) latency(ctx context.Context) error {
	for rep := 1; rep <= r.cfg.Reps; rep++ {
		for _, kind := range []string{"healthy", "isolation"} {
			if err := r.latencyRun(ctx, kind, rep); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) latencyRun(ctx context.Context, kind string, rep int) error {
	defer r.fleet.stop()
	bad := 0
	if kind == "isolation" {
		bad = 10
	}
	name := fmt.Sprintf("latency-%s-r%d", kind, rep)
	if _, err := r.startDelivery(ctx, name, r.cfg.LatUsers+20, "-delivery-timeout", "2s"); err != nil {
		return err
	}
	c0, err := procstat.ReadCPU()
	if err != nil {
		return err
	}
	if _, _, _, err := r.k6(ctx, name, "latency.js", false, "TARGET=http://"+hookgateAddr, "RECEIVER=http://"+receiverAddr,
		fmt.Sprintf("USERS=%d", r.cfg.LatUsers), fmt.Sprintf("SLOW=%d", bad), fmt.Sprintf("FAILING=%d", bad)); err != nil {
		return err
	}
	c1, err := procstat.ReadCPU()
	if err != nil {
		return err
	}
	rep2, raw, err := r.report(ctx, name)
	if err != nil {
		return err
	}
	lat := rep2.LatencyMs
	row := latencyRow{Kind: kind, Rep: rep, Changes: rep2.Answered, Notified: rep2.Notified,
		P50Ms: quantile(lat, 0.5), P95Ms: quantile(lat, 0.95), P99Ms: quantile(lat, 0.99), MaxMs: quantile(lat, 1), Raw: raw}
	if r.cfg.ServerCPU >= 0 {
		row.CoreBusyPct = procstat.BusyPercent(c0[r.cfg.ServerCPU], c1[r.cfg.ServerCPU])
	}
	r.progress("%-40s p50 %.3f ms  p99 %.3f ms  max %.3f ms  %d/%d notified", name, row.P50Ms, row.P99Ms, row.MaxMs,
		row.Notified, row.Changes)
	return r.latencyTSV.add(row)
}

// coalescing measures CHANGES changes on one user with 10 webhooks and
// a 1 s window.
func (r *runner) coalescing(ctx context.Context) error {
	for rep := 1; rep <= r.cfg.Reps; rep++ {
		if err := r.coalescingRun(ctx, rep); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) coalescingRun(ctx context.Context, rep int) error {
	defer r.fleet.stop()
	name := fmt.Sprintf("coalescing-r%d", rep)
	hg, err := r.startDelivery(ctx, name, 1)
	if err != nil {
		return err
	}
	t0, err := procstat.ReadPid(hg.pid())
	if err != nil {
		return err
	}
	c0, err := procstat.ReadCPU()
	if err != nil {
		return err
	}
	s, _, _, err := r.k6(ctx, name, "coalesce.js", true, "TARGET=http://"+hookgateAddr, "RECEIVER=http://"+receiverAddr,
		fmt.Sprintf("CHANGES=%d", r.cfg.Changes), "HOOKS=10", "WINDOW_MS=1000")
	if err != nil {
		return err
	}
	t1, err := procstat.ReadPid(hg.pid())
	if err != nil {
		return err
	}
	c1, err := procstat.ReadCPU()
	if err != nil {
		return err
	}
	rp, raw, err := r.report(ctx, name)
	if err != nil {
		return err
	}
	row := coalesceRowOf(rp, s, rep)
	row.Raw = raw
	row.CPUUs = float64(procstat.TicksDuration(t1.Sub(t0).Total(), r.clk)) / float64(time.Microsecond) / float64(max(row.Changes, 1))
	if r.cfg.ServerCPU >= 0 {
		row.CoreBusyPct = procstat.BusyPercent(c0[r.cfg.ServerCPU], c1[r.cfg.ServerCPU])
	}
	r.progress("%-40s %8.0f changes/s  %d-%d POSTs per webhook  min gap %.1f ms  missing %d", name, row.ChangesPerS,
		row.MinPosts, row.MaxPosts, row.MinGapMs, row.Missing)
	return r.coalescingTSV.add(row)
}

// coalesceRowOf makes the row of a coalescing run from the receiver's
// report and k6's summary.
func coalesceRowOf(rp receiverReport, s k6Summary, rep int) coalesceRow {
	row := coalesceRow{Rep: rep, Changes: int64(s.get("iterations", "count")), ChangesPerS: s.get("iterations", "rate"),
		Webhooks: rp.Keys, MinPosts: rp.MinCount, MaxPosts: rp.MaxCount, MinGapMs: rp.MinGapMs, LastAfterMs: nan}
	if rp.SpanMs > 0 {
		row.PostsPerHookPerS = float64(rp.MaxCount-1) / (rp.SpanMs / 1000)
	}
	// A notification that covers the last change arrives after its
	// answer; one that raced the answer may arrive a hair before.
	late := 0
	for i, ms := range rp.LateMs {
		if i == 0 || ms < row.LastAfterMs {
			row.LastAfterMs = ms
		}
		if ms >= -5 {
			late++
		}
	}
	row.Missing = rp.Answered - late
	return row
}
