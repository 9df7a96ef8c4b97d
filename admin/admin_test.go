package admin

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/state"
)

const key = "s3cret-admin-key"

var quiet = slog.New(slog.DiscardHandler)

// call runs one request through the API's handler and decodes its JSON
// answer into out, if given.
func call(t *testing.T, a *API, method, uri, auth string, out any) int {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	if auth != "" {
		ctx.Request.Header.Set("Authorization", auth)
	}
	a.Handler(&ctx)
	if out != nil {
		if err := json.Unmarshal(ctx.Response.Body(), out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, uri, ctx.Response.StatusCode(), ctx.Response.Body(), err)
		}
	}
	return ctx.Response.StatusCode()
}

func hook(user, url string) *core.Webhook {
	return &core.Webhook{ID: core.NewID(), User: user, AccessID: "app-" + user, URL: url, State: core.StateActive,
		MinIntervalMs: 1000, MaxRetries: 5, Runs: []core.Run{}, CreatedBy: "app-" + user, ModifiedBy: "app-" + user}
}

// TestAdminAccess: off without a key, 401 without the right one, 503
// until the webhooks are loaded.
func TestAdminAccess(t *testing.T) {
	if st := call(t, New("", nil), "GET", "/admin/webhooks", "Bearer ", nil); st != 404 {
		t.Fatalf("without a key: %d; want 404", st)
	}
	a := New(key, nil)
	for _, auth := range []string{"", "Bearer wrong", key, "Basic " + key} {
		if st := call(t, a, "GET", "/admin/webhooks", auth, nil); st != 401 {
			t.Fatalf("Authorization %q: %d; want 401", auth, st)
		}
	}
	if st := call(t, a, "GET", "/admin/webhooks", "Bearer "+key, nil); st != 503 {
		t.Fatalf("before the load: %d; want 503", st)
	}
	a.Set(state.NewMemory(), nil)
	var v struct{ Webhooks []Summary }
	if st := call(t, a, "GET", "/admin/webhooks", "Bearer "+key, &v); st != 200 || v.Webhooks == nil || len(v.Webhooks) != 0 {
		t.Fatalf("an empty registry: %d %+v", st, v)
	}
	if st := call(t, a, "DELETE", "/admin/webhooks", "Bearer "+key, nil); st != 404 {
		t.Fatalf("an unknown route: %d; want 404", st)
	}
}

// TestAdminListAndActions: listing across users pages through every
// webhook once, in id order, and filters by state, failures, host and
// user; deactivation, reactivation and a host's deactivation change what
// they should and nothing else.
func TestAdminListAndActions(t *testing.T) {
	reg := state.NewMemory()
	a := New(key, quiet)
	a.Set(reg, nil)
	auth := "Bearer " + key
	var all []*core.Webhook
	for i := range 250 {
		host := "ok.example"
		if i%50 == 0 {
			host = "Abuse.Example"
		}
		w := hook(fmt.Sprintf("user%d", i%7), fmt.Sprintf("https://%s/hook/%d", host, i))
		if i%10 == 0 {
			w.CurrentRetries = 2
		}
		if err := reg.Create(w, 0); err != nil {
			t.Fatal(err)
		}
		all = append(all, w)
	}
	var seen []string
	after := ""
	for page := 0; ; page++ {
		var v struct {
			Webhooks []Summary
			Next     string
		}
		if st := call(t, a, "GET", "/admin/webhooks?limit=40&after="+after, auth, &v); st != 200 {
			t.Fatalf("page %d: %d", page, st)
		}
		for _, s := range v.Webhooks {
			if len(seen) > 0 && s.ID <= seen[len(seen)-1] {
				t.Fatalf("page %d: %s after %s: not in id order", page, s.ID, seen[len(seen)-1])
			}
			seen = append(seen, s.ID)
		}
		if v.Next == "" {
			break
		}
		after = v.Next
	}
	if len(seen) != len(all) {
		t.Fatalf("pages listed %d webhooks; want %d", len(seen), len(all))
	}
	count := func(query string) int {
		var v struct{ Webhooks []Summary }
		if st := call(t, a, "GET", "/admin/webhooks?limit=1000&"+query, auth, &v); st != 200 {
			t.Fatalf("%s: %d", query, st)
		}
		return len(v.Webhooks)
	}
	if n := count("failing=true"); n != 25 {
		t.Fatalf("failing: %d; want 25", n)
	}
	if n := count("host=abuse.example"); n != 5 {
		t.Fatalf("by host: %d; want 5", n)
	}
	if n := count("user=user3&failing=1"); n != 4 { // i = 10, 80, 150, 220
		t.Fatalf("by user and failing: %d; want 4", n)
	}
	for _, bad := range []string{"state=bogus", "failing=maybe", "limit=0", "limit=1001"} {
		if st := call(t, a, "GET", "/admin/webhooks?"+bad, auth, nil); st != 400 {
			t.Fatalf("%s: %d; want 400", bad, st)
		}
	}

	var d struct{ Deactivated []string }
	if st := call(t, a, "POST", "/admin/hosts/abuse.example/deactivate", auth, &d); st != 200 || len(d.Deactivated) != 5 {
		t.Fatalf("host deactivation: %d %v", st, d)
	}
	if n := count("state=inactive"); n != 5 {
		t.Fatalf("inactive after the host's deactivation: %d; want 5", n)
	}
	w := all[10] // failing, on ok.example
	var got struct{ Webhook core.Webhook }
	if st := call(t, a, "POST", "/admin/webhooks/"+w.ID+"/deactivate", auth, &got); st != 200 || got.Webhook.State != core.StateInactive {
		t.Fatalf("deactivate: %d %+v", st, got)
	}
	if st := call(t, a, "POST", "/admin/webhooks/"+w.ID+"/reactivate", auth, &got); st != 200 ||
		got.Webhook.State != core.StateActive || got.Webhook.CurrentRetries != 0 || got.Webhook.Modified != w.Modified {
		t.Fatalf("reactivate: %d %+v; want active, retries reset, modified untouched", st, got)
	}
	if st := call(t, a, "POST", "/admin/webhooks/nope/deactivate", auth, nil); st != 404 {
		t.Fatalf("an unknown webhook: %d", st)
	}
}

// TestAdminRedeliverAndInspect: a webhook whose delivery failed waits
// for its retry; the operator sees its pending messages and when it
// fires, and redelivery sends them at once, before the retry's time.
func TestAdminRedeliverAndInspect(t *testing.T) {
	var status atomic.Int32
	status.Store(500)
	var posts atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		posts.Add(1)
		ctx.SetStatusCode(int(status.Load()))
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	url := "http://" + ln.Addr().String() + "/hook"

	synctest.Test(t, func(t *testing.T) {
		db, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		q, err := queue.OpenBadger(db, queue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		reg, err := webhooks.OpenStore(db)
		if err != nil {
			t.Fatal(err)
		}
		w := hook("alice", url)
		w.MinIntervalMs = 10 * 60 * 1000 // a retry 10 minutes after a failure
		if err := reg.Create(w, 0); err != nil {
			t.Fatal(err)
		}
		client := delivery.NewClient(delivery.ClientOptions{Timeout: 5 * time.Second,
			Guard: delivery.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
		eng, err := delivery.NewEngine(delivery.EngineOptions{Queue: q, Pending: store.NewPending(db, nil), Webhooks: reg,
			Sender: client, FlushInterval: 20 * time.Millisecond, Logger: quiet, Meta: core.Meta{APIVersion: "1.9.3", Serial: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		go eng.Run()
		defer func() {
			eng.Stop()
			q.Close()
			db.Close()
			client.CloseIdleConnections()
			time.Sleep(time.Minute) // past the client's idle cleaners
		}()
		a := New(key, quiet)
		a.Set(reg, eng)
		auth := "Bearer " + key

		synctest.Wait() // the boot notification, refused
		if n := posts.Load(); n != 1 {
			t.Fatalf("%d POSTs at boot; want 1", n)
		}
		var d Detail
		if st := call(t, a, "GET", "/admin/webhooks/"+w.ID, auth, &d); st != 200 {
			t.Fatalf("get: %d", st)
		}
		now := float64(time.Now().UnixMilli()) / 1000
		if len(d.Delivery.Pending) != 1 || d.Delivery.Pending[0] != core.MsgServiceBoot || d.Delivery.NextAt < now+599 ||
			d.User != "alice" || len(d.Webhook.Runs) != 1 || d.Webhook.Runs[0].Error != core.RunHTTP {
			t.Fatalf("a failed webhook, seen by the operator: %+v", d)
		}
		status.Store(200)
		var r struct{ Messages int }
		if st := call(t, a, "POST", "/admin/webhooks/"+w.ID+"/redeliver", auth, &r); st != 200 || r.Messages != 1 {
			t.Fatalf("redeliver: %d %+v", st, r)
		}
		synctest.Wait() // no time passes: sent now, not in 10 minutes
		if n := posts.Load(); n != 2 {
			t.Fatalf("%d POSTs after the redelivery; want 2", n)
		}
		time.Sleep(100 * time.Millisecond) // a flush
		synctest.Wait()
		if got, _ := reg.Get("alice", w.ID); got.CurrentRetries != 0 || got.LastRun.Status != 200 {
			t.Fatalf("after the redelivery: %+v", got)
		}
		if st := call(t, a, "POST", "/admin/webhooks/"+w.ID+"/redeliver", auth, nil); st != 409 {
			t.Fatalf("redelivering nothing: %d; want 409", st)
		}
	})
}
