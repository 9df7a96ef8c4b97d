package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPprof: the operations listener serves Go's profiles only when
// asked. Without -pprof, /debug/pprof/ answers 404; with HOOKGATE_PPROF
// (the flag through the environment), /debug/pprof/heap is a gzipped
// profile, and so is /debug/pprof/profile (the CPU profile, here of one
// second); /debug/pprof/ is the index.
func TestPprof(t *testing.T) {
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(url string) (int, []byte) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}

	off := startGateway(t, "-data-dir", t.TempDir())
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap"} {
		if code, body := get("http://" + off.ops + path); code != http.StatusNotFound {
			t.Errorf("%s without -pprof: %d %.100q; want 404", path, code, body)
		}
	}

	on := startGatewayEnv(t, []string{"HOOKGATE_PPROF=true"}, "-data-dir", t.TempDir())
	for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		code, body := get("http://" + on.ops + path)
		if code != http.StatusOK {
			t.Fatalf("%s with HOOKGATE_PPROF=true: %d %.200q", path, code, body)
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s is not gzipped: %v", path, err)
		}
		profile, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		// The sample types are in the profile's string table.
		want := map[bool]string{true: "inuse_space", false: "nanoseconds"}[strings.Contains(path, "heap")]
		if !bytes.Contains(profile, []byte(want)) {
			t.Errorf("%s: a profile of %d bytes names no %s", path, len(profile), want)
		}
	}
	if code, body := get("http://" + on.ops + "/debug/pprof/"); code != http.StatusOK || !bytes.Contains(body, []byte("full goroutine stack dump")) {
		t.Errorf("/debug/pprof/ with HOOKGATE_PPROF=true: %d %.300q; want the index", code, body)
	}
}
