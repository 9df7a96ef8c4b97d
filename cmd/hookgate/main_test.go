package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/hookgate/hookgate/bench/receiver"
	"github.com/hookgate/hookgate/bench/upstream"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/store"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds hookgate once for the tests of this package.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hookgate-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "hookgate")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	out, _ := exec.Command(binary(t), "-help").CombinedOutput()
	help := string(out)
	for _, want := range []string{
		"-listen address", "(default \"127.0.0.1:8080\")",
		"-upstream addresses", "-data-dir directory", "-username-mode path", "-durability mode",
		"-upstream-timeout duration", "(default 30s)", "-dial-timeout duration", "(default 3s)",
		"-read-timeout duration", "-write-timeout duration", "-idle-timeout duration",
		"-shutdown-timeout duration", "(default 15s)", "-buffer-body bytes", "-max-classify-body bytes",
		"-max-pending count", "-max-backlog count", "-rules file", "-ops-listen address",
		"HOOKGATE_<NAME>",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("-help does not mention %q", want)
		}
	}
}

func TestBadConfigurationExits(t *testing.T) {
	f := func(env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(binary(t), args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err == nil || !errorsAs(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("%v %v: exited %v; want an error exit\n%s", env, args, err, out)
		}
		if len(out) == 0 {
			t.Errorf("%v %v: no message", env, args)
		}
	}
	dir := t.TempDir()
	f(nil, "-data-dir", dir, "-username-mode", "header")
	f(nil, "-data-dir", dir, "-durability", "maybe")
	f([]string{"HOOKGATE_DURABILITY=maybe"}, "-data-dir", dir)
	f([]string{"HOOKGATE_UPSTREAM_TIMEOUT=soon"}, "-data-dir", dir)
	f(nil, "-data-dir", dir, "-rules", filepath.Join(dir, "missing.json"))
	f(nil, "-data-dir", dir, "-upstream", "no-port", "-listen", freeAddr(t), "-ops-listen", "")
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// TestStartChangeShutdown runs the real binary in front of the demo
// upstream: it starts, records a change, drains a slow in-flight request
// on SIGTERM, exits 0, and leaves the marker on disk.
func TestStartChangeShutdown(t *testing.T) {
	up, stop, err := upstream.New(upstream.Options{ServiceTime: 300 * time.Millisecond}).Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	recv := receiver.New(receiver.Options{})
	raddr, rstop, err := recv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rstop()
	dir := t.TempDir()
	listen, ops := freeAddr(t), freeAddr(t)
	cmd := exec.Command(binary(t), "-listen", listen, "-ops-listen", ops, "-data-dir", dir, "-shutdown-timeout", "5s",
		"-allow-cidrs", "127.0.0.0/8")
	cmd.Env = append(os.Environ(), "HOOKGATE_UPSTREAM="+up, "HOOKGATE_LOG_FORMAT=json")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	logs := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
	}()
	waitFor(t, "http://"+ops+"/healthz")

	post := func() (int, error) {
		resp, err := http.Post("http://"+listen+"/alice/events", "application/json",
			strings.NewReader(`{"streamIds":["diary"],"type":"note/txt"}`+"\n"))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	// A webhook for alice's app access (its creation waits for the slow
	// upstream's access-info).
	wreq, _ := http.NewRequest("POST", "http://"+listen+"/alice/webhooks", strings.NewReader(`{"url":"http://`+raddr+`/hook"}`))
	wreq.Header.Set("Authorization", "alice-app")
	wresp, err := http.DefaultClient.Do(wreq)
	if err != nil || wresp.StatusCode != 201 {
		t.Fatalf("create webhook: %v %v", wresp, err)
	}
	var created struct{ Webhook struct{ ID string } }
	json.NewDecoder(wresp.Body).Decode(&created)
	wresp.Body.Close()
	// No token: the demo answers 401, which records nothing.
	if st, err := post(); err != nil || st != 401 {
		t.Fatalf("status %d, %v; want 401", st, err)
	}
	req, _ := http.NewRequest("POST", "http://"+listen+"/alice/events", strings.NewReader(`{"streamIds":["diary"],"type":"note/txt"}`))
	req.Header.Set("Authorization", "alice-app")
	req.Header.Set("Content-Type", "application/json")
	inflight := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- 0
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond) // the request is now waiting on the slow upstream
	cmd.Process.Signal(syscall.SIGTERM)
	if st := <-inflight; st != 201 {
		t.Fatalf("in-flight request during SIGTERM got %d; want 201", st)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("hookgate exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hookgate did not exit within 10s of SIGTERM")
	}
	var all []string
	for l := range logs {
		all = append(all, l)
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{`"msg":"hookgate started"`, `"msg":"shutting down"`, `"msg":"hookgate stopped"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("logs lack %s:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "alice-app") {
		t.Errorf("a token appears in the logs:\n%s", joined)
	}

	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := queue.OpenBadger(db, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// The drained change is somewhere durable for the webhook: delivered,
	// still queued, or in its pending set.
	where := []string{}
	for _, n := range recv.Notifications() {
		if strings.Contains(string(n.Body), core.MsgEventsChanged) {
			where = append(where, "delivered")
		}
	}
	recs, _ := q.Read(nil, 0, 100)
	for _, r := range recs {
		if m, err := core.DecodeMarker(r.Data); err == nil && m.User == "alice" {
			where = append(where, "queued")
		}
	}
	db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(store.PrefixPending + "\x00" + created.Webhook.ID))
		if err == nil {
			item.Value(func(v []byte) error {
				if strings.Contains(string(v), core.MsgEventsChanged) {
					where = append(where, "pending")
				}
				return nil
			})
		}
		return nil
	})
	if len(where) == 0 {
		t.Fatalf("the change answered 201 across SIGTERM is neither delivered, queued nor pending")
	}
	t.Logf("the drained change is %v", where)
}

func waitFor(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}
