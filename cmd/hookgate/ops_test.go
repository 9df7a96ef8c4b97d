package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	validator "github.com/pb33f/libopenapi-validator"

	"github.com/hookgate/hookgate/bench/upstream"
)

// TestOperationsDocuments runs the binary through one change and one
// delivery, then checks that every series the Grafana dashboard queries
// is on /metrics, and that every route and method of the OpenAPI document
// answers as documented: statuses, answers and requests are checked
// against the document with libopenapi-validator, errors and real
// notifications (signed and not) included.
//
// Real time: a real process; the one wait (for the notification) is for
// an outcome, bounded by patience.
func TestOperationsDocuments(t *testing.T) {
	up := startUpstream(t, upstream.Options{})
	recv := startReceivers(t, 1)[0]
	raddr := recv.Addr()
	g := startGateway(t, "-upstream", up, "-data-dir", t.TempDir(), "-allow-cidrs", "127.0.0.0/8", "-min-interval", "1s")
	createWebhook(t, g.listen, "http://"+raddr+"/ops")
	if st, b := postEvent(g.listen); st != 201 {
		t.Fatalf("change: %d %s", st, b)
	}
	if !eventually(patience, func() bool { return recv.Count() > 0 }) {
		t.Fatalf("no notification within %s", patience)
	}

	t.Run("dashboard", func(t *testing.T) {
		resp, err := opsClient.Get("http://" + g.ops + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		exported := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			if name, _, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
				name, _, _ = strings.Cut(name, "{")
				exported[name] = true
			}
		}
		raw, err := os.ReadFile("../../deploy/grafana/hookgate.json")
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			Panels []struct {
				Title   string
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatal(err)
		}
		series := regexp.MustCompile(`\b(hookgate|process|go)_[a-z_]+\b`)
		used := 0
		for _, p := range dash.Panels {
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				for _, name := range series.FindAllString(tg.Expr, -1) {
					used++
					if !exported[name] {
						t.Errorf("panel %q queries %s, which /metrics does not export", p.Title, name)
					}
				}
			}
		}
		if used < 20 {
			t.Errorf("the dashboard queries only %d series", used)
		}
	})

	t.Run("openapi", func(t *testing.T) {
		v, model := openAPIValidator(t)
		// Every method the API serves is documented, and nothing else.
		var got []string
		for path, item := range model.Paths.PathItems.FromOldest() {
			for m := range item.GetOperations().KeysFromOldest() {
				got = append(got, strings.ToUpper(m)+" "+path)
			}
		}
		sort.Strings(got)
		want := []string{"DELETE /{username}/webhooks/{id}", "GET /{username}/webhooks", "GET /{username}/webhooks/{id}",
			"POST /{username}/", "POST /{username}/webhooks", "POST /{username}/webhooks/{id}/rotate-secret",
			"POST /{username}/webhooks/{id}/test", "PUT /{username}/webhooks/{id}"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("documented routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// A receiver that keeps each notification whole, headers included.
		notes := &notificationLog{}
		recvSrv := httptest.NewServer(notes)
		defer recvSrv.Close()

		// check calls a route as documented: the request and the answer
		// must match the document, the status being the route's 2xx.
		check := func(method, path, concrete, body string) string {
			t.Helper()
			item := model.Paths.PathItems.GetOrZero(path)
			op := item.GetOperations().GetOrZero(strings.ToLower(method))
			var ok string
			for code := range op.Responses.Codes.KeysFromOldest() {
				if code[0] == '2' {
					ok = code
				}
			}
			st, answer := openAPICall(t, v, g.listen, "alice-app", method, concrete, body, true)
			if ok == "" || strconv.Itoa(st) != ok {
				t.Errorf("%s %s: %d %s; documented %s", method, path, st, answer, ok)
			}
			// Errors are documented in the Pryv shape too.
			if st, answer := openAPICall(t, v, g.listen, "alice-app", method,
				strings.Replace(concrete, "/alice/", "/nobody-here/", 1), body, false); st < 400 || !strings.Contains(answer, `"error":{`) {
				t.Errorf("%s %s for an unknown user: %d %s", method, path, st, answer)
			}
			return answer
		}
		created := check("POST", "/{username}/webhooks", "/alice/webhooks", `{"url":"http://`+raddr+`/openapi"}`)
		var c struct{ Webhook struct{ ID string } }
		json.Unmarshal([]byte(created), &c)
		id := c.Webhook.ID
		check("GET", "/{username}/webhooks", "/alice/webhooks", "")
		var c2 struct{ Webhook struct{ ID string } }
		json.Unmarshal([]byte(check("POST", "/{username}/webhooks", "/alice/webhooks", `{"url":"http://`+raddr+`/openapi2"}`)), &c2)
		check("GET", "/{username}/webhooks/{id}", "/alice/webhooks/"+id, "")
		check("PUT", "/{username}/webhooks/{id}", "/alice/webhooks/"+id, `{"state":"active"}`)
		check("POST", "/{username}/webhooks/{id}/test", "/alice/webhooks/"+id+"/test", "")
		check("DELETE", "/{username}/webhooks/{id}", "/alice/webhooks/"+id, "")
		// In a batch, webhooks.getOne of the deleted webhook fails in its
		// slot, and the batch answers 200.
		check("POST", "/{username}/", "/alice/", `[{"method":"webhooks.get","params":{}},{"method":"webhooks.getOne","params":{"id":"`+id+`"}},{"method":"events.create","params":{"streamIds":["diary"],"type":"note/txt"}}]`)

		// A signed webhook with scopes: its secret comes once, inside the
		// webhook.
		signed := check("POST", "/{username}/webhooks", "/alice/webhooks", `{"url":"`+recvSrv.URL+`/signed","signed":true,"minIntervalMs":1000,"maxRetries":3,"scopes":{"notes":{"kind":"events","query":{"types":["note/txt"]}},"tree":{"kind":"streams","query":{"streams":["diary"]}}}}`)
		var sw struct {
			Webhook struct {
				ID            string
				SigningSecret string
			}
		}
		json.Unmarshal([]byte(signed), &sw)
		if !strings.HasPrefix(sw.Webhook.SigningSecret, "whsec_") {
			t.Errorf("a signed webhook's creation: no webhook.signingSecret: %s", signed)
		}
		// Its secret rotated: the new one comes once, and notifications
		// are signed under both for a while.
		check("POST", "/{username}/webhooks/{id}/rotate-secret", "/alice/webhooks/"+sw.Webhook.ID+"/rotate-secret", "")
		if st, b := openAPICall(t, v, g.listen, "alice-shared", "POST", "/alice/webhooks", `{"url":"`+recvSrv.URL+`/plain"}`, true); st != 201 {
			t.Errorf("a shared access creates: %d %s", st, b)
		}
		// An app or shared access lists its own webhooks, a personal
		// access every webhook of the user.
		for _, tok := range []string{"alice-app", "alice-shared", "alice-personal"} {
			st, b := openAPICall(t, v, g.listen, tok, "GET", "/alice/webhooks", "", true)
			var list struct{ Webhooks []struct{ AccessID string } }
			if err := json.Unmarshal([]byte(b), &list); st != 200 || err != nil {
				t.Errorf("list by %s: %d %s", tok, st, b)
				continue
			}
			owners := map[string]bool{}
			for _, w := range list.Webhooks {
				owners[w.AccessID] = true
			}
			if tok == "alice-personal" && (!owners["alice-app-id"] || !owners["alice-shared-id"]) ||
				tok != "alice-personal" && (len(owners) != 1 || !owners[tok+"-id"]) {
				t.Errorf("list by %s: webhooks of %v", tok, owners)
			}
		}
		if st, b := openAPICall(t, v, g.listen, "alice-personal", "PUT", "/alice/webhooks/"+sw.Webhook.ID, `{"scopes":null}`, true); st != 200 {
			t.Errorf("a personal access removes scopes: %d %s", st, b)
		}

		// The documented errors, answered in the documented shape.
		for _, e := range []struct {
			token, method, path, body string
			status                    int
		}{
			{"", "GET", "/alice/webhooks", "", 401},
			{"alice-personal", "POST", "/alice/webhooks", `{"url":"http://` + raddr + `/personal"}`, 403},
			{"alice-app", "POST", "/alice/webhooks", `{"url":"ftp://receiver.example/x","colour":"red"}`, 400},
			{"alice-app", "POST", "/alice/webhooks", `{"url":`, 400},
			{"alice-app", "POST", "/alice/webhooks", `{"url":"http://` + raddr + `/ops"}`, 409},
			{"alice-app", "POST", "/alice/webhooks", `{"url":"http://` + raddr + `/s","scopes":{"x":{"kind":"streams","query":{"streams":["nowhere"]}}}}`, 400},
			{"alice-app", "GET", "/alice/webhooks/" + id, "", 404},
			{"alice-app", "PUT", "/alice/webhooks/" + sw.Webhook.ID, `{"url":"http://` + raddr + `/moved"}`, 403},
			{"alice-shared", "GET", "/alice/webhooks/" + sw.Webhook.ID, "", 403},
			{"alice-app", "POST", "/alice/webhooks/" + id + "/test", "", 404},
			{"alice-app", "POST", "/alice/webhooks/" + c2.Webhook.ID + "/rotate-secret", "", 400},
		} {
			if st, b := openAPICall(t, v, g.listen, e.token, e.method, e.path, e.body, false); st != e.status || !strings.Contains(b, `"error":{`) {
				t.Errorf("%s %s %s by %q: %d %s; want %d and an error", e.method, e.path, e.body, e.token, st, b, e.status)
			}
		}

		// Real notifications match the document's notification webhook:
		// a test and a change, signed under two secrets, and an unsigned
		// one.
		if st, b := openAPICall(t, v, g.listen, "alice-app", "POST", "/alice/webhooks/"+sw.Webhook.ID+"/test", "", true); st != 200 {
			t.Fatalf("test: %d %s", st, b)
		}
		if st, b := postEvent(g.listen); st != 201 {
			t.Fatalf("change: %d %s", st, b)
		}
		if !eventually(patience, func() bool {
			n := map[string]int{}
			for _, p := range notes.paths() {
				n[p]++
			}
			return n["/signed"] >= 2 && n["/plain"] >= 1
		}) {
			t.Fatalf("notifications: %v; want a test and a change to /signed, a change to /plain", notes.paths())
		}
		notif := model.Webhooks.GetOrZero("notification")
		for _, n := range notes.all() {
			if ok, errs := v.ValidateHttpRequestSyncWithPathItem(n, notif, "notification"); !ok {
				t.Errorf("a notification to %s does not match the document:%s", n.URL.Path, describe(errs))
			}
			signedOne := n.URL.Path == "/signed"
			for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
				if (n.Header.Get(h) != "") != signedOne {
					t.Errorf("a notification to %s: %s is %q", n.URL.Path, h, n.Header.Get(h))
				}
			}
			if sigs := strings.Fields(n.Header.Get("webhook-signature")); signedOne && len(sigs) != 2 {
				t.Errorf("a notification after a rotation: webhook-signature %q; want two signatures", sigs)
			}
		}
	})
	if exit, _ := g.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Errorf("exit %d after SIGTERM", exit)
	}
}

// openAPICall sends one request to hookgate with token (none if empty)
// and checks the answer against the OpenAPI document: its status must be
// documented for the route, and its body must match that status's
// schema. If valid, the request must match the document too. It returns
// the status and the body.
func openAPICall(t *testing.T, v validator.Validator, addr, token, method, path, body string, valid bool) (int, string) {
	t.Helper()
	newRequest := func() *http.Request {
		req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		return req
	}
	resp, err := apiClient.Do(newRequest())
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return 0, err.Error()
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	if ok, errs := v.ValidateHttpResponse(newRequest(), resp); !ok {
		t.Errorf("%s %s by %q: the answer %d %s does not match the document:%s", method, path, token, resp.StatusCode, answer, describe(errs))
	}
	if valid {
		if ok, errs := v.ValidateHttpRequestSync(newRequest()); !ok {
			t.Errorf("%s %s %s: the request does not match the document:%s", method, path, body, describe(errs))
		}
	}
	return resp.StatusCode, string(answer)
}

// notificationLog is a receiver that answers 200 and keeps every request
// whole, headers and body.
type notificationLog struct {
	mu  sync.Mutex
	got []*http.Request
}

func (l *notificationLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	c := r.Clone(context.Background())
	c.Body = io.NopCloser(bytes.NewReader(body))
	c.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	l.mu.Lock()
	l.got = append(l.got, c)
	l.mu.Unlock()
}

// paths returns the path of each notification so far.
func (l *notificationLog) paths() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.got {
		out = append(out, r.URL.Path)
	}
	return out
}

// all returns the notifications so far, each with its body to read.
func (l *notificationLog) all() []*http.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*http.Request, len(l.got))
	for i, r := range l.got {
		c := r.Clone(context.Background())
		c.Body, _ = r.GetBody()
		out[i] = c
	}
	return out
}

// TestSystemdUnit: systemd-analyze accepts the unit, and rates its
// sandboxing at an exposure of 3.0 or less (its scale is 0 to 10; the
// threshold flag counts tenths), where systemd's tools are installed.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	unit, err := os.ReadFile("../../deploy/hookgate.service")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := filepath.Abs(os.Args[0]) // any executable will do for verify
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hookgate.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/hookgate", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=30", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 3.0: %v\n%s", err, out)
	}
}
