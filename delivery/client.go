package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
)

// ErrForbiddenAddress is returned when every address of a receiver's host
// is refused by the Guard.
var ErrForbiddenAddress = errors.New("delivery: receiver address not allowed")

// DefaultMaxConnsPerHost is the default cap on connections, and so on
// deliveries being sent, to one receiver host.
const DefaultMaxConnsPerHost = 64

// ClientOptions configures a Client. The zero value is valid.
type ClientOptions struct {
	// Timeout bounds one POST, connect to last byte of the answer's head.
	// Default 10s.
	Timeout time.Duration
	// DialTimeout bounds resolving and connecting. Default 3s.
	DialTimeout time.Duration
	// MaxConnsPerHost caps connections to one receiver host. Default
	// DefaultMaxConnsPerHost. Past it a delivery waits for a free
	// connection (within Timeout) rather than failing; the Engine, given
	// the same figure as MaxPerHost, never makes one wait.
	MaxConnsPerHost int
	// Guard says which addresses may be reached.
	Guard Guard
	// UserAgent is sent with every POST. Default "hookgate".
	UserAgent string
	// Resolver resolves receiver hosts. Default net.DefaultResolver.
	Resolver *net.Resolver
}

// Client POSTs notifications to receivers over pooled fasthttp
// connections. It never follows redirects, and it checks the resolved
// address at dial time, so a DNS name cannot smuggle a request to a
// private address.
type Client struct {
	opts ClientOptions
	c    *fasthttp.Client
	// dialContext connects to an address the guard allowed; tests replace
	// it to prove what is never dialled.
	dialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewClient returns a Client.
func NewClient(o ClientOptions) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 3 * time.Second
	}
	if o.MaxConnsPerHost <= 0 {
		o.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if o.UserAgent == "" {
		o.UserAgent = "hookgate"
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	cl := &Client{opts: o, dialContext: (&net.Dialer{}).DialContext}
	cl.c = &fasthttp.Client{
		Name:                o.UserAgent,
		MaxConnsPerHost:     o.MaxConnsPerHost,
		MaxConnWaitTimeout:  o.Timeout,
		MaxIdleConnDuration: 30 * time.Second,
		ReadTimeout:         o.Timeout,
		WriteTimeout:        o.Timeout,
		// An answer's body is read, up to MaxAnswerBody, into the pooled
		// response and dropped: the connection then serves the next
		// delivery. (A streamed body left unread closes its connection,
		// so every answer with a body cost a new one.)
		MaxResponseBodySize:           MaxAnswerBody,
		DisableHeaderNamesNormalizing: false,
		DisablePathNormalizing:        true,
		Dial:                          cl.dial,
	}
	return cl
}

// dial resolves addr and connects to its first allowed address.
func (cl *Client) dial(addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cl.opts.DialTimeout)
	defer cancel()
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = cl.opts.Resolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, fmt.Errorf("cannot resolve %q: %w", host, err)
	}
	var lastErr error = ErrForbiddenAddress
	for _, ip := range ips {
		if !cl.opts.Guard.Allowed(ip) {
			continue
		}
		c, err := cl.dialContext(ctx, "tcp", net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// CloseIdleConnections closes the pooled connections no delivery is
// using; a later Send dials again.
func (cl *Client) CloseIdleConnections() { cl.c.CloseIdleConnections() }

// ErrBadAnswer is returned by Send for an answer whose status is not an
// HTTP status (100 to 599); the attempt counts as failed with status 0.
var ErrBadAnswer = errors.New("delivery: receiver answered with an invalid status")

// Post sends body to url as application/json with extra headers, and
// returns the answer's status; it implements webhooks.Tester.
func (cl *Client) Post(url string, body []byte, headers [][2]string) (int, error) {
	a, err := cl.Send(url, body, headers)
	return a.Status, err
}

// Answer is what a receiver answered.
type Answer struct {
	Status     int
	RetryAfter time.Duration // 0 when none was given
	// Head is the start of the body of an answer outside 200-299, at
	// most core.MaxRunAnswer bytes, for the run record.
	Head string
}

// Send POSTs body to url as application/json with extra headers, and
// returns the answer's status, its Retry-After, if any, and the start of
// a failed answer's body. Redirects are not followed: a 3xx is returned
// as it is.
func (cl *Client) Send(url string, body []byte, headers [][2]string) (Answer, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	for _, h := range headers {
		req.Header.Set(h[0], h[1])
	}
	req.SetBodyRaw(body)
	err := cl.c.DoTimeout(req, resp, cl.opts.Timeout)
	if err != nil && !errors.Is(err, fasthttp.ErrBodyTooLarge) {
		return Answer{}, err
	}
	// A body past MaxAnswerBody: the status stands (the head was read),
	// and the connection is closed rather than read to the end.
	status := resp.StatusCode()
	if status < 100 || status > 599 {
		return Answer{}, fmt.Errorf("%w: status %d", ErrBadAnswer, status)
	}
	a := Answer{Status: status, RetryAfter: retryAfter(resp.Header.Peek(fasthttp.HeaderRetryAfter), time.Now())}
	if status < 200 || status > 299 {
		b := resp.Body()
		a.Head = strings.ToValidUTF8(string(b[:min(len(b), core.MaxRunAnswer)]), "")
	}
	return a, nil
}

// ErrorClass returns the class of a failed attempt (core.RunErrors): the
// error's, or core.RunHTTP for an answer outside 200-299; "" for a
// success.
func ErrorClass(status int, err error) string {
	var dns *net.DNSError
	var rec tls.RecordHeaderError
	var alert tls.AlertError
	var cert *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil && status >= 200 && status <= 299:
		return ""
	case err == nil:
		return core.RunHTTP
	case errors.Is(err, ErrForbiddenAddress):
		return core.RunBlocked
	case errors.Is(err, ErrBadAnswer):
		return core.RunBadAnswer
	case errors.As(err, &dns):
		return core.RunDNS
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return core.RunTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return core.RunRefused
	case errors.As(err, &rec), errors.As(err, &alert), errors.As(err, &cert), errors.As(err, &unknownCA),
		errors.As(err, &hostname), errors.As(err, &invalid), strings.HasPrefix(err.Error(), "tls: "):
		return core.RunTLS
	}
	return core.RunConnection
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// MaxAnswerBody is how much of an answer's body Send reads (and drops)
// to keep its connection for the next delivery.
const MaxAnswerBody = 64 << 10
