package gateway

import (
	"bytes"
	"net/url"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/rules"
	"github.com/hookgate/hookgate/gateway/webhooks"
)

// isWebhooksPath reports whether rel (relative to the user's root) is a
// webhooks route, which hookgate serves itself.
func isWebhooksPath(rel []byte) bool {
	seg, _ := firstSegment(rel)
	return string(seg) == "webhooks"
}

// serveWebhooks answers a webhooks request (SPEC §2); it is never proxied.
func (g *Gateway) serveWebhooks(ctx *fasthttp.RequestCtx, user, rel []byte) {
	defer g.setCORS(ctx) // on every answer, errors included
	if ctx.IsOptions() {
		g.preflight(ctx)
		return
	}
	api := g.webhooksAPI()
	if api == nil {
		g.webhooksUnavailable(ctx)
		return
	}
	method := string(ctx.Method())
	body, ok := g.readRequestBody(ctx)
	if !ok {
		g.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "invalid-request-structure", "The request body is too large.")
		ctx.SetConnectionClose()
		return
	}
	formAuth := ""
	if g.mayOverride(ctx) {
		m, j := rules.FormOverride(body)
		if m != "" {
			method = m
		}
		formAuth = formField(body, "_auth")
		body = j
	}
	var segs [4][]byte
	n := 0
	for rest := rel; n < len(segs); n++ {
		var seg []byte
		seg, rest = firstSegment(rest)
		if len(seg) == 0 {
			break
		}
		segs[n] = seg
	}
	call, params := "", []byte(nil)
	idParams := func() []byte {
		return append(append([]byte(`{"id":`), core.AppendJSONString(nil, string(segs[1]))...), '}')
	}
	switch {
	case n == 1 && method == "GET":
		call = "webhooks.get"
	case n == 1 && method == "POST":
		call, params = "webhooks.create", body
	case n == 2 && method == "GET":
		call, params = "webhooks.getOne", idParams()
	case n == 2 && method == "PUT":
		p := append([]byte(`{"id":`), core.AppendJSONString(nil, string(segs[1]))...)
		p = append(append(append(p, `,"update":`...), orEmptyObject(body)...), '}')
		call, params = "webhooks.update", p
	case n == 2 && method == "DELETE":
		call, params = "webhooks.delete", idParams()
	case n == 3 && string(segs[2]) == "test" && method == "POST":
		call, params = "webhooks.test", idParams()
	case n == 3 && string(segs[2]) == "rotate-secret" && method == "POST":
		call, params = "webhooks.rotateSecret", idParams()
	default:
		g.writeError(ctx, fasthttp.StatusNotFound, "unknown-resource", "Unknown webhooks route "+method+" "+string(rel))
		return
	}
	acc, ok := g.authenticate(ctx, user, formAuth)
	if !ok {
		return
	}
	ctx.Response.Header.Set("Pryv-Access-Id", acc.ID)
	res, perr := api.Call(acc, string(user), call, params)
	meta := g.metaField()
	ctx.Response.Header.SetContentType("application/json; charset=utf-8")
	if perr != nil {
		ctx.Response.SetStatusCode(perr.Status)
		ctx.Response.SetBodyRaw(webhooks.MarshalError(perr, meta))
		return
	}
	ctx.Response.SetStatusCode(res.Status)
	ctx.Response.SetBodyRaw(webhooks.MarshalResult(res, meta))
}

// orEmptyObject keeps an empty update body valid JSON.
func orEmptyObject(b []byte) []byte {
	if len(bytes.TrimSpace(b)) == 0 {
		return []byte("{}")
	}
	return b
}

// metaField returns `,"meta":{...}` for an answer written now.
func (g *Gateway) metaField() []byte {
	return g.opts.Meta.AppendMeta([]byte(`,"meta":`), time.Now().UnixNano())
}

// batchEntry is one call of a batch body.
type batchEntry struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// hasWebhookCalls parses a batch body and reports whether it has
// webhooks.* calls hookgate must answer itself.
func hasWebhookCalls(body []byte) ([]batchEntry, []json.RawMessage, bool) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, nil, false
	}
	entries := make([]batchEntry, len(raws))
	found := false
	for i, r := range raws {
		_ = json.Unmarshal(r, &entries[i])
		if webhooks.IsMethod(entries[i].Method) {
			found = true
		}
	}
	return entries, raws, found
}

// webhooksUnavailable answers a webhooks request that waited for the
// registry's load in vain: 503, in the Pryv error shape, with a
// Retry-After.
func (g *Gateway) webhooksUnavailable(ctx *fasthttp.RequestCtx) {
	g.writeError(ctx, fasthttp.StatusServiceUnavailable, "api-unavailable", "Webhooks are loading; try again in a second.")
	ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1") // after writeError, which resets the answer
}

// serveMixedBatch answers a batch call holding webhooks.* calls, in
// order, as Pryv runs it: those are run here, each run of consecutive
// other calls goes upstream as one batch, and the results come back in
// the original order in one answer.
func (g *Gateway) serveMixedBatch(ctx *fasthttp.RequestCtx, user []byte, entries []batchEntry, raws []json.RawMessage, formAuth string) {
	defer g.setCORS(ctx)
	api := g.webhooksAPI()
	if api == nil {
		g.webhooksUnavailable(ctx)
		return
	}
	acc, ok := g.authenticate(ctx, user, formAuth)
	if !ok {
		return
	}
	// Each part upstream has its changes recorded before the next call
	// runs, so that [webhooks.create, events.create] notifies the new
	// webhook and [events.create, webhooks.create] does not. The client's
	// request is prepared for the upstream once, for every part.
	if g.prepareRequest(ctx) {
		defer ctx.SetConnectionClose()
	}
	results := make([][]byte, len(entries))
	for i := 0; i < len(entries); {
		if webhooks.IsMethod(entries[i].Method) {
			res, perr := api.Call(acc, string(user), entries[i].Method, entries[i].Params)
			if perr != nil {
				results[i] = webhooks.MarshalError(perr, nil)
			} else {
				results[i] = webhooks.MarshalResult(res, nil)
			}
			i++
			continue
		}
		j := i + 1
		for j < len(entries) && !webhooks.IsMethod(entries[j].Method) {
			j++
		}
		if !g.forwardSegment(ctx, user, raws[i:j], results[i:j], formAuth) {
			return
		}
		if j < len(entries) && entries[j].Method == "webhooks.create" {
			// A webhook hears of the changes made after its creation
			// time, which is kept to the millisecond: it is created in a
			// later millisecond than the changes just recorded.
			nextMillisecond()
		}
		i = j
	}
	out := []byte(`{"results":[`)
	for i, r := range results {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, r...)
	}
	out = append(out, ']')
	out = append(out, g.metaField()...)
	out = append(out, '}')
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.Set("Pryv-Access-Id", acc.ID)
	ctx.Response.Header.SetContentType("application/json; charset=utf-8")
	ctx.Response.SetBodyRaw(out)
}

// nextMillisecond returns once the clock's millisecond has changed: a
// millisecond at most.
func nextMillisecond() {
	now := time.Now()
	time.Sleep(time.UnixMilli(now.UnixMilli() + 1).Sub(now))
}

// forwardSegment sends calls, consecutive calls of a batch that are not
// webhooks.*, upstream as one batch, records their changes, and puts
// their results in results. It reports false when the client has been
// answered already: an upstream failure, or a refusal of the whole batch
// (its answer stands).
func (g *Gateway) forwardSegment(ctx *fasthttp.RequestCtx, user []byte, calls []json.RawMessage, results [][]byte, formAuth string) bool {
	sub := []byte{'['}
	for j, c := range calls {
		if j > 0 {
			sub = append(sub, ',')
		}
		sub = append(sub, c...)
	}
	sub = append(sub, ']')
	status, answer, ok := g.forwardBatch(ctx, sub, formAuth)
	if !ok || status != fasthttp.StatusOK {
		return false
	}
	t := g.table.Load() // as a plain request does: one table to the end
	classified, _ := t.BatchCalls(sub)
	var a struct {
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(answer, &a); err != nil || len(a.Results) != len(calls) {
		if s := unionOf(classified); s != 0 {
			g.markIn(t.Vocabulary(), user, s, nil, nil) // changes may have happened: never hide one
		}
		g.writeError(ctx, fasthttp.StatusBadGateway, "api-unavailable", "The API's batch answer cannot be read.")
		return false
	}
	deleted := deletedAccessesInBatch(sub, answer)
	for _, id := range deleted {
		g.access.forget(string(user), id)
	}
	if s := rules.BatchResults(classified, answer); s != 0 {
		var touches []core.Touch
		if g.scoped(user) {
			touches = t.BatchTouches(classified, answer)
			g.learnStreams(user, touches)
		}
		g.markIn(t.Vocabulary(), user, s, deleted, touches)
	}
	for j, r := range a.Results {
		results[j] = r
	}
	return true
}

// forwardBatch sends the batch body sub upstream with the client's
// headers, which the caller has prepared (prepareRequest). ok is false
// when the client has been answered already: an upstream failure, or a
// refusal of the whole batch (passed through).
func (g *Gateway) forwardBatch(ctx *fasthttp.RequestCtx, sub []byte, formAuth string) (int, []byte, bool) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	ctx.Request.Header.CopyTo(&req.Header)
	req.UseHostHeader = true
	req.Header.SetContentType("application/json")
	if len(req.Header.Peek(fasthttp.HeaderAuthorization)) == 0 && formAuth != "" {
		req.Header.Set(fasthttp.HeaderAuthorization, formAuth)
	}
	req.SetBodyRaw(sub)
	err := g.doUpstream(req, resp)
	if err != nil {
		g.lastUpFail.Store(time.Now().UnixNano())
		g.upstreamError(ctx, err)
		return 0, nil, false
	}
	body, err := responseBody(resp, g.opts.MaxClassifyBody)
	if err != nil {
		g.upstreamError(ctx, err)
		return 0, nil, false
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		ctx.Response.SetStatusCode(resp.StatusCode())
		ctx.Response.Header.SetContentTypeBytes(resp.Header.ContentType())
		ctx.Response.SetBody(body)
		return resp.StatusCode(), nil, true
	}
	return fasthttp.StatusOK, body, true
}

// formField returns one field of a form-encoded body.
func formField(body []byte, name string) string {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return v.Get(name)
}

// deletedAccessesInBatch returns the ids of the accesses.delete calls of
// a batch whose slot in the answer holds no error.
func deletedAccessesInBatch(body, answer []byte) []string {
	if !bytes.Contains(body, []byte("accesses.delete")) {
		return nil
	}
	var calls []struct {
		Method string `json:"method"`
		Params struct {
			ID string `json:"id"`
		} `json:"params"`
	}
	var a struct {
		Results []struct {
			Error json.RawMessage `json:"error"`
		} `json:"results"`
	}
	if json.Unmarshal(body, &calls) != nil || json.Unmarshal(answer, &a) != nil {
		return nil
	}
	var ids []string
	for i, c := range calls {
		if c.Method != "accesses.delete" || c.Params.ID == "" || i >= len(a.Results) {
			continue
		}
		if e := bytes.TrimSpace(a.Results[i].Error); len(e) == 0 || bytes.Equal(e, []byte("null")) {
			ids = append(ids, c.Params.ID)
		}
	}
	return ids
}
