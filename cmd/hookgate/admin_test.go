package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/bench/upstream"
)

// TestOperatorAPIAndAlerts runs the binary with a retry schedule, an
// alert URL and an admin key given as a file, and an operator works with
// `hookgate admin`: a webhook whose receiver fails is retried on the
// schedule, deactivated, and the alert URL hears of it; the operator
// lists it among the failing ones, reads its runs with their error
// class, reactivates it, and then stops every webhook of the receiver's
// host. A wrong key is refused. Then every route of the operator API is
// called over HTTP, and each request and answer checked against
// docs/admin-openapi.json (adminDocumented).
//
// Real time: it drives the real binary, whose retries and alert come on
// its own clock; patience only bounds a failure.
func TestOperatorAPIAndAlerts(t *testing.T) {
	alerts := make(chan []byte, 4)
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	asrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		alerts <- append([]byte(nil), ctx.PostBody()...)
	}}
	go asrv.Serve(aln)
	t.Cleanup(func() { asrv.Shutdown() })

	keyFile := filepath.Join(t.TempDir(), "admin.key")
	if err := os.WriteFile(keyFile, []byte("k3y-of-the-operator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := startUpstream(t, upstream.Options{})
	recv := startReceivers(t, 1)[0]
	g := startGatewayEnv(t, []string{"HOOKGATE_ADMIN_KEY_FILE=" + keyFile}, "-upstream", up, "-data-dir", t.TempDir(),
		"-allow-cidrs", "127.0.0.0/8", "-min-interval", "1s", "-retry-schedule", "10ms,20ms",
		"-alert-url", "http://"+aln.Addr().String()+"/alerts")

	create := func(url string, maxRetries int) string {
		t.Helper()
		st, body := call(g.listen, "POST", "/alice/webhooks", `{"url":"`+url+`","maxRetries":`+itoa(maxRetries)+`}`)
		if st != 201 {
			t.Fatalf("creating a webhook: %d %s", st, body)
		}
		var v struct{ Webhook struct{ ID string } }
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		return v.Webhook.ID
	}
	failing := create("http://"+recv.Addr()+"/notify?_status=500", 1)
	fine := create("http://"+recv.Addr()+"/notify", 5)
	if st, b := postEvent(g.listen); st != 201 {
		t.Fatalf("change: %d %s", st, b)
	}
	var alert struct {
		Type    string
		Webhook struct {
			ID       string
			Reason   string
			Failures int
			LastRun  struct{ Status int }
		}
	}
	select {
	case b := <-alerts:
		if err := json.Unmarshal(b, &alert); err != nil || alert.Type != "webhook.deactivated" || alert.Webhook.ID != failing ||
			alert.Webhook.Failures != 2 || alert.Webhook.LastRun.Status != 500 {
			t.Fatalf("alert %s: %+v", b, alert)
		}
	case <-g.exited:
		t.Fatal("hookgate exited")
	case <-time.After(patience): // a failure bound only
		t.Fatal("no deactivation alert")
	}

	admin := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := runAdmin(append([]string{"-ops-listen", g.ops}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	t.Setenv("HOOKGATE_ADMIN_KEY_FILE", keyFile) // as the server reads it
	code, out, errs := admin("list", "-failing")
	if code != 0 || !strings.Contains(out, failing) || strings.Contains(out, fine) || !strings.Contains(out, "inactive") {
		t.Fatalf("list -failing: %d\n%s%s", code, out, errs)
	}
	code, out, errs = admin("get", failing)
	var detail struct {
		Webhook struct {
			State string
			Runs  []struct {
				Status int
				Error  string
			}
		}
		User string
	}
	if code != 0 || json.Unmarshal([]byte(out), &detail) != nil || detail.User != "alice" || detail.Webhook.State != "inactive" ||
		len(detail.Webhook.Runs) != 2 || detail.Webhook.Runs[0].Error != "http" || detail.Webhook.Runs[0].Status != 500 {
		t.Fatalf("get: %d %+v\n%s%s", code, detail, out, errs)
	}
	if code, out, errs = admin("reactivate", failing); code != 0 || !strings.Contains(out, `"state": "active"`) {
		t.Fatalf("reactivate: %d\n%s%s", code, out, errs)
	}
	if code, out, errs = admin("deactivate-host", "127.0.0.1"); code != 0 || !strings.Contains(out, failing) || !strings.Contains(out, fine) {
		t.Fatalf("deactivate-host: %d\n%s%s", code, out, errs)
	}
	if code, out, _ = admin("list", "-state", "active"); code != 0 || strings.Contains(out, fine) || strings.Contains(out, failing) {
		t.Fatalf("active after the host's deactivation: %d\n%s", code, out)
	}
	if code, _, errs = admin("-admin-key", "wrong", "list"); code != 1 || !strings.Contains(errs, "401") {
		t.Fatalf("a wrong key: %d %s", code, errs)
	}
	if code, _, _ = admin("frobnicate"); code != 2 {
		t.Fatalf("an unknown command: exit %d; want 2", code)
	}

	t.Run("openapi", func(t *testing.T) {
		adminDocumented(t, g, recv.Addr(), "k3y-of-the-operator", failing, fine)
	})
}

// adminDocumented calls every route of the operator API of g, whose key
// is key, through real HTTP requests to its ops listener, and checks
// each request and answer against docs/admin-openapi.json with
// libopenapi-validator: successes, and every error status each route
// can be brought to give here (400, 401, 404, 409); a request the API
// refuses as malformed must not match the document either. failing and
// fine are alice's webhooks to receiver, both inactive.
//
// It waits for outcomes only (a run, a pending message), bounded by
// patience: a webhook with an hour's minIntervalMs holds its second
// change, which redelivery then sends.
func adminDocumented(t *testing.T, g *gatewayProc, receiver, key, failing, fine string) {
	v, model := openAPIValidatorOf(t, adminOpenAPIFile)
	bearer := "Bearer " + key

	// Every route the API serves is documented, and nothing else.
	var routes []string
	for path, item := range model.Paths.PathItems.FromOldest() {
		for m := range item.GetOperations().KeysFromOldest() {
			routes = append(routes, strings.ToUpper(m)+" "+path)
		}
	}
	sort.Strings(routes)
	want := []string{"GET /admin/webhooks", "GET /admin/webhooks/{id}", "POST /admin/hosts/{host}/deactivate",
		"POST /admin/webhooks/{id}/deactivate", "POST /admin/webhooks/{id}/reactivate", "POST /admin/webhooks/{id}/redeliver"}
	if strings.Join(routes, "\n") != strings.Join(want, "\n") {
		t.Fatalf("documented routes:\n%s\nwant:\n%s", strings.Join(routes, "\n"), strings.Join(want, "\n"))
	}

	// request sends one request to route (as documented) at path, with auth
	// as its Authorization header (none if empty): the answer must match
	// the document, and the request too if valid; if not, the request
	// must not. It returns the status and the answer.
	seen := map[string]map[int]bool{} // route -> statuses answered
	request := func(auth, route, path string, valid bool) (int, string) {
		t.Helper()
		method, _, _ := strings.Cut(route, " ")
		st, body := openAPICall(t, v, g.ops, auth, method, path, "", valid)
		if seen[route] == nil {
			seen[route] = map[int]bool{}
		}
		seen[route][st] = true
		if !valid {
			req, err := http.NewRequest(method, "http://"+g.ops+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			if ok, _ := v.ValidateHttpRequestSync(req); ok {
				t.Errorf("%s %s by %q: answered %d %s, yet the request matches the document", method, path, auth, st, body)
			}
		}
		return st, body
	}
	expect := func(auth, route, path string, valid bool, status int) string {
		t.Helper()
		st, body := request(auth, route, path, valid)
		if st != status {
			t.Errorf("%s %s by %q: %d %s; want %d", route, path, auth, st, body, status)
		}
		return body
	}
	type detail struct {
		Webhook struct {
			RunCount int
			Signed   bool
			Scopes   map[string]any
		}
		Delivery struct {
			Pending  []string
			InFlight bool
		}
	}
	get := func(id string) detail {
		t.Helper()
		var d detail
		if b := expect(bearer, "GET /admin/webhooks/{id}", "/admin/webhooks/"+id, true, 200); json.Unmarshal([]byte(b), &d) != nil {
			t.Fatalf("GET /admin/webhooks/%s: %s", id, b)
		}
		return d
	}
	create := func(body string) string {
		t.Helper()
		st, b := call(g.listen, "POST", "/alice/webhooks", body)
		var c struct{ Webhook struct{ ID string } }
		if st != 201 || json.Unmarshal([]byte(b), &c) != nil {
			t.Fatalf("creating a webhook: %d %s", st, b)
		}
		return c.Webhook.ID
	}

	// A webhook that notifies at most once an hour: its first change goes
	// out, its second waits, and redelivery sends it now.
	slow := create(`{"url":"http://` + receiver + `/slow","minIntervalMs":3600000}`)
	if st, b := postEvent(g.listen); st != 201 {
		t.Fatalf("change: %d %s", st, b)
	}
	if !eventually(patience, func() bool { return get(slow).Webhook.RunCount == 1 }) {
		t.Fatalf("no run of the slow webhook within %s", patience)
	}
	if st, b := postEvent(g.listen); st != 201 {
		t.Fatalf("change: %d %s", st, b)
	}
	if !eventually(patience, func() bool { d := get(slow); return len(d.Delivery.Pending) > 0 && !d.Delivery.InFlight }) {
		t.Fatalf("the slow webhook's second change is not pending within %s: %+v", patience, get(slow))
	}
	if b := expect(bearer, "POST /admin/webhooks/{id}/redeliver", "/admin/webhooks/"+slow+"/redeliver", true, 200); !strings.Contains(b, `"messages":1`) {
		t.Errorf("redeliver: %s; want one message", b)
	}
	if !eventually(patience, func() bool { return get(slow).Webhook.RunCount == 2 }) {
		t.Fatalf("the redelivery did not run within %s", patience)
	}

	// A signed webhook with scopes, created after the last change: nothing
	// is pending for it.
	scoped := create(`{"url":"http://` + receiver + `/scoped","signed":true,"scopes":{"tree":{"kind":"streams","query":{"streams":["diary"]}},"notes":{"kind":"events","query":{"types":["note/txt"]}}}}`)
	if d := get(scoped); !d.Webhook.Signed || len(d.Webhook.Scopes) != 2 || len(d.Delivery.Pending) != 0 {
		t.Errorf("the signed, scoped webhook: %+v", d)
	}
	expect(bearer, "POST /admin/webhooks/{id}/redeliver", "/admin/webhooks/"+scoped+"/redeliver", true, 409) // nothing pending
	expect(bearer, "POST /admin/webhooks/{id}/redeliver", "/admin/webhooks/"+fine+"/redeliver", true, 409)   // inactive
	get(failing)                                                                                             // runs with their error class
	expect(bearer, "POST /admin/webhooks/{id}/deactivate", "/admin/webhooks/"+scoped+"/deactivate", true, 200)
	expect(bearer, "POST /admin/webhooks/{id}/reactivate", "/admin/webhooks/"+scoped+"/reactivate", true, 200)

	// Listings: filtered, and paged.
	var page struct{ Next string }
	if b := expect(bearer, "GET /admin/webhooks", "/admin/webhooks?state=active&failing=false&host=127.0.0.1&user=alice&limit=1", true, 200); json.Unmarshal([]byte(b), &page) != nil || page.Next == "" {
		t.Errorf("a page of one of two active webhooks: %s; want a next", b)
	}
	expect(bearer, "GET /admin/webhooks", "/admin/webhooks?limit=1000&after="+page.Next, true, 200)
	expect(bearer, "GET /admin/webhooks", "/admin/webhooks?state=inactive&failing=true", true, 200)
	expect(bearer, "GET /admin/webhooks", "/admin/webhooks", true, 200)

	// A host's webhooks.
	if b := expect(bearer, "POST /admin/hosts/{host}/deactivate", "/admin/hosts/127.0.0.1/deactivate", true, 200); !strings.Contains(b, slow) || !strings.Contains(b, scoped) {
		t.Errorf("deactivate the receiver's host: %s; want %s and %s", b, slow, scoped)
	}
	expect(bearer, "POST /admin/hosts/{host}/deactivate", "/admin/hosts/nowhere.example/deactivate", true, 200)

	// Errors.
	for _, q := range []string{"state=bogus", "failing=maybe", "limit=0", "limit=1001", "limit=ten"} {
		expect(bearer, "GET /admin/webhooks", "/admin/webhooks?"+q, false, 400)
	}
	for _, r := range []string{"GET /admin/webhooks/{id}", "POST /admin/webhooks/{id}/deactivate", "POST /admin/webhooks/{id}/reactivate", "POST /admin/webhooks/{id}/redeliver"} {
		_, path, _ := strings.Cut(r, " ")
		expect(bearer, r, strings.Replace(path, "{id}", "nosuchwebhook", 1), true, 404)
	}
	for _, r := range want {
		_, path, _ := strings.Cut(r, " ")
		path = strings.NewReplacer("{id}", slow, "{host}", "127.0.0.1").Replace(path)
		expect("Bearer not-the-key", r, path, true, 401) // the document cannot tell a wrong key
		expect("", r, path, false, 401)
		expect("Basic "+key, r, path, false, 401)
	}

	// Each route gave every status the document gives it in JSON, but
	// those this run cannot bring about: 500 (a store that fails) and 503
	// (webhooks still loading).
	for _, r := range want {
		method, path, _ := strings.Cut(r, " ")
		op := model.Paths.PathItems.GetOrZero(path).GetOperations().GetOrZero(strings.ToLower(method))
		for code, resp := range op.Responses.Codes.FromOldest() {
			if code == "500" || code == "503" || resp.Content.GetOrZero("application/json") == nil {
				continue
			}
			if n, _ := strconv.Atoi(code); !seen[r][n] {
				t.Errorf("%s never answered %s", r, code)
			}
		}
	}
}

// TestAdminOffDocumented runs the binary without an admin key: every
// route of the operator API answers 404 in plain text, as
// docs/admin-openapi.json documents it.
func TestAdminOffDocumented(t *testing.T) {
	g := startGateway(t, "-upstream", startUpstream(t, upstream.Options{}), "-data-dir", t.TempDir())
	v, model := openAPIValidatorOf(t, adminOpenAPIFile)
	n := 0
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().KeysFromOldest() {
			n++
			concrete := strings.NewReplacer("{id}", "ck8dvsye0000iyqh4hbd5tbp", "{host}", "receiver.example.com").Replace(path)
			if st, b := openAPICall(t, v, g.ops, "Bearer any-key", strings.ToUpper(method), concrete, "", true); st != 404 || b != "not found" {
				t.Errorf("%s %s without an admin key: %d %q; want 404 \"not found\"", method, concrete, st, b)
			}
		}
	}
	if n != 6 {
		t.Errorf("%d routes documented; want 6", n)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
