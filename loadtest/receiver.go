package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/hookgate/hookgate/bench/receiver"
)

// receiverReport is the demo receiver's GET /_report.
type receiverReport = receiver.Report

// parseReceiverReport reads the receiver's GET /_report. Counts must
// not be negative; the latencies come back sorted (quantile needs them
// so), whatever their order in b.
func parseReceiverReport(b []byte) (receiverReport, error) {
	var r receiverReport
	if err := json.Unmarshal(b, &r); err != nil {
		return receiverReport{}, fmt.Errorf("%w: %v", errNoSummary, err)
	}
	if r.Keys < 0 || r.Answered < 0 || r.Notified < 0 || r.Missing < 0 || r.MinCount < 0 || r.MaxCount < 0 {
		return receiverReport{}, fmt.Errorf("%w: a negative count in %.200s", errNoSummary, b)
	}
	slices.Sort(r.LatencyMs)
	slices.Sort(r.LateMs)
	return r, nil
}

// receiverStats is the demo receiver's GET /_stats: notifications
// counted over the whole run, by message, and the arrivals of the first
// and latest (Unix ms; zero time before any).
type receiverStats struct {
	Count    int64            `json:"count"`
	Messages map[string]int64 `json:"messages"`
	FirstMs  int64            `json:"firstMs"`
	LastMs   int64            `json:"lastMs"`
}

// parseReceiverStats reads the receiver's GET /_stats. Counts must not
// be negative.
func parseReceiverStats(b []byte) (receiverStats, error) {
	var s receiverStats
	if err := json.Unmarshal(b, &s); err != nil {
		return receiverStats{}, fmt.Errorf("%w: %v", errNoSummary, err)
	}
	if s.Count < 0 {
		return receiverStats{}, fmt.Errorf("%w: count %d", errNoSummary, s.Count)
	}
	for m, n := range s.Messages {
		if n < 0 {
			return receiverStats{}, fmt.Errorf("%w: %q counted %d", errNoSummary, m, n)
		}
	}
	return s, nil
}

// changed returns how many change notifications (eventsChanged) arrived.
func (s receiverStats) changed() int64 { return s.Messages["eventsChanged"] }

// perSecond returns the change notifications per second from the first
// arrival to the last, NaN when they did not span a millisecond.
func (s receiverStats) perSecond() float64 {
	span := float64(s.LastMs) - float64(s.FirstMs) // in float: the difference of any two int64s fits
	if s.changed() <= 0 || !(span > 0) {
		return math.NaN()
	}
	return float64(s.changed()) / (span / 1000)
}

// clientResult is what bin/raw-post and the burst client print: how many
// POSTs they sent, how many failed, over how long, their rate, and
// (burst client only) their own CPU time over those seconds.
type clientResult struct {
	Count      int64   `json:"count"`
	Failed     int64   `json:"failed"`
	Seconds    float64 `json:"seconds"`
	Rate       float64 `json:"rate"`
	CPUSeconds float64 `json:"cpuSeconds,omitempty"`
}

// parseClientResult reads a clientResult: at least one POST, failed
// within count, a positive time, no negative figure.
func parseClientResult(b []byte) (clientResult, error) {
	var c clientResult
	if err := json.Unmarshal(b, &c); err != nil {
		return clientResult{}, fmt.Errorf("%w: %v", errNoSummary, err)
	}
	if c.Count <= 0 || c.Failed < 0 || c.Failed > c.Count || !(c.Seconds > 0) || c.Rate < 0 || c.CPUSeconds < 0 {
		return clientResult{}, fmt.Errorf("%w: %.200s", errNoSummary, b)
	}
	return c, nil
}

// genPercent returns the client's CPU time as a share of one core over
// its seconds, in percent.
func (c clientResult) genPercent() float64 { return 100 * c.CPUSeconds / c.Seconds }

// getReceiver GETs path from the receiver at base (http://host:port) and
// returns the body of a 200 answer.
func getReceiver(ctx context.Context, client *http.Client, base, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the receiver's %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("the receiver's %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the receiver's %s: %d %.200s", path, resp.StatusCode, b)
	}
	return b, nil
}

// pollEvery is how often the receiver is asked whether every
// notification has arrived.
const pollEvery = 20 * time.Millisecond

// waitChanged polls the receiver's /_stats at base until n change
// notifications have arrived or wait has passed, and returns the last
// stats and their body. Fewer than n is no error here: the caller
// records what arrived, then fails.
func waitChanged(ctx context.Context, client *http.Client, base string, n int64, wait time.Duration) (receiverStats, []byte, error) {
	deadline := time.Now().Add(wait)
	for {
		b, err := getReceiver(ctx, client, base, "/_stats")
		if err != nil {
			return receiverStats{}, nil, err
		}
		s, err := parseReceiverStats(b)
		if err != nil {
			return s, b, fmt.Errorf("the receiver's /_stats: %w", err)
		}
		if s.changed() >= n || time.Now().After(deadline) {
			return s, b, nil
		}
		select {
		case <-ctx.Done():
			return s, b, ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}
