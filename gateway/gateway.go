package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/rules"
	"github.com/hookgate/hookgate/gateway/webhooks"
)

// Gateway proxies requests to the upstream and records their changes.
type Gateway struct {
	opts     Options
	upstream upstreamDoer
	// fresh sends doUpstream's second attempts, each on a new connection;
	// stale tells which connections the upstream had closed.
	fresh  upstreamDoer
	stale  staleConns
	voc    *core.Vocabulary // of Options.Rules, which mark encodes in
	srv    *fasthttp.Server
	access accessCache

	// table is the rule table requests are classified with: Options.Rules
	// until SetRules replaces it. A request loads it once and uses it, and
	// its vocabulary, to the end.
	table atomic.Pointer[rules.Table]

	// WebSocket: upgraded connections open, the next upstream's index,
	// and what closes each open one.
	wsOpen  atomic.Int64
	wsNext  atomic.Uint64
	wsConns sync.Map // net.Conn -> func()

	// socket.io long-polling sessions followed, by sid.
	polls     sync.Map // string -> *pollSession
	pollCount atomic.Int64

	// Health: Unix nanoseconds of the last marker append that succeeded
	// and of the last that failed.
	lastMarkOK, lastMarkFail atomic.Int64
	// Unix nanoseconds of the last upstream answer after a failure, and
	// of the last failure; answers are stamped only after a failure, so
	// the hot path only reads.
	lastUpOK, lastUpFail atomic.Int64
	markLog              core.Throttle
	upLog                core.Throttle // upstream failures answered with 502, 503 or 504

	// serveHooks: webhooks requests are answered here, by the API in
	// hooks once it is set; loaded is closed then.
	serveHooks  bool
	hooks       atomic.Pointer[webhooks.API]
	loaded      chan struct{}
	loadedOnce  sync.Once
	hookWaiters atomic.Int32 // requests waiting for the API, for tests
}

type upstreamDoer interface {
	DoTimeout(req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration) error
}

// New checks o and builds a Gateway.
func New(o Options) (*Gateway, error) {
	if len(o.Upstreams) == 0 {
		return nil, errors.New("gateway: no upstream address")
	}
	if o.Rules == nil || o.Queue == nil {
		return nil, errors.New("gateway: Rules and Queue are required")
	}
	o.setDefaults()
	g := &Gateway{opts: o, voc: o.Rules.Vocabulary(), serveHooks: o.Webhooks != nil || o.WebhooksLater, loaded: make(chan struct{})}
	g.table.Store(o.Rules)
	if o.Webhooks != nil {
		g.SetWebhooks(o.Webhooks)
	}
	g.access = accessCache{ttl: o.AccessCacheTTL, max: o.AccessCacheSize}
	g.markLog.Every = 10 * time.Second
	g.upLog.Every = 10 * time.Second
	var hosts, fresh []fasthttp.BalancingClient
	for _, addr := range o.Upstreams {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("gateway: upstream %q: want host:port: %w", addr, err)
		}
		hosts = append(hosts, g.hostClient(addr))
		fresh = append(fresh, g.hostClient(addr))
	}
	g.upstream, g.fresh = balance(hosts, o.UpstreamTimeout), balance(fresh, o.UpstreamTimeout)
	// The server writes its own Date on every answer (fasthttp's client
	// resets the response's no-default-date flag): RFC 9110 §6.6.1 asks a
	// forwarding recipient to add a Date where the origin sent none.
	g.srv = &fasthttp.Server{
		Handler:                      g.Handle,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		MaxRequestBodySize:           o.BufferBodySize,
		ReadBufferSize:               o.MaxHeaderSize,
		ReadTimeout:                  o.ReadTimeout,
		WriteTimeout:                 o.WriteTimeout,
		IdleTimeout:                  o.IdleTimeout,
		Concurrency:                  o.MaxConns,
		MaxConnsPerIP:                o.MaxConnsPerIP,
		ErrorHandler:                 g.serverError,
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		Logger:                       newFasthttpLogger(o.Logger.With("component", "server")),
	}
	return g, nil
}

func balance(hosts []fasthttp.BalancingClient, timeout time.Duration) upstreamDoer {
	if len(hosts) == 1 {
		return hosts[0].(*fasthttp.HostClient)
	}
	return &fasthttp.LBClient{Clients: hosts, Timeout: timeout}
}

// hostClient is the client of one upstream address. It never sends a
// request again by itself: doUpstream decides.
func (g *Gateway) hostClient(addr string) *fasthttp.HostClient {
	o := &g.opts
	return &fasthttp.HostClient{
		Addr:                     addr,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		StreamResponseBody:       true,
		SecureErrorLogMessage:    true,
		MaxConns:                 o.MaxConnsPerUpstream,
		MaxConnWaitTimeout:       o.UpstreamTimeout,
		MaxIdleConnDuration:      o.MaxIdleConnDuration,
		ReadBufferSize:           o.MaxHeaderSize,
		Dial: func(addr string) (net.Conn, error) {
			return g.stale.dial(addr, o.DialTimeout)
		},
		RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
	}
}

// doUpstream sends req upstream. A request that failed on a pooled
// connection the upstream had closed, before any byte of its answer
// (upconn.go), is sent once more on a new connection, whatever its
// method, when its body can be sent again (not a stream).
func (g *Gateway) doUpstream(req *fasthttp.Request, resp *fasthttp.Response) error {
	err := g.upstream.DoTimeout(req, resp, g.opts.UpstreamTimeout)
	if err == nil || !g.stale.take(resp.LocalAddr()) || req.IsBodyStream() {
		return err
	}
	upstreamStaleRetries.Inc()
	// Connection: close, so that the fresh clients pool nothing and every
	// retry dials; neither side of it reaches the client.
	closeWas := req.Header.ConnectionClose()
	req.SetConnectionClose()
	err = g.fresh.DoTimeout(req, resp, g.opts.UpstreamTimeout)
	if !closeWas {
		req.Header.ResetConnectionClose()
	}
	resp.Header.ResetConnectionClose()
	return err
}

// Serve accepts connections on ln until Shutdown.
func (g *Gateway) Serve(ln net.Listener) error { return g.srv.Serve(ln) }

// Shutdown stops accepting, waits for in-flight requests to finish (their
// markers included) until ctx ends, and closes idle connections.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.closeWebSockets() // else the server would wait for them
	return g.srv.ShutdownWithContext(ctx)
}

// SetWebhooks hands over the webhooks API of a gateway built with
// WebhooksLater: from now on it answers webhooks requests, those waiting
// for it included.
func (g *Gateway) SetWebhooks(api *webhooks.API) {
	g.hooks.Store(api)
	g.loadedOnce.Do(func() { close(g.loaded) })
}

// SetRules replaces the rule table for the requests that start from now
// on; a request under way finishes with the table it started with. Each
// request encodes its messages in its own table's vocabulary, so the new
// table may name other messages than the old one.
func (g *Gateway) SetRules(t *rules.Table) {
	if t != nil {
		g.table.Store(t)
	}
}

// webhooksAPI returns the webhooks API, waiting for it at most
// WebhooksWait while it loads; nil if it is still not there.
func (g *Gateway) webhooksAPI() *webhooks.API {
	if api := g.hooks.Load(); api != nil || g.opts.WebhooksWait < 0 {
		return api
	}
	g.hookWaiters.Add(1)
	defer g.hookWaiters.Add(-1)
	t := time.NewTimer(g.opts.WebhooksWait)
	defer t.Stop()
	select {
	case <-g.loaded:
	case <-t.C:
	}
	return g.hooks.Load()
}

// webhooksLoading reports whether webhooks requests wait for SetWebhooks.
func (g *Gateway) webhooksLoading() bool { return g.serveHooks && g.hooks.Load() == nil }

// Ready reports whether the change queue accepted the latest marker the
// gateway tried to write.
func (g *Gateway) Ready() bool { return g.lastMarkFail.Load() <= g.lastMarkOK.Load() }

// Handle serves one request: the proxy and its change detection.
func (g *Gateway) Handle(ctx *fasthttp.RequestCtx) {
	if !g.wellFramed(ctx) {
		return
	}
	if isWebSocket(&ctx.Request.Header) {
		g.proxyWebSocket(ctx)
		return
	}
	sid := pollingSID(ctx)
	if sid != nil {
		sid = bytes.Clone(sid) // outlives the request's changes
	}
	if sid != nil && ctx.IsPost() {
		g.pollFromClient(ctx, sid)
	}
	var ubuf [core.MaxUserLen]byte
	user, rel := g.splitUser(ctx)
	user = append(ubuf[:0], user...) // outlives changes to the request's header
	t := g.table.Load()
	act := rules.Action{}
	if len(user) > 0 {
		if g.serveHooks && isWebhooksPath(rel) {
			g.serveWebhooks(ctx, user, rel)
			return
		}
		act = t.Match(ctx.Method(), rel)
	}

	var calls []core.MessageSet
	var batchBody []byte
	if len(user) > 0 && (act.Batch || mayOverride(ctx, t)) {
		var ok bool
		if act, calls, batchBody, ok = g.classifyBody(ctx, t, act, rel, user); !ok {
			return // answered: 413, or a batch with webhooks calls
		}
	}

	class := classRead
	if act.Batch {
		class = classBatch
	} else if act.Changes() {
		class = classChange
	}

	var limited *limitReader
	limit, cl := g.opts.MaxBodySize, ctx.Request.Header.ContentLength()
	if limit > 0 && int64(cl) > limit {
		g.refuseBody(ctx, ctx.Request.BodyStream())
		return
	}
	if cl < 0 && ctx.Request.IsBodyStream() {
		// Chunked: the limit, and the body's own framing, are checked as
		// it streams (a known length is checked by the server's reader).
		if limit <= 0 {
			limit = math.MaxInt64
		}
		limited = &limitReader{r: ctx.Request.BodyStream(), left: limit}
		ctx.Request.SetBodyStream(limited, -1)
	}
	clientClose := g.prepareRequest(ctx)
	start := time.Now()
	err := g.doUpstream(&ctx.Request, &ctx.Response)
	upstreamDuration.UpdateDuration(start)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			g.refuseBody(ctx, limited.r)
			return
		}
		if limited != nil && limited.err != nil {
			// The client's body broke off or was malformed (a bad chunk):
			// the client's doing, not the upstream's.
			g.writeError(ctx, fasthttp.StatusBadRequest, "invalid-request-structure", "The request body cannot be read as HTTP.")
			ctx.SetConnectionClose()
			return
		}
		g.lastUpFail.Store(time.Now().UnixNano())
		g.upstreamError(ctx, err)
		if clientClose {
			ctx.SetConnectionClose()
		}
		return
	}
	if g.lastUpFail.Load() > g.lastUpOK.Load() {
		g.lastUpOK.Store(time.Now().UnixNano())
	}
	cleanResponse(&ctx.Response.Header)
	if err := g.bufferSmallBody(&ctx.Response); err != nil {
		// The upstream said 2xx and broke off in the body: the change most
		// likely happened, so it is recorded although the client gets an
		// error. A needless notification is harmless; a missed one is not.
		if ctx.Response.StatusCode()/100 == 2 && act.Changes() {
			g.markIn(t.Vocabulary(), user, act.Messages|unionOf(calls), nil, nil)
		}
		g.lastUpFail.Store(time.Now().UnixNano())
		g.upstreamError(ctx, err)
		if clientClose {
			ctx.SetConnectionClose()
		}
		return
	}
	if clientClose {
		ctx.SetConnectionClose()
	}
	sc := ctx.Response.StatusCode() / 100
	if sc >= 1 && sc <= 5 {
		proxyRequests[class][sc].Inc()
	}
	if sid != nil && sc == 2 && ctx.IsGet() {
		g.pollFromServer(ctx, sid)
	}
	if sc != 2 || !act.Changes() {
		return
	}
	set := act.Messages
	var deleted []string
	var touches []core.Touch
	scoped := g.scoped(user)
	if act.Batch {
		answer, ok := g.readResponseBody(ctx)
		if ok {
			set = rules.BatchResults(calls, answer)
			deleted = deletedAccessesInBatch(batchBody, answer)
			if scoped {
				touches = t.BatchTouches(calls, answer)
			}
		} else {
			set = unionOf(calls)
		}
	} else {
		if id := deletedAccess(ctx, rel); id != "" {
			deleted = []string{id}
		}
		if scoped {
			answer, _ := g.readResponseBody(ctx) // unread: every scope matches
			touches = t.CallTouches(set, answer)
		}
	}
	for _, id := range deleted {
		g.access.forget(string(user), id) // its tokens are gone upstream
	}
	if set != 0 {
		g.learnStreams(user, touches)
		g.markIn(t.Vocabulary(), user, set, deleted, touches)
	}
}

// scoped reports whether the user has scoped webhooks, whose matching
// needs what a change touched: true while the webhooks load, as it may
// be. It allocates only when some webhook has scopes.
func (g *Gateway) scoped(user []byte) bool {
	if !g.serveHooks {
		return false
	}
	api := g.hooks.Load()
	if api == nil {
		return true
	}
	// The user's own string escapes through the interface: asked for
	// only when some webhook has scopes, so that the user's bytes stay on
	// the stack otherwise.
	return api.Store().Scoped("") && api.Store().Scoped(string(user))
}

// learnStreams puts the streams a change created or moved below a
// scope's stream into that scope, before the change is recorded, so that
// the events the client writes there next match.
func (g *Gateway) learnStreams(user []byte, touches []core.Touch) {
	var api *webhooks.API
	for _, t := range touches {
		if t.Kind != core.TouchStream || len(t.Streams) != 2 {
			continue
		}
		if api == nil {
			if api = g.hooks.Load(); api == nil {
				return // not loaded: the load's scopes are as stored
			}
		}
		if err := api.LearnStream(string(user), t.Streams[0], t.Streams[1]); err != nil && g.markLog.Allow() {
			g.opts.Logger.Error("cannot add a new stream to the scopes that hold its parent", "user", string(user),
				"stream", t.Streams[0], "err", err, "suppressed", g.markLog.Suppressed())
		}
	}
}

// deletedAccess returns the id of a DELETE /accesses/{id} request.
func deletedAccess(ctx *fasthttp.RequestCtx, rel []byte) string {
	if !ctx.IsDelete() {
		return ""
	}
	if seg, rest := firstSegment(rel); string(seg) == "accesses" {
		if id, tail := firstSegment(rest); len(id) > 0 && len(tail) == 0 {
			return string(id)
		}
	}
	return ""
}

// bufferSmallBody reads an answer of known length up to BufferBodySize
// into the response: cheaper than streaming it, and it frees the upstream
// connection before the client has read anything. An upstream that breaks
// off or stalls in such a body yields an error, so the client gets a clean
// 502 or 504 instead of a cut answer.
func (g *Gateway) bufferSmallBody(resp *fasthttp.Response) error {
	if !resp.IsBodyStream() {
		return nil
	}
	cl := resp.Header.ContentLength()
	if cl < 0 || cl > g.opts.BufferBodySize {
		return nil
	}
	bp := bodyBufs.Get().(*[]byte)
	defer bodyBufs.Put(bp)
	if cap(*bp) < cl {
		*bp = make([]byte, cl)
	}
	buf := (*bp)[:cl]
	stream := resp.BodyStream()
	if _, err := io.ReadFull(stream, buf); err != nil {
		if rc, ok := stream.(fasthttp.ReadCloserWithError); ok {
			_ = rc.CloseWithError(err)
		}
		return fmt.Errorf("reading the upstream's answer: %w", err)
	}
	_ = resp.CloseBodyStream()
	resp.SetBody(buf)
	return nil
}

// bodyBufs holds scratch buffers of up to BufferBodySize for
// bufferSmallBody.
var bodyBufs = sync.Pool{New: func() any { return new([]byte) }}

// mayOverride reports whether the request may be a Pryv form override,
// whose body must be read to know the real method.
func (g *Gateway) mayOverride(ctx *fasthttp.RequestCtx) bool { return mayOverride(ctx, g.table.Load()) }

// mayOverride is Gateway.mayOverride under the rule table t.
func mayOverride(ctx *fasthttp.RequestCtx, t *rules.Table) bool {
	if !t.FormOverride() || !ctx.IsPost() {
		return false
	}
	ct := ctx.Request.Header.ContentType()
	const form = "application/x-www-form-urlencoded"
	return len(ct) >= len(form) && string(ct[:len(form)]) == form
}

// classifyBody reads the request body to classify a batch call or a form
// override. ok is false when the client has been answered: 413 for a body
// too large, or the whole answer of a batch holding webhooks calls.
func (g *Gateway) classifyBody(ctx *fasthttp.RequestCtx, t *rules.Table, act rules.Action, rel, user []byte) (rules.Action, []core.MessageSet, []byte, bool) {
	body, ok := g.readRequestBody(ctx)
	if !ok {
		tooLarge.Inc()
		// Read (a bounded part of) what the client is still sending, so
		// it sees the 413 instead of a reset connection, then close.
		if s := ctx.Request.BodyStream(); s != nil {
			_, _ = io.CopyN(io.Discard, s, 4*int64(g.opts.MaxClassifyBody))
		}
		ctx.SetConnectionClose()
		g.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "invalid-request-structure",
			fmt.Sprintf("The request body exceeds the %d bytes hookgate reads for batch calls and form overrides.", g.opts.MaxClassifyBody))
		return act, nil, nil, false
	}
	formAuth := ""
	if mayOverride(ctx, t) {
		m, j := rules.FormOverride(body)
		if m != "" {
			act = t.Match([]byte(m), rel)
		}
		formAuth = formField(body, "_auth")
		body = j
	}
	if !act.Batch {
		return act, nil, nil, true
	}
	if g.serveHooks {
		if entries, raws, mixed := hasWebhookCalls(body); mixed {
			g.serveMixedBatch(ctx, user, entries, raws, formAuth)
			return act, nil, nil, false
		}
	}
	calls, parsed := t.BatchCalls(body)
	if !parsed {
		// The upstream will most likely refuse it; should it not, assume
		// every message rather than miss a change.
		return rules.Action{Messages: t.Vocabulary().All()}, nil, nil, true
	}
	if unionOf(calls) == 0 {
		return rules.Action{}, nil, nil, true // reads only: no need to read the answer
	}
	return act, calls, body, true
}

func unionOf(calls []core.MessageSet) core.MessageSet {
	var s core.MessageSet
	for _, c := range calls {
		s |= c
	}
	return s
}

// readRequestBody returns the whole request body, reading a streamed body
// into the request so it is still forwarded. ok is false past
// MaxClassifyBody.
func (g *Gateway) readRequestBody(ctx *fasthttp.RequestCtx) ([]byte, bool) {
	req := &ctx.Request
	if !req.IsBodyStream() {
		return req.Body(), len(req.Body()) <= g.opts.MaxClassifyBody
	}
	if cl := req.Header.ContentLength(); cl > g.opts.MaxClassifyBody {
		return nil, false
	}
	buf, err := readLimited(req.BodyStream(), g.opts.MaxClassifyBody)
	if err != nil {
		return nil, false
	}
	req.SetBody(buf)
	return req.Body(), true
}

// readResponseBody reads a streamed batch answer into the response so it
// can be parsed and still sent to the client.
func (g *Gateway) readResponseBody(ctx *fasthttp.RequestCtx) ([]byte, bool) {
	resp := &ctx.Response
	if !resp.IsBodyStream() {
		return resp.Body(), true
	}
	stream := resp.BodyStream()
	buf, err := readLimited(stream, g.opts.MaxClassifyBody)
	if err != nil {
		// Too large or cut short: the caller assumes every message. The
		// client still gets what was read and the rest of the stream.
		resp.SetBodyStream(io.MultiReader(bytes.NewReader(buf), stream), -1)
		return nil, false
	}
	resp.SetBody(buf)
	return resp.Body(), true
}

var errTooLarge = errors.New("body too large")

func readLimited(r io.Reader, limit int) ([]byte, error) {
	buf, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return buf, err
	}
	if len(buf) > limit {
		return buf, errTooLarge
	}
	return buf, nil
}

// splitUser finds the username and the path relative to the user's root.
// Both alias the request's memory. user is empty for non-user requests.
func (g *Gateway) splitUser(ctx *fasthttp.RequestCtx) (user, rel []byte) {
	path := ctx.Path()
	seg, rest := firstSegment(path)
	if g.opts.UsernameMode == UsernameSubdomain {
		label := hostLabel(ctx.Host())
		if !core.ValidUsername(label) || core.ReservedRoot(label) || core.ReservedRoot(seg) {
			return nil, nil
		}
		if string(seg) == string(label) { // the path already names the user
			return label, rest
		}
		return label, path
	}
	if !core.ValidUsername(seg) || core.ReservedRoot(seg) {
		return nil, nil
	}
	return seg, rest
}

// firstSegment splits "/alice/events" into "alice" and "/events".
func firstSegment(path []byte) (seg, rest []byte) {
	for len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	for i, c := range path {
		if c == '/' {
			return path[:i], path[i:]
		}
	}
	return path, nil
}

// hostLabel returns the first label of a host that has at least two.
func hostLabel(host []byte) []byte {
	for i, c := range host {
		if c == '.' {
			return host[:i]
		}
		if c == ':' || c == '[' {
			return nil
		}
	}
	return nil
}

// mark appends a change marker for set, a set of Options.Rules's
// vocabulary. A failure is counted, logged (throttled) and shown by Ready;
// the client still gets the upstream's answer.
func (g *Gateway) mark(user []byte, set core.MessageSet, deletedAccesses []string, touches []core.Touch) {
	g.markIn(g.voc, user, set, deletedAccesses, touches)
}

// markIn is mark for a set of the vocabulary voc.
func (g *Gateway) markIn(voc *core.Vocabulary, user []byte, set core.MessageSet, deletedAccesses []string, touches []core.Touch) {
	bp := markerBufs.Get().(*[]byte)
	now := time.Now().UnixNano()
	*bp = core.AppendMarker((*bp)[:0], now, user, voc, set)
	*bp = core.AppendExtras(*bp, deletedAccesses, touches)
	_, err := g.opts.Queue.Append(*bp)
	markerBufs.Put(bp)
	done := time.Now().UnixNano()
	if err != nil {
		markerErrors.Inc()
		g.lastMarkFail.Store(done)
		if g.markLog.Allow() {
			g.opts.Logger.Error("cannot record a change; its notification may be missing", "err", err, "suppressed", g.markLog.Suppressed())
		}
		return
	}
	markersWritten.Inc()
	g.lastMarkOK.Store(done)
}

var markerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}
