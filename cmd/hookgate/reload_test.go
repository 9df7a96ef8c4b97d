package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/bench/upstream"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/rules"
)

// waitCount waits until the logs contain s at least n times; it fails
// the test if the process exits first or within patience they do not.
//
// Real time: it waits on a real process; patience is a failure bound
// only, the wait ends when the line is written.
func (l *logBuffer) waitCount(t *testing.T, s string, n int, exited <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		l.mu.Lock()
		got, grew := strings.Count(l.b.String(), s), l.grew
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-grew:
		case <-exited:
			if strings.Count(l.String(), s) < n {
				t.Fatalf("hookgate exited before logging %s %d times:\n%s", s, n, l)
			}
			return
		case <-timer.C:
			t.Fatalf("hookgate did not log %s %d times within %s:\n%s", s, n, patience, l)
		}
	}
}

// jsonLines returns the JSON log lines whose msg is msg, in order.
func jsonLines(logs, msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(logs) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestReloadOnHangUp: SIGHUP reads the -config file (and the rules file
// it names) again. The rule table and the log level change live; a
// setting that needs a restart is named in a warning and kept; a config
// that does not parse, or rules that do not compile, change nothing.
// Each reload logs exactly which settings changed.
//
// Real time: a real process; every wait is for a log line, a metric or a
// notification, bounded by patience.
func TestReloadOnHangUp(t *testing.T) {
	up := startUpstream(t, upstream.Options{})
	recv := startReceivers(t, 1)[0]
	dir := t.TempDir()
	file := func(name, body string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// r1 notifies stream changes only; r2 event changes, in a vocabulary
	// of other messages.
	r1 := file("r1.json", `{"rules":[{"methods":["POST"],"path":"/streams/**","message":"streamsChanged"}]}`)
	r2 := file("r2.json", `{"rules":[{"methods":["POST"],"path":"/events/**","message":"eventsChanged"}]}`)
	bad := file("bad.json", `{"rules":[{"methods":["POST"],"path":"/a/**/b","message":"x"}]}`)
	cfg := file("hookgate.yaml", "log-format: json\nrules: "+r1+"\n")

	g := startGateway(t, "-config", cfg, "-upstream", up, "-data-dir", filepath.Join(dir, "data"),
		"-allow-cidrs", "127.0.0.0/8", "-min-interval", "1s")
	g.logs.waitFor(t, `"msg":"hookgate started"`, g.exited)
	createWebhook(t, g.listen, "http://"+recv.Addr()+"/reload")
	const markers = "hookgate_markers_written_total"
	change := func(want float64) {
		t.Helper()
		if st, b := postEvent(g.listen); st != 201 {
			t.Fatalf("change: %d %s", st, b)
		}
		// The marker is written before the answer: the count is final.
		if got := g.metric(t, markers); got != want {
			t.Fatalf("%s = %v after the change; want %v", markers, got, want)
		}
	}
	hangUp := func() {
		t.Helper()
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	const (
		reloaded  = `"msg":"SIGHUP: settings reloaded"`
		unchanged = `"msg":"SIGHUP: settings read again; nothing changed"`
		restart   = `"msg":"SIGHUP: these settings changed and need a restart; they keep their running values"`
	)

	change(0) // r1: an event is no change

	// The rules, the log level and a setting that needs a restart.
	file("hookgate.yaml", "log-format: json\nrules: "+r2+"\nlog-level: debug\nupstream-timeout: 7s\n")
	hangUp()
	g.logs.waitCount(t, restart, 1, g.exited) // logged after the summary
	start := time.Now()
	change(1) // r2: it is now
	if !eventually(patience, func() bool { return notifiedAfter(recv, start) }) {
		t.Fatalf("no eventsChanged notification within %s after the rules changed", patience)
	}

	// YAML that does not parse changes nothing: the rules stay r2.
	file("hookgate.yaml", "log-level: [\n")
	hangUp()
	g.logs.waitFor(t, `"msg":"SIGHUP: the settings cannot be read; nothing changed"`, g.exited)
	change(2)

	// Rules that do not compile change nothing, the log level included.
	file("hookgate.yaml", "log-format: json\nrules: "+bad+"\nlog-level: warn\nupstream-timeout: 7s\n")
	hangUp()
	g.logs.waitFor(t, `"msg":"SIGHUP: the rules do not compile; nothing changed"`, g.exited)
	change(3)

	// Back to what runs: nothing changed, and still logged at info.
	file("hookgate.yaml", "log-format: json\nrules: "+r2+"\nlog-level: debug\n")
	hangUp()
	g.logs.waitCount(t, unchanged, 1, g.exited)

	// The same rules file with new content is a change of the rules.
	file("r2.json", `{"rules":[{"methods":["POST"],"path":"/streams/**","message":"streamsChanged"}]}`)
	hangUp()
	g.logs.waitCount(t, reloaded, 2, g.exited)
	change(3) // an event is no change again

	// A quieter log level: the summary still shows, and later info lines
	// do not. The warning comes after the summary in every reload, so
	// once the third warning is there, a summary would be too.
	file("hookgate.yaml", "log-format: json\nrules: "+r2+"\nlog-level: warn\nupstream-timeout: 7s\n")
	hangUp()
	g.logs.waitCount(t, restart, 2, g.exited)
	hangUp()
	g.logs.waitCount(t, restart, 3, g.exited)
	if n := strings.Count(g.stderr(), reloaded); n != 3 {
		t.Errorf("%d lines %s; want 3: the last reload logged at info under -log-level warn", n, reloaded)
	}

	var got []string
	for _, m := range jsonLines(g.stderr(), "SIGHUP: settings reloaded") {
		got = append(got, m["changed"].(string)+" / "+m["applied"].(string))
	}
	want := []string{"log-level,rules,upstream-timeout / log-level,rules", "rules / rules", "log-level,upstream-timeout / log-level"}
	if !slices.Equal(got, want) {
		t.Errorf("reloads logged changed / applied %q; want %q", got, want)
	}
	for _, m := range jsonLines(g.stderr(), "SIGHUP: these settings changed and need a restart; they keep their running values") {
		if m["settings"] != "upstream-timeout" || m["level"] != "WARN" {
			t.Errorf("restart warning %v; want settings upstream-timeout at WARN", m)
		}
	}
	if exit, _ := g.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Fatalf("exit %d after SIGTERM", exit)
	}
}

// TestSetRulesPerRequest: a request keeps the rule table it started
// with, and its marker names its table's messages, while SetRules puts in
// a table of another vocabulary (the same bit names other messages in
// each) for the requests after it.
//
// Real time: the held request crosses real sockets; patience only bounds
// a failure, every step waits for the event it needs.
func TestSetRulesPerRequest(t *testing.T) {
	compile := func(rs ...rules.Rule) *rules.Table {
		t.Helper()
		tb, err := rules.Compile(rules.Config{Rules: rs})
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	post := []string{"POST"}
	a := compile(rules.Rule{Methods: post, Path: "/orders/**", Message: "ordersChanged"})
	b := compile(rules.Rule{Methods: post, Path: "/stock/**", Message: "stockChanged"},
		rules.Rule{Methods: post, Path: "/orders/**", Message: "ordersMoved"})

	// The upstream holds /alice/orders/held until the test releases it.
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/alice/orders/held" {
			arrived <- struct{}{}
			<-release
		}
		ctx.SetStatusCode(201)
		ctx.SetBodyString("{}")
	}}
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(uln)
	t.Cleanup(func() { _ = up.Shutdown() })

	q := queue.NewMemory(queue.Options{})
	g, err := gateway.New(gateway.Options{Upstreams: []string{uln.Addr().String()}, Rules: a, Queue: q,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	addr := ln.Addr().String()

	messages := func() []string {
		t.Helper()
		recs, err := q.Read(nil, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			m, err := core.DecodeMarker(r.Data)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.Join(m.Messages, "+"))
		}
		return out
	}
	must := func(path string) {
		t.Helper()
		if st, body := call(addr, "POST", path, "{}"); st != 201 {
			t.Fatalf("POST %s: %d %s", path, st, body)
		}
	}

	must("/alice/stock/1") // no rule of a
	held := make(chan int, 1)
	go func() { st, _ := call(addr, "POST", "/alice/orders/held", "{}"); held <- st }()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	select {
	case <-arrived:
	case <-timer.C:
		t.Fatalf("the held request did not reach the upstream within %s", patience)
	}
	g.SetRules(b)
	must("/alice/orders/1")
	must("/alice/stock/1")
	close(release)
	select {
	case st := <-held:
		if st != 201 {
			t.Fatalf("the held request: %d", st)
		}
	case <-timer.C:
		t.Fatalf("the held request was not answered within %s", patience)
	}
	want := []string{"ordersMoved", "stockChanged", "ordersChanged"}
	if got := messages(); !slices.Equal(got, want) {
		t.Fatalf("markers %q; want %q (the held request under the first table, the others under the second)", got, want)
	}
}

// TestReloadRetrySchedule: a retry schedule changed on SIGHUP applies to
// the retries scheduled from then on. Started with an hour between
// retries, reloaded with 10 ms, a failing receiver gets its retries at
// once.
//
// Real time: the binary retries on its own clock; each step waits for
// the POST it needs, and patience only bounds a failure.
func TestReloadRetrySchedule(t *testing.T) {
	up := startUpstream(t, upstream.Options{})
	posts := make(chan struct{}, 16)
	recv := receiverAnswering(t, 500, posts)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hookgate.yaml")
	if err := os.WriteFile(cfg, []byte("log-format: json\nretry-schedule: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, "-config", cfg, "-upstream", up, "-data-dir", filepath.Join(dir, "data"),
		"-allow-cidrs", "127.0.0.0/8", "-min-interval", "1s")
	g.logs.waitFor(t, `"msg":"hookgate started"`, g.exited)
	createWebhook(t, g.listen, "http://"+recv+"/hook")
	if err := os.WriteFile(cfg, []byte("log-format: json\nretry-schedule: 10ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g.logs.waitFor(t, `"applied":"retry-schedule"`, g.exited)
	if st, b := postEvent(g.listen); st != 201 {
		t.Fatalf("change: %d %s", st, b)
	}
	// The first attempt and two retries; at an hour between retries,
	// only the first would come.
	timer := time.NewTimer(patience) // a failure bound only
	defer timer.Stop()
	for n := 0; n < 3; n++ {
		select {
		case <-posts:
		case <-timer.C:
			t.Fatalf("%d POSTs within %s: the retries did not follow the reloaded schedule", n, patience)
		}
	}
}

// receiverAnswering starts a receiver on loopback that answers status to
// every POST and tells posts of each (dropping what posts has no room
// for).
func receiverAnswering(t *testing.T, status int, posts chan<- struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		select {
		case posts <- struct{}{}:
		default:
		}
		ctx.SetStatusCode(status)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}
