package gateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/gateway/webhooks"
)

// receiverT is a webhook receiver on loopback: /ok answers 200, /fail
// 500; it keeps the path and body of every POST it gets.
type receiverT struct {
	addr    string
	mu      sync.Mutex
	paths   []string
	bodies  []string
	headers []http.Header
	// changed is closed, and replaced, at each POST.
	changed chan struct{}
}

func startReceiver(t *testing.T) *receiverT {
	r := &receiverT{changed: make(chan struct{})}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		r.mu.Lock()
		r.paths = append(r.paths, string(ctx.Path()))
		r.bodies = append(r.bodies, string(ctx.PostBody()))
		h := http.Header{}
		for k, v := range ctx.Request.Header.All() {
			h.Add(string(k), string(v))
		}
		r.headers = append(r.headers, h)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		if strings.HasPrefix(string(ctx.Path()), "/fail") {
			ctx.SetStatusCode(500)
		}
	}}
	r.addr = serve(t, srv)
	return r
}

// gotPaths returns the path of every POST so far.
func (r *receiverT) gotPaths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}

// gotHeaders returns the headers of every POST so far.
func (r *receiverT) gotHeaders() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...)
}

func (r *receiverT) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// waitFor waits for a POST to path whose body contains substr, and
// returns that body.
//
// Real time: the POST comes from the delivery engine's goroutines over a
// real socket; the receiver signals each one, and the bound only ends a
// failure.
func (r *receiverT) waitFor(t *testing.T, path, substr string) string {
	t.Helper()
	timeout := time.NewTimer(waitBound)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		for i, p := range r.paths {
			if b := r.bodies[i]; p == path && strings.Contains(b, substr) {
				r.mu.Unlock()
				return b
			}
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("%s got no POST with %q within %s", path, substr, waitBound)
		}
	}
}

// stepClock is an injected clock that moves only when the test moves it.
type stepClock struct{ ms atomic.Int64 }

func newStepClock(unixMilli int64) *stepClock {
	c := &stepClock{}
	c.ms.Store(unixMilli)
	return c
}

func (c *stepClock) Now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *stepClock) add(d time.Duration) { c.ms.Add(d.Milliseconds()) }
func (c *stepClock) seconds() float64    { return float64(c.ms.Load()) / 1000 }

type whEnv struct {
	*gw
	api  *webhooks.API
	recv *receiverT
	db   *badger.DB
	// stop shuts the gateway down and closes its database, once.
	stop func()
}

// startWebhooks starts the demo upstream, a receiver and a gateway
// serving webhooks from a Badger database in dir.
func startWebhooks(t *testing.T, dir string, o Options, wo webhooks.Options) *whEnv {
	t.Helper()
	if o.Upstreams == nil {
		o.Upstreams = []string{startDemo(t)}
	}
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := webhooks.OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	if wo.Tester == nil {
		// The timeout only bounds a failure: every receiver of these
		// tests answers at once or refuses the connection.
		wo.Tester = delivery.NewClient(delivery.ClientOptions{Timeout: waitBound,
			Guard: delivery.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	}
	wo.Meta = core.Meta{APIVersion: "1.9.3", Serial: "test"}
	api := webhooks.NewAPI(st, wo)
	o.Webhooks = api
	g := startGateway(t, o)
	var once sync.Once
	stop := func() { once.Do(func() { shutdown(t, g.srv); db.Close() }) }
	t.Cleanup(stop)
	return &whEnv{gw: g, api: api, recv: startReceiver(t), stop: stop, db: db}
}

// startEngine runs a delivery engine on e's queue and webhooks, with a
// client that may reach loopback receivers, until the test ends.
func (e *whEnv) startEngine(t *testing.T) {
	t.Helper()
	engine, err := delivery.NewEngine(delivery.EngineOptions{
		Queue: e.queue, Pending: store.NewPending(e.db, nil), Webhooks: e.api.Store(), FlushInterval: 20 * time.Millisecond,
		Sender: delivery.NewClient(delivery.ClientOptions{Timeout: waitBound,
			Guard: delivery.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}),
		Meta: core.Meta{APIVersion: "1.9.3", Serial: "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	go engine.Run()
	t.Cleanup(engine.Stop)
}

// call sends a request with a token and decodes the JSON answer.
func (e *whEnv) call(t *testing.T, method, path, token, body string, want int, opts ...reqOpt) map[string]any {
	t.Helper()
	if token != "" {
		opts = append(opts, header("Authorization", token))
	}
	opts = append(opts, header("Content-Type", "application/json"))
	resp, b := do(t, method, gwURL(e.gw, path), strings.NewReader(body), opts...)
	if resp.StatusCode != want {
		t.Fatalf("%s %s as %q: status %d; want %d: %s", method, path, token, resp.StatusCode, want, b)
	}
	var v map[string]any
	mustJSON(t, b, &v)
	if m, ok := v["meta"].(map[string]any); !ok || m["apiVersion"] == nil || m["serverTime"] == nil || m["serial"] == nil {
		t.Fatalf("%s %s: answer without full meta: %s", method, path, b)
	}
	return v
}

func (e *whEnv) create(t *testing.T, token, url string) map[string]any {
	t.Helper()
	return e.call(t, "POST", "/alice/webhooks", token, `{"url":"`+url+`"}`, 201)["webhook"].(map[string]any)
}

func errID(v map[string]any) string {
	e, _ := v["error"].(map[string]any)
	id, _ := e["id"].(string)
	return id
}

func TestWebhookRecord(t *testing.T) {
	clock := newStepClock(1_700_000_000_123)
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{Now: clock.Now})
	w := e.create(t, "alice-app", "https://notify.example/pryv?secret=s3")
	var keys []string
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"accessId", "created", "createdBy", "currentRetries", "failCount", "id", "lastRun", "maxRetries",
		"minIntervalMs", "modified", "modifiedBy", "runCount", "runs", "state", "url"}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("webhook fields %v; want %v", keys, want)
	}
	id := w["id"].(string)
	if len(id) != 24 || id[0] < 'a' || id[0] > 'z' {
		t.Errorf("id %q is not cuid2-shaped", id)
	}
	check := func(k string, v any) {
		t.Helper()
		if fmt.Sprint(w[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v; want %v", k, w[k], v)
		}
	}
	check("accessId", "alice-app-id")
	check("url", "https://notify.example/pryv?secret=s3")
	check("minIntervalMs", 5000)
	check("maxRetries", 5)
	check("currentRetries", 0)
	check("state", "active")
	check("runCount", 0)
	check("failCount", 0)
	check("runs", []any{})
	check("lastRun", map[string]any{"status": 0, "timestamp": 0})
	check("createdBy", "alice-app-id")
	check("modifiedBy", "alice-app-id")
	check("created", 1700000000.123) // the injected clock's time, in seconds
	check("modified", 1700000000.123)
	got := e.call(t, "GET", "/alice/webhooks/"+id, "alice-app", "", 200)["webhook"].(map[string]any)
	if fmt.Sprint(got) != fmt.Sprint(w) {
		t.Errorf("getOne %v differs from create's %v", got, w)
	}
	// Client values within the platform's bounds are kept.
	w2 := e.call(t, "POST", "/alice/webhooks", "alice-app", `{"url":"https://b.example/","minIntervalMs":2000,"maxRetries":3}`, 201)["webhook"].(map[string]any)
	if w2["minIntervalMs"].(float64) != 2000 || w2["maxRetries"].(float64) != 3 {
		t.Errorf("bounded client values not kept: %v", w2)
	}
}

func TestWebhookPermissions(t *testing.T) {
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{})
	// Creation: app and shared yes, personal no.
	if v := e.call(t, "POST", "/alice/webhooks", "alice-personal", `{"url":"https://p.example/"}`, 403); errID(v) != "forbidden" {
		t.Fatalf("personal create: %v", v)
	}
	url := func(tag string) string { return "http://" + e.recv.addr + "/ok/" + tag }
	newHooks := func(tag string) (app, shared string) {
		return e.create(t, "alice-app", url("a"+tag))["id"].(string), e.create(t, "alice-shared", url("s"+tag))["id"].(string)
	}
	a, s := newHooks("0")

	// Lists: personal all, app and shared only their own.
	ids := func(token string) []string {
		var out []string
		for _, w := range e.call(t, "GET", "/alice/webhooks", token, "", 200)["webhooks"].([]any) {
			out = append(out, w.(map[string]any)["id"].(string))
		}
		sort.Strings(out)
		return out
	}
	both := []string{a, s}
	sort.Strings(both)
	if got := ids("alice-personal"); fmt.Sprint(got) != fmt.Sprint(both) {
		t.Errorf("personal list %v; want %v", got, both)
	}
	if got := ids("alice-app"); fmt.Sprint(got) != fmt.Sprint([]string{a}) {
		t.Errorf("app list %v; want [%s]", got, a)
	}
	if got := ids("alice-shared"); fmt.Sprint(got) != fmt.Sprint([]string{s}) {
		t.Errorf("shared list %v; want [%s] (Pryv's list-all quirk is not kept)", got, s)
	}

	type op struct {
		name, method, suffix, body string
		want                       int
	}
	ops := []op{
		{"getOne", "GET", "", "", 200},
		{"update", "PUT", "", `{"state":"inactive"}`, 200},
		{"test", "POST", "/test", "", 200},
		{"delete", "DELETE", "", "", 200},
	}
	tokens := []string{"alice-personal", "alice-app", "alice-shared"}
	for i, o := range ops {
		for _, tok := range tokens {
			for _, owner := range []string{"app", "shared"} {
				a, s := newHooks(fmt.Sprintf("%d-%s-%s", i, tok, owner))
				id := a
				if owner == "shared" {
					id = s
				}
				allowed := tok == "alice-personal" || tok == "alice-"+owner
				want := o.want
				if !allowed {
					want = 403
				}
				v := e.call(t, o.method, "/alice/webhooks/"+id+o.suffix, tok, o.body, want)
				if !allowed {
					if errID(v) != "forbidden" {
						t.Errorf("%s by %s on %s's webhook: %v", o.name, tok, owner, v)
					}
					msg := v["error"].(map[string]any)["message"].(string)
					if o.name == "getOne" && msg != "The webhook was not created by this access." ||
						o.name != "getOne" && msg != "The webhook was not created by this app access." {
						t.Errorf("%s forbidden message %q", o.name, msg)
					}
				}
			}
		}
	}
	// Another user's token is refused by the upstream, whose answer stands.
	if v := e.call(t, "GET", "/alice/webhooks", "carol-personal", "", 403); errID(v) != "invalid-access-token" {
		t.Fatalf("carol's token on alice: %v", v)
	}
}

func TestWebhookErrors(t *testing.T) {
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{MaxPerAccess: 3})
	bad := func(method, path, token, body string, status int, id string, contains ...string) map[string]any {
		t.Helper()
		v := e.call(t, method, path, token, body, status)
		if errID(v) != id {
			t.Fatalf("%s %s %s: error %v; want %s", method, path, body, v["error"], id)
		}
		raw, _ := json.Marshal(v["error"])
		for _, c := range contains {
			if !strings.Contains(string(raw), c) {
				t.Errorf("%s %s %s: error %s does not mention %q", method, path, body, raw, c)
			}
		}
		return v
	}
	const app = "alice-app"
	bad("POST", "/alice/webhooks", app, `{}`, 400, "invalid-parameters-format", "OBJECT_MISSING_REQUIRED_PROPERTY", "url")
	bad("POST", "/alice/webhooks", app, `{"url":42}`, 400, "invalid-parameters-format", "INVALID_TYPE")
	bad("POST", "/alice/webhooks", app, `{"url":"not a url"}`, 400, "invalid-parameters-format", "INVALID_FORMAT")
	bad("POST", "/alice/webhooks", app, `{"url":"ftp://x.example/"}`, 400, "invalid-parameters-format", "http")
	bad("POST", "/alice/webhooks", app, `{"url":"/relative"}`, 400, "invalid-parameters-format")
	bad("POST", "/alice/webhooks", app, `{"url":"https://u:p@x.example/"}`, 400, "invalid-parameters-format", "credentials")
	bad("POST", "/alice/webhooks", app, `{"url":"https://x.example/","id":"mine","accessId":"other","bogus":1}`, 400,
		"invalid-parameters-format", "OBJECT_ADDITIONAL_PROPERTIES", "accessId", "bogus", `"id"`)
	bad("POST", "/alice/webhooks", app, `{"url":"https://x.example/","state":"bogus"}`, 400, "invalid-parameters-format", "ENUM_MISMATCH")
	bad("POST", "/alice/webhooks", app, `{"url":"https://x.example/","minIntervalMs":10}`, 400, "invalid-parameters-format", "minIntervalMs")
	bad("POST", "/alice/webhooks", app, `{"url":"https://x.example/","maxRetries":99}`, 400, "invalid-parameters-format", "maxRetries")
	bad("POST", "/alice/webhooks", app, `{"url":"https://x.example/","maxRetries":"5"}`, 400, "invalid-parameters-format", "INVALID_TYPE")
	bad("POST", "/alice/webhooks", app, `{"url": "https://x.example/"`, 400, "invalid-request-structure")
	bad("POST", "/alice/webhooks", app, `["https://x.example/"]`, 400, "invalid-parameters-format")

	w := e.create(t, app, "https://dup.example/")
	id := w["id"].(string)
	v := bad("POST", "/alice/webhooks", app, `{"url":"https://dup.example/"}`, 409, "item-already-exists", "https://dup.example/")
	if d := v["error"].(map[string]any)["data"].(map[string]any); d["url"] != "https://dup.example/" {
		t.Errorf("409 data %v", d)
	}
	e.create(t, "alice-shared", "https://dup.example/") // same URL, other access: fine

	bad("PUT", "/alice/webhooks/"+id, app, `{"url":"https://other.example/"}`, 403, "forbidden",
		"Forbidden update was attempted on the following protected field(s): [url].")
	bad("PUT", "/alice/webhooks/"+id, app, `{"url":"x","runCount":3,"state":"active"}`, 403, "forbidden", "[runCount,url]")
	bad("PUT", "/alice/webhooks/"+id, app, `{"state":"paused"}`, 400, "invalid-parameters-format", "ENUM_MISMATCH")
	bad("PUT", "/alice/webhooks/"+id, app, `{"state":`, 400, "invalid-request-structure")
	// Validation comes before the lookup, the lookup before ownership.
	bad("PUT", "/alice/webhooks/nope", app, `{"url":"x"}`, 403, "forbidden", "protected")
	for _, m := range [][2]string{{"GET", ""}, {"PUT", ""}, {"DELETE", ""}, {"POST", "/test"}} {
		body := ""
		if m[0] == "PUT" {
			body = `{"state":"active"}`
		}
		bad(m[0], "/alice/webhooks/nope"+m[1], "alice-shared", body, 404, "unknown-resource", `Unknown webhook \"nope\"`)
	}
	bad("GET", "/alice/webhooks/"+id, "alice-shared", "", 403, "forbidden")

	// Tokens.
	bad("GET", "/alice/webhooks", "", "", 401, "invalid-access-token", "missing")
	bad("GET", "/alice/webhooks", "no-such-token", "", 403, "invalid-access-token")
	bad("GET", "/nobody/webhooks", app, "", 404, "unknown-resource")
	bad("PATCH", "/alice/webhooks/"+id, app, "{}", 404, "unknown-resource")

	// The cap per access (3 here): 1 created above, 2 more fit.
	e.create(t, app, "https://c1.example/")
	e.create(t, app, "https://c2.example/")
	bad("POST", "/alice/webhooks", app, `{"url":"https://c3.example/"}`, 400, "invalid-operation", "3 webhooks")
}

func TestWebhookTokenForms(t *testing.T) {
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{})
	e.create(t, "alice-app", "https://t.example/")
	f := func(path string, opts ...reqOpt) {
		t.Helper()
		resp, b := do(t, "GET", gwURL(e.gw, path), nil, opts...)
		var v struct{ Webhooks []any }
		mustJSON(t, b, &v)
		if resp.StatusCode != 200 || len(v.Webhooks) != 1 || resp.Header.Get("Pryv-Access-Id") != "alice-app-id" {
			t.Errorf("%s %v: %d %s", path, opts, resp.StatusCode, b)
		}
	}
	f("/alice/webhooks", header("Authorization", "alice-app"))
	f("/alice/webhooks", header("Authorization", "alice-app my-caller-id"))
	f("/alice/webhooks", header("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice-app:"))))
	f("/alice/webhooks", header("Authorization", "Bearer alice-app"))
	f("/alice/webhooks?auth=alice-app")
}

func TestWebhookUpdateDeleteTest(t *testing.T) {
	clock := newStepClock(1_700_000_000_000)
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{Now: clock.Now})
	w := e.create(t, "alice-app", "http://"+e.recv.addr+"/ok/hook?k=v")
	id := w["id"].(string)

	created := clock.seconds()
	clock.add(1500 * time.Millisecond)
	got := e.call(t, "PUT", "/alice/webhooks/"+id, "alice-app", `{"state":"inactive"}`, 200)["webhook"].(map[string]any)
	if got["state"] != "inactive" || got["modified"].(float64) != clock.seconds() || got["created"].(float64) != created {
		t.Fatalf("after update at %v: %v; want modified then, created kept at %v", clock.seconds(), got, created)
	}
	// Reactivation resets currentRetries.
	if _, err := e.api.Store().Update("alice", id, func(w *core.Webhook) error { w.CurrentRetries = 4; return nil }); err != nil {
		t.Fatal(err)
	}
	got = e.call(t, "PUT", "/alice/webhooks/"+id, "alice-personal", `{"state":"active"}`, 200)["webhook"].(map[string]any)
	if got["state"] != "active" || got["currentRetries"].(float64) != 0 || got["modifiedBy"] != "alice-personal-id" {
		t.Fatalf("after reactivation: %v", got)
	}

	// Test: one POST of the test message, not recorded as a run.
	got = e.call(t, "POST", "/alice/webhooks/"+id+"/test", "alice-app", "", 200)["webhook"].(map[string]any)
	if got["runCount"].(float64) != 0 || len(got["runs"].([]any)) != 0 {
		t.Fatalf("test was recorded as a run: %v", got)
	}
	bodies := e.recv.got()
	if len(bodies) != 1 {
		t.Fatalf("receiver got %d POSTs; want 1", len(bodies))
	}
	var msg struct {
		Messages []string
		Meta     struct {
			APIVersion string  `json:"apiVersion"`
			ServerTime float64 `json:"serverTime"`
			Serial     string
		}
	}
	mustJSON(t, []byte(bodies[0]), &msg)
	if len(msg.Messages) != 1 || msg.Messages[0] != "test" || msg.Meta.APIVersion != "1.9.3" || msg.Meta.Serial != "test" || msg.Meta.ServerTime != clock.seconds() {
		t.Fatalf("test notification %s; want serverTime %v", bodies[0], clock.seconds())
	}
	// The test works on an inactive webhook too.
	e.call(t, "PUT", "/alice/webhooks/"+id, "alice-app", `{"state":"inactive"}`, 200)
	e.call(t, "POST", "/alice/webhooks/"+id+"/test", "alice-app", "", 200)

	// A failing receiver: 400 unknown-referenced-resource with data.url.
	bad := e.create(t, "alice-app", "http://"+e.recv.addr+"/fail")
	v := e.call(t, "POST", "/alice/webhooks/"+bad["id"].(string)+"/test", "alice-app", "", 400)
	if errID(v) != "unknown-referenced-resource" || v["error"].(map[string]any)["data"].(map[string]any)["url"] != bad["url"] {
		t.Fatalf("failing test: %v", v)
	}
	gone := e.create(t, "alice-app", "http://"+refusedAddr(t)+"/")
	if v := e.call(t, "POST", "/alice/webhooks/"+gone["id"].(string)+"/test", "alice-app", "", 400); errID(v) != "unknown-referenced-resource" {
		t.Fatalf("unreachable test: %v", v)
	}

	// Delete, then 404, and the URL can be used again.
	clock.add(time.Second)
	del := e.call(t, "DELETE", "/alice/webhooks/"+id, "alice-app", "", 200)["webhookDeletion"].(map[string]any)
	if del["id"] != id || del["deleted"].(float64) != clock.seconds() {
		t.Fatalf("deletion %v; want deleted at %v", del, clock.seconds())
	}
	e.call(t, "DELETE", "/alice/webhooks/"+id, "alice-app", "", 404)
	e.call(t, "GET", "/alice/webhooks/"+id, "alice-app", "", 404)
	e.create(t, "alice-app", w["url"].(string))
}

// TestSignedWebhookTest: webhooks.test on a signed webhook is signed as
// its notifications are, so that a receiver that verifies takes it: the
// official Standard Webhooks library accepts it; an unsigned webhook's
// test carries no signature headers.
func TestSignedWebhookTest(t *testing.T) { signedWebhookTest(t, nil) }

// signedWebhookTest is TestSignedWebhookTest in front of upstreams (nil:
// the demo upstream).
func signedWebhookTest(t *testing.T, upstreams []string) {
	e := startWebhooks(t, t.TempDir(), Options{Upstreams: upstreams}, webhooks.Options{})
	w := e.call(t, "POST", "/alice/webhooks", "alice-app", `{"url":"http://`+e.recv.addr+`/signed","signed":true}`, 201)["webhook"].(map[string]any)
	secret, _ := w["signingSecret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("signed webhook created without its secret: %v", w)
	}
	e.call(t, "POST", "/alice/webhooks/"+w["id"].(string)+"/test", "alice-app", "", 200)
	plain := e.create(t, "alice-app", "http://"+e.recv.addr+"/plain")
	e.call(t, "POST", "/alice/webhooks/"+plain["id"].(string)+"/test", "alice-app", "", 200)
	bodies, headers := e.recv.got(), e.recv.gotHeaders()
	if len(bodies) != 2 {
		t.Fatalf("receiver got %d POSTs; want 2", len(bodies))
	}
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify([]byte(bodies[0]), headers[0]); err != nil {
		t.Fatalf("the official verifier refused the signed test: %v (%v)", err, headers[0])
	}
	if !strings.Contains(bodies[0], `"messages":["test"]`) {
		t.Fatalf("signed test body %s", bodies[0])
	}
	if h := headers[1]; h.Get("webhook-id") != "" || h.Get("webhook-signature") != "" {
		t.Fatalf("an unsigned webhook's test carries signature headers: %v", h)
	}
}

func TestWebhookTestRefusesPrivateAddresses(t *testing.T) {
	// No allow-list: the receiver on loopback is refused at dial time.
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{Tester: delivery.NewClient(delivery.ClientOptions{})})
	w := e.create(t, "alice-app", "http://"+e.recv.addr+"/ok")
	if v := e.call(t, "POST", "/alice/webhooks/"+w["id"].(string)+"/test", "alice-app", "", 400); errID(v) != "unknown-referenced-resource" {
		t.Fatalf("test to loopback: %v", v)
	}
	if n := len(e.recv.got()); n != 0 {
		t.Fatalf("the loopback receiver was reached %d times", n)
	}
}

func TestWebhooksInBatch(t *testing.T) {
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{})
	existing := e.create(t, "alice-app", "https://existing.example/")["id"].(string)
	body := `[
		{"method":"webhooks.create","params":{"url":"https://batch.example/"}},
		{"method":"events.create","params":{"streamIds":["diary"],"type":"note/txt","content":"x"}},
		{"method":"webhooks.getOne","params":{"id":"nope"}},
		{"method":"events.create","params":{"content":"invalid"}},
		{"method":"webhooks.update","params":{"id":"` + existing + `","update":{"state":"inactive"}}},
		{"method":"webhooks.get","params":{}},
		{"method":"streams.create","params":{"name":"From batch"}}
	]`
	v := e.call(t, "POST", "/alice/", "alice-app", body, 200)
	res := v["results"].([]any)
	if len(res) != 7 {
		t.Fatalf("%d results; want 7: %v", len(res), v)
	}
	slot := func(i int, key string) map[string]any {
		t.Helper()
		m, ok := res[i].(map[string]any)[key].(map[string]any)
		if !ok {
			t.Fatalf("result %d has no %q: %v", i, key, res[i])
		}
		return m
	}
	if w := slot(0, "webhook"); w["url"] != "https://batch.example/" || w["accessId"] != "alice-app-id" {
		t.Errorf("webhooks.create slot %v", w)
	}
	if ev := slot(1, "event"); ev["content"] != "x" {
		t.Errorf("events.create slot %v", ev)
	}
	if e := slot(2, "error"); e["id"] != "unknown-resource" {
		t.Errorf("webhooks.getOne slot %v", e)
	}
	if e := slot(3, "error"); e["id"] != "invalid-parameters-format" {
		t.Errorf("invalid events.create slot %v", e)
	}
	if w := slot(4, "webhook"); w["state"] != "inactive" {
		t.Errorf("webhooks.update slot %v", w)
	}
	if list := res[5].(map[string]any)["webhooks"].([]any); len(list) != 2 {
		t.Errorf("webhooks.get slot: %d webhooks; want 2", len(list))
	}
	if s := slot(6, "stream"); s["name"] != "From batch" {
		t.Errorf("streams.create slot %v", s)
	}
	// Run in order: each run of upstream calls is its own upstream batch,
	// whose changes are recorded before the next call; webhooks calls are
	// not changes.
	e.expectMarkers(t, "mixed batch", mk("alice", core.MsgEventsChanged), mk("alice", core.MsgStreamsChanged))

	// Only webhooks calls: no upstream batch at all; permissions hold in batches too.
	v = e.call(t, "POST", "/alice/", "alice-personal", `[{"method":"webhooks.create","params":{"url":"https://p.example/"}},{"method":"webhooks.get"}]`, 200)
	res = v["results"].([]any)
	if errID(res[0].(map[string]any)) != "forbidden" || len(res[1].(map[string]any)["webhooks"].([]any)) != 2 {
		t.Fatalf("personal batch: %v", res)
	}
	v = e.call(t, "POST", "/alice/", "alice-shared", `[{"method":"webhooks.getOne","params":{"id":"`+existing+`"}},{"method":"webhooks.delete","params":{"id":"`+existing+`"}}]`, 200)
	res = v["results"].([]any)
	if errID(res[0].(map[string]any)) != "forbidden" || errID(res[1].(map[string]any)) != "forbidden" {
		t.Fatalf("shared access reached the app's webhook in a batch: %v", res)
	}
	e.expectMarkers(t, "webhooks-only batches")
	// A bad token refuses the whole batch.
	e.call(t, "POST", "/alice/", "nope", `[{"method":"webhooks.get"}]`, 403)
}

func TestWebhooksSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	up := startDemo(t)
	e := startWebhooks(t, dir, Options{Upstreams: []string{up}}, webhooks.Options{})
	a := e.create(t, "alice-app", "https://one.example/")
	e.create(t, "alice-shared", "https://two.example/")
	e.call(t, "PUT", "/alice/webhooks/"+a["id"].(string), "alice-app", `{"state":"inactive"}`, 200)
	before := e.call(t, "GET", "/alice/webhooks", "alice-personal", "", 200)["webhooks"]
	// Stop this gateway and its database, then start again on the same directory.
	e.stop()
	e2 := startWebhooks(t, dir, Options{Upstreams: []string{up}}, webhooks.Options{})
	after := e2.call(t, "GET", "/alice/webhooks", "alice-personal", "", 200)["webhooks"]
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("after restart\n%v\nwant\n%v", after, before)
	}
	if n := len(e2.api.Store().Active("alice")); n != 1 {
		t.Fatalf("index after restart: %d active webhooks; want 1", n)
	}
}

func TestWebhooksSubdomain(t *testing.T) {
	e := startWebhooks(t, t.TempDir(), Options{UsernameMode: UsernameSubdomain}, webhooks.Options{})
	h := host("alice.pryv.example")
	w := e.call(t, "POST", "/webhooks", "alice-app", `{"url":"https://sub.example/"}`, 201, h)["webhook"].(map[string]any)
	if list := e.call(t, "GET", "/webhooks", "alice-app", "", 200, h)["webhooks"].([]any); len(list) != 1 {
		t.Fatalf("list %v", list)
	}
	e.call(t, "GET", "/alice/webhooks/"+w["id"].(string), "alice-app", "", 200, h)
	if v := e.call(t, "POST", "/", "alice-app", `[{"method":"webhooks.get"}]`, 200, h); len(v["results"].([]any)[0].(map[string]any)["webhooks"].([]any)) != 1 {
		t.Fatalf("subdomain batch %v", v)
	}
}

func TestDeletedAccessTokenForgotten(t *testing.T) {
	// A long cache TTL: only the deletion itself can make the gateway
	// forget the token.
	e := startWebhooks(t, t.TempDir(), Options{AccessCacheTTL: time.Hour}, webhooks.Options{})
	acc := e.call(t, "POST", "/alice/accesses", "alice-personal", `{"name":"temp","type":"app"}`, 201)["access"].(map[string]any)
	tok, id := acc["token"].(string), acc["id"].(string)
	e.create(t, tok, "https://temp.example/")
	e.call(t, "GET", "/alice/webhooks", tok, "", 200) // cached now
	e.call(t, "DELETE", "/alice/accesses/"+id, "alice-personal", "", 200)
	if v := e.call(t, "GET", "/alice/webhooks", tok, "", 403); errID(v) != "invalid-access-token" {
		t.Fatalf("deleted access's token: %v", v)
	}
}

// TestWebhooksUpstreamDown: with the upstream refusing connections, a
// webhooks call (which needs the upstream's access-info) gets 502 at once.
//
// Real time: real sockets. UpstreamTimeout is 20 s, so waiting for it
// would show as a 504; the elapsed-time bound is as generous.
func TestWebhooksUpstreamDown(t *testing.T) {
	const timeout = 20 * time.Second
	e := startWebhooks(t, t.TempDir(), Options{Upstreams: []string{refusedAddr(t)}, UpstreamTimeout: timeout}, webhooks.Options{})
	start := time.Now()
	if v := e.call(t, "GET", "/alice/webhooks", "alice-app", "", 502); errID(v) != "api-unavailable" {
		t.Fatalf("upstream down: %v", v)
	}
	if d := time.Since(start); d >= timeout {
		t.Fatalf("took %s; the upstream timeout is %s", d, timeout)
	}
}

// TestAccessDeletionThroughGateway: deleting the creating access through
// the gateway still delivers that deletion's accessesChanged to the
// access's webhooks, then turns them inactive, never deleted (SPEC §2).
//
// Real time: the delivery engine runs its own goroutines and posts over
// real sockets. The test waits for each outcome (the receiver's POST, the
// run record) up to a generous bound, never for a fixed time.
func TestAccessDeletionThroughGateway(t *testing.T) {
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{})
	// The access is created, and its marker cleared, before the engine
	// starts, and the webhooks after: the engine reads no marker but the
	// deletion's, and sends no boot message, so each webhook gets exactly
	// one notification, at once.
	acc := e.call(t, "POST", "/alice/accesses", "alice-personal", `{"name":"consent","type":"app"}`, 201)["access"].(map[string]any)
	tok, accID := acc["token"].(string), acc["id"].(string)
	e.clear(t)
	e.startEngine(t)

	doomed := e.create(t, tok, "http://"+e.recv.addr+"/ok/doomed")["id"].(string)
	survivor := e.create(t, "alice-app", "http://"+e.recv.addr+"/ok/survivor")["id"].(string)
	e.call(t, "DELETE", "/alice/accesses/"+accID, "alice-personal", "", 200)

	e.recv.waitFor(t, "/ok/doomed", core.MsgAccessesChanged)
	e.recv.waitFor(t, "/ok/survivor", core.MsgAccessesChanged)
	// The engine records each run once the receiver has answered.
	st := e.api.Store()
	eventually(t, "both runs recorded", func() bool {
		return st.ByID(doomed).RunCount == 1 && st.ByID(survivor).RunCount == 1
	})
	w := e.call(t, "GET", "/alice/webhooks/"+doomed, "alice-personal", "", 200)["webhook"].(map[string]any)
	if w["state"] != "inactive" || w["runCount"].(float64) != 1 || w["lastRun"].(map[string]any)["status"].(float64) != 200 {
		t.Fatalf("the deleted access's webhook after its notification: %v; want inactive after one run answered 200", w)
	}
	if w := e.call(t, "GET", "/alice/webhooks/"+survivor, "alice-personal", "", 200)["webhook"].(map[string]any); w["state"] != "active" {
		t.Fatalf("another access's webhook turned %v", w["state"])
	}
	// The personal access still sees it, and can reactivate or delete it.
	e.call(t, "PUT", "/alice/webhooks/"+doomed, "alice-personal", `{"state":"active"}`, 200)
	e.call(t, "DELETE", "/alice/webhooks/"+doomed, "alice-personal", "", 200)
}

// TestMixedBatchInOrder: a batch runs in order, as in Pryv. In
// [webhooks.create, events.create] the new webhook hears of the event; in
// [events.create, webhooks.create] it does not, since the event came
// first. A later stream change reaches both: the second webhook's first
// notification carries it alone.
func TestMixedBatchInOrder(t *testing.T) { mixedBatchInOrder(t, nil) }

// mixedBatchInOrder is TestMixedBatchInOrder in front of upstreams (nil:
// the demo upstream).
func mixedBatchInOrder(t *testing.T, upstreams []string) {
	e := startWebhooks(t, t.TempDir(), Options{Upstreams: upstreams}, webhooks.Options{})
	e.startEngine(t)

	event := `{"method":"events.create","params":{"streamIds":["diary"],"type":"note/txt","content":"x"}}`
	first := `{"method":"webhooks.create","params":{"url":"http://` + e.recv.addr + `/ok/first"}}`
	second := `{"method":"webhooks.create","params":{"url":"http://` + e.recv.addr + `/ok/second"}}`
	e.call(t, "POST", "/alice/", "alice-app", "["+first+","+event+"]", 200)
	e.recv.waitFor(t, "/ok/first", core.MsgEventsChanged)
	e.call(t, "POST", "/alice/", "alice-app", "["+event+","+second+"]", 200)
	e.call(t, "POST", "/alice/streams", "alice-app", `{"name":"later"}`, 201)
	e.recv.waitFor(t, "/ok/second", core.MsgStreamsChanged)
	for i, p := range e.recv.gotPaths() {
		if p == "/ok/second" {
			if b := e.recv.got()[i]; !strings.Contains(b, `"messages":["streamsChanged"]`) {
				t.Fatalf("the webhook created after the event got %s first; want the later stream change alone", b)
			}
			break
		}
	}
}

func TestBatchAccessDeletionMarked(t *testing.T) {
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{})
	for _, mixed := range []bool{false, true} {
		acc := e.call(t, "POST", "/alice/accesses", "alice-personal", `{"name":"b","type":"app"}`, 201)["access"].(map[string]any)
		e.clear(t)
		body := `[{"method":"accesses.delete","params":{"id":"` + acc["id"].(string) + `"}},{"method":"accesses.delete","params":{"id":"nope"}}`
		if mixed {
			body += `,{"method":"webhooks.get","params":{}}`
		}
		e.call(t, "POST", "/alice/", "alice-personal", body+"]", 200)
		m := e.markers(t)
		e.clear(t)
		if len(m) != 1 || fmt.Sprint(m[0].DeletedAccesses) != "["+acc["id"].(string)+"]" || m[0].Messages[0] != core.MsgAccessesChanged {
			t.Fatalf("mixed=%v: markers %+v; want accessesChanged naming only the deleted access", mixed, m)
		}
	}
}

func TestWebhooksFormOverride(t *testing.T) {
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{})
	form := header("Content-Type", "application/x-www-form-urlencoded")
	resp, b := do(t, "POST", gwURL(e.gw, "/alice/webhooks"), strings.NewReader("_auth=alice-app&_json=%7B%22url%22%3A%22https%3A%2F%2Fform.example%2F%22%7D"), form)
	if resp.StatusCode != 201 {
		t.Fatalf("form create: %d %s", resp.StatusCode, b)
	}
	var v struct{ Webhook struct{ ID string } }
	mustJSON(t, b, &v)
	resp, b = do(t, "POST", gwURL(e.gw, "/alice/webhooks/"+v.Webhook.ID), strings.NewReader("_method=put&_auth=alice-app&_json=%7B%22state%22%3A%22inactive%22%7D"), form)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"state":"inactive"`) {
		t.Fatalf("form update: %d %s", resp.StatusCode, b)
	}
}

// TestCreateRefusesUnreachableAddress: a URL aimed at an address the
// delivery client refuses (a cloud metadata address, loopback when not
// allowed) is refused at creation, in Pryv's parameter error shape,
// rather than stored to fail at every delivery; an allowed range and a
// name pass.
func TestCreateRefusesUnreachableAddress(t *testing.T) {
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{Reachable: delivery.Guard{}.Reachable})
	for _, u := range []string{"http://169.254.169.254/latest/meta-data", "http://127.0.0.1:9/x", "http://localhost/x", "http://[::1]/x"} {
		v := e.call(t, "POST", "/alice/webhooks", "alice-app", `{"url":"`+u+`"}`, 400)
		if errID(v) != "invalid-parameters-format" || !strings.Contains(fmt.Sprint(v), "private or special-purpose") {
			t.Errorf("%s: %v", u, v)
		}
	}
	e.create(t, "alice-app", "https://receiver.example/hook")
	allowed := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{
		Reachable: delivery.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}.Reachable})
	allowed.create(t, "alice-app", "http://127.0.0.1:9/x")
}

// TestMixedBatchForwardsOnce: a batch that goes upstream in several parts
// sends each part with the client's request as the proxy prepares it
// once: one X-Forwarded-For address, not one more per part.
func TestMixedBatchForwardsOnce(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	demo := startDemo(t)
	up := serve(t, &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/alice/" && ctx.IsPost() {
			mu.Lock()
			seen = append(seen, string(ctx.Request.Header.Peek(fasthttp.HeaderXForwardedFor)))
			mu.Unlock()
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"results":[{"stream":{"id":"s"}}],"meta":{"apiVersion":"1.9.3","serverTime":1,"serial":"x"}}`)
			return
		}
		var c fasthttp.Client
		req, resp := &ctx.Request, &ctx.Response
		req.SetHost(demo)
		req.URI().SetHost(demo)
		if err := c.Do(req, resp); err != nil {
			ctx.Error(err.Error(), 502)
		}
	}})
	e := startWebhooks(t, t.TempDir(), Options{Upstreams: []string{up}}, webhooks.Options{})
	get := `{"method":"webhooks.get","params":{}}`
	stream := `{"method":"streams.create","params":{"name":"x"}}`
	e.call(t, "POST", "/alice/", "alice-app", "["+stream+","+get+","+stream+","+get+","+stream+"]", 200)
	// A client that asks to close has its connection closed after the
	// answer, as for any request.
	body := "[" + get + "," + stream + "]"
	resp, _ := rawDo(t, e.addr, "POST /alice/ HTTP/1.1\r\nHost: x\r\nAuthorization: alice-app\r\nContent-Type: application/json\r\n"+
		"Connection: close\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("batch with Connection: close: %d, close %v", resp.StatusCode, resp.Close)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 4 {
		t.Fatalf("%d upstream batches; want 4", len(seen))
	}
	for i, xff := range seen {
		if xff != "127.0.0.1" {
			t.Errorf("part %d went upstream with X-Forwarded-For %q; want the client's address once", i+1, xff)
		}
	}
}

// TestSecretRotation: POST /{user}/webhooks/{id}/rotate-secret gives a
// signed webhook a new secret, shown once; for the grace that follows,
// a notification carries a signature under each secret and the official
// verifier takes it with either; after it, only the new secret signs.
// It survives a restart, and only the webhook's owner may rotate.
func TestSecretRotation(t *testing.T) {
	dir := t.TempDir()
	// Near the real time: the official verifier takes timestamps within
	// 5 minutes of its own clock.
	clock := newStepClock(time.Now().Add(-3 * time.Minute).UnixMilli())
	wo := webhooks.Options{Now: clock.Now, RotationGrace: 2 * time.Minute}
	e := startWebhooks(t, dir, Options{}, wo)
	w := e.call(t, "POST", "/alice/webhooks", "alice-app", `{"url":"http://`+e.recv.addr+`/signed","signed":true}`, 201)["webhook"].(map[string]any)
	id, old := w["id"].(string), w["signingSecret"].(string)
	plain := e.create(t, "alice-app", "http://"+e.recv.addr+"/plain")
	if v := e.call(t, "POST", "/alice/webhooks/"+plain["id"].(string)+"/rotate-secret", "alice-app", "", 400); errID(v) != "invalid-operation" {
		t.Fatalf("rotating an unsigned webhook: %v", v)
	}
	if v := e.call(t, "POST", "/alice/webhooks/"+id+"/rotate-secret", "alice-shared", "", 403); errID(v) != "forbidden" {
		t.Fatalf("rotating another access's webhook: %v", v)
	}
	r := e.call(t, "POST", "/alice/webhooks/"+id+"/rotate-secret", "alice-app", "", 200)["webhook"].(map[string]any)
	fresh, _ := r["signingSecret"].(string)
	if !strings.HasPrefix(fresh, "whsec_") || fresh == old || r["previousSecretValidUntil"] != clock.seconds()+120 {
		t.Fatalf("rotation answered %v", r)
	}
	if got := e.call(t, "GET", "/alice/webhooks/"+id, "alice-app", "", 200)["webhook"].(map[string]any); got["signingSecret"] != nil {
		t.Fatalf("the new secret is shown again: %v", got)
	}
	recv := e.recv // the webhook's receiver, across the restart
	verifies := func(secret string, i int) bool {
		v, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		return v.Verify([]byte(recv.got()[i]), recv.gotHeaders()[i]) == nil
	}
	e.call(t, "POST", "/alice/webhooks/"+id+"/test", "alice-app", "", 200)
	if !verifies(fresh, 0) || !verifies(old, 0) {
		t.Fatalf("during the grace, the new and the previous secret must both verify: %v", recv.gotHeaders()[0])
	}
	// A restart keeps the rotation: the store holds both secrets.
	e.stop()
	e = startWebhooks(t, dir, Options{}, wo)
	clock.add(2 * time.Minute)
	e.call(t, "POST", "/alice/webhooks/"+id+"/test", "alice-app", "", 200)
	if !verifies(fresh, 1) || verifies(old, 1) {
		t.Fatalf("after the grace, only the new secret must verify: %v", recv.gotHeaders()[1])
	}
	if w := e.api.Store().ByID(id); w.Secret != fresh || w.PreviousSecret != old {
		t.Fatalf("after a restart the record holds %q and %q", w.Secret, w.PreviousSecret)
	}
}
