package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bench/receiver"
)

// TestRawPost runs the command against a demo receiver: every POST
// arrives, and the rate it prints is positive. The build and the run are
// bounded (generously) so that a hang fails with a message and leaves no
// process behind.
func TestRawPost(t *testing.T) {
	r := receiver.New(receiver.Options{CountOnly: true})
	addr, stop, err := r.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	bin := filepath.Join(t.TempDir(), "raw-post")
	build, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(build, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(run, bin, "-url", "http://"+addr+"/raw", "-n", "300", "-c", "8")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.Output()
	if run.Err() != nil {
		t.Fatalf("raw-post did not finish within a minute; killed (output %q)", out)
	}
	if err != nil {
		t.Fatalf("raw-post: %v", err)
	}
	var res struct {
		Count, Failed int
		Rate          float64
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if res.Count != 300 || res.Failed != 0 || res.Rate <= 0 || r.Count() != 300 {
		t.Fatalf("printed %s; the receiver counted %d", out, r.Count())
	}
}
