package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// wellFramed answers 400 to a request whose head fasthttp took but HTTP
// does not allow, and reports whether the request may go on:
//   - no Host (HTTP/1.0 may omit it; the upstream is sent one, so it is
//     required here, as HTTP/1.1 requires it);
//   - a field line folded onto the next (obs-fold, which RFC 9112 §5.2
//     lets a server refuse with 400: a folded Transfer-Encoding is a
//     request-smuggling vector);
//   - a field name that is not a token (RFC 9110 §5.1), a space in it say.
//
// Such a request is the client's fault: it never reaches the upstream,
// and never counts as an upstream failure.
func (g *Gateway) wellFramed(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	switch {
	case len(h.Host()) == 0:
		g.writeError(ctx, fasthttp.StatusBadRequest, "invalid-request-structure", "The request has no Host header.")
	case !validHead(h.RawHeaders()):
		g.writeError(ctx, fasthttp.StatusBadRequest, "invalid-request-structure",
			"The request head is malformed: a folded header line, or a header name that is not a token.")
	default:
		return true
	}
	ctx.SetConnectionClose()
	return false
}

// validHead reports whether raw, a request's field lines as received,
// holds no folded line and only token field names.
func validHead(raw []byte) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue // the end of the block
		}
		if line[0] == ' ' || line[0] == '\t' {
			return false // obs-fold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return false
		}
		for _, c := range line[:colon] {
			if !tchar[c] {
				return false
			}
		}
	}
	return true
}

// tchar marks the bytes of a token (RFC 9110 §5.6.2).
var tchar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
