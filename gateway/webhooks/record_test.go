package webhooks

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/state"
)

func recordSamples() []*core.Webhook {
	return []*core.Webhook{
		{ID: core.NewID(), User: "alice", AccessID: "acc1", URL: "https://example.com/hook?a=1", MinIntervalMs: 5000, MaxRetries: 5,
			State: core.StateActive, Created: 1.7e9 + 0.25, CreatedBy: "acc1", Modified: 1.7e9 + 1, ModifiedBy: "acc1"},
		{ID: core.NewID(), User: "bob", AccessID: "acc2", URL: "http://127.0.0.1:1/é", MinIntervalMs: 0, MaxRetries: 0, CurrentRetries: 3,
			State: core.StateInactive, RunCount: 1 << 30, FailCount: 12, LastRun: core.Run{Status: -1, Timestamp: 1.5},
			Created: 2, CreatedBy: "personal", Modified: 3, ModifiedBy: "other", Signed: true, Secret: "whsec_abc"},
		{ID: core.NewID(), User: "dave", AccessID: "acc4", URL: "https://example.com/rotating", State: core.StateActive, CreatedBy: "acc4",
			ModifiedBy: "acc4", Signed: true, Secret: "whsec_new", PreviousSecret: "whsec_old", PreviousUntil: 1.7e9 + 86400.5},
		{ID: "x", User: "", AccessID: "", URL: "", State: "odd", MinIntervalMs: -7},
		{ID: core.NewID(), User: "carol", AccessID: "acc3", URL: "https://example.com/scoped", State: core.StateActive,
			CreatedBy: "acc3", ModifiedBy: "acc3", Scopes: &core.Scopes{List: []core.Scope{
				{Key: "diary", Kind: core.KindEvents, Streams: []string{"diary"}, Types: []string{"note/txt", "mass/*"}, Within: []string{"diary", "diary-2"}},
				{Key: "tree", Kind: core.KindStreams},
			}}},
	}
}

// TestRecordRoundTrip: a record decodes to what was encoded, with its
// secret sealed and opened again, and a JSON record of an earlier
// version reads the same.
func TestRecordRoundTrip(t *testing.T) {
	sealer, err := NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range recordSamples() {
		s := &Store{sealer: sealer}
		v, err := s.encode(w)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(v, sealer)
		if err != nil {
			t.Fatalf("%s: %v", w.ID, err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, w)
		}
		if w.Scopes == nil && w.PreviousSecret == "" { // JSON records come from versions without either
			j, err := json.Marshal(stored{User: w.User, Webhook: w, Secret: w.Secret})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := decodeRecord(j, sealer); err != nil || !reflect.DeepEqual(got, w) {
				t.Fatalf("JSON record: %+v, %v", got, err)
			}
		}
		// Every truncation is refused.
		for n := range len(v) {
			if _, err := decodeRecord(v[:n], sealer); err == nil {
				t.Fatalf("%d of %d bytes decoded", n, len(v))
			}
		}
		if _, err := decodeRecord(append(v, 0), sealer); err == nil {
			t.Fatal("a trailing byte was accepted")
		}
		neg := *w
		neg.RunCount = -1
		if _, err := decodeRecord(appendRecord(nil, &neg, "", neg.PreviousSecret), sealer); err == nil {
			t.Fatal("a negative runCount was accepted")
		}
		if _, err := decodeCounters(appendCounters(nil, state.Counters{FailCount: -2})); err == nil {
			t.Fatal("a negative failCount was accepted in counters")
		}
	}
}

// FuzzDecodeRecord: any bytes decode or are refused, never panic; what
// decodes encodes back to a record that decodes the same.
func FuzzDecodeRecord(f *testing.F) {
	for _, w := range recordSamples() {
		f.Add(appendRecord(nil, w, w.Secret, w.PreviousSecret))
	}
	f.Add([]byte(`{"user":"u","webhook":{"id":"a","runs":[{"status":200,"timestamp":1}]}}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		w, err := decodeRecord(v, nil)
		if err != nil {
			return
		}
		w.Runs = nil
		again, err := decodeRecord(appendRecord(nil, w, w.Secret, w.PreviousSecret), nil)
		if err != nil {
			t.Fatalf("re-encoded record refused: %v", err)
		}
		if !reflect.DeepEqual(again, w) && !hasNaN(w) {
			t.Fatalf("re-encoded:\n got %+v\nwant %+v", again, w)
		}
	})
}

func hasNaN(w *core.Webhook) bool {
	return w.Created != w.Created || w.Modified != w.Modified || w.LastRun.Timestamp != w.LastRun.Timestamp
}

// TestCountersRoundTrip: counters and run values decode to what was
// encoded, and a truncation is refused.
func TestCountersRoundTrip(t *testing.T) {
	for _, c := range []state.Counters{
		{State: core.StateActive},
		{RunCount: 1 << 30, FailCount: 7, CurrentRetries: 3, LastRun: core.Run{Status: 503, Timestamp: 1.7e9 + 0.123}, State: core.StateInactive, Basis: 1.7e9 + 0.5},
		{LastRun: core.Run{Status: -1}, State: "odd"},
	} {
		v := appendCounters(nil, c)
		if got, err := decodeCounters(v); err != nil || got != c {
			t.Fatalf("counters %+v: %+v, %v", c, got, err)
		}
		for n := range len(v) {
			if _, err := decodeCounters(v[:n]); err == nil {
				t.Fatalf("%d of %d bytes of counters decoded", n, len(v))
			}
		}
	}
	// Version 1, without the basis, is still read.
	c := state.Counters{RunCount: 4, FailCount: 1, CurrentRetries: 1, LastRun: core.Run{Status: 500, Timestamp: 9.5}, State: core.StateActive}
	cv := appendCounters(nil, c)
	v1 := append([]byte{countersV1}, cv[1:len(cv)-8]...)
	if got, err := decodeCounters(v1); err != nil || got != c {
		t.Fatalf("version 1 counters: %+v, %v; want %+v", got, err, c)
	}
	// Version 3: counters and the runs a write added.
	runs := []core.Run{{Status: 200, Timestamp: 10}, {Status: 503, Timestamp: 11, DurationMs: 2.5, Error: core.RunHTTP, Answer: "busy"}}
	c3 := state.Counters{RunCount: 42, FailCount: 1, LastRun: core.Run{Status: 503, Timestamp: 11}, State: "odd", Basis: 3}
	for _, want := range [][]core.Run{nil, runs} {
		v := appendCountersRuns(nil, c3, 41, want)
		got, numbered, err := decodeCountersRuns(v)
		if err != nil || got != c3 || len(numbered) != len(want) {
			t.Fatalf("version 3 with %d runs: %+v, %+v, %v", len(want), got, numbered, err)
		}
		for i, n := range numbered {
			if n != (state.Numbered{N: 41 + i, Run: want[i]}) {
				t.Fatalf("version 3 run %d: %+v; want %+v", i, n, want[i])
			}
		}
		if c, err := decodeCounters(v); err != nil || c != c3 {
			t.Fatalf("version 3 read as counters: %+v, %v", c, err)
		}
		for n := range len(v) {
			if _, _, err := decodeCountersRuns(v[:n]); err == nil {
				t.Fatalf("%d of %d bytes of version 3 decoded", n, len(v))
			}
		}
		if _, _, err := decodeCountersRuns(append(v, 0)); err == nil {
			t.Fatal("version 3 with a byte more decoded")
		}
	}
	r := core.Run{Status: 410, Timestamp: 12.5}
	if got, err := decodeRun(runValue(51, r)); err != nil || got != (state.Numbered{N: 51, Run: r}) {
		t.Fatalf("run: %+v, %v", got, err)
	}
	if _, err := decodeRun(runValue(0, r)); err == nil {
		t.Fatal("run number 0 decoded")
	}
	// A failed run's details, and a run stored by an earlier version,
	// 20 bytes without them.
	failed := core.Run{Status: 503, Timestamp: 13.25, DurationMs: 12.345, Error: core.RunHTTP, Answer: `{"error":"overloaded"}`}
	v := runValue(52, failed)
	if got, err := decodeRun(v); err != nil || got != (state.Numbered{N: 52, Run: failed}) {
		t.Fatalf("failed run: %+v, %v", got, err)
	}
	for n := 21; n < len(v); n++ {
		if _, err := decodeRun(v[:n]); err == nil {
			t.Fatalf("%d of %d bytes of a run decoded", n, len(v))
		}
	}
	if got, err := decodeRun(v[:20]); err != nil || got != (state.Numbered{N: 52, Run: core.Run{Status: 503, Timestamp: 13.25}}) {
		t.Fatalf("a 20-byte run of an earlier version: %+v, %v", got, err)
	}
	long := core.Run{Error: "from a later version", Answer: strings.Repeat("x", 3*core.MaxRunAnswer)}
	if got, err := decodeRun(runValue(1, long)); err != nil || got.Run.Error != core.RunConnection || len(got.Run.Answer) != core.MaxRunAnswer {
		t.Fatalf("an unknown class and a long answer: %+v, %v", got, err)
	}
}

// FuzzDecodeCounters: counters and run values from any bytes decode or
// are refused, never panic; what decodes encodes back to the same.
func FuzzDecodeCounters(f *testing.F) {
	f.Add(appendCounters(nil, state.Counters{RunCount: 3, State: "odd"}))
	f.Add(runValue(7, core.Run{Status: 200, Timestamp: 1}))
	f.Add(runValue(8, core.Run{Status: 0, Timestamp: 2, DurationMs: 5000, Error: core.RunTimeout}))
	f.Add(appendCountersRuns(nil, state.Counters{RunCount: 2, State: core.StateActive}, 1, []core.Run{{Status: 200, Timestamp: 1}, {Status: 0, Timestamp: 2, Answer: "x"}}))
	f.Fuzz(func(t *testing.T, v []byte) {
		if c, runs, err := decodeCountersRuns(v); err == nil && len(runs) > 0 && consecutive(runs) {
			again, rruns, err := decodeCountersRuns(appendCountersRuns(nil, c, runs[0].N, numberedRuns(runs)))
			if err != nil || len(rruns) != len(runs) || (again != c && c.LastRun.Timestamp == c.LastRun.Timestamp && c.Basis == c.Basis) {
				t.Fatalf("counters %+v and %d runs re-encoded: %+v, %d runs, %v", c, len(runs), again, len(rruns), err)
			}
		}
		if c, err := decodeCounters(v); err == nil {
			if again, err := decodeCounters(appendCounters(nil, c)); err != nil || (again != c && c.LastRun.Timestamp == c.LastRun.Timestamp && c.Basis == c.Basis) {
				t.Fatalf("counters %+v re-encoded: %+v, %v", c, again, err)
			}
		}
		if r, err := decodeRun(v); err == nil {
			if again, err := decodeRun(runValue(r.N, r.Run)); err != nil || (again != r && r.Run.Timestamp == r.Run.Timestamp) {
				t.Fatalf("run %+v re-encoded: %+v, %v", r, again, err)
			}
		}
	})
}

func numberedRuns(ns []state.Numbered) []core.Run {
	runs := make([]core.Run, len(ns))
	for i, n := range ns {
		runs[i] = n.Run
	}
	return runs
}

// consecutive reports whether runs are numbered one after another, as
// appendCountersRuns numbers them.
func consecutive(runs []state.Numbered) bool {
	for i := range runs {
		if runs[i].N != runs[0].N+i {
			return false
		}
	}
	return true
}
