package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/gateway/wsframe"
)

var (
	wsOpenAll  atomic.Int64 // every gateway's, for the gauge
	wsUpgrades = metrics.NewCounter(`hookgate_websocket_upgrades_total`)
	wsRefused  = metrics.NewCounter(`hookgate_websocket_refused_total`)
	// wsUnreadable counts connection directions whose bytes stopped
	// making sense as frames: passed on, no longer read.
	wsUnreadable = metrics.NewCounter(`hookgate_websocket_unreadable_total`)
	wsBytesUp    = metrics.NewCounter(`hookgate_websocket_bytes_total{direction="upstream"}`)
	wsBytesDn    = metrics.NewCounter(`hookgate_websocket_bytes_total{direction="client"}`)
	_            = metrics.NewGauge(`hookgate_websocket_connections`, func() float64 { return float64(wsOpenAll.Load()) })
)

// isWebSocket reports whether a request asks to upgrade to WebSocket:
// Upgrade: websocket and Connection naming upgrade (RFC 6455 §4.1). It
// allocates nothing.
func isWebSocket(h *fasthttp.RequestHeader) bool {
	up := h.Peek(fasthttp.HeaderUpgrade)
	if len(up) == 0 || !bytes.EqualFold(bytes.TrimSpace(up), []byte("websocket")) {
		return false
	}
	for v := h.Peek(fasthttp.HeaderConnection); len(v) > 0; {
		var tok []byte
		tok, v = nextToken(v)
		if bytes.EqualFold(tok, []byte("upgrade")) {
			return true
		}
	}
	return false
}

// wsDropped are the request headers not passed on with an upgrade: the
// hop-by-hop ones, which hookgate writes itself, those it sets, and the
// extensions the client offers: compressed frames (permessage-deflate)
// could not be read for the socket.io calls they carry, so none is
// negotiated.
var wsDropped = []string{"Sec-WebSocket-Extensions", fasthttp.HeaderConnection, fasthttp.HeaderUpgrade, "Proxy-Connection", fasthttp.HeaderKeepAlive,
	fasthttp.HeaderProxyAuthenticate, fasthttp.HeaderProxyAuthorization, fasthttp.HeaderTE, fasthttp.HeaderTrailer,
	fasthttp.HeaderTransferEncoding, fasthttp.HeaderXForwardedFor, fasthttp.HeaderXForwardedProto, fasthttp.HeaderXForwardedHost}

// proxyWebSocket passes a WebSocket upgrade to the upstream over a
// connection of its own and, on 101, splices the two connections both
// ways, streaming, until either side closes, the connection stays idle
// for WebSocketIdleTimeout, or WebSocketMaxDuration passes. Any other
// answer is passed back as an ordinary answer. Past MaxWebSockets open
// ones, a new upgrade gets 503.
func (g *Gateway) proxyWebSocket(ctx *fasthttp.RequestCtx) {
	if g.wsOpen.Add(1) > int64(g.opts.MaxWebSockets) {
		g.wsOpen.Add(-1)
		wsRefused.Inc()
		g.writeError(ctx, fasthttp.StatusServiceUnavailable, "api-unavailable", "hookgate holds as many WebSocket connections as it may; try again shortly.")
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		return
	}
	wsOpenAll.Add(1)
	handedOver := false
	defer func() {
		if !handedOver {
			g.wsOpen.Add(-1)
			wsOpenAll.Add(-1)
		}
	}()
	addr := g.opts.Upstreams[int(g.wsNext.Add(1))%len(g.opts.Upstreams)]
	up, err := net.DialTimeout("tcp", addr, g.opts.DialTimeout)
	if err != nil {
		g.lastUpFail.Store(time.Now().UnixNano())
		g.upstreamError(ctx, err)
		return
	}
	_ = up.SetDeadline(time.Now().Add(g.opts.UpstreamTimeout)) // until the answer's head is read
	if _, err := up.Write(g.upgradeHead(ctx)); err != nil {
		up.Close()
		g.upstreamError(ctx, err)
		return
	}
	br := bufio.NewReaderSize(up, 4096)
	head, status, err := readHead(br, g.opts.MaxHeaderSize)
	if err != nil {
		up.Close()
		g.lastUpFail.Store(time.Now().UnixNano())
		g.upstreamError(ctx, fmt.Errorf("reading the upstream's answer to a WebSocket upgrade: %w", err))
		return
	}
	if status != fasthttp.StatusSwitchingProtocols {
		// An ordinary answer (400, 401, 404...): passed back as it is,
		// and the connection is done with.
		defer up.Close()
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(io.MultiReader(bytes.NewReader(head), br))); err != nil {
			g.upstreamError(ctx, err)
			return
		}
		resp.CopyTo(&ctx.Response)
		cleanResponse(&ctx.Response.Header)
		return
	}
	_ = up.SetDeadline(time.Time{})
	wsUpgrades.Inc()
	handedOver = true
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer func() {
			g.wsOpen.Add(-1)
			wsOpenAll.Add(-1)
			if f := g.opts.webSocketEnded; f != nil {
				f()
			}
		}()
		g.splice(c, up, br, head)
	})
}

// upgradeHead writes the request line and headers of an upgrade for the
// upstream: the client's, in order, without hop-by-hop headers, then
// Connection and Upgrade, and the X-Forwarded- headers.
func (g *Gateway) upgradeHead(ctx *fasthttp.RequestCtx) []byte {
	h := &ctx.Request.Header
	b := make([]byte, 0, 1024)
	b = append(b, ctx.Method()...)
	b = append(b, ' ')
	b = append(b, ctx.RequestURI()...)
	b = append(b, " HTTP/1.1\r\n"...)
	hasHost := false
	for k, v := range h.AllInOrder() {
		drop := false
		for _, d := range wsDropped {
			if bytes.EqualFold(k, []byte(d)) {
				drop = true
				break
			}
		}
		if drop {
			continue
		}
		hasHost = hasHost || bytes.EqualFold(k, []byte(fasthttp.HeaderHost))
		b = append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
	}
	if !hasHost {
		b = append(append(append(b, "Host: "...), h.Host()...), "\r\n"...)
	}
	b = append(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n"...)
	b = append(b, "X-Forwarded-For: "...)
	if prior := h.Peek(fasthttp.HeaderXForwardedFor); len(prior) > 0 {
		b = append(append(b, prior...), ", "...)
	}
	b = appendIP(b, ctx.RemoteIP())
	proto := "http"
	if ctx.IsTLS() {
		proto = "https"
	}
	b = append(append(append(b, "\r\nX-Forwarded-Proto: "...), proto...), "\r\nX-Forwarded-Host: "...)
	b = append(b, h.Host()...)
	return append(b, "\r\n\r\n"...)
}

var errHeadTooLarge = errors.New("answer head too large")

// readHead reads an answer's head, up to and with its blank line, at
// most limit bytes, and returns it and its status.
func readHead(br *bufio.Reader, limit int) (head []byte, status int, err error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, 0, err
		}
		head = append(head, line...)
		if len(head) > limit {
			return nil, 0, errHeadTooLarge
		}
		if len(line) <= 2 && len(head) > len(line) { // "\r\n" after the status line: the end
			break
		}
	}
	// "HTTP/1.1 101 Switching Protocols"
	if len(head) < 12 || !bytes.HasPrefix(head, []byte("HTTP/1.")) || head[8] != ' ' {
		return nil, 0, fmt.Errorf("not an HTTP answer: %.40q", head)
	}
	status, err = strconv.Atoi(string(head[9:12]))
	if err != nil || status < 100 || status > 599 {
		return nil, 0, fmt.Errorf("not an HTTP status: %.40q", head)
	}
	return head, status, nil
}

// wsBufs are the copy buffers of upgraded connections.
var wsBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// splice writes the upstream's 101 head to the client, then copies both
// ways until one side ends, idleness or the longest duration, and closes
// both.
func (g *Gateway) splice(c, up net.Conn, fromUp *bufio.Reader, head []byte) {
	_ = c.SetDeadline(time.Time{}) // the server's read and write timeouts are for HTTP
	var once sync.Once
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	// fasthttp's hijacked connection reads what it had buffered first;
	// its Close does nothing until the handler returns, so the
	// connection under it is the one closed.
	raw := c
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		raw = u.UnsafeConn()
	}
	closeBoth := func() { once.Do(func() { raw.Close(); up.Close() }) }
	g.wsConns.Store(c, closeBoth)
	defer g.wsConns.Delete(c)
	if _, err := c.Write(head); err != nil {
		closeBoth()
		return
	}
	idle := g.opts.WebSocketIdleTimeout
	var watch *time.Timer
	watch = time.AfterFunc(idle, func() {
		if left := time.Duration(last.Load() + int64(idle) - time.Now().UnixNano()); left > 0 {
			watch.Reset(left) // active since: look again when it could be idle
			return
		}
		closeBoth()
	})
	defer watch.Stop()
	if d := g.opts.WebSocketMaxDuration; d > 0 {
		total := time.AfterFunc(d, closeBoth)
		defer total.Stop()
	}
	// Each direction's frames are read as they pass, for the socket.io
	// calls they carry; a chunk goes on once read, so that the change an
	// acknowledgement in it tells of is recorded before the client has it.
	sio := g.newSIOTracker()
	copyOne := func(dst io.Writer, src io.Reader, n *metrics.Counter, frames *wsframe.Reader) {
		bp := wsBufs.Get().(*[]byte)
		defer wsBufs.Put(bp)
		seen := 0
		for {
			k, err := src.Read(*bp)
			if k > 0 {
				last.Store(time.Now().UnixNano())
				n.Add(k)
				broken := frames.Broken
				frames.Feed((*bp)[:k])
				wsFrames.Add(frames.Frames - seen)
				seen = frames.Frames
				if frames.Broken && !broken {
					wsUnreadable.Inc() // passed on all the same, unread from here
				}
				if _, werr := dst.Write((*bp)[:k]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		closeBoth()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyOne(c, fromUp, wsBytesDn, &sio.server)
	}()
	copyOne(up, c, wsBytesUp, &sio.client)
	<-done
}

// closeWebSockets closes every upgraded connection: their clients
// connect again, to this instance once it is back or to another.
func (g *Gateway) closeWebSockets() {
	g.wsConns.Range(func(_, f any) bool {
		f.(func())()
		return true
	})
}
