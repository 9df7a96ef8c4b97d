package queue

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookgate/hookgate/gateway/store"
)

// TestCrashHelper is the child process of TestCrashReopen: it appends from
// several goroutines and prints "seq data" for each append that returned,
// until it is killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv("HOOKGATE_CRASH_DIR")
	if dir == "" {
		t.Skip("child process of TestCrashReopen")
	}
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	q, err := OpenBadger(db, Options{Async: os.Getenv("HOOKGATE_CRASH_ASYNC") == "1"})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				d := fmt.Sprintf("g%d-%d", g, i)
				s, err := q.Append([]byte(d))
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(w, "%d %s\n", s, d)
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	select {} // until killed
}

// TestCrashReopen kills a process that is appending, with SIGKILL and no
// warning, then reopens its database: every append the process saw
// succeed must be there, with its data.
func TestCrashReopen(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			dir := t.TempDir()
			for cycle := range 2 {
				acked := runUntilKilled(t, dir, async, 300)
				db, err := store.Open(dir, store.Options{})
				if err != nil {
					t.Fatalf("cycle %d: reopen after kill: %v", cycle, err)
				}
				q, err := OpenBadger(db, Options{})
				if err != nil {
					t.Fatal(err)
				}
				recs, err := q.Read(nil, 0, 1<<30)
				if err != nil {
					t.Fatal(err)
				}
				got := map[uint64]string{}
				for _, r := range recs {
					got[r.Seq] = string(r.Data)
				}
				for s, d := range acked {
					if got[s] != d {
						t.Fatalf("cycle %d: seq %d acknowledged as %q, found %q after the crash", cycle, s, d, got[s])
					}
				}
				t.Logf("cycle %d: %d appends acknowledged before SIGKILL, %d records on disk, all present", cycle, len(acked), len(recs))
				q.Close()
				db.Close()
			}
		})
	}
}

// runUntilKilled starts the helper on dir, reads its acknowledgements until
// it has at least n, kills it with SIGKILL, and returns them.
func runUntilKilled(t *testing.T, dir string, async bool, n int) map[uint64]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v=false")
	cmd.Env = append(os.Environ(), "HOOKGATE_CRASH_DIR="+dir)
	if async {
		cmd.Env = append(cmd.Env, "HOOKGATE_CRASH_ASYNC=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	sc := bufio.NewScanner(out)
	timeout := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timeout.Stop()
	for sc.Scan() {
		line := sc.Text()
		seq, data, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		s, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			continue
		}
		acked[s] = data
		if len(acked) >= n {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	// Lines printed between our last read and the kill are acknowledged
	// too: keep reading what the pipe still holds.
	for sc.Scan() {
		if seq, data, ok := strings.Cut(sc.Text(), " "); ok {
			if s, err := strconv.ParseUint(seq, 10, 64); err == nil {
				acked[s] = data
			}
		}
	}
	cmd.Wait()
	if len(acked) < n {
		t.Fatalf("helper acknowledged only %d appends before exiting", len(acked))
	}
	return acked
}
