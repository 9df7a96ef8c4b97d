package main

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestParseK6Summary(t *testing.T) {
	s, err := parseK6Summary(readTestdata(t, "k6-deliver.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := func(metric, stat string, want float64) {
		t.Helper()
		if got := s.get(metric, stat); got != want {
			t.Fatalf("%s %s: got %v; want %v", metric, stat, got, want)
		}
	}
	f("delivered", "count", 50)
	f("deliveries_per_s", "avg", 2272.727272727273)
	f("http_reqs", "count", 101)
	f("http_req_duration", "p(95)", 42.295531)
	f("checks", "value", 1)
	f("delivered", "thresholds", 0) // not a number: left out
	f("no_such_metric", "count", 0)

	s, err = parseK6Summary(readTestdata(t, "k6-coalesce-10.json"))
	if err != nil {
		t.Fatal(err)
	}
	f("iterations", "count", 10016)
	f("iterations", "rate", 1439.9848604684373)
}

func TestParseK6SummaryErrors(t *testing.T) {
	for _, in := range []string{"", "{}", `{"metrics":{}}`, `{"metrics":[]}`, "time=... level=error"} {
		if _, err := parseK6Summary([]byte(in)); !errors.Is(err, errNoSummary) {
			t.Errorf("parseK6Summary(%q): got %v; want errNoSummary", in, err)
		}
	}
}

func TestCoalesceRowOf(t *testing.T) {
	var rp receiverReport
	if err := json.Unmarshal(readTestdata(t, "receiver-report-coalesce-10.json"), &rp); err != nil {
		t.Fatal(err)
	}
	s, err := parseK6Summary(readTestdata(t, "k6-coalesce-10.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := coalesceRowOf(rp, s, 2)
	want := coalesceRow{Rep: 2, Changes: 10016, ChangesPerS: 1439.9848604684373, Webhooks: 10, MinPosts: 6, MaxPosts: 6,
		PostsPerHookPerS: 5 / 5.068511, MinGapMs: 1006.504, LastAfterMs: 202.898, Missing: 0}
	if got != want {
		t.Fatalf("got %+v; want %+v", got, want)
	}
	// The small run: 3 webhooks, 2 notifications each.
	if err := json.Unmarshal(readTestdata(t, "receiver-report-coalesce.json"), &rp); err != nil {
		t.Fatal(err)
	}
	got = coalesceRowOf(rp, k6Summary{}, 1)
	if got.Missing != 0 || got.MinPosts != 2 || got.LastAfterMs != 809.689 || math.Abs(got.PostsPerHookPerS-1/1.002591) > 1e-12 {
		t.Fatalf("got %+v", got)
	}
	// A webhook whose last notification came before the last change's
	// answer was missed it.
	rp.LateMs = []float64{-40, 809.878, 809.934}
	if got := coalesceRowOf(rp, k6Summary{}, 1); got.Missing != 1 || got.LastAfterMs != -40 {
		t.Fatalf("got %+v", got)
	}
}

func TestQuantile(t *testing.T) {
	lat := []float64{-4865, -4864.737, -4864.635, -4864.575, -4864.526, -4864.464, -4864.412, -4864.339, -4864.264, -4864.18}
	for _, c := range []struct{ p, want float64 }{{0.5, -4864.464}, {0.95, -4864.18}, {0.99, -4864.18}, {0, -4865}, {1, -4864.18}} {
		if got := quantile(lat, c.p); got != c.want {
			t.Errorf("quantile(%v) = %v; want %v", c.p, got, c.want)
		}
	}
	if got := quantile(nil, 0.5); !math.IsNaN(got) {
		t.Errorf("quantile of none = %v; want NaN", got)
	}
}

func TestRawPost(t *testing.T) {
	rp, err := parseClientResult(readTestdata(t, "raw-post.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rp != (clientResult{Count: 1000, Rate: 10873.2289045958, Seconds: 0.091969001}) {
		t.Fatalf("got %+v", rp)
	}
}

// FuzzParseK6Summary: parseK6Summary must not panic on any file, and
// keeps only finite numbers. Seeds: the metrics the runner reads, and
// one with thresholds, cut from the captured summaries (the whole files
// are too large for the fuzzer to minimise in its time).
func FuzzParseK6Summary(f *testing.F) {
	for _, name := range []string{"k6-deliver.json", "k6-coalesce-10.json"} {
		var full struct {
			Metrics map[string]json.RawMessage `json:"metrics"`
		}
		if err := json.Unmarshal(readTestdata(f, name), &full); err != nil {
			f.Fatal(err)
		}
		for _, m := range []string{"delivered", "deliveries_per_s", "iterations"} {
			if v, ok := full.Metrics[m]; ok {
				seed, _ := json.Marshal(map[string]any{"metrics": map[string]json.RawMessage{m: v}})
				f.Add(seed)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseK6Summary(b)
		if err != nil {
			return
		}
		for m, stats := range s {
			for k, v := range stats {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s %s = %v", m, k, v)
				}
			}
		}
	})
}
