package queue

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// crashCycles is how many kill -9 cycles TestCrashReopen runs per mode:
// HOOKGATE_CRASH_CYCLES (make test-long sets 10), default 2.
func crashCycles(t *testing.T) int {
	v := os.Getenv("HOOKGATE_CRASH_CYCLES")
	if v == "" {
		return 2
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("HOOKGATE_CRASH_CYCLES=%q: want a positive number", v)
	}
	return n
}

// TestCrashReopen kills a process that is appending, with SIGKILL and no
// warning, then reopens its database: every append the process saw
// succeed must be there, with its data, and no sequence number it was
// given is handed out again.
//
// Real time: the appender is a separate process writing to a real disk
// and killed by a real signal. Only outcomes are asserted; the one bound
// (crashPatience, in runUntilKilled) only keeps a stuck child from hanging
// the test.
func TestCrashReopen(t *testing.T) {
	cycles := crashCycles(t)
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			dir := t.TempDir()
			for cycle := range cycles {
				acked := runUntilKilled(t, dir, async, 300)
				db, err := store.Open(dir, store.Options{})
				if err != nil {
					t.Fatalf("cycle %d: reopen after kill: %v", cycle, err)
				}
				q, err := OpenBadger(db, Options{})
				if err != nil {
					db.Close()
					t.Fatalf("cycle %d: open the queue after kill: %v", cycle, err)
				}
				recs, err := q.Read(nil, 0, 1<<30)
				if err != nil {
					q.Close()
					db.Close()
					t.Fatal(err)
				}
				got := map[uint64]string{}
				for _, r := range recs {
					got[r.Seq] = string(r.Data)
				}
				var last uint64
				for s, d := range acked {
					last = max(last, s)
					if got[s] != d {
						q.Close()
						db.Close()
						t.Fatalf("cycle %d: seq %d acknowledged as %q, found %q after the crash", cycle, s, d, got[s])
					}
				}
				s, err := q.Append([]byte("after the crash"))
				q.Close()
				db.Close()
				if err != nil || s <= last {
					t.Fatalf("cycle %d: first append after the crash: seq %d, %v; want a seq above %d, the last acknowledged", cycle, s, err, last)
				}
				t.Logf("cycle %d: %d appends acknowledged before SIGKILL, %d records on disk, all present", cycle, len(acked), len(recs))
			}
		})
	}
}

// crashPatience bounds one run of the crash helper: it has to start, open
// the database and acknowledge a few hundred appends, which takes well
// under a second on an idle machine.
const crashPatience = 2 * time.Minute

// runUntilKilled starts the helper on dir, reads its acknowledgements until
// it has at least n, kills it with SIGKILL, and returns them.
//
// Real time: a child process; the bound (crashPatience) only kills a child
// that is stuck, which fails the test with a message saying so.
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
	var stuck atomic.Bool
	timeout := time.AfterFunc(crashPatience, func() { stuck.Store(true); cmd.Process.Kill() })
	defer timeout.Stop()
	acked := map[uint64]string{}
	record := func(line string) {
		seq, data, ok := strings.Cut(line, " ")
		if !ok {
			return
		}
		if s, err := strconv.ParseUint(seq, 10, 64); err == nil {
			acked[s] = data
		}
	}
	sc := bufio.NewScanner(out)
	for len(acked) < n && sc.Scan() {
		record(sc.Text())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	// Lines printed between our last read and the kill are acknowledged
	// too: keep reading what the pipe still holds, until it closes.
	for sc.Scan() {
		record(sc.Text())
	}
	cmd.Wait()
	switch {
	case stuck.Load():
		t.Fatalf("the helper acknowledged only %d of %d appends in %v; killed it", len(acked), n, crashPatience)
	case len(acked) < n:
		t.Fatalf("the helper acknowledged only %d appends before exiting", len(acked))
	}
	return acked
}
