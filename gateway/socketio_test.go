package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/internal/testnet"
)

func TestParseSIO(t *testing.T) {
	for _, c := range []struct {
		msg  string
		ok   bool
		want sioPacket
	}{
		{`42/alice,17["events.create",{"a":1}]`, true, sioPacket{typ: sioEvent, nsp: "/alice", id: 17, data: []byte(`["events.create",{"a":1}]`)}},
		{`43/alice,17[null,{"event":{}}]`, true, sioPacket{typ: sioAck, nsp: "/alice", id: 17, data: []byte(`[null,{"event":{}}]`)}},
		{`42["hello"]`, true, sioPacket{typ: sioEvent, nsp: "/", id: -1, data: []byte(`["hello"]`)}},
		{`451-/alice,3["events.create",{"_placeholder":true,"num":0}]`, true,
			sioPacket{typ: sioBinaryEvent, nsp: "/alice", id: 3, data: []byte(`["events.create",{"_placeholder":true,"num":0}]`)}},
		{`40/alice,{"auth":"x"}`, true, sioPacket{typ: '0', nsp: "/alice", id: -1, data: []byte(`{"auth":"x"}`)}},
		{`40/alice`, true, sioPacket{typ: '0', nsp: "/alice"}},
		{`2`, false, sioPacket{}},         // an Engine.IO ping
		{`49[]`, false, sioPacket{}},      // no such packet type
		{`45x-["a"]`, false, sioPacket{}}, // a bad attachments count
		{`42/alice`, false, sioPacket{}},  // an event without its comma
		{`4299999999999999999999["a"]`, false, sioPacket{}},
	} {
		got, ok := parseSIO([]byte(c.msg))
		if ok != c.ok || (ok && (got.typ != c.want.typ || got.nsp != c.want.nsp || got.id != c.want.id || string(got.data) != string(c.want.data))) {
			t.Errorf("parseSIO(%q) = %+v, %v; want %+v, %v", c.msg, got, ok, c.want, c.ok)
		}
	}
}

// FuzzSocketIO: whatever the frames say, both directions' readers and
// the tracker never crash, and a change they record is of the table's
// vocabulary and of a valid user.
func FuzzSocketIO(f *testing.F) {
	f.Add([]byte(`42/alice,1["events.create",{"streamIds":["a"],"type":"note/txt"}]`), []byte(`43/alice,1[null,{"event":{"streamIds":["a"]}}]`))
	f.Add([]byte(`42/alice,2["callBatch",[{"method":"events.create","params":{}}]]`), []byte(`43/alice,2[null,{"results":[{"error":{}}]}]`))
	f.Add([]byte(`42/Bad User,3["accesses.delete",{"id":"x"}]`), []byte(`43/Bad User,3[]`))
	g := startGateway(f, Options{Upstreams: []string{"127.0.0.1:1"}}) // never reached: the tracker alone
	f.Fuzz(func(t *testing.T, call, ack []byte) {
		g.clear(t)
		s := g.newSIOTracker()
		s.fromClient(call)
		s.fromServer(ack)
		for _, m := range g.markers(t) {
			if !core.ValidUsername([]byte(m.User)) || len(m.Messages) == 0 {
				t.Fatalf("recorded %+v from %q and %q", m, call, ack)
			}
		}
	})
}

func startSIOServer(t *testing.T) string {
	t.Helper()
	requireNPM(t)
	server := testnet.StartNode(t, "testdata/node-sio.js")
	line, _ := server.Expect(0, "listening ")
	return "127.0.0.1:" + strings.TrimPrefix(line, "listening ")
}

type sioSeen struct {
	Created, Refused, Read, Batch bool
	Burst                         int
	Error                         string
}

func runSIOClient(t *testing.T, gwAddr, transport string, burst int) sioSeen {
	t.Helper()
	requireNPM(t)
	client := testnet.StartNode(t, "testdata/node-sio.js", "MODE=client", "URL=http://"+gwAddr+"/alice",
		"TRANSPORT="+transport, "BURST="+itoa(burst))
	line, _ := client.Expect(0, "{")
	var seen sioSeen
	if err := json.Unmarshal([]byte(line), &seen); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if !seen.Created || !seen.Refused || !seen.Read || !seen.Batch || seen.Burst != burst || seen.Error != "" {
		t.Fatalf("the socket.io client through hookgate saw %+v", seen)
	}
	return seen
}

// TestNodeSocketIOChanges: the real socket.io client calls methods of a
// real socket.io server through hookgate, over WebSocket. A create
// acknowledged without error is one change of alice's, recorded before
// the client has the acknowledgement; one acknowledged with an error,
// and a read, are none; a callBatch counts its create; a burst of 1,000
// creates is 1,000 changes. Over long-polling, where calls and
// acknowledgements travel in separate requests of one session, the same.
func TestNodeSocketIOChanges(t *testing.T) {
	addr := startSIOServer(t)
	g := startGateway(t, Options{Upstreams: []string{addr}})
	runSIOClient(t, g.addr, "websocket", 1000)
	m := g.markers(t)
	if len(m) != 1+1+1000 {
		t.Fatalf("%d changes recorded; want 1,002 (a create, a batch's create, 1,000 creates)", len(m))
	}
	for _, x := range m {
		if x.User != "alice" || len(x.Messages) != 1 || x.Messages[0] != core.MsgEventsChanged {
			t.Fatalf("recorded %+v", x)
		}
	}
	g.clear(t)
	runSIOClient(t, g.addr, "polling", 3)
	m = g.markers(t)
	if len(m) != 1+1+3 {
		t.Fatalf("over long-polling, %d changes recorded; want 5", len(m))
	}
	for _, x := range m {
		if x.User != "alice" || x.Messages[0] != core.MsgEventsChanged {
			t.Fatalf("over long-polling, recorded %+v", x)
		}
	}
}

// TestNodeSocketIONotifies: a webhook of alice's hears of changes made
// over socket.io, and 1,000 of them in a burst coalesce as HTTP changes
// do: with a minute's minIntervalMs, one notification goes out at once
// and the rest wait for the next window.
func TestNodeSocketIONotifies(t *testing.T) {
	addr := startSIOServer(t)
	e := startWebhooks(t, t.TempDir(), Options{Upstreams: []string{addr}}, webhooks.Options{MinIntervalFloorMs: 1})
	e.startEngine(t)
	e.call(t, "POST", "/alice/webhooks", "alice-app", `{"url":"http://`+e.recv.addr+`/ok/sio","minIntervalMs":60000}`, 201)
	runSIOClient(t, e.addr, "websocket", 1000)
	e.recv.waitFor(t, "/ok/sio", core.MsgEventsChanged)
	eventually(t, "the engine to take every change", func() bool { return e.queue.Len() == 0 })
	if n := strings.Count(strings.Join(e.recv.gotPaths(), " "), "/ok/sio"); n != 1 {
		t.Fatalf("%d notifications for 1,002 changes within one minIntervalMs; want 1", n)
	}
}

// TestPollSessions: a long-polling session is followed until it stays
// idle for pollIdle; the same sid gets the same session.
func TestPollSessions(t *testing.T) {
	g := startGateway(t, Options{Upstreams: []string{"127.0.0.1:1"}})
	a := g.pollSession([]byte("sid-a"))
	if a == nil || g.pollSession([]byte("sid-a")) != a || g.pollCount.Load() != 1 {
		t.Fatalf("sessions: %v, count %d", a, g.pollCount.Load())
	}
	g.pollSession([]byte("sid-b"))
	a.last.Store(time.Now().Add(-pollIdle - time.Second).UnixNano())
	g.sweepPolls(time.Now().UnixNano())
	if _, ok := g.polls.Load("sid-a"); ok || g.pollCount.Load() != 1 {
		t.Fatalf("after the sweep: sid-a kept %v, count %d; want it gone and 1 left", ok, g.pollCount.Load())
	}
}
