package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/hookgate/hookgate/bench/upstream"
)

// TestOperationsDocuments runs the binary through one change and one
// delivery, then checks that every series the Grafana dashboard queries
// is on /metrics, and that every route and method of the OpenAPI document
// answers as documented.
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
		raw, err := os.ReadFile("../../docs/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Paths map[string]map[string]json.RawMessage
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		// Every method the API serves is documented, and nothing else.
		var got []string
		for path, ops := range doc.Paths {
			for m := range ops {
				if m != "parameters" {
					got = append(got, strings.ToUpper(m)+" "+path)
				}
			}
		}
		sort.Strings(got)
		want := []string{"DELETE /{username}/webhooks/{id}", "GET /{username}/webhooks", "GET /{username}/webhooks/{id}",
			"POST /{username}/", "POST /{username}/webhooks", "POST /{username}/webhooks/{id}/test", "PUT /{username}/webhooks/{id}"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("documented routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		type opDoc struct {
			Responses map[string]struct {
				Content map[string]struct {
					Schema struct{ Required []string }
				}
			}
		}
		check := func(method, path, concrete, body string) {
			var o opDoc
			if err := json.Unmarshal(doc.Paths[path][strings.ToLower(method)], &o); err != nil {
				t.Fatal(err)
			}
			st, answer := call(g.listen, method, concrete, body)
			var ok string
			for code := range o.Responses {
				if code[0] == '2' {
					ok = code
				}
			}
			if ok == "" || st != atoi(ok) {
				t.Errorf("%s %s: %d %s; documented %s", method, path, st, answer, ok)
				return
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte(answer), &m); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			for _, k := range o.Responses[ok].Content["application/json"].Schema.Required {
				if _, ok := m[k]; !ok {
					t.Errorf("%s %s: the answer has no %q: %s", method, path, k, answer)
				}
			}
			// Errors are documented in the Pryv shape too.
			if st, answer := call(g.listen, method, strings.Replace(concrete, "/alice/", "/nobody-here/", 1), body); st < 400 ||
				!strings.Contains(answer, `"error":{`) {
				t.Errorf("%s %s for an unknown user: %d %s", method, path, st, answer)
			}
		}
		st, created := call(g.listen, "POST", "/alice/webhooks", `{"url":"http://`+raddr+`/openapi"}`)
		if st != 201 {
			t.Fatalf("create: %d %s", st, created)
		}
		var c struct{ Webhook struct{ ID string } }
		json.Unmarshal([]byte(created), &c)
		id := c.Webhook.ID
		check("GET", "/{username}/webhooks", "/alice/webhooks", "")
		check("POST", "/{username}/webhooks", "/alice/webhooks", `{"url":"http://`+raddr+`/openapi2"}`)
		check("GET", "/{username}/webhooks/{id}", "/alice/webhooks/"+id, "")
		check("PUT", "/{username}/webhooks/{id}", "/alice/webhooks/"+id, `{"state":"active"}`)
		check("POST", "/{username}/webhooks/{id}/test", "/alice/webhooks/"+id+"/test", "")
		check("DELETE", "/{username}/webhooks/{id}", "/alice/webhooks/"+id, "")
		check("POST", "/{username}/", "/alice/", `[{"method":"webhooks.get","params":{}},{"method":"events.create","params":{"streamIds":["diary"],"type":"note/txt"}}]`)
	})
	if exit, _ := g.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Errorf("exit %d after SIGTERM", exit)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
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
