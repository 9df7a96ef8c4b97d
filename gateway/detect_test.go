package gateway

import (
	"bytes"
	"log/slog"
	neturl "net/url"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hookgate/hookgate/bench/upstream"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/rules"
)

func startDemo(t testing.TB) string {
	t.Helper()
	addr, stop, err := upstream.New(upstream.Options{}).Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr
}

// expectMarkers checks the markers queued since the last clear, then
// clears them.
func (g *gw) expectMarkers(t *testing.T, what string, want ...core.Marker) {
	t.Helper()
	got := g.markers(t)
	g.clear(t)
	if len(got) != len(want) {
		t.Fatalf("%s: %d markers %+v; want %d %+v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if got[i].User != want[i].User || !reflect.DeepEqual(got[i].Messages, want[i].Messages) || got[i].Time == 0 {
			t.Fatalf("%s: marker %d = %+v; want %+v", what, i, got[i], want[i])
		}
	}
}

func mk(user string, msgs ...string) core.Marker { return core.Marker{User: user, Messages: msgs} }

const jsonCT = "application/json"

func TestDetectPryvRoutes(t *testing.T) {
	g := startGateway(t, Options{Upstreams: []string{startDemo(t)}})
	tok := header("Authorization", "alice-app")
	personal := header("Authorization", "alice-personal")
	ct := header("Content-Type", jsonCT)
	call := func(method, path, body string, want int, opts ...reqOpt) []byte {
		t.Helper()
		resp, b := do(t, method, gwURL(g, path), strings.NewReader(body), opts...)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: status %d; want %d: %s", method, path, resp.StatusCode, want, b)
		}
		return b
	}
	var ev struct{ Event struct{ ID string } }
	mustJSON(t, call("POST", "/alice/events", `{"streamIds":["diary"],"type":"note/txt","content":"hi"}`, 201, tok, ct), &ev)
	g.expectMarkers(t, "events.create", mk("alice", core.MsgEventsChanged))
	id := ev.Event.ID

	call("GET", "/alice/events", "", 200, tok)
	call("GET", "/alice/events/"+id, "", 200, tok)
	call("GET", "/alice/access-info", "", 200, tok)
	call("GET", "/alice/streams", "", 200, tok)
	call("GET", "/alice/accesses", "", 200, tok)
	g.expectMarkers(t, "reads")

	call("PUT", "/alice/events/"+id, `{"content":"changed"}`, 200, tok, ct)
	g.expectMarkers(t, "events.update", mk("alice", core.MsgEventsChanged))

	// Multipart attachment on an existing event, and a new event with one.
	body, boundary := multipartBody(t, `{"streamIds":["diary"],"type":"picture/attached"}`, "photo.jpg", 300<<10)
	call("POST", "/alice/events/"+id, body, 200, tok, header("Content-Type", "multipart/form-data; boundary="+boundary))
	g.expectMarkers(t, "events.addAttachment (multipart)", mk("alice", core.MsgEventsChanged))
	call("POST", "/alice/events", body, 201, tok, header("Content-Type", "multipart/form-data; boundary="+boundary))
	g.expectMarkers(t, "events.create (multipart)", mk("alice", core.MsgEventsChanged))

	call("DELETE", "/alice/events/"+id+"/file1", "", 200, tok)
	g.expectMarkers(t, "events.deleteAttachment", mk("alice", core.MsgEventsChanged))
	call("DELETE", "/alice/events/"+id, "", 200, tok)
	g.expectMarkers(t, "events.delete (trash)", mk("alice", core.MsgEventsChanged))

	call("POST", "/alice/streams", `{"id":"work","name":"Work"}`, 201, tok, ct)
	call("PUT", "/alice/streams/work", `{"name":"Job"}`, 200, tok, ct)
	call("DELETE", "/alice/streams/work", "", 200, tok)
	g.expectMarkers(t, "streams CRUD", // a stream deletion may delete or move its events
		mk("alice", core.MsgStreamsChanged), mk("alice", core.MsgStreamsChanged), mk("alice", core.MsgEventsChanged, core.MsgStreamsChanged))

	var acc struct{ Access struct{ ID string } }
	mustJSON(t, call("POST", "/alice/accesses", `{"name":"reader","type":"shared"}`, 201, tok, ct), &acc)
	call("PUT", "/alice/accesses/"+acc.Access.ID, `{"name":"reader 2"}`, 200, tok, ct)
	call("DELETE", "/alice/accesses/"+acc.Access.ID, "", 200, tok)
	g.expectMarkers(t, "accesses CRUD",
		mk("alice", core.MsgAccessesChanged), mk("alice", core.MsgAccessesChanged), mk("alice", core.MsgAccessesChanged))

	// The account rules are on in this gateway's table.
	call("PUT", "/alice/account", `{"language":"fr"}`, 200, personal, ct)
	g.expectMarkers(t, "account.update", mk("alice", core.MsgAccountChanged))

	// Non-2xx answers record nothing.
	call("POST", "/alice/events", `{"content":"no stream"}`, 400, tok, ct)
	call("PUT", "/alice/events/nope", `{"content":"x"}`, 404, tok, ct)
	call("DELETE", "/alice/streams/nope", "", 404, tok)
	call("POST", "/alice/events", `{"streamIds":["diary"],"type":"note/txt"}`, 403, header("Authorization", "unknown"), ct)
	call("POST", "/alice/events", `{"streamIds":["diary"],"type":"note/txt"}`, 401, ct)
	call("POST", "/alice/accesses", `{"name":"x"}`, 403, header("Authorization", "alice-shared"), ct)
	call("PUT", "/alice/account", `{"language":"fr"}`, 403, tok, ct)
	call("POST", "/nobody/events", `{}`, 404, tok, ct)
	g.expectMarkers(t, "failed mutations")

	// Carol's changes are carol's.
	call("POST", "/carol/events", `{"streamIds":["diary"],"type":"note/txt"}`, 201, header("Authorization", "carol-app"), ct)
	g.expectMarkers(t, "another user", mk("carol", core.MsgEventsChanged))
}

func TestDetectBatch(t *testing.T) {
	g := startGateway(t, Options{Upstreams: []string{startDemo(t)}})
	tok := header("Authorization", "alice-app")
	batch := func(path, body string, want ...core.Marker) []any {
		t.Helper()
		resp, b := do(t, "POST", gwURL(g, path), strings.NewReader(body), tok, header("Content-Type", jsonCT))
		if resp.StatusCode != 200 {
			t.Fatalf("batch: status %d: %s", resp.StatusCode, b)
		}
		var ans struct{ Results []any }
		mustJSON(t, b, &ans)
		g.expectMarkers(t, "batch "+body, want...)
		return ans.Results
	}
	res := batch("/alice/", `[
		{"method":"events.create","params":{"streamIds":["diary"],"type":"note/txt","content":"a"}},
		{"method":"events.get","params":{}},
		{"method":"streams.create","params":{"id":"s2","name":"S2"}}]`,
		mk("alice", core.MsgEventsChanged, core.MsgStreamsChanged))
	if len(res) != 3 {
		t.Fatalf("the client got %d results; want 3 (the answer must pass through whole)", len(res))
	}
	// Without the trailing slash too.
	batch("/alice", `[{"method":"accesses.create","params":{"name":"n","type":"shared"}}]`,
		mk("alice", core.MsgAccessesChanged))
	// Only the entries that succeeded count: the event is invalid, the
	// stream exists already; the access is created.
	batch("/alice/", `[
		{"method":"events.create","params":{"content":"no stream"}},
		{"method":"streams.create","params":{"id":"s2","name":"again"}},
		{"method":"accesses.create","params":{"name":"m","type":"shared"}}]`,
		mk("alice", core.MsgAccessesChanged))
	// Everything failed: no marker.
	batch("/alice/", `[{"method":"events.update","params":{"id":"nope","update":{}}},{"method":"bogus.method","params":{}}]`)
	// Reads only: no marker, and the answer still passes through.
	if res := batch("/alice/", `[{"method":"events.get","params":{}},{"method":"getAccessInfo","params":{}}]`); len(res) != 2 {
		t.Fatalf("read-only batch: %d results", len(res))
	}
	// A batch refused as a whole records nothing.
	resp, _ := do(t, "POST", gwURL(g, "/alice/"), strings.NewReader(`[{"method":"events.create"`), tok, header("Content-Type", jsonCT))
	if resp.StatusCode != 400 {
		t.Fatalf("malformed batch: status %d", resp.StatusCode)
	}
	g.expectMarkers(t, "malformed batch")
}

func TestDetectFormOverride(t *testing.T) {
	g := startGateway(t, Options{Upstreams: []string{startDemo(t)}})
	form := header("Content-Type", "application/x-www-form-urlencoded")
	post := func(path string, v neturl.Values, want int) []byte {
		t.Helper()
		resp, b := do(t, "POST", gwURL(g, path), strings.NewReader(v.Encode()), form)
		if resp.StatusCode != want {
			t.Fatalf("POST %s %v: status %d; want %d: %s", path, v, resp.StatusCode, want, b)
		}
		return b
	}
	var ev struct{ Event struct{ ID string } }
	mustJSON(t, post("/alice/events", neturl.Values{"_auth": {"alice-app"}, "_json": {`{"streamIds":["diary"],"type":"note/txt"}`}}, 201), &ev)
	g.expectMarkers(t, "form create", mk("alice", core.MsgEventsChanged))

	post("/alice/events/"+ev.Event.ID, neturl.Values{"_method": {"PUT"}, "_auth": {"alice-app"}, "_json": {`{"content":"x"}`}}, 200)
	g.expectMarkers(t, "form PUT", mk("alice", core.MsgEventsChanged))

	// A POST overridden into a read changes nothing.
	post("/alice/events", neturl.Values{"_method": {"GET"}, "_auth": {"alice-app"}}, 200)
	g.expectMarkers(t, "form GET")

	// A batch carried in _json.
	post("/alice/", neturl.Values{"_auth": {"alice-app"}, "_json": {`[{"method":"streams.create","params":{"name":"F"}}]`}}, 200)
	g.expectMarkers(t, "form batch", mk("alice", core.MsgStreamsChanged))

	post("/alice/events/"+ev.Event.ID, neturl.Values{"_method": {"DELETE"}, "_auth": {"alice-app"}}, 200)
	g.expectMarkers(t, "form DELETE", mk("alice", core.MsgEventsChanged))
}

func TestDetectSubdomain(t *testing.T) {
	g := startGateway(t, Options{Upstreams: []string{startDemo(t)}, UsernameMode: UsernameSubdomain})
	tok := header("Authorization", "alice-app")
	ct := header("Content-Type", jsonCT)
	send := func(method, hostname, path, body string, want int) {
		t.Helper()
		resp, b := do(t, method, gwURL(g, path), strings.NewReader(body), tok, ct, host(hostname))
		if resp.StatusCode != want {
			t.Fatalf("%s %s%s: status %d; want %d: %s", method, hostname, path, resp.StatusCode, want, b)
		}
	}
	send("POST", "alice.pryv.example:8080", "/events", `{"streamIds":["diary"],"type":"note/txt"}`, 201)
	g.expectMarkers(t, "subdomain events.create", mk("alice", core.MsgEventsChanged))
	// The path may name the user again, as Pryv allows.
	send("POST", "alice.pryv.example", "/alice/streams", `{"name":"Sub"}`, 201)
	g.expectMarkers(t, "subdomain with user path", mk("alice", core.MsgStreamsChanged))
	send("POST", "alice.pryv.example", "/", `[{"method":"events.create","params":{"streamIds":["diary"],"type":"note/txt"}}]`, 200)
	g.expectMarkers(t, "subdomain batch", mk("alice", core.MsgEventsChanged))
	send("GET", "alice.pryv.example", "/events", "", 200)
	g.expectMarkers(t, "subdomain read")
	// No user in a bare host or a reserved label.
	send("POST", "www.pryv.example", "/events", `{}`, 404)
	send("POST", "127.0.0.1", "/events", `{}`, 404)
	g.expectMarkers(t, "hosts without user")
}

func TestMarkerFailureStillAnswers(t *testing.T) {
	q := queue.NewMemory(queue.Options{MaxBacklog: 1})
	g := startGateway(t, Options{Upstreams: []string{startDemo(t)}, Queue: q})
	before := markerErrors.Get()
	create := func() {
		t.Helper()
		resp, b := do(t, "POST", gwURL(g, "/alice/events"), strings.NewReader(`{"streamIds":["diary"],"type":"note/txt"}`),
			header("Authorization", "alice-app"), header("Content-Type", jsonCT))
		if resp.StatusCode != 201 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	}
	create() // fills the backlog
	if !g.Ready() {
		t.Fatal("not ready after a good marker")
	}
	create() // the queue refuses this one
	if g.Ready() {
		t.Fatal("still ready after the queue refused a marker")
	}
	if markerErrors.Get() != before+1 {
		t.Fatalf("marker errors %d; want %d", markerErrors.Get(), before+1)
	}
	q.Ack(1)
	create()
	if !g.Ready() {
		t.Fatal("not ready again once the queue had room")
	}
}

// TestMarkerFailureLogThrottled: marker failures are logged at most once
// per 10 s, the next line saying how many were held back, and Ready
// follows the latest append. It runs in a synctest bubble (no sockets:
// the gateway's mark is called directly), so the 10 s window is exact to
// the nanosecond and takes no time.
func TestMarkerFailureLogThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb, err := rules.Compile(rules.Pryv(true))
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		q := queue.NewMemory(queue.Options{MaxBacklog: 1})
		g, err := New(Options{Upstreams: []string{"127.0.0.1:1"}, Rules: tb, Queue: q,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		mark := func() { g.mark([]byte("alice"), g.voc.All(), nil, nil) }
		lines := func() []string {
			var out []string
			for l := range strings.Lines(logs.String()) {
				if strings.Contains(l, "cannot record a change") {
					out = append(out, l)
				}
			}
			return out
		}

		mark() // fills the backlog
		if !g.Ready() || len(lines()) != 0 {
			t.Fatalf("after a good marker: ready %v, logs %q", g.Ready(), lines())
		}
		time.Sleep(time.Millisecond)
		for range 5 {
			mark()
		}
		if l := lines(); g.Ready() || len(l) != 1 || !strings.Contains(l[0], "suppressed=0") {
			t.Fatalf("after 5 refused markers: ready %v, logs %q; want not ready, one line", g.Ready(), l)
		}
		time.Sleep(10*time.Second - time.Nanosecond)
		mark()
		if l := lines(); len(l) != 1 {
			t.Fatalf("a nanosecond before 10 s: logs %q; want still one line", l)
		}
		time.Sleep(time.Nanosecond)
		mark()
		if l := lines(); len(l) != 2 || !strings.Contains(l[1], "suppressed=5") {
			t.Fatalf("at 10 s: logs %q; want a second line counting the 5 held back", l)
		}
		if err := q.Ack(1); err != nil {
			t.Fatal(err)
		}
		mark()
		if !g.Ready() {
			t.Fatal("not ready again once the queue took a marker")
		}
	})
}

func TestClassifyBodyLimit(t *testing.T) {
	up := startEcho(t)
	g := startGateway(t, Options{Upstreams: []string{up}, MaxClassifyBody: 1 << 20, BufferBodySize: 4 << 10})
	big := `[{"method":"events.create","params":{"content":"` + strings.Repeat("x", 2<<20) + `"}}]`
	resp, b := do(t, "POST", gwURL(g, "/alice/"), strings.NewReader(big), header("Content-Type", jsonCT))
	if resp.StatusCode != 413 {
		t.Fatalf("oversized batch: status %d; want 413", resp.StatusCode)
	}
	if id, _ := pryvError(t, b); id != "invalid-request-structure" {
		t.Fatalf("error id %q", id)
	}
	// Within the limit but beyond the buffer: read from the stream, forwarded whole.
	mid := `[{"method":"events.create","params":{"content":"` + strings.Repeat("y", 512<<10) + `"}}]`
	resp, b = do(t, "POST", gwURL(g, "/alice/"), strings.NewReader(mid), header("Content-Type", jsonCT))
	var seen echoSeen
	mustJSON(t, b, &seen)
	if resp.StatusCode != 200 || seen.Len != int64(len(mid)) || seen.SHA != sha(mid) {
		t.Fatalf("streamed batch: status %d, upstream got %d bytes; want %d", resp.StatusCode, seen.Len, len(mid))
	}
	// The echo's answer has no results: every call counts.
	g.expectMarkers(t, "batch with unreadable answer", mk("alice", core.MsgEventsChanged))
}

func multipartBody(t *testing.T, event, file string, size int) (string, string) {
	t.Helper()
	const boundary = "hookgate-test-boundary"
	var b strings.Builder
	b.WriteString("--" + boundary + "\r\nContent-Disposition: form-data; name=\"event\"\r\nContent-Type: application/json\r\n\r\n")
	b.WriteString(event + "\r\n--" + boundary + "\r\n")
	b.WriteString("Content-Disposition: form-data; name=\"file\"; filename=\"" + file + "\"\r\nContent-Type: image/jpeg\r\n\r\n")
	b.WriteString(strings.Repeat("\xff", size))
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.String(), boundary
}
