package gateway

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/webhooks"
)

// TestScopedWebhooks: scoped webhooks in front of the demo upstream.
func TestScopedWebhooks(t *testing.T) { scopedWebhooks(t, nil) }

// scopedWebhooks: a webhook with Pryv v2 scopes hears only of the
// changes that match them, with the matched keys as messages, while a
// webhook without scopes hears of every change. A scope's stream stands
// for the streams below it, those created later included. Each matching
// change waits for its notification before the next, so that the
// sequence the scoped webhook receives is exact: a change that matched
// wrongly would show in the next notification.
func scopedWebhooks(t *testing.T, upstreams []string) {
	e := startWebhooks(t, t.TempDir(), Options{Upstreams: upstreams}, webhooks.Options{MinIntervalFloorMs: 1})
	e.startEngine(t)
	e.call(t, "POST", "/alice/streams", "alice-app", `{"id":"health","name":"Health"}`, 201)
	e.call(t, "POST", "/alice/streams", "alice-app", `{"id":"health-mass","name":"Mass","parentId":"health"}`, 201)

	scopes := `{"notes":{"kind":"events","query":{"types":["note/txt"]}},` +
		`"health":{"query":{"streams":["health"]}},"tree":{"kind":"streams","query":{"streams":["health"]}}}`
	w := e.call(t, "POST", "/alice/webhooks", "alice-app",
		`{"url":"http://`+e.recv.addr+`/ok/scoped","minIntervalMs":1,"scopes":`+scopes+`}`, 201)["webhook"].(map[string]any)
	shown, _ := json.Marshal(w["scopes"])
	if want := `{"health":{"kind":"events","query":{"streams":["health"]}},"notes":{"kind":"events","query":{"types":["note/txt"]}},` +
		`"tree":{"kind":"streams","query":{"streams":["health"]}}}`; string(shown) != want {
		t.Fatalf("scopes shown as %s; want %s", shown, want)
	}
	e.call(t, "POST", "/alice/webhooks", "alice-app", `{"url":"http://`+e.recv.addr+`/ok/all","minIntervalMs":1}`, 201)

	event := func(typ, stream string) {
		e.call(t, "POST", "/alice/events", "alice-app", `{"streamIds":["`+stream+`"],"type":"`+typ+`","content":1}`, 201)
	}
	var got [][]string
	next := func(want ...string) {
		t.Helper()
		for {
			var n int
			var last string
			for i, p := range e.recv.gotPaths() {
				if p == "/ok/scoped" {
					n++
					last = e.recv.got()[i]
				}
			}
			if n > len(got) {
				var v struct{ Messages []string }
				mustJSON(t, []byte(last), &v)
				got = append(got, v.Messages)
				if n != len(got) || !slices.Equal(v.Messages, want) {
					t.Fatalf("scoped notification %d: %d so far, the last %v; want exactly %v (all: %v)", len(got), n, v.Messages, want, got)
				}
				return
			}
			e.recv.waitFor(t, "/ok/scoped", `"`+want[0]+`"`)
		}
	}
	event("mass/kg", "diary") // matches no scope
	event("note/txt", "diary")
	next("notes")
	event("mass/kg", "health-mass") // below the scope's stream
	next("health")
	e.call(t, "POST", "/alice/streams", "alice-app", `{"id":"health-new","name":"New","parentId":"health"}`, 201)
	next("tree")
	event("mass/kg", "health-new") // created after the webhook, below its stream
	next("health")
	e.call(t, "POST", "/alice/", "alice-app", `[{"method":"events.create","params":{"streamIds":["diary"],"type":"mass/kg"}},`+
		`{"method":"events.create","params":{"streamIds":["health"],"type":"note/txt"}}]`, 200)
	next("health", "notes")
	if n := strings.Count(strings.Join(e.recv.gotPaths(), " "), "/ok/all"); n == 0 {
		t.Fatal("the webhook without scopes heard of nothing")
	}

	// An update replaces the whole map; null removes it.
	id := w["id"].(string)
	upd := e.call(t, "PUT", "/alice/webhooks/"+id, "alice-app", `{"scopes":{"only":{"query":{"types":["mass/*"]}}}}`, 200)["webhook"].(map[string]any)
	if shown, _ := json.Marshal(upd["scopes"]); string(shown) != `{"only":{"kind":"events","query":{"types":["mass/*"]}}}` {
		t.Fatalf("scopes after update: %s", shown)
	}
	event("note/txt", "diary")
	event("mass/g", "diary")
	next("only")
	if upd := e.call(t, "PUT", "/alice/webhooks/"+id, "alice-app", `{"scopes":null}`, 200)["webhook"].(map[string]any); upd["scopes"] != nil {
		t.Fatalf("scopes after removal: %v", upd["scopes"])
	}
	event("note/txt", "diary")
	next(core.MsgEventsChanged)

	// Refusals, in Pryv's error shape.
	refused := func(token, scopes string, status int, id, words string) {
		t.Helper()
		b := e.call(t, "POST", "/alice/webhooks", token, `{"url":"http://`+e.recv.addr+`/ok/refused","scopes":`+scopes+`}`, status)
		errv, _ := b["error"].(map[string]any)
		if errv == nil || errv["id"] != id || !strings.Contains(errv["message"].(string), words) {
			t.Fatalf("scopes %s: %v; want %s mentioning %q", scopes, b, id, words)
		}
	}
	refused("alice-app", `{"k":{"kind":"bogus"}}`, 400, "invalid-request-structure", `kind "bogus" is not yet supported`)
	refused("alice-app", `{"k":{"query":{"streams":["nope"]}}}`, 400, "unknown-referenced-resource", "nope")
	refused("alice-app", `{"k":{"query":{"content":"x"}}}`, 400, "invalid-request-structure", `"content"`)
	refused("alice-app", `{"k":{"query":{"types":["Not A Type"]}}}`, 400, "invalid-request-structure", "not an event type")
	refused("alice-app", `{"k":{"kind":"accesses"}}`, 403, "forbidden", "personal")
	refused("alice-app", `["k"]`, 400, "invalid-request-structure", "object")
}

// TestNodeScopedWebhooks is TestScopedWebhooks in front of Node, with a
// token that reads only one stream: a scope naming another is refused.
func TestNodeScopedWebhooks(t *testing.T) {
	_, addr := startNodeUpstream(t, "5000")
	scopedWebhooks(t, []string{addr})
	e := startWebhooks(t, t.TempDir(), Options{Upstreams: []string{addr}}, webhooks.Options{})
	e.call(t, "POST", "/alice/webhooks", "alice-diary", `{"url":"http://`+e.recv.addr+`/ok/d","scopes":{"d":{"query":{"streams":["diary-work"]}}}}`, 201)
	b := e.call(t, "POST", "/alice/webhooks", "alice-diary", `{"url":"http://`+e.recv.addr+`/ok/h","scopes":{"h":{"query":{"streams":["health"]}}}}`, 400)
	if errv := b["error"].(map[string]any); errv["id"] != "unknown-referenced-resource" {
		t.Fatalf("a scope on a stream the token cannot read: %v", b)
	}
}
