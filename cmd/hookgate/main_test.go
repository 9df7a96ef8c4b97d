package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/valyala/fasthttp"
	"gopkg.in/yaml.v3"

	"github.com/hookgate/hookgate/bench/receiver"
	"github.com/hookgate/hookgate/bench/upstream"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/store"
)

// The tests of this package run the real binary over loopback sockets and
// a real disk, so they run on the real clock. patience bounds every wait
// for an outcome: a wait ends as soon as its outcome is seen, and the bound
// only turns a hang into a failure with a message (instead of go test's
// timeout). No test asserts that something happened within a short time.
const patience = 60 * time.Second

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds hookgate once for the tests of this package.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "hookgate-bin")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "hookgate")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runBinary runs the binary to its exit and returns its combined output.
// It fails the test if the binary is still running after patience.
func runBinary(t *testing.T, env []string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("hookgate %v %v did not exit within %s; killed\n%s", env, args, patience, out)
	}
	return out, err
}

// logBuffer keeps what a process writes to stderr and lets a test wait
// for a line to appear.
type logBuffer struct {
	mu   sync.Mutex
	b    strings.Builder
	grew chan struct{} // closed and replaced on every write
}

func newLogBuffer() *logBuffer { return &logBuffer{grew: make(chan struct{})} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	close(l.grew)
	l.grew = make(chan struct{})
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until the logs contain s; it fails the test if the
// process exits first or s does not appear within patience.
//
// Real time: it waits on a real process; patience is a failure bound
// only, the wait ends when the line is written.
func (l *logBuffer) waitFor(t *testing.T, s string, exited <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		l.mu.Lock()
		found, grew := strings.Contains(l.b.String(), s), l.grew
		l.mu.Unlock()
		if found {
			return
		}
		select {
		case <-grew:
		case <-exited:
			if !strings.Contains(l.String(), s) {
				t.Fatalf("hookgate exited without logging %s:\n%s", s, l)
			}
			return
		case <-timer.C:
			t.Fatalf("hookgate did not log %s within %s:\n%s", s, patience, l)
		}
	}
}

// gatewayProc is the real hookgate binary started by a test, with the
// stderr it wrote kept for inspection.
type gatewayProc struct {
	cmd         *exec.Cmd
	listen, ops string
	logs        *logBuffer
	exited      chan struct{} // closed once the process has exited and its stderr is read
	waitErr     error         // what Wait returned; set before exited is closed
}

// startGateway starts the binary with args after -listen and -ops-listen
// and waits for /healthz.
func startGateway(t *testing.T, args ...string) *gatewayProc {
	t.Helper()
	return startGatewayEnv(t, nil, args...)
}

// startGatewayEnv starts the binary with env added to its environment,
// on fresh loopback ports, and waits for /healthz. The process is killed
// when the test ends if it is still running, and its logs are shown if the
// test failed.
func startGatewayEnv(t *testing.T, env []string, args ...string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{listen: freeAddr(t), ops: freeAddr(t), logs: newLogBuffer(), exited: make(chan struct{})}
	g.cmd = exec.Command(binary(t), append([]string{"-listen", g.listen, "-ops-listen", g.ops}, args...)...)
	g.cmd.Env = append(os.Environ(), env...)
	g.cmd.Stderr = g.logs
	g.cmd.WaitDelay = 10 * time.Second // bounds Wait even if something kept stderr open
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		if !g.hasExited() {
			g.cmd.Process.Kill()
			<-g.exited // a killed process exits; WaitDelay bounds the rest
		}
		if t.Failed() {
			logs := g.logs.String()
			if len(logs) > 32<<10 {
				logs = "…" + logs[len(logs)-32<<10:]
			}
			t.Logf("hookgate on %s logged:\n%s", g.listen, logs)
		}
	})
	g.waitHealthy(t)
	return g
}

func (g *gatewayProc) hasExited() bool {
	select {
	case <-g.exited:
		return true
	default:
		return false
	}
}

// waitHealthy waits until /healthz answers; it fails the test at once if
// the process exits, or after patience.
//
// Real time: it polls a real process; the poll interval only sets how
// soon a process that is up is seen.
func (g *gatewayProc) waitHealthy(t *testing.T) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(patience)
	for {
		if resp, err := client.Get("http://" + g.ops + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if g.hasExited() {
			t.Fatalf("hookgate exited (%v) before /healthz answered:\n%s", g.waitErr, g.logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz on %s did not answer within %s", g.ops, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends sig and waits for the exit; past within it kills the
// process and fails the test. It returns the exit code and how long the
// exit took.
//
// Real time: it waits on a real process; within is a failure bound.
func (g *gatewayProc) stop(t *testing.T, sig syscall.Signal, within time.Duration) (exit int, took time.Duration) {
	t.Helper()
	start := time.Now()
	g.cmd.Process.Signal(sig)
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-g.exited:
	case <-timer.C:
		g.cmd.Process.Kill()
		<-g.exited
		t.Fatalf("hookgate did not exit within %s of %v", within, sig)
	}
	return g.cmd.ProcessState.ExitCode(), time.Since(start)
}

func (g *gatewayProc) stderr() string { return g.logs.String() }

// waitRefused waits until addr refuses connections: the listener is
// closed.
//
// Real time: it polls a real socket; the poll interval only sets how soon
// the closed listener is seen.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return
			}
		} else {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections after %s (last error %v)", addr, patience, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gatedUpstream serves the demo upstream on loopback. It holds alice's
// events.create made with her app token until release is called: arrived
// gets a value when such a request reaches it. Release is called when the
// test ends, before the upstream stops, so that cleanup never waits on a
// held request.
func gatedUpstream(t *testing.T) (addr string, arrived <-chan struct{}, release func()) {
	t.Helper()
	gate := make(chan struct{})
	got := make(chan struct{}, 1)
	srv := upstream.New(upstream.Options{}).FastServer()
	serve := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() && string(ctx.Path()) == "/alice/events" && string(ctx.Request.Header.Peek("Authorization")) == "alice-app" {
			select {
			case got <- struct{}{}:
			default:
			}
			<-gate
		}
		serve(ctx)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	release = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(func() { release(); srv.Shutdown(); <-done })
	return ln.Addr().String(), got, release
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	out, _ := runBinary(t, nil, "-help")
	help := string(out)
	for _, want := range []string{
		"-listen address", "(default \"127.0.0.1:8080\")",
		"-upstream addresses", "-data-dir directory", "-username-mode path", "-durability mode",
		"-upstream-timeout duration", "(default 30s)", "-dial-timeout duration", "(default 3s)",
		"-read-timeout duration", "-write-timeout duration", "-idle-timeout duration",
		"-shutdown-timeout duration", "(default 15s)", "-buffer-body bytes", "-max-classify-body bytes",
		"-max-pending count", "-max-backlog count", "-rules file", "-ops-listen address",
		"HOOKGATE_<NAME>",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("-help does not mention %q", want)
		}
	}
}

func TestBadConfigurationExits(t *testing.T) {
	f := func(env []string, args ...string) {
		t.Helper()
		out, err := runBinary(t, env, args...)
		var ee *exec.ExitError
		if err == nil || !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("%v %v: exited %v; want an error exit\n%s", env, args, err, out)
		}
		if len(out) == 0 {
			t.Errorf("%v %v: no message", env, args)
		}
	}
	dir := t.TempDir()
	f(nil, "-data-dir", dir, "-username-mode", "header")
	f(nil, "-data-dir", dir, "-durability", "maybe")
	f([]string{"HOOKGATE_DURABILITY=maybe"}, "-data-dir", dir)
	f([]string{"HOOKGATE_UPSTREAM_TIMEOUT=soon"}, "-data-dir", dir)
	f(nil, "-data-dir", dir, "-rules", filepath.Join(dir, "missing.json"))
	f(nil, "-data-dir", dir, "-upstream", "no-port", "-listen", freeAddr(t), "-ops-listen", "")
	f(nil, "-data-dir", dir, "-max-header", "16 bananas")
	f([]string{"HOOKGATE_BUFFER_BODY=-1"}, "-data-dir", dir)
}

// TestSizesWithUnits: sizes take units, on the command line and in the
// environment.
func TestSizesWithUnits(t *testing.T) {
	g := startGatewayEnv(t, []string{"HOOKGATE_BUFFER_BODY=64KiB"},
		"-data-dir", t.TempDir(), "-max-header", "32KiB", "-max-body", "1GB", "-min-free-disk", "1MiB")
	if exit, _ := g.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Fatalf("exit %d", exit)
	}
}

// exitCode returns the exit code of a finished command's error.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("not an exit: %v", err)
	}
	return ee.ExitCode()
}

// TestUnknownEnvRefused: a HOOKGATE_ variable that sets no flag stops
// hookgate with exit code 2 and a line naming it, and the variable meant
// when one is close; the test suite's own variables and the _FILE forms
// of flags are known.
func TestUnknownEnvRefused(t *testing.T) {
	dir := t.TempDir()
	level := filepath.Join(dir, "level")
	if err := os.WriteFile(level, []byte("info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runBinary(t, []string{"HOOKGATE_UPSTREAM_TIMEOT=10s", "HOOKGATE_NO_SUCH_SETTING=1", "HOOKGATE_HEALTHCHECK=1",
		"HOOKGATE_REQUIRE_NODE=1", "HOOKGATE_LOG_LEVEL_FILE=" + level}, "-data-dir", filepath.Join(dir, "data"))
	if code := exitCode(t, err); code != 2 {
		t.Fatalf("exit %d; want 2\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{
		"hookgate: environment variable HOOKGATE_HEALTHCHECK refused: -healthcheck is a command, given on the command line only",
		"hookgate: unknown environment variable HOOKGATE_NO_SUCH_SETTING: no flag has this name (hookgate -help lists them)",
		"hookgate: unknown environment variable HOOKGATE_UPSTREAM_TIMEOT: no flag has this name; did you mean HOOKGATE_UPSTREAM_TIMEOUT (-upstream-timeout)?",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("output:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("hookgate created its data directory before refusing its environment")
	}

	// The known ones alone start.
	g := startGatewayEnv(t, []string{"HOOKGATE_REQUIRE_NODE=1", "HOOKGATE_LOG_LEVEL_FILE=" + level}, "-data-dir", filepath.Join(dir, "data"))
	if exit, _ := g.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Fatalf("exit %d", exit)
	}
}

// TestEnvFile: HOOKGATE_<NAME>_FILE sets a flag to a file's content, a
// trailing newline dropped; it and HOOKGATE_<NAME> together, or a file
// that cannot be read, stop hookgate with exit code 2 and a message
// naming the variable; a bad value from a file is not repeated.
func TestEnvFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	format := write("format", "json\n")
	g := startGatewayEnv(t, []string{"HOOKGATE_LOG_FORMAT_FILE=" + format}, "-data-dir", filepath.Join(dir, "a"))
	g.logs.waitFor(t, `"msg":"hookgate started"`, g.exited) // JSON: "json\n" read as json
	g.stop(t, syscall.SIGTERM, patience)

	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"HOOKGATE_LOG_FORMAT=text", "HOOKGATE_LOG_FORMAT_FILE=" + format}, "HOOKGATE_LOG_FORMAT and HOOKGATE_LOG_FORMAT_FILE are both set"},
		{[]string{"HOOKGATE_LOG_FORMAT_FILE=" + filepath.Join(dir, "missing")}, "HOOKGATE_LOG_FORMAT_FILE: open " + filepath.Join(dir, "missing")},
		{[]string{"HOOKGATE_MAX_HEADER_FILE=" + write("header", "s3cret-value\n")}, "HOOKGATE_MAX_HEADER_FILE=" + filepath.Join(dir, "header") + ": the file's content"},
	} {
		out, err := runBinary(t, c.env, "-data-dir", filepath.Join(dir, "b"))
		if code := exitCode(t, err); code != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.env, code, out, c.want)
		}
		if strings.Contains(string(out), "s3cret") {
			t.Errorf("%v: the file's content is in the message: %q", c.env, out)
		}
	}
}

// TestEnvValue: one trailing newline (or CRLF) is dropped from a _FILE
// value, nothing else; and no flag's _FILE variable is another flag's
// own, which would make it ambiguous.
func TestEnvValue(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{"k": "k", "k\n": "k", "k\r\n": "k", "k\n\n": "k\n", " k \n": " k ", "": ""} {
		path := filepath.Join(dir, "v")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("HOOKGATE_SERIAL_FILE", path)
		if v, ok, err := envValue("serial"); err != nil || !ok || v != want {
			t.Errorf("file %q: %q %v %v; want %q", body, v, ok, err, want)
		}
	}
	var c config
	fs := newFlagSet(&c, flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		fs.VisitAll(func(g *flag.Flag) {
			if envName(f.Name)+"_FILE" == envName(g.Name) {
				t.Errorf("%s is both -%s and the file of -%s", envName(g.Name), g.Name, f.Name)
			}
		})
	})
}

// TestHelpGroupsEveryFlag: -help lists every flag exactly once, under a
// heading.
func TestHelpGroupsEveryFlag(t *testing.T) {
	out, err := runBinary(t, nil, "-help")
	if err != nil {
		t.Fatalf("-help: %v\n%s", err, out)
	}
	seen := map[string]int{}
	heading := ""
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "  -"):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "  -"), " ")
			if heading == "" {
				t.Errorf("-%s is listed before any heading", name)
			}
			seen[name]++
		case line != "" && !strings.HasPrefix(line, " ") && strings.HasSuffix(line, ":"):
			heading = line
			if heading == "Other:" {
				t.Error("-help has flags under Other: give them a topic (flagTopics)")
			}
		}
	}
	var c config
	n := 0
	newFlagSet(&c, flag.ContinueOnError).VisitAll(func(f *flag.Flag) {
		n++
		if seen[f.Name] != 1 {
			t.Errorf("-%s is listed %d times", f.Name, seen[f.Name])
		}
	})
	if len(seen) != n {
		t.Errorf("-help lists %d flags; %d are registered", len(seen), n)
	}
}

// TestConnsPerIP: -max-conns-per-ip auto is an eighth of
// -max-client-conns, at least 1; a number stays; 0 is no cap.
func TestConnsPerIP(t *testing.T) {
	for _, c := range []struct{ perIP, total, want int }{
		{autoConnsPerIP, 10_000, 1250}, {autoConnsPerIP, 0, 1250}, {autoConnsPerIP, 24, 3}, {autoConnsPerIP, 4, 1},
		{0, 10_000, 0}, {7, 10_000, 7},
	} {
		if got := connsPerIP(c.perIP, c.total); got != c.want {
			t.Errorf("connsPerIP(%d, %d) = %d; want %d", c.perIP, c.total, got, c.want)
		}
	}
	n := 0
	v := connCap{&n}
	for in, want := range map[string]int{"auto": autoConnsPerIP, "0": 0, "12": 12} {
		if err := v.Set(in); err != nil || n != want {
			t.Errorf("Set(%q): %d %v; want %d", in, n, err, want)
		}
	}
	for _, bad := range []string{"-1", "x", ""} {
		if err := v.Set(bad); err == nil {
			t.Errorf("Set(%q) passed", bad)
		}
	}
}

// TestPerIPCapByDefault: without -max-conns-per-ip, one address holds at
// most an eighth of -max-client-conns (here 3 of 24); past it its new
// connection is refused with 429, while another address is still served.
//
// Real time: a real process and sockets; each connection is served once
// before the next is made, so the server has counted it; deadlines only
// bound a failure.
func TestPerIPCapByDefault(t *testing.T) {
	up := startUpstream(t, upstream.Options{})
	g := startGateway(t, "-upstream", up, "-data-dir", t.TempDir(), "-max-client-conns", "24",
		"-read-timeout", patience.String(), "-idle-timeout", patience.String())
	exchange := func(from string) (net.Conn, string) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: patience}
		c, err := d.Dial("tcp", g.listen)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(patience)) // bounds a failure only
		if _, err := io.WriteString(c, "GET /alice/events HTTP/1.1\r\nHost: x\r\nAuthorization: alice-app\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return c, err.Error()
		}
		return c, strings.TrimSpace(line)
	}
	for i := range 3 {
		c, status := exchange("127.0.0.2")
		defer c.Close()
		if !strings.HasPrefix(status, "HTTP/1.1 200") {
			t.Fatalf("connection %d from 127.0.0.2: %q; want 200", i+1, status)
		}
	}
	c, status := exchange("127.0.0.2")
	c.Close()
	if !strings.HasPrefix(status, "HTTP/1.1 429") {
		t.Fatalf("a 4th connection from 127.0.0.2: %q; want 429", status)
	}
	c, status = exchange("127.0.0.1")
	c.Close()
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("a connection from 127.0.0.1 meanwhile: %q; want 200", status)
	}
}

// TestStartChangeShutdown runs the real binary in front of the demo
// upstream: it starts, records a change, drains an in-flight request on
// SIGTERM, exits 0, and leaves the marker on disk. The upstream holds the
// request until hookgate has closed its listener, so the request is
// certainly in flight during the drain.
//
// Real time: a real process, sockets and disk; every wait is for an event
// (the upstream got the request, a log line, the listener closed) bounded
// by patience.
func TestStartChangeShutdown(t *testing.T) {
	up, arrived, release := gatedUpstream(t)
	recv := receiver.New(receiver.Options{})
	raddr, rstop, err := recv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rstop)
	dir := t.TempDir()
	// -shutdown-timeout is a bound the drain never reaches here: the test
	// releases the request as soon as the listener is closed.
	g := startGatewayEnv(t, []string{"HOOKGATE_UPSTREAM=" + up, "HOOKGATE_LOG_FORMAT=json"},
		"-data-dir", dir, "-shutdown-timeout", patience.String(), "-allow-cidrs", "127.0.0.0/8")

	// A webhook for alice's app access.
	st, body := call(g.listen, "POST", "/alice/webhooks", `{"url":"http://`+raddr+`/hook"}`)
	if st != 201 {
		t.Fatalf("create webhook: %d %s", st, body)
	}
	var created struct{ Webhook struct{ ID string } }
	if err := json.Unmarshal([]byte(body), &created); err != nil || created.Webhook.ID == "" {
		t.Fatalf("create webhook: %v %s", err, body)
	}
	// No token: the demo answers 401, which records nothing.
	client := &http.Client{Timeout: patience}
	resp, err := client.Post("http://"+g.listen+"/alice/events", "application/json",
		strings.NewReader(`{"streamIds":["diary"],"type":"note/txt"}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d without a token; want 401", resp.StatusCode)
	}

	inflight := make(chan int, 1)
	go func() {
		st, _ := call(g.listen, "POST", "/alice/events", `{"streamIds":["diary"],"type":"note/txt"}`)
		inflight <- st
	}()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	select {
	case <-arrived: // the request is now waiting on the upstream
	case st := <-inflight:
		t.Fatalf("the change was answered %d before the upstream got it", st)
	case <-timer.C:
		t.Fatalf("the change did not reach the upstream within %s", patience)
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	g.logs.waitFor(t, `"msg":"shutting down"`, g.exited)
	waitRefused(t, g.listen) // hookgate is draining: no new connection, ours still open
	release()
	select {
	case st := <-inflight:
		if st != 201 {
			t.Fatalf("in-flight request during SIGTERM got %d; want 201", st)
		}
	case <-timer.C:
		t.Fatalf("the in-flight request was not answered within %s", patience)
	}
	select {
	case <-g.exited:
		if g.waitErr != nil {
			t.Fatalf("hookgate exited with %v", g.waitErr)
		}
	case <-timer.C:
		t.Fatalf("hookgate did not exit within %s of SIGTERM", patience)
	}
	joined := g.stderr()
	for _, want := range []string{`"msg":"hookgate started"`, `"msg":"shutting down"`, `"msg":"hookgate stopped"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("logs lack %s:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "alice-app") {
		t.Errorf("a token appears in the logs:\n%s", joined)
	}

	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := queue.OpenBadger(db, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// The drained change is somewhere durable for the webhook: delivered,
	// still queued, or in its pending set.
	where := []string{}
	for _, n := range recv.Notifications() {
		if strings.Contains(string(n.Body), core.MsgEventsChanged) {
			where = append(where, "delivered")
		}
	}
	recs, _ := q.Read(nil, 0, 100)
	for _, r := range recs {
		if m, err := core.DecodeMarker(r.Data); err == nil && m.User == "alice" {
			where = append(where, "queued")
		}
	}
	db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(store.PrefixPending + "\x00" + created.Webhook.ID))
		if err == nil {
			item.Value(func(v []byte) error {
				if strings.Contains(string(v), core.MsgEventsChanged) {
					where = append(where, "pending")
				}
				return nil
			})
		}
		return nil
	})
	if len(where) == 0 {
		t.Fatalf("the change answered 201 across SIGTERM is neither delivered, queued nor pending")
	}
	t.Logf("the drained change is %v", where)
}

// TestVersionHangUpBuildInfo: -version prints the build's version and
// Go version; /metrics carries hookgate_build_info, and a # TYPE line for
// every family; SIGHUP does not kill hookgate (its default action): it
// reloads the settings (TestReloadOnHangUp), hookgate goes on serving,
// and SIGTERM still stops it gracefully.
func TestVersionHangUpBuildInfo(t *testing.T) {
	out, err := runBinary(t, nil, "-version")
	if err != nil || !strings.HasPrefix(string(out), "hookgate ") || !strings.Contains(string(out), "go1.") {
		t.Fatalf("-version: %v %q", err, out)
	}
	g := startGateway(t, "-data-dir", t.TempDir())
	resp, err := http.Get("http://" + g.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "hookgate_build_info{version=") {
		t.Fatal("/metrics has no hookgate_build_info")
	}
	// Every family has its # TYPE (and # HELP) line.
	typed := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			typed[strings.Fields(f)[0]] = true
		}
	}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if !typed[base] {
				base = strings.TrimSuffix(name, suffix)
			}
		}
		if !typed[base] {
			t.Errorf("%s has no # TYPE line", name)
		}
	}
	// Each of hookgate's own families has its help text.
	for _, line := range strings.Split(string(body), "\n") {
		if f, ok := strings.CutPrefix(line, "# HELP hookgate_"); ok && !strings.Contains(f, " ") {
			t.Errorf("no help text: %q", line)
		}
	}
	if !strings.Contains(string(body), "# HELP hookgate_build_info Always 1") {
		t.Error("no # HELP text for hookgate_build_info")
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	g.logs.waitFor(t, "SIGHUP", g.exited)
	g.waitHealthy(t)
	if exit, _ := g.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Fatalf("exit code %d after SIGTERM; want 0", exit)
	}
}

// TestConfigFile: settings come from a YAML file of flag names; the
// environment wins over it, and the command line over both; an unknown
// key or a bad value stops hookgate with an error naming it.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hookgate.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("log-format: json\nmax-header: 32KiB\nupstream-timeout: 10s\nupstream: [127.0.0.1:3000, 127.0.0.1:3001]\naccount-changes: true\n")
	g := startGateway(t, "-config", cfg, "-data-dir", filepath.Join(dir, "a"))
	g.logs.waitFor(t, `"msg":"hookgate listening`, g.exited) // JSON, from the file
	g.stop(t, syscall.SIGTERM, patience)

	// The environment wins over the file, the command line over both.
	g = startGatewayEnv(t, []string{"HOOKGATE_LOG_FORMAT=text"}, "-config", cfg, "-data-dir", filepath.Join(dir, "b"))
	g.logs.waitFor(t, `msg="hookgate listening`, g.exited)
	g.stop(t, syscall.SIGTERM, patience)
	g = startGatewayEnv(t, []string{"HOOKGATE_LOG_FORMAT=text", "HOOKGATE_CONFIG=" + cfg}, "-log-format", "json", "-data-dir", filepath.Join(dir, "c"))
	g.logs.waitFor(t, `"msg":"hookgate listening`, g.exited)
	g.stop(t, syscall.SIGTERM, patience)

	for body, want := range map[string]string{
		"upstream-timeot: 10s\n":   `unknown setting "upstream-timeot"`,
		"max-header: 16 bananas\n": "max-header",
		"durability: maybe\n":      "durability",
		"log-format: [json\n":      "yaml",
		"config: other.yaml\n":     `unknown setting "config"`,
	} {
		write(body)
		out, err := runBinary(t, nil, "-config", cfg, "-data-dir", filepath.Join(dir, "d"))
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(string(out), want) {
			t.Errorf("config %q: exit %v, %q; want an error exit naming %q", body, err, out, want)
		}
	}
}

// TestCheckHealth: -healthcheck passes on a ready instance's 200, and
// fails on 503, on a closed port, and without an ops address. An
// unspecified host (":port", as Docker's image sets it) means this
// machine.
func TestCheckHealth(t *testing.T) {
	var unready atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) != "/readyz" || unready.Load() {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString("not ready: the change queue refused the last marker")
			return
		}
		ctx.SetBodyString("ok")
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, addr := range []string{ln.Addr().String(), ":" + port, "0.0.0.0:" + port} {
		if err := checkHealth(addr, 5*time.Second); err != nil {
			t.Fatalf("checkHealth(%q) of a ready instance: %v", addr, err)
		}
	}
	unready.Store(true)
	if err := checkHealth(ln.Addr().String(), 5*time.Second); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("checkHealth of an unready instance: %v; want a 503 error", err)
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	if err := checkHealth(addr, 5*time.Second); err == nil {
		t.Fatal("checkHealth of a closed port passed")
	}
	if err := checkHealth("", time.Second); err == nil {
		t.Fatal("checkHealth without an ops address passed")
	}
}

// TestConfigExampleIsComplete: deploy/hookgate.yaml names every setting
// (every flag but the commands -version, -healthcheck and -config), each
// at its default, and loads as a -config file.
func TestConfigExampleIsComplete(t *testing.T) {
	const path = "../../deploy/hookgate.yaml"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	var c config
	fs := newFlagSet(&c, flag.ContinueOnError)
	if err := applyConfig(fs, path); err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "version", "healthcheck", "config":
			if _, ok := keys[f.Name]; ok {
				t.Errorf("the example sets the command -%s", f.Name)
			}
			return
		}
		if _, ok := keys[f.Name]; !ok {
			t.Errorf("the example does not name -%s", f.Name)
		}
		if got := f.Value.String(); got != f.DefValue {
			t.Errorf("the example sets -%s to %q; its default is %q", f.Name, got, f.DefValue)
		}
	})
}
