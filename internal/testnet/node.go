package testnet

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Node is a Node.js script run by a test, which reports what it does one
// line at a time on its stdout.
type Node struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
	grew  chan struct{} // closed and replaced when a line comes
	ended bool
}

// NodeBound is how long Expect waits for a line before the test fails:
// long enough for a loaded 2-core machine, so a failure means the line
// is not coming, not that it was slow.
const NodeBound = 30 * time.Second

// StartNode runs node on script with env added to the test's, and
// stops it when the test ends (it must exit when its stdin closes). With
// no node installed the test is skipped, unless HOOKGATE_REQUIRE_NODE is
// set, as CI sets it: there it fails.
func StartNode(t testing.TB, script string, env ...string) *Node {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("HOOKGATE_REQUIRE_NODE") != "" {
			t.Fatalf("node is required (HOOKGATE_REQUIRE_NODE is set): %v", err)
		}
		t.Skipf("node is not installed: %v", err)
	}
	cmd := exec.Command(bin, script)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &Node{t: t, grew: make(chan struct{})}
	read := make(chan struct{})
	go func() {
		defer close(read)
		n.read(stdout)
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(NodeBound):
			cmd.Process.Kill()
			<-done
		}
		<-read
	})
	return n
}

func (n *Node) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		n.mu.Lock()
		n.lines = append(n.lines, sc.Text())
		close(n.grew)
		n.grew = make(chan struct{})
		n.mu.Unlock()
	}
	n.mu.Lock()
	n.ended = true
	close(n.grew)
	n.mu.Unlock()
}

// Expect waits for the first line, from line from on (counted from 0),
// that starts with prefix, and returns it and its number. The test fails
// if none comes within NodeBound or the script ends first.
func (n *Node) Expect(from int, prefix string) (string, int) {
	n.t.Helper()
	deadline := time.NewTimer(NodeBound)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		for i := from; i < len(n.lines); i++ {
			if strings.HasPrefix(n.lines[i], prefix) {
				line := n.lines[i]
				n.mu.Unlock()
				return line, i
			}
		}
		from = max(from, len(n.lines))
		grew, ended := n.grew, n.ended
		n.mu.Unlock()
		if ended {
			n.t.Fatalf("node ended before printing %q", prefix)
		}
		select {
		case <-grew:
		case <-deadline.C:
			n.t.Fatalf("node did not print %q within %s", prefix, NodeBound)
		}
	}
}

// Count returns how many lines so far start with prefix.
func (n *Node) Count(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, l := range n.lines {
		if strings.HasPrefix(l, prefix) {
			c++
		}
	}
	return c
}

// Lines returns how many lines came so far.
func (n *Node) Lines() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.lines)
}

// RequireNPM skips the test when the npm packages pkgs are not installed
// in dir's node_modules (npm ci in dir installs them), or fails it where
// node is required (HOOKGATE_REQUIRE_NODE, as CI sets it).
func RequireNPM(t testing.TB, dir string, pkgs ...string) {
	t.Helper()
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			if os.Getenv("HOOKGATE_REQUIRE_NODE") != "" {
				t.Fatalf("the npm package %s is required (npm ci in %s): %v", p, dir, err)
			}
			t.Skipf("the npm package %s is not installed (npm ci in %s)", p, dir)
		}
	}
}
