package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bench/receiver"
	"github.com/hookgate/hookgate/internal/testnet"
)

const sioScript = "../../gateway/testdata/node-sio.js"

// TestSocketIOChangeSurvivesKill: a change made over socket.io whose
// acknowledgement reached the client is on disk: hookgate is killed
// (SIGKILL) as soon as the client has its acknowledgements, before any
// notification could go out (the receiver is down), and after the
// restart the webhook hears of the change.
func TestSocketIOChangeSurvivesKill(t *testing.T) {
	testnet.RequireNPM(t, "../../gateway/testdata", "socket.io", "socket.io-client")
	server := testnet.StartNode(t, sioScript)
	line, _ := server.Expect(0, "listening ")
	up := "127.0.0.1:" + strings.TrimPrefix(line, "listening ")
	dir := t.TempDir()
	recvAddr := freeAddr(t) // nothing listens there yet: deliveries fail
	args := []string{"-upstream", up, "-data-dir", dir, "-allow-cidrs", "127.0.0.0/8", "-min-interval", "1s"}

	g := startGateway(t, args...)
	createWebhook(t, g.listen, "http://"+recvAddr+"/sio")
	client := testnet.StartNode(t, sioScript, "MODE=client", "URL=http://"+g.listen+"/alice", "TRANSPORT=websocket", "BURST=0")
	out, _ := client.Expect(0, "{")
	var seen struct{ Created bool }
	if err := json.Unmarshal([]byte(out), &seen); err != nil || !seen.Created {
		t.Fatalf("the client saw %s", out)
	}
	g.kill(t)

	recv := receiver.New(receiver.Options{})
	_, stop, err := recv.Start(recvAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	startGateway(t, args...) // the same data directory
	if !eventually(patience, func() bool { return notifiedAfter(recv, time.Time{}) }) {
		t.Fatalf("no eventsChanged notification within %s of the restart; got %d notifications", patience, len(recv.Notifications()))
	}
}
