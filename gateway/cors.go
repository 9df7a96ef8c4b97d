package gateway

import (
	"github.com/valyala/fasthttp"
)

// setCORS adds to an answer hookgate writes itself (its webhooks routes,
// the batches it answers, its own errors) the headers Pryv's API server
// sends on every answer, so that a browser app reads hookgate's answers
// as it reads Pryv's: the request's origin (or *) with credentials, the
// method and headers a preflight asked for (or Pryv's lists), API-Version
// exposed, a year's max-age. Vary: Origin, since the answer names the
// origin. Proxied answers keep the upstream's own headers.
func (g *Gateway) setCORS(ctx *fasthttp.RequestCtx) {
	req, h := &ctx.Request.Header, &ctx.Response.Header
	if o := req.Peek(fasthttp.HeaderOrigin); len(o) > 0 {
		h.SetBytesV(fasthttp.HeaderAccessControlAllowOrigin, o)
		h.Set(fasthttp.HeaderVary, fasthttp.HeaderOrigin) // Set: an answer may pass here twice
	} else {
		h.Set(fasthttp.HeaderAccessControlAllowOrigin, "*")
	}
	if m := req.Peek(fasthttp.HeaderAccessControlRequestMethod); len(m) > 0 {
		h.SetBytesV(fasthttp.HeaderAccessControlAllowMethods, m)
	} else {
		h.Set(fasthttp.HeaderAccessControlAllowMethods, "POST, GET, PUT, DELETE, OPTIONS")
	}
	if hs := req.Peek(fasthttp.HeaderAccessControlRequestHeaders); len(hs) > 0 {
		h.SetBytesV(fasthttp.HeaderAccessControlAllowHeaders, hs)
	} else {
		h.Set(fasthttp.HeaderAccessControlAllowHeaders, "Authorization, Content-Type")
	}
	h.Set(fasthttp.HeaderAccessControlExposeHeaders, "API-Version")
	h.Set(fasthttp.HeaderAccessControlMaxAge, "31536000")
	h.Set(fasthttp.HeaderAccessControlAllowCredentials, "true")
	h.Set("API-Version", g.opts.Meta.Current().APIVersion)
}

// preflight answers OPTIONS on hookgate's own routes as Pryv does: 200
// "OK", with no authentication (setCORS adds the headers).
func (g *Gateway) preflight(ctx *fasthttp.RequestCtx) {
	ctx.Response.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.SetBodyString("OK")
}
