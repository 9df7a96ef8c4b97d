package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
)

// k6Summary is the metrics part of k6's --summary-export file: metric
// name, then statistic ("count", "rate", "avg", "med", "p(95)", ...).
type k6Summary map[string]map[string]float64

// parseK6Summary reads k6's --summary-export JSON. Statistics that are
// not numbers (the thresholds' results) are left out.
func parseK6Summary(b []byte) (k6Summary, error) {
	var raw struct {
		Metrics map[string]map[string]json.RawMessage `json:"metrics"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoSummary, err)
	}
	if len(raw.Metrics) == 0 {
		return nil, fmt.Errorf("%w: no metrics", errNoSummary)
	}
	s := k6Summary{}
	for name, stats := range raw.Metrics {
		m := map[string]float64{}
		for stat, v := range stats {
			var x float64
			if json.Unmarshal(v, &x) == nil && !math.IsNaN(x) && !math.IsInf(x, 0) {
				m[stat] = x
			}
		}
		s[name] = m
	}
	return s, nil
}

// get returns a statistic of a metric, 0 if the summary has none.
func (s k6Summary) get(metric, stat string) float64 { return s[metric][stat] }

// k6Timeout bounds one k6 run: the latency and coalescing scripts have
// their own maxDuration, setup and teardown timeouts, all under it.
const k6Timeout = 15 * time.Minute

// k6 runs script (a file of loadtest/) on the load CPU with env (NAME=value
// pairs as -e flags). Its output goes to a raw file of its own; with
// summary, so does its --summary-export, which is returned. k6 exits
// non-zero when a threshold fails, and so does this.
func (r *runner) k6(ctx context.Context, name, script string, summary bool, env ...string) (k6Summary, childRun, string, error) {
	r.seq++
	base := fmt.Sprintf("%03d-%s", r.seq, name)
	args := []string{r.cfg.K6, "run", "--quiet", "--no-color"}
	export := filepath.Join(r.raw, base+".k6.json")
	if summary {
		args = append(args, "--summary-export", export)
	}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, filepath.Join(r.repo, "loadtest", script))
	out := base + ".k6.txt"
	run, err := runChild(ctx, r.cfg.LoadCPU, nil, k6Timeout, filepath.Join(r.raw, out), args...)
	if err != nil {
		return nil, run, out, fmt.Errorf("k6 %s (thresholds or errors): %w", name, err)
	}
	if !summary {
		return nil, run, out, nil
	}
	b, err := os.ReadFile(export)
	if err != nil {
		return nil, run, out, err
	}
	s, err := parseK6Summary(b)
	if err != nil {
		return nil, run, out, fmt.Errorf("%s: %w", export, err)
	}
	return s, run, base + ".k6.json", nil
}
