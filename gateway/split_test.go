package gateway

import (
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
)

func splitFor(mode UsernameMode, hostHeader, uri string) (string, string) {
	g := &Gateway{opts: Options{UsernameMode: mode}}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetHost(hostHeader)
	ctx.Request.SetRequestURI(uri)
	u, rel := g.splitUser(&ctx)
	return string(u), string(rel)
}

func TestSplitUser(t *testing.T) {
	f := func(mode UsernameMode, host, uri, wantUser, wantRel string) {
		t.Helper()
		u, rel := splitFor(mode, host, uri)
		if u != wantUser || (u != "" && rel != wantRel) {
			t.Errorf("mode %d, Host %q, %q: got (%q, %q); want (%q, %q)", mode, host, uri, u, rel, wantUser, wantRel)
		}
	}
	f(UsernamePath, "api.example", "/alice/events/x?y=1", "alice", "/events/x")
	f(UsernamePath, "api.example", "/alice", "alice", "")
	f(UsernamePath, "api.example", "/alice/", "alice", "/")
	f(UsernamePath, "api.example", "//alice//events", "alice", "/events")
	f(UsernamePath, "api.example", "/reg/service/info", "", "")
	f(UsernamePath, "api.example", "/socket.io/x", "", "")
	f(UsernamePath, "api.example", "/bob/events", "", "") // too short for Pryv
	f(UsernamePath, "api.example", "/Alice/events", "", "")
	f(UsernamePath, "api.example", "/", "", "")
	f(UsernameSubdomain, "alice.pryv.me", "/events", "alice", "/events")
	f(UsernameSubdomain, "alice.pryv.me:443", "/events", "alice", "/events")
	f(UsernameSubdomain, "alice.pryv.me", "/alice/events", "alice", "/events")
	f(UsernameSubdomain, "alice.pryv.me", "/", "alice", "/")
	f(UsernameSubdomain, "alice.pryv.me", "/reg/x", "", "")
	f(UsernameSubdomain, "www.pryv.me", "/events", "", "")
	f(UsernameSubdomain, "localhost:8080", "/events", "", "")
	f(UsernameSubdomain, "[::1]:8080", "/events", "", "")
	f(UsernameSubdomain, "127.0.0.1", "/events", "", "")
}

// FuzzSplitUser: whatever the host and path, a user found is a valid Pryv
// username and the rest is a suffix of the path.
func FuzzSplitUser(f *testing.F) {
	f.Add("alice.pryv.me:8080", "/alice/events/ck1")
	f.Add("api.example", "//carol//streams/")
	f.Add("[::1]:80", "/socket.io/?EIO=4")
	f.Add("x", "/%2e%2e/alice")
	f.Fuzz(func(t *testing.T, host, uri string) {
		for _, mode := range []UsernameMode{UsernamePath, UsernameSubdomain} {
			g := &Gateway{opts: Options{UsernameMode: mode}}
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetHost(host)
			ctx.Request.SetRequestURI(uri)
			u, rel := g.splitUser(&ctx)
			if len(u) == 0 {
				continue
			}
			if !core.ValidUsername(u) || core.ReservedRoot(u) {
				t.Fatalf("mode %d: user %q is not a valid username", mode, u)
			}
			if !bytes.HasSuffix(ctx.Path(), rel) {
				t.Fatalf("mode %d: rest %q is not a suffix of path %q", mode, rel, ctx.Path())
			}
		}
	})
}

func TestOpsHandler(t *testing.T) {
	g := &Gateway{}
	h := g.OpsHandler()
	f := func(path string, want int, contains string) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(path)
		h(&ctx)
		if ctx.Response.StatusCode() != want || !bytes.Contains(ctx.Response.Body(), []byte(contains)) {
			t.Errorf("%s: %d %q; want %d with %q", path, ctx.Response.StatusCode(), ctx.Response.Body(), want, contains)
		}
	}
	f("/healthz", 200, "ok")
	f("/readyz", 200, "queue: ok")
	f("/metrics", 200, "hookgate_markers_written_total")
	f("/debug/pprof/goroutine?debug=1", 404, "not found") // off unless asked for
	f("/debug/pprof/", 404, "not found")
	f("/nope", 404, "not found")
	g.opts.Pprof = true
	f("/debug/pprof/goroutine?debug=1", 200, "goroutine")
	f("/debug/pprof/", 200, "full goroutine stack dump") // the index
	f("/debug/pprof/cmdline", 200, "")
	f("/debug/pprof/nope", 404, "Unknown profile")
	g.lastMarkFail.Store(2)
	f("/readyz", 503, "queue: failing")
}
