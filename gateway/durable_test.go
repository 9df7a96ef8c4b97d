package gateway

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/rules"
	"github.com/hookgate/hookgate/gateway/store"
)

// TestDurableHelper is the child process of TestMarkerDurableBeforeAnswer:
// a gateway with a synced Badger queue in front of an echo upstream, with
// a rule table where every POST /{user}/items is a change. It prints its
// address and serves until killed.
func TestDurableHelper(t *testing.T) {
	dir := os.Getenv("HOOKGATE_DURABLE_DIR")
	if dir == "" {
		t.Skip("child process of TestMarkerDurableBeforeAnswer")
	}
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	q, err := queue.OpenBadger(db, queue.Options{})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	tb, err := rules.Compile(rules.Config{Rules: []rules.Rule{{Methods: []string{"POST"}, Path: "/items", Message: "itemsChanged"}}})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	g := startGateway(t, Options{Upstreams: []string{startEcho(t)}, Rules: tb, Queue: q})
	fmt.Println("ADDR", g.addr)
	select {}
}

// TestMarkerDurableBeforeAnswer sends a stream of changes from several
// clients through a gateway process, kills it with SIGKILL in the middle,
// reopens its database and checks that every change the clients saw
// answered 2xx has its marker: the marker was durable before the answer.
//
// Real time: a real gateway process with a synced Badger on disk, killed
// while real clients send to it over loopback. The test waits on events
// (the helper's address, the 400th answer); the time bounds only end a
// failure, and nothing asserted depends on the disk's or the CPU's speed.
func TestMarkerDurableBeforeAnswer(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurableHelper$")
	cmd.Env = append(os.Environ(), "HOOKGATE_DURABLE_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				select {
				case addrc <- a:
				default:
				}
			}
		}
	}()
	// kill ends the helper and reaps it, on every path: its stdout closes
	// when it dies, so the reader above ends before Wait closes the pipe.
	killed := false
	kill := func() {
		if !killed {
			killed = true
			cmd.Process.Signal(syscall.SIGKILL)
			<-outDone
			cmd.Wait()
		}
	}
	defer kill()
	var addr string
	select {
	case addr = <-addrc:
	case <-outDone:
		t.Fatal("the helper ended without giving its address")
	case <-time.After(waitBound):
		t.Fatalf("the helper gave no address within %s", waitBound)
	}

	var mu sync.Mutex
	answered := map[string]bool{}
	enough := make(chan struct{}) // closed at the 400th change answered 2xx
	stop := make(chan struct{})
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitBound}
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				user := fmt.Sprintf("user%d-%06d", w, i)
				resp, err := c.Post("http://"+addr+"/"+user+"/items", "application/json", strings.NewReader(`{"n":1}`))
				if err != nil {
					return // killed
				}
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					answered[user] = true
					if len(answered) == 400 {
						close(enough)
					}
					mu.Unlock()
				}
			}
		})
	}
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()
	select {
	case <-enough:
	case <-clientsDone: // every client stopped on an error: judged below
	case <-time.After(waitBound):
	}
	kill() // mid-stream, requests in flight
	close(stop)
	<-clientsDone // each request in flight fails at once: the process is gone

	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer db.Close()
	q, err := queue.OpenBadger(db, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	recs, err := q.Read(nil, 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	onDisk := map[string]bool{}
	for _, r := range recs {
		m, err := core.DecodeMarker(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		onDisk[m.User] = true
	}
	if len(answered) < 100 {
		t.Fatalf("only %d changes answered before the kill; the test proves little", len(answered))
	}
	for u := range answered {
		if !onDisk[u] {
			t.Fatalf("change of %s was answered 2xx but its marker is not on disk after SIGKILL", u)
		}
	}
	t.Logf("%d changes answered before SIGKILL, %d markers on disk, none missing", len(answered), len(onDisk))
}
