package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFleetStop: stop ends every server, killing those that ignore
// SIGTERM after the grace.
//
// Real time: it starts real processes (sleep, sh) and stops them; the
// stop is bounded by 3 s, and the wait for the shells to set their
// traps (their first line of output) by 10 s, as failure limits.
func TestFleetStop(t *testing.T) {
	f := &fleet{cpu: -1, logs: t.TempDir(), grace: 300 * time.Millisecond}
	a, err := f.start("a", nil, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	// Servers that ignore SIGTERM are killed.
	b, err := f.start("b", nil, "sh", "-c", "trap '' TERM; echo $GOMAXPROCS; sleep 30 & wait")
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.start("c", nil, "sh", "-c", "trap '' TERM; echo ready; sleep 30 & wait")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.check(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cpuTimes(); err != nil {
		t.Fatal(err)
	}
	// Each sh writes its line once its trap is set.
	for deadline := time.Now().Add(10 * time.Second); tail(b.log, 1) == "" || tail(c.log, 1) == ""; {
		if time.Now().After(deadline) {
			t.Fatalf("the servers wrote nothing in 10 s: %q, %q", tail(b.log, 1), tail(c.log, 1))
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	f.stop()
	if a.alive() || b.alive() || c.alive() {
		t.Fatal("a server still runs after stop")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stop took %s", d)
	}
	if got := strings.TrimSpace(tail(b.log, 1)); got != "1" {
		t.Fatalf("GOMAXPROCS in the server: %q; want 1", got)
	}
}

// TestFleetCheck: a server that exits is reported with the end of its
// log.
func TestFleetCheck(t *testing.T) {
	f := &fleet{cpu: -1, logs: t.TempDir()}
	defer f.stop()
	s, err := f.start("dies", nil, "sh", "-c", "echo going away; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	<-s.done
	err = f.check()
	if err == nil || !strings.Contains(err.Error(), "going away") {
		t.Fatalf("got %v; want the end of the log", err)
	}
	if err := waitPort(context.Background(), "127.0.0.1:1", s); err == nil {
		t.Fatal("waitPort for a server that exited: want an error")
	}
}

// TestRunChild: a generator's output, CPU time and failure, and its
// timeout.
//
// Real time: it runs real processes; the timeout case is bounded by 6 s
// as a failure limit.
func TestRunChild(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	// About 0.2 s of CPU.
	run, err := runChild(context.Background(), -1, []string{"X=42"}, 10*time.Second, out,
		"sh", "-c", `echo $X; i=0; while [ $i -lt 40000 ]; do i=$((i+1)); done`)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "42\n" {
		t.Fatalf("output %q", b)
	}
	if run.User+run.System <= 0 || run.Wall <= 0 || run.percent() > 110 {
		t.Fatalf("got %+v (%.1f %%)", run, run.percent())
	}
	_, err = runChild(context.Background(), -1, nil, 10*time.Second, out, "sh", "-c", "echo broken; exit 1")
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("got %v; want the failure with its output", err)
	}
	start := time.Now()
	_, err = runChild(context.Background(), -1, nil, 200*time.Millisecond, out, "sleep", "30")
	if err == nil || !strings.Contains(err.Error(), "still running") || time.Since(start) > 6*time.Second {
		t.Fatalf("got %v after %s; want a timeout", err, time.Since(start))
	}
}

func TestPinned(t *testing.T) {
	if got := pinned(-1, []string{"wrk", "x"}); !slices.Equal(got, []string{"wrk", "x"}) {
		t.Fatalf("got %q", got)
	}
	if got := pinned(1, []string{"wrk", "x"}); !slices.Equal(got, []string{"taskset", "-c", "1", "wrk", "x"}) {
		t.Fatalf("got %q", got)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := parseConfig([]string{"quick"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Duration != 4*time.Second || c.Reps != 1 || c.Warmup != time.Second || !slices.Equal(c.DeliverUsers, []int{1000}) ||
		c.BurstUsers != 1000 || c.LatUsers != 300 || c.Changes != 10000 || c.Rate != 2000 || c.Conns != 32 ||
		!slices.Equal(c.Scenarios, []string{"reads", "changes", "deliveries", "burst", "latency", "coalescing"}) {
		t.Fatalf("quick: %+v", c)
	}
	c, err = parseConfig([]string{"-rate", "3000", "-scenarios", "reads, changes", "-warmup", "0", "full"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Duration != 15*time.Second || c.Reps != 3 || c.Warmup != 0 || c.Rate != 3000 ||
		!slices.Equal(c.Scenarios, []string{"reads", "changes"}) || !slices.Equal(c.DeliverUsers, []int{1000, 10000}) {
		t.Fatalf("full: %+v", c)
	}
	c, err = parseConfig([]string{"quick", "-deliver-users", "10,20", "-reps", "2", "-burst-users", "50"}, os.Stderr)
	if err != nil || c.Reps != 2 || !slices.Equal(c.DeliverUsers, []int{10, 20}) || c.BurstUsers != 50 {
		t.Fatalf("got %+v, %v", c, err)
	}
	var discard strings.Builder
	for _, args := range [][]string{{}, {"slow"}, {"quick", "-scenarios", "reads,nope"}, {"quick", "-deliver-users", "x"},
		{"quick", "extra"}, {"quick", "-duration", "10ms"}, {"quick", "-burst-users", "-1"}} {
		if _, err := parseConfig(args, &discard); err == nil {
			t.Errorf("parseConfig(%q): want an error", args)
		}
	}
}
