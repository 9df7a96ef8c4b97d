package main

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestParseVegeta(t *testing.T) {
	f := func(file string, want loadResult) {
		t.Helper()
		got, err := parseVegeta(readTestdata(t, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got != want {
			t.Fatalf("%s: got %+v; want %+v", file, got, want)
		}
	}
	f("vegeta-get.json", loadResult{Requests: 4000, Rate: 2001.3203270567285,
		P50: 143858 * time.Nanosecond, P99: 2604134 * time.Nanosecond, Max: 8719957 * time.Nanosecond})
	f("vegeta-post.json", loadResult{Requests: 3999, Rate: 2000.2708403732129,
		P50: 160829 * time.Nanosecond, P99: 2191680 * time.Nanosecond, Max: 5788829 * time.Nanosecond})
	// Every answer 401.
	f("vegeta-non2xx.json", loadResult{Requests: 500, Rate: 500.9710803382433, Errors: 500,
		P50: 227260 * time.Nanosecond, P99: 2563764 * time.Nanosecond, Max: 4878120 * time.Nanosecond})
	// Connection refused: status 0.
	f("vegeta-refused.json", loadResult{Requests: 100, Rate: 100.9651288980203, Errors: 100,
		P50: 378776 * time.Nanosecond, P99: 2615306 * time.Nanosecond, Max: 4480665 * time.Nanosecond})
	// The deliveries' changes, each user's once (vegetaEachOnceArgs):
	// 1000 answered 201, and 6 results without a status, "no targets to
	// attack", as the lazy run ended.
	f("vegeta-deliver.json", loadResult{Requests: 1006, Rate: 2531.6248194326777, Errors: 6,
		P50: 9964137 * time.Nanosecond, P99: 29422693 * time.Nanosecond, Max: 46765766 * time.Nanosecond})
}

func TestParseVegetaNoSummary(t *testing.T) {
	for _, in := range []string{
		"",
		"Requests      [total, rate, throughput]         4000, 2001.32, 2001.17", // the text report
		`{"requests":0,"duration":0}`,
		`{"requests":10,"duration":1000,"rate":10,"status_codes":{"x":10}}`,
		`{"requests":10,"duration":1000,"rate":10,"latencies":{"99th":-1}}`,
	} {
		if got, err := parseVegeta([]byte(in)); !errors.Is(err, errNoSummary) {
			t.Errorf("parseVegeta(%q) = %+v, %v; want errNoSummary", in, got, err)
		}
	}
}

func TestVegetaTargets(t *testing.T) {
	if got, want := vegetaTargets("GET", "http://127.0.0.1:18080/alice/events?limit=20", ""),
		"GET http://127.0.0.1:18080/alice/events?limit=20\nAuthorization: alice-app\n"; got != want {
		t.Fatalf("got %q; want %q", got, want)
	}
	if got, want := vegetaTargets("POST", "http://127.0.0.1:18080/alice/events", "/tmp/event.json"),
		"POST http://127.0.0.1:18080/alice/events\nAuthorization: alice-app\nContent-Type: application/json\n@/tmp/event.json\n"; got != want {
		t.Fatalf("got %q; want %q", got, want)
	}
	got := vegetaAttackArgs("t", 2000, 4*time.Second, "out.bin")
	want := []string{"attack", "-targets", "t", "-rate", "2000/s", "-duration", "4s", "-timeout", "5s", "-max-workers", "512", "-max-connections", "512", "-output", "out.bin"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q; want %q", got, want)
	}
}

func TestVegetaEachOnce(t *testing.T) {
	want := "POST http://127.0.0.1:18080/user00001/events\nAuthorization: user00001-app\nContent-Type: application/json\n\n" +
		"POST http://127.0.0.1:18080/user00002/events\nAuthorization: user00002-app\nContent-Type: application/json\n\n"
	if got := vegetaUserTargets("http://127.0.0.1:18080", 2); got != want {
		t.Fatalf("got %q; want %q", got, want)
	}
	if got := vegetaUserTargets("http://x", 0); got != "" {
		t.Fatalf("no users: got %q", got)
	}
	got := vegetaEachOnceArgs("t", "body.json", 32, "out.bin")
	want2 := []string{"attack", "-lazy", "-targets", "t", "-body", "body.json", "-rate", "0", "-workers", "32", "-max-workers", "32",
		"-max-connections", "32", "-timeout", "30s", "-output", "out.bin"}
	if !slices.Equal(got, want2) {
		t.Fatalf("got %q; want %q", got, want2)
	}
}

// FuzzParseVegeta: parseVegeta must not panic on any report, and what
// it accepts has no negative figure.
func FuzzParseVegeta(f *testing.F) {
	for _, name := range []string{"vegeta-get.json", "vegeta-post.json", "vegeta-non2xx.json", "vegeta-refused.json", "vegeta-deliver.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseVegeta(b)
		if err != nil {
			return
		}
		if r.Requests <= 0 || r.Rate < 0 || r.P50 < 0 || r.P99 < 0 || r.Max < 0 {
			t.Fatalf("bad figures: %+v", r)
		}
	})
}
