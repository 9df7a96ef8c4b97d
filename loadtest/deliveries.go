package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// userName is the name of demo-upstream's i-th seeded user (from 1).
func userName(i int) string { return fmt.Sprintf("user%05d", i) }

// createWebhooks gives users 1..n one webhook each through hookgate,
// pointing at the receiver with key u=i, 16 at a time, as deliver.js's
// setup would.
func createWebhooks(ctx context.Context, n int) error {
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
				body := fmt.Sprintf(`{"url":"http://%s/d?u=%d"}`, receiverAddr, i)
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

// receiverReport is the part of the demo receiver's GET /_report
// (bench/receiver.Report) read here.
type receiverReport struct {
	Keys      int       `json:"keys"`
	Answered  int       `json:"answered"`
	Notified  int       `json:"notified"`
	Missing   int       `json:"missing"`
	LatencyMs []float64 `json:"latencyMs"`
	LateMs    []float64 `json:"lateMs"`
	MinCount  int64     `json:"minCount"`
	MaxCount  int64     `json:"maxCount"`
	MinGapMs  float64   `json:"minGapMs"`
	SpanMs    float64   `json:"spanMs"`
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
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, raw, fmt.Errorf("the receiver's report: %w", err)
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

// rawPost is what bin/raw-post prints.
type rawPost struct {
	Count   int64   `json:"count"`
	Failed  int64   `json:"failed"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`
}

// deliveries measures delivery throughput: users webhooks, one change
// per user, counted at the receiver; then bin/raw-post posts as many
// notifications straight to the receiver, on the server core, as the
// baseline.
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
	t0, err := readPidStat(hg.pid())
	if err != nil {
		return err
	}
	if err := createWebhooks(ctx, n); err != nil {
		return err
	}
	t1, err := readPidStat(hg.pid())
	if err != nil {
		return err
	}
	c0, err := readCPUStat()
	if err != nil {
		return err
	}
	s, gen, raw, err := r.k6(ctx, name, "deliver.js", true, "TARGET=http://"+hookgateAddr, "RECEIVER=http://"+receiverAddr,
		fmt.Sprintf("USERS=%d", n), "SKIP_SETUP=1")
	if err != nil {
		return err
	}
	t2, err := readPidStat(hg.pid())
	if err != nil {
		return err
	}
	c1, err := readCPUStat()
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
	b, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	var rp rawPost
	if err := json.Unmarshal(b, &rp); err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	row := deliveryRow{Webhooks: n, Rep: rep, Delivered: int64(s.get("delivered", "count")), PerS: s.get("deliveries_per_s", "avg"),
		RawPerS: rp.Rate, CPUUs: us(ticksDuration(t2.sub(t1).total(), r.clk)) / float64(n),
		RawCPUUs:    us(post.User+post.System) / float64(n),
		CreateCPUUs: us(ticksDuration(t1.sub(t0).total(), r.clk)) / float64(n),
		GenPct:      gen.percent(), Raw: raw}
	if r.cfg.ServerCPU >= 0 {
		row.CoreBusyPct = busyPercent(c0[r.cfg.ServerCPU], c1[r.cfg.ServerCPU])
	}
	r.progress("%-40s %8.0f deliveries/s (raw-post %.0f/s)  %6.1f µs/delivery (raw-post %.1f µs/POST)", name,
		row.PerS, row.RawPerS, row.CPUUs, row.RawCPUUs)
	return r.deliveriesTSV.add(row)
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
	c0, err := readCPUStat()
	if err != nil {
		return err
	}
	if _, _, _, err := r.k6(ctx, name, "latency.js", false, "TARGET=http://"+hookgateAddr, "RECEIVER=http://"+receiverAddr,
		fmt.Sprintf("USERS=%d", r.cfg.LatUsers), fmt.Sprintf("SLOW=%d", bad), fmt.Sprintf("FAILING=%d", bad)); err != nil {
		return err
	}
	c1, err := readCPUStat()
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
		row.CoreBusyPct = busyPercent(c0[r.cfg.ServerCPU], c1[r.cfg.ServerCPU])
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
	t0, err := readPidStat(hg.pid())
	if err != nil {
		return err
	}
	c0, err := readCPUStat()
	if err != nil {
		return err
	}
	s, _, _, err := r.k6(ctx, name, "coalesce.js", true, "TARGET=http://"+hookgateAddr, "RECEIVER=http://"+receiverAddr,
		fmt.Sprintf("CHANGES=%d", r.cfg.Changes), "HOOKS=10", "WINDOW_MS=1000")
	if err != nil {
		return err
	}
	t1, err := readPidStat(hg.pid())
	if err != nil {
		return err
	}
	c1, err := readCPUStat()
	if err != nil {
		return err
	}
	rp, raw, err := r.report(ctx, name)
	if err != nil {
		return err
	}
	row := coalesceRowOf(rp, s, rep)
	row.Raw = raw
	row.CPUUs = float64(ticksDuration(t1.sub(t0).total(), r.clk)) / float64(time.Microsecond) / float64(max(row.Changes, 1))
	if r.cfg.ServerCPU >= 0 {
		row.CoreBusyPct = busyPercent(c0[r.cfg.ServerCPU], c1[r.cfg.ServerCPU])
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
