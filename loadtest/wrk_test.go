package main

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	f := func(file string, want loadResult) {
		t.Helper()
		got, err := parseWrk(readTestdata(t, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got != want {
			t.Fatalf("%s: got %+v; want %+v", file, got, want)
		}
	}
	f("wrk-get.txt", loadResult{Requests: 57844, Rate: 28636.95,
		P50: 646 * time.Microsecond, P99: 118430 * time.Microsecond, Max: 142250 * time.Microsecond})
	f("wrk-post.txt", loadResult{Requests: 79745, Rate: 39806.46,
		P50: 491 * time.Microsecond, P99: 18780 * time.Microsecond, Max: 40840 * time.Microsecond})
	// Every answer 401: all counted as errors.
	f("wrk-non2xx.txt", loadResult{Requests: 24687, Rate: 24554.53, Errors: 24687,
		P50: 235 * time.Microsecond, P99: 5060 * time.Microsecond, Max: 8580 * time.Microsecond})
	// An upstream slower than --timeout: every request a socket timeout.
	f("wrk-timeout.txt", loadResult{Requests: 8, Rate: 3.98, Errors: 8})
}

func TestParseWrkNoSummary(t *testing.T) {
	for _, in := range [][]byte{
		readTestdata(t, "wrk-refused.txt"),
		nil,
		[]byte("  57844 requests in 2.02s, 12.63MB read\nRequests/sec:  28636.95\n"), // no --latency
		[]byte("     50%  646.00us\n     99%  1.00ms\n  5 requests in 1s\nRequests/sec:  NaN\n"),
		[]byte("     50%  646.00xs\n"),
	} {
		if got, err := parseWrk(in); !errors.Is(err, errNoSummary) {
			t.Errorf("parseWrk(%q) = %+v, %v; want errNoSummary", in, got, err)
		}
	}
}

func TestWrkArgs(t *testing.T) {
	got := wrkArgs("http://127.0.0.1:18000/alice/events", 1, 32, 4*time.Second, []string{"Authorization: alice-app"}, "")
	want := []string{"-t", "1", "-c", "32", "-d", "4s", "--timeout", "5s", "--latency", "-H", "Authorization: alice-app",
		"http://127.0.0.1:18000/alice/events"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q; want %q", got, want)
	}
	got = wrkArgs("http://x/", 2, 8, 1400*time.Millisecond, nil, "post.lua")
	want = []string{"-t", "2", "-c", "8", "-d", "1s", "--timeout", "5s", "--latency", "-s", "post.lua", "http://x/"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q; want %q", got, want)
	}
}

// FuzzParseWrk: parseWrk must not panic on any output, and what it
// accepts has no negative figure.
func FuzzParseWrk(f *testing.F) {
	for _, name := range []string{"wrk-get.txt", "wrk-post.txt", "wrk-non2xx.txt", "wrk-timeout.txt", "wrk-refused.txt"} {
		f.Add(readTestdata(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseWrk(b)
		if err != nil {
			return
		}
		if r.Requests < 0 || r.Rate < 0 || r.Errors < 0 {
			t.Fatalf("negative figures: %+v", r)
		}
	})
}
