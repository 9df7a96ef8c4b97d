package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmallRun builds hookgate and this command and runs every step with
// 2,000 imported and 10 API webhooks: the command exits 0 and prints the
// table, every run record durable.
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hookgate and runs it three times")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := t.TempDir()
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin+"/",
		"github.com/hookgate/hookgate/cmd/hookgate", "github.com/hookgate/hookgate/cmd/scale")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "scale"), "-n", "2000", "-api", "10",
		"-hookgate", filepath.Join(bin, "hookgate"), "-dir", t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scale: %v\n%s", err, out)
	}
	for _, want := range []string{
		"run records durable: 2010 of 2010",
		"; 1000 run histories read back",
		"restart after the graceful stop (2010 active): /healthz 200 after ",
		"| measure ",
		"| create through the API, 64 clients ",
		"| 0 failures of 10 ",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
