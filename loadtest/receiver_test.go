package main

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestParseReceiverStats(t *testing.T) {
	s, err := parseReceiverStats(readTestdata(t, "receiver-stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Count != 1000 || s.changed() != 1000 || s.FirstMs != 1796186820671 || s.LastMs != 1796186821039 {
		t.Fatalf("got %+v", s)
	}
	if got := s.perSecond(); math.Abs(got-1000/0.368) > 1e-9 {
		t.Fatalf("perSecond = %v; want 1000 in 368 ms", got)
	}
	// Before any notification: the zero time, and no rate.
	s, err = parseReceiverStats([]byte(`{"count":0,"firstMs":-62135596800000,"lastMs":-62135596800000,"messages":null}`))
	if err != nil || s.changed() != 0 || !math.IsNaN(s.perSecond()) {
		t.Fatalf("got %+v, %v", s, err)
	}
	// All in one millisecond: no rate either.
	if s, _ := parseReceiverStats([]byte(`{"count":1,"firstMs":5,"lastMs":5,"messages":{"eventsChanged":1}}`)); !math.IsNaN(s.perSecond()) {
		t.Fatalf("perSecond of one millisecond = %v", s.perSecond())
	}
	for _, in := range []string{"", "[]", `{"count":-1}`, `{"count":1,"messages":{"eventsChanged":-1}}`, `{"count":"1"}`} {
		if got, err := parseReceiverStats([]byte(in)); !errors.Is(err, errNoSummary) {
			t.Errorf("parseReceiverStats(%q) = %+v, %v; want errNoSummary", in, got, err)
		}
	}
}

func TestParseReceiverReport(t *testing.T) {
	r, err := parseReceiverReport(readTestdata(t, "receiver-report-burst.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Keys != 1000 || r.Answered != 1000 || r.Notified != 1000 || r.Missing != 0 || len(r.LatencyMs) != 1000 ||
		r.LatencyMs[0] != -19.917 || r.LatencyMs[999] != 18.182 || r.MinCount != 1 || r.MaxCount != 1 {
		t.Fatalf("got keys %d answered %d notified %d missing %d, %d latencies %v..%v", r.Keys, r.Answered, r.Notified,
			r.Missing, len(r.LatencyMs), r.LatencyMs[0], r.LatencyMs[len(r.LatencyMs)-1])
	}
	r, err = parseReceiverReport(readTestdata(t, "receiver-report-coalesce.json"))
	if err != nil || r.Keys != 3 || r.MinGapMs != 1002.043 || r.SpanMs != 1002.591 || !slices.Equal(r.LateMs, []float64{809.689, 809.878, 809.934}) {
		t.Fatalf("got %+v, %v", r, err)
	}
	// The latencies come back sorted.
	r, err = parseReceiverReport([]byte(`{"answered":3,"notified":3,"latencyMs":[3,-1,2],"lateMs":[9,8]}`))
	if err != nil || !slices.Equal(r.LatencyMs, []float64{-1, 2, 3}) || !slices.Equal(r.LateMs, []float64{8, 9}) {
		t.Fatalf("got %+v, %v", r, err)
	}
	for _, in := range []string{"", "null x", `{"keys":-1}`, `{"missing":-2}`, `{"maxCount":-1}`, `{"latencyMs":["a"]}`} {
		if got, err := parseReceiverReport([]byte(in)); !errors.Is(err, errNoSummary) {
			t.Errorf("parseReceiverReport(%q) = %+v, %v; want errNoSummary", in, got, err)
		}
	}
}

func TestParseClientResult(t *testing.T) {
	c, err := parseClientResult(readTestdata(t, "burst-client.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c != (clientResult{Count: 1000, Seconds: 0.417765119, Rate: 2393.6895507066015, CPUSeconds: 0.061532}) {
		t.Fatalf("got %+v", c)
	}
	if got := c.genPercent(); math.Abs(got-100*0.061532/0.417765119) > 1e-9 {
		t.Fatalf("genPercent = %v", got)
	}
	for _, in := range []string{"", `{"count":0,"seconds":1}`, `{"count":1,"seconds":0}`, `{"count":1,"failed":2,"seconds":1}`,
		`{"count":1,"failed":-1,"seconds":1}`, `{"count":1,"seconds":1,"rate":-1}`, `{"count":1,"seconds":1,"cpuSeconds":-1}`,
		`{"count":1,"seconds":1e999}`} {
		if got, err := parseClientResult([]byte(in)); !errors.Is(err, errNoSummary) {
			t.Errorf("parseClientResult(%q) = %+v, %v; want errNoSummary", in, got, err)
		}
	}
}

// TestBurstRowOf makes the row of the captured burst run: 1000 changes,
// 437 of them notified before their answer was read.
func TestBurstRowOf(t *testing.T) {
	rp, err := parseReceiverReport(readTestdata(t, "receiver-report-burst.json"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := parseClientResult(readTestdata(t, "burst-client.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := burstRowOf(rp, cl, 1000, 2)
	want := burstRow{Webhooks: 1000, Rep: 2, Changes: 1000, Notified: 1000, Early: 437, ChangesPerS: 2393.6895507066015,
		P50Ms: 1.463, P95Ms: 10.011, P99Ms: 15.885, MaxMs: 18.182, GenPct: cl.genPercent()}
	if got != want {
		t.Fatalf("got %+v; want %+v", got, want)
	}
	// No notification: no latencies, NaN quantiles.
	got = burstRowOf(receiverReport{Answered: 5, Missing: 5}, cl, 5, 1)
	if got.Notified != 0 || got.Early != 0 || !math.IsNaN(got.P99Ms) {
		t.Fatalf("got %+v", got)
	}
}

// FuzzParseReceiverStats: parseReceiverStats must not panic on any
// input, and what it accepts has no negative count and no negative or
// infinite rate.
func FuzzParseReceiverStats(f *testing.F) {
	f.Add(readTestdata(f, "receiver-stats.json"))
	f.Add([]byte(`{"count":0,"firstMs":-62135596800000,"lastMs":-62135596800000,"messages":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseReceiverStats(b)
		if err != nil {
			return
		}
		if s.Count < 0 || s.changed() < 0 {
			t.Fatalf("bad counts: %+v", s)
		}
		if r := s.perSecond(); r < 0 || math.IsInf(r, 0) {
			t.Fatalf("rate %v of %+v", r, s)
		}
	})
}

// FuzzParseReceiverReport: parseReceiverReport must not panic on any
// input, and what it accepts has no negative count and sorted latencies.
// Seed: the captured burst report cut to its first latencies (the whole
// file is too large for the fuzzer to minimise in its time), and a
// coalescing report.
func FuzzParseReceiverReport(f *testing.F) {
	f.Add([]byte(`{"keys":3,"answered":3,"notified":3,"missing":0,"latencyMs":[-19.917,1.463,18.182],"lateMs":[-19.917,1.463,18.182],"minCount":1,"maxCount":1,"minGapMs":0,"spanMs":0}`))
	f.Add(readTestdata(f, "receiver-report-coalesce-10.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseReceiverReport(b)
		if err != nil {
			return
		}
		if r.Keys < 0 || r.Answered < 0 || r.Notified < 0 || r.Missing < 0 || r.MinCount < 0 || r.MaxCount < 0 {
			t.Fatalf("bad counts: %+v", r)
		}
		if !slices.IsSorted(r.LatencyMs) || !slices.IsSorted(r.LateMs) {
			t.Fatalf("unsorted: %+v", r)
		}
	})
}

// FuzzParseClientResult: parseClientResult must not panic on any input,
// and what it accepts has at least one POST, failures within the count,
// a positive time and a finite generator share.
func FuzzParseClientResult(f *testing.F) {
	f.Add(readTestdata(f, "raw-post.json"))
	f.Add(readTestdata(f, "burst-client.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseClientResult(b)
		if err != nil {
			return
		}
		if c.Count <= 0 || c.Failed < 0 || c.Failed > c.Count || c.Seconds <= 0 || c.Rate < 0 || c.CPUSeconds < 0 {
			t.Fatalf("bad figures: %+v", c)
		}
		if g := c.genPercent(); math.IsNaN(g) || g < 0 {
			t.Fatalf("genPercent %v of %+v", g, c)
		}
	})
}
