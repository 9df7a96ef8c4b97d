package gateway

import (
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// OpsHandler serves /metrics (Prometheus text), /healthz (the process is
// up), /readyz (the change queue takes markers, the upstream answers and
// the webhooks are loaded)
// and, with Options.Pprof, Go's profiles under /debug/pprof/. It is
// meant for a separate, internal listener: on the proxy's own port these
// paths would shadow usernames, and profiles are not for the public.
func (g *Gateway) OpsHandler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if g.opts.Pprof && strings.HasPrefix(string(ctx.Path()), "/debug/pprof/") {
			pprofHandler(ctx)
			return
		}
		switch string(ctx.Path()) {
		case "/metrics":
			ctx.SetContentType("text/plain; version=0.0.4")
			hw := &helpWriter{w: ctx}
			metrics.WritePrometheus(hw, true)
			_ = hw.Flush()
		case "/healthz":
			ctx.SetContentType("text/plain")
			ctx.WriteString("ok\n")
		case "/readyz":
			ctx.SetContentType("text/plain")
			queueOK, upstreamOK, loading := g.Ready(), g.UpstreamReachable(), g.webhooksLoading()
			diskErr := g.opts.Space.Check()
			var stateErr error
			if g.opts.State != nil {
				stateErr = g.opts.State()
			}
			if !queueOK || !upstreamOK || loading || diskErr != nil || stateErr != nil {
				ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			}
			ctx.WriteString("queue: " + okWord(queueOK) + "\nupstream: " + okWord(upstreamOK) + "\n")
			if loading {
				ctx.WriteString("webhooks: loading\n")
			} else if g.serveHooks {
				ctx.WriteString("webhooks: ok\n")
			}
			if stateErr != nil {
				ctx.WriteString("state: failing: " + stateErr.Error() + "\n")
			} else if g.opts.State != nil {
				ctx.WriteString("state: ok\n")
			}
			if diskErr != nil {
				ctx.WriteString("disk: failing: " + diskErr.Error() + "\n")
			} else if g.opts.Space != nil {
				ctx.WriteString("disk: ok\n")
			}
		default:
			ctx.Error("not found", fasthttp.StatusNotFound)
		}
	}
}

// pprofHandler serves net/http/pprof's handlers: the index at
// /debug/pprof/, and under it every profile, the CPU profile and the
// execution trace. (fasthttp's pprofhandler answers 404 for the index.)
var pprofHandler = fasthttpadaptor.NewFastHTTPHandler(func() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}())

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "failing"
}

// UpstreamReachable reports whether the latest upstream exchange that
// ended got an answer (of any status).
func (g *Gateway) UpstreamReachable() bool {
	return g.lastUpFail.Load() <= g.lastUpOK.Load()
}
