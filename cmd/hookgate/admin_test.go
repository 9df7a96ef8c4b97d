package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
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
// host. A wrong key is refused.
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
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
