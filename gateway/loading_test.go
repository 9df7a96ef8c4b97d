package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/state"
)

// TestWebhooksLoading: a gateway started before its webhooks are loaded
// proxies and queues changes at once, answers webhooks requests (plain
// and in batches, here without waiting) 503 api-unavailable with
// Retry-After, and is not ready; once SetWebhooks hands the API over,
// both work.
func TestWebhooksLoading(t *testing.T) {
	g := startGateway(t, Options{Upstreams: []string{startDemo(t)}, WebhooksLater: true, WebhooksWait: -1})
	ready := func() (int, string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/readyz")
		g.OpsHandler()(&ctx)
		return ctx.Response.StatusCode(), string(ctx.Response.Body())
	}
	if st, body := ready(); st != 503 || !strings.Contains(body, "webhooks: loading") {
		t.Fatalf("readyz while loading: %d %q; want 503 with webhooks: loading", st, body)
	}
	// The proxy works, and its changes are queued.
	resp, b := do(t, "POST", gwURL(g, "/alice/events"), strings.NewReader(`{"streamIds":["diary"],"type":"note/txt","content":"x"}`),
		header("Authorization", "alice-app"), header("Content-Type", "application/json"))
	if resp.StatusCode != 201 {
		t.Fatalf("events.create while loading: %d %s", resp.StatusCode, b)
	}
	if m := g.markers(t); len(m) != 1 || m[0].User != "alice" {
		t.Fatalf("markers while loading: %+v; want alice's change", m)
	}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/alice/webhooks", ""},
		{"POST", "/alice/webhooks", `{"url":"http://127.0.0.1:9/x"}`},
		{"POST", "/alice/", `[{"method":"webhooks.get","params":{}},{"method":"events.get","params":{}}]`},
	} {
		resp, b := do(t, r.method, gwURL(g, r.path), strings.NewReader(r.body),
			header("Authorization", "alice-app"), header("Content-Type", "application/json"))
		if id, _ := pryvError(t, b); resp.StatusCode != 503 || id != "api-unavailable" || resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("%s %s while loading: %d %s (Retry-After %q); want 503 api-unavailable with Retry-After: 1",
				r.method, r.path, resp.StatusCode, b, resp.Header.Get("Retry-After"))
		}
	}

	reg := state.NewMemory()
	g.SetWebhooks(memoryAPI(reg))
	if st, body := ready(); st != 200 || !strings.Contains(body, "webhooks: ok") {
		t.Fatalf("readyz once loaded: %d %q", st, body)
	}
	resp, b = do(t, "POST", gwURL(g, "/alice/webhooks"), strings.NewReader(`{"url":"http://127.0.0.1:9/x"}`),
		header("Authorization", "alice-app"), header("Content-Type", "application/json"))
	if resp.StatusCode != 201 || !bytes.Contains(b, []byte(`"webhook"`)) {
		t.Fatalf("webhooks.create once loaded: %d %s", resp.StatusCode, b)
	}
	if n := len(reg.List("alice", "")); n != 1 {
		t.Fatalf("the registry holds %d webhooks of alice; want the one created", n)
	}
}

func memoryAPI(reg state.Registry) *webhooks.API {
	return webhooks.NewAPI(reg, webhooks.Options{
		Tester: delivery.NewClient(delivery.ClientOptions{Guard: delivery.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}),
		Meta:   core.Meta{APIVersion: "1.9.3", Serial: "test"},
	})
}

// TestWebhooksRequestWaitsForLoad: a webhooks request that arrives while
// the webhooks load waits for them (up to WebhooksWait) and is answered
// once they are there, instead of failing.
func TestWebhooksRequestWaitsForLoad(t *testing.T) {
	g := startGateway(t, Options{Upstreams: []string{startDemo(t)}, WebhooksLater: true, WebhooksWait: time.Minute})
	type answer struct {
		status int
		body   []byte
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", gwURL(g, "/alice/webhooks"), strings.NewReader(`{"url":"http://127.0.0.1:9/x"}`))
		req.Header.Set("Authorization", "alice-app")
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: waitBound}).Do(req)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, b, err}
	}()
	eventually(t, "the request waiting for the webhooks", func() bool { return g.hookWaiters.Load() == 1 })
	reg := state.NewMemory()
	g.SetWebhooks(memoryAPI(reg))
	a := <-got // the client's timeout bounds it
	if a.err != nil || a.status != 201 || len(reg.List("alice", "")) != 1 {
		t.Fatalf("a request made while loading: %d %s %v; want 201 once loaded", a.status, a.body, a.err)
	}
}
