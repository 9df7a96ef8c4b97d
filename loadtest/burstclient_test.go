package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBurst is a fake hookgate and a fake receiver for the burst
// client: hookgate answers each user's change 201 (500 for the users in
// fail) and counts it as notified at once; the receiver's /_stats counts
// those notifications and /_answered keeps the answer times reported.
type fakeBurst struct {
	fail map[string]bool

	mu       sync.Mutex
	changes  map[string]int   // user: changes
	notified int64            // changes answered 201
	answered map[string]int64 // key: answer time, Unix µs
	bad      []string         // what the fakes did not expect
}

func (f *fakeBurst) hookgate(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	user, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/events")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !ok || r.Method != "POST" || r.Header.Get("Authorization") != user+"-app" ||
		r.Header.Get("Content-Type") != "application/json" || string(b) != eventBody {
		f.bad = append(f.bad, fmt.Sprintf("%s %s %q %q %s", r.Method, r.URL, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b))
	}
	f.changes[user]++
	if f.fail[user] {
		http.Error(w, "failing", http.StatusInternalServerError)
		return
	}
	f.notified++
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"event":{"id":"x"}}`)
}

func (f *fakeBurst) receiver(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/_stats":
		fmt.Fprintf(w, `{"count":%d,"messages":{"eventsChanged":%d},"firstMs":1,"lastMs":2}`, f.notified, f.notified)
	case "/_answered":
		at, err := strconv.ParseInt(r.URL.Query().Get("t"), 10, 64)
		if r.Method != "POST" || err != nil || len(r.URL.Query()["u"]) == 0 {
			f.bad = append(f.bad, "answered: "+r.URL.String())
		}
		for _, u := range r.URL.Query()["u"] {
			f.answered[u] = at
		}
	default:
		f.bad = append(f.bad, "receiver: "+r.URL.String())
	}
}

// counts returns how many users were changed and how many answer times
// were reported.
func (f *fakeBurst) counts() (changed, answered int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.changes), len(f.answered)
}

// startFakeBurst starts the fakes, stopped at the end of the test.
func startFakeBurst(t *testing.T, fail ...string) (f *fakeBurst, hookgate, receiver string) {
	f = &fakeBurst{fail: map[string]bool{}, changes: map[string]int{}, answered: map[string]int64{}}
	for _, u := range fail {
		f.fail[u] = true
	}
	hg := httptest.NewServer(http.HandlerFunc(f.hookgate))
	t.Cleanup(hg.Close)
	rc := httptest.NewServer(http.HandlerFunc(f.receiver))
	t.Cleanup(rc.Close)
	return f, hg.URL, rc.URL
}

// TestBurstClient: every user is changed once, with its token, and
// every answer time is reported under the user's key, within the run.
//
// Real time: the client talks HTTP to fakes on loopback sockets, which a
// synctest bubble cannot hold; only outcomes are asserted, and the times
// reported only against the run's own start and end.
func TestBurstClient(t *testing.T) {
	f, hg, rc := startFakeBurst(t)
	const n = 300
	before := time.Now().UnixMicro()
	res, err := burstClient(context.Background(), burstOptions{Target: hg, Receiver: rc, Users: n, Conns: 16, Wait: time.Minute})
	after := time.Now().UnixMicro()
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != n || res.Failed != 0 || res.Seconds <= 0 || res.Rate <= 0 || res.CPUSeconds < 0 {
		t.Fatalf("result %+v", res)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) > 0 {
		t.Fatalf("unexpected requests: %q", f.bad)
	}
	if len(f.changes) != n || len(f.answered) != n {
		t.Fatalf("%d users changed, %d answers reported; want %d", len(f.changes), len(f.answered), n)
	}
	for i := 1; i <= n; i++ {
		if c := f.changes[userName(i)]; c != 1 {
			t.Fatalf("%s changed %d times", userName(i), c)
		}
		if at := f.answered[strconv.Itoa(i)]; at < before || at > after {
			t.Fatalf("key %d answered at %d, outside the run [%d, %d]", i, at, before, after)
		}
	}
}

// TestRunBurstClient runs the subcommand as the runner does, and reads
// its output with the runner's parser; a failed change fails it.
//
// Real time: as TestBurstClient, fakes on loopback sockets.
func TestRunBurstClient(t *testing.T) {
	f, hg, rc := startFakeBurst(t)
	var out, errs bytes.Buffer
	if code := runBurstClient([]string{"-target", hg, "-receiver", rc, "-users", "20", "-conns", "4"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	res, err := parseClientResult(out.Bytes())
	if err != nil || res.Count != 20 || res.Failed != 0 {
		t.Fatalf("%q: %+v, %v", out.String(), res, err)
	}
	if _, a := f.counts(); a != 20 {
		t.Fatalf("%d answers reported", a)
	}

	f, hg, rc = startFakeBurst(t, userName(3))
	out.Reset()
	errs.Reset()
	if code := runBurstClient([]string{"-target", hg, "-receiver", rc, "-users", "5", "-conns", "2"}, &out, &errs); code != 1 {
		t.Fatalf("exit %d with a failing change; want 1", code)
	}
	if !strings.Contains(errs.String(), "1 of 5 changes failed") || !strings.Contains(errs.String(), "user00003: 500") {
		t.Fatalf("stderr %q", errs.String())
	}
	if c, a := f.counts(); c != 5 || a != 0 {
		t.Fatalf("%d users changed, %d answers reported; want 5 and none", c, a)
	}

	for _, args := range [][]string{{"-users", "0"}, {"-conns", "0"}, {"extra"}, {"-nope"}} {
		if code := runBurstClient(args, &out, io.Discard); code != 2 {
			t.Errorf("runBurstClient(%q) = %d; want 2", args, code)
		}
	}
}
