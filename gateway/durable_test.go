package gateway

import (
	"bufio"
	"fmt"
	"net"
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
func TestMarkerDurableBeforeAnswer(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurableHelper$")
	cmd.Env = append(os.Environ(), "HOOKGATE_DURABLE_DIR="+dir)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	addr := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("helper gave no address")
	}
	go func() {
		for sc.Scan() {
		}
	}()

	var mu sync.Mutex
	answered := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: 8, DialContext: (&net.Dialer{Timeout: time.Second}).DialContext}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
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
					mu.Unlock()
				}
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(answered)
		mu.Unlock()
		if n >= 400 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL) // mid-stream, requests in flight
	cmd.Wait()
	close(stop)
	wg.Wait()

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
