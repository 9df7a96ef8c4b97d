package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
)

// hopHeaders are dropped in both directions (RFC 9110 §7.6.1), with any
// header the Connection header names. Transfer-Encoding and Content-Length
// are not listed: fasthttp frames bodies itself on each hop.
var hopHeaders = []string{
	fasthttp.HeaderConnection,
	"Proxy-Connection",
	fasthttp.HeaderKeepAlive,
	fasthttp.HeaderProxyAuthenticate,
	fasthttp.HeaderProxyAuthorization,
	fasthttp.HeaderTE,
	fasthttp.HeaderTrailer,
	fasthttp.HeaderUpgrade,
}

// headerHolder is what requests and responses share for header clean-up.
type headerHolder interface {
	Peek(key string) []byte
	Del(key string)
	DelBytes(key []byte)
	ResetConnectionClose()
}

// dropHopHeaders removes hop-by-hop headers from h.
func dropHopHeaders(h headerHolder) {
	if v := h.Peek(fasthttp.HeaderConnection); len(v) > 0 {
		for len(v) > 0 {
			var tok []byte
			tok, v = nextToken(v)
			if len(tok) > 0 {
				h.DelBytes(tok)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	h.ResetConnectionClose()
}

// nextToken returns the first comma-separated token of v, trimmed, and the
// rest.
func nextToken(v []byte) (tok, rest []byte) {
	i := 0
	for i < len(v) && v[i] != ',' {
		i++
	}
	tok, rest = v[:i], v[min(i+1, len(v)):]
	for len(tok) > 0 && (tok[0] == ' ' || tok[0] == '\t') {
		tok = tok[1:]
	}
	for len(tok) > 0 && (tok[len(tok)-1] == ' ' || tok[len(tok)-1] == '\t') {
		tok = tok[:len(tok)-1]
	}
	return tok, rest
}

// prepareRequest turns the client's request into the upstream request in
// place. It returns whether the client asked to close its connection, for
// the caller to honour once the upstream exchange is done.
func (g *Gateway) prepareRequest(ctx *fasthttp.RequestCtx) (clientClose bool) {
	h := &ctx.Request.Header
	clientClose = h.ConnectionClose()
	dropHopHeaders(h)
	ctx.Request.UseHostHeader = true

	var buf [64]byte
	ip := appendIP(buf[:0], ctx.RemoteIP())
	if prior := h.Peek(fasthttp.HeaderXForwardedFor); len(prior) > 0 {
		v := make([]byte, 0, len(prior)+2+len(ip))
		v = append(append(append(v, prior...), ", "...), ip...)
		h.SetBytesV(fasthttp.HeaderXForwardedFor, v)
	} else {
		h.SetBytesV(fasthttp.HeaderXForwardedFor, ip)
	}
	if ctx.IsTLS() {
		h.Set(fasthttp.HeaderXForwardedProto, "https")
	} else {
		h.Set(fasthttp.HeaderXForwardedProto, "http")
	}
	h.SetBytesV(fasthttp.HeaderXForwardedHost, h.Host())
	return clientClose
}

func appendIP(dst []byte, ip net.IP) []byte {
	if ip4 := ip.To4(); ip4 != nil {
		return fasthttp.AppendIPv4(dst, ip4)
	}
	return append(dst, ip.String()...)
}

// cleanResponse removes hop-by-hop headers from the upstream's answer.
func cleanResponse(h *fasthttp.ResponseHeader) { dropHopHeaders(h) }

// upstreamError answers a failed upstream exchange: 504 when it took too
// long, 502 when the upstream could not be reached or broke the exchange,
// 503 when every pooled connection stayed busy.
func (g *Gateway) upstreamError(ctx *fasthttp.RequestCtx, err error) {
	if g.upLog.Allow() {
		g.opts.Logger.Warn("the upstream failed a request; answered with an error", "method", string(ctx.Method()),
			"path", string(ctx.Path()), "err", err, "suppressed", g.upLog.Suppressed())
	}
	var nerr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.As(err, &nerr) && nerr.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		upstreamTimeout.Inc()
		g.writeError(ctx, fasthttp.StatusGatewayTimeout, "api-timeout",
			fmt.Sprintf("The API did not answer within %s.", g.opts.UpstreamTimeout))
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		upstreamUnavailable.Inc()
		g.writeError(ctx, fasthttp.StatusServiceUnavailable, "api-unavailable",
			"The API has no free connection; try again shortly.")
	default:
		upstreamUnavailable.Inc()
		g.writeError(ctx, fasthttp.StatusBadGateway, "api-unavailable",
			"The API cannot be reached.")
	}
}

// errBodyTooLarge ends a streamed request body past Options.MaxBodySize.
var errBodyTooLarge = errors.New("request body too large")

// limitReader passes on at most left bytes of r, the client's streamed
// body, then fails. It keeps the error reading the client's body gave
// (a malformed chunk, a client gone), so that a failed exchange is known
// to be the client's doing, not the upstream's.
type limitReader struct {
	r    io.Reader
	left int64
	err  error // from r, but io.EOF
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One more byte would pass the limit; a body that ends exactly
		// at it is fine.
		var one [1]byte
		if n, err := l.r.Read(one[:]); n == 0 {
			l.keep(err)
			return 0, err
		}
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	l.keep(err)
	return n, err
}

func (l *limitReader) keep(err error) {
	if err != nil && err != io.EOF && l.err == nil {
		l.err = err
	}
}

// refuseBody answers 413 to a request body over MaxBodySize and closes
// the connection. It first reads and drops up to 4 MiB of what is left of
// the body (rest), for at most a second: closing a socket with unread
// data makes the kernel reset the connection, and the reset can reach a
// client that is still sending before it has read the answer. A client
// sending more or slower may still see the reset.
func (g *Gateway) refuseBody(ctx *fasthttp.RequestCtx, rest io.Reader) {
	g.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "invalid-request-structure",
		"The request body is larger than hookgate accepts ("+strconv.FormatInt(g.opts.MaxBodySize, 10)+" bytes).")
	if rest != nil {
		_ = ctx.Conn().SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.CopyN(io.Discard, rest, 4<<20)
	}
	ctx.SetConnectionClose()
}

// serverError answers, in the Pryv error shape, a request the server
// could not read: a head over MaxHeaderSize (431), a body over the server's
// limit (413), a client too slow for ReadTimeout (408), or a malformed
// request (400). The connection is closed.
func (g *Gateway) serverError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		g.writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "invalid-request-structure",
			"The request head is larger than hookgate accepts ("+strconv.Itoa(g.opts.MaxHeaderSize)+" bytes).")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		g.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "invalid-request-structure",
			"The request body is larger than hookgate accepts.")
	case isTimeout(err):
		g.writeError(ctx, fasthttp.StatusRequestTimeout, "invalid-request-structure",
			"The request was not received in time.")
	default:
		g.writeError(ctx, fasthttp.StatusBadRequest, "invalid-request-structure", "The request cannot be read as HTTP.")
	}
	ctx.SetConnectionClose()
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// writeError answers with a Pryv-shaped error.
func (g *Gateway) writeError(ctx *fasthttp.RequestCtx, status int, id, message string) {
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentType("application/json; charset=utf-8")
	ctx.Response.SetBodyRaw(g.opts.Meta.AppendError(nil, time.Now().UnixNano(), id, message))
	g.setCORS(ctx)
}

// fasthttpLogger sends fasthttp's messages to slog, at most one a second
// with a count of those held back: a client that opens and drops ten
// thousand connections must not write ten thousand lines.
type fasthttpLogger struct {
	l        *slog.Logger
	throttle core.Throttle
}

func newFasthttpLogger(l *slog.Logger) *fasthttpLogger {
	f := &fasthttpLogger{l: l}
	f.throttle.Every = time.Second
	return f
}

func (f *fasthttpLogger) Printf(format string, args ...any) {
	if f.throttle.Allow() {
		f.l.Warn(fmt.Sprintf(format, args...), "suppressed", f.throttle.Suppressed())
	}
}
