package main

import (
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/hookgate/hookgate/bench/receiver"
)

// TestRawPost runs the command against a demo receiver: every POST
// arrives, and the rate it prints is positive.
func TestRawPost(t *testing.T) {
	r := receiver.New(receiver.Options{CountOnly: true})
	addr, stop, err := r.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	out, err := exec.Command("go", "run", ".", "-url", "http://"+addr+"/raw", "-n", "300", "-c", "8").Output()
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
