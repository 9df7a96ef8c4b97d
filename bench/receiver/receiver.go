// Package receiver is a demo webhook receiver: it records the
// notifications it gets (or only counts them, for benchmarks), verifies
// Standard Webhooks signatures when given the secret, and can be told to
// answer slowly or with an error status, for tests. It is safe for
// concurrent use; Start owns the goroutine serving it until stop is
// called.
package receiver

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/valyala/fasthttp"
)

// Notification is one POST the receiver got.
type Notification struct {
	Path string
	Body []byte
	At   time.Time
	// Verified is set when Options.Secret is: whether the Standard
	// Webhooks signature checked out.
	Verified bool
	// VerifyError says why it did not.
	VerifyError string
}

// Options configures a Server. The zero value answers 200 at once and
// keeps every notification.
type Options struct {
	// Status is the HTTP status answered. Default 200.
	Status int
	// Delay is waited before answering.
	Delay time.Duration
	// CountOnly keeps counts, not bodies, for benchmarks.
	CountOnly bool
	// OnNotification, if set, is called for each notification.
	OnNotification func(Notification)
	// Secret, a whsec_ signing secret, makes the receiver verify each
	// notification's Standard Webhooks signature with the official
	// library and answer 401 to one that fails.
	Secret string
}

// Server is the receiver.
type Server struct {
	opts     Options
	verifier *standardwebhooks.Webhook
	count    atomic.Int64
	addr     atomic.Value // string, once started

	mu          sync.Mutex // guards got, messages, first and last
	got         []Notification
	messages    map[string]int64
	first, last time.Time // arrivals of the first and latest notification
}

// New returns a receiver. It fails only for a malformed Secret.
func New(o Options) *Server {
	if o.Status == 0 {
		o.Status = fasthttp.StatusOK
	}
	s := &Server{opts: o}
	if o.Secret != "" {
		wh, err := standardwebhooks.NewWebhook(o.Secret)
		if err != nil {
			panic("receiver: bad secret: " + err.Error())
		}
		s.verifier = wh
	}
	return s
}

// Handle serves one notification, or GET /_stats: {"count": N,
// "messages": {"eventsChanged": n, ...}} counted over every notification
// so far, for load tests to check that notifications arrived.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	if ctx.IsGet() && string(ctx.Path()) == "/_stats" {
		s.mu.Lock()
		b, _ := json.Marshal(map[string]any{"count": s.count.Load(), "messages": s.messages,
			"firstMs": s.first.UnixMilli(), "lastMs": s.last.UnixMilli()})
		s.mu.Unlock()
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
		return
	}
	s.count.Add(1)
	var p struct {
		Messages []string `json:"messages"`
	}
	if json.Unmarshal(ctx.PostBody(), &p) == nil {
		s.mu.Lock()
		if s.messages == nil {
			s.messages = map[string]int64{}
			s.first = time.Now()
		}
		s.last = time.Now()
		for _, m := range p.Messages {
			s.messages[m]++
		}
		s.mu.Unlock()
	}
	status := s.opts.Status
	var verified bool
	var verr string
	if s.verifier != nil {
		h := http.Header{}
		for k, v := range ctx.Request.Header.All() {
			h.Add(string(k), string(v))
		}
		if err := s.verifier.Verify(ctx.PostBody(), h); err != nil {
			verr, status = err.Error(), fasthttp.StatusUnauthorized
		} else {
			verified = true
		}
	}
	if !s.opts.CountOnly || s.opts.OnNotification != nil {
		n := Notification{Path: string(ctx.RequestURI()), Body: append([]byte(nil), ctx.PostBody()...), At: time.Now(),
			Verified: verified, VerifyError: verr}
		if !s.opts.CountOnly {
			s.mu.Lock()
			s.got = append(s.got, n)
			s.mu.Unlock()
		}
		if s.opts.OnNotification != nil {
			s.opts.OnNotification(n)
		}
	}
	if s.opts.Delay > 0 {
		time.Sleep(s.opts.Delay)
	}
	ctx.SetStatusCode(status)
}

// Addr returns the address Start listens on, or "".
func (s *Server) Addr() string {
	a, _ := s.addr.Load().(string)
	return a
}

// Count returns how many notifications arrived.
func (s *Server) Count() int64 { return s.count.Load() }

// Notifications returns a copy of what arrived (nothing with CountOnly).
func (s *Server) Notifications() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.got...)
}

// Start serves on addr and returns the address and a stop function.
func (s *Server) Start(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	s.addr.Store(ln.Addr().String())
	srv := &fasthttp.Server{Handler: s.Handle, Name: "hookgate-demo-receiver"}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Shutdown(); <-done }, nil
}
