// Package receiver is a demo webhook receiver: it records the
// notifications it gets (or only counts them, for benchmarks), verifies
// Standard Webhooks signatures when given the secret, and can be told to
// answer slowly or with an error status, for tests. It is safe for
// concurrent use; Start owns the goroutine serving it until stop is
// called.
//
// For load tests it also keeps, per key (the URL's "u" query parameter,
// else its path), the count and arrival times of notifications, takes
// the times at which a load script saw its changes answered
// (POST /_answered?u=KEY&u=KEY2&t=UNIX_MICROSECONDS; the latest time
// is kept), and reports change to
// notification latencies and per-key rates at GET /_report. A
// notification URL may carry _status=CODE and _delayMs=N to make that
// one webhook fail or answer slowly.
package receiver

import (
	"net"
	"net/http"
	"sort"
	"strconv"
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
	// TotalOnly keeps only the total count (Count): no body is parsed
	// and no per-key figure kept, so that a benchmark of a million
	// webhooks measures the sender, not the receiver's bookkeeping.
	// Every notification gets Status (and Retry-After, if _retryAfter
	// asks); _status, _delayMs and Secret are not read.
	TotalOnly bool
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

	mu          sync.Mutex // guards got, messages, first, last, keys
	got         []Notification
	messages    map[string]int64
	first, last time.Time // arrivals of the first and latest notification
	keys        map[string]*keyStats
}

// keyStats is what arrived for one key (one webhook in the load tests).
type keyStats struct {
	count    int64
	first    int64 // arrival of the first notification, Unix µs
	last     int64 // arrival of the latest notification, Unix µs
	minGap   int64 // shortest time between two notifications, µs; 0 with fewer than two
	changed  int64 // arrival of the first notification that is not "test" or "boot", Unix µs
	answered int64 // when the load script saw the change answered, Unix µs; 0 if never told
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
	switch string(ctx.Path()) {
	case "/_stats":
		s.mu.Lock()
		b, _ := json.Marshal(map[string]any{"count": s.count.Load(), "messages": s.messages,
			"firstMs": s.first.UnixMilli(), "lastMs": s.last.UnixMilli()})
		s.mu.Unlock()
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
		return
	case "/_report":
		b, _ := json.Marshal(s.Report())
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
		return
	case "/_answered":
		at, err := strconv.ParseInt(string(ctx.QueryArgs().Peek("t")), 10, 64)
		if err != nil || at <= 0 {
			ctx.Error("t: Unix microseconds expected", fasthttp.StatusBadRequest)
			return
		}
		s.mu.Lock()
		for _, u := range ctx.QueryArgs().PeekMulti("u") {
			k := s.key(string(u))
			k.answered = max(k.answered, at)
		}
		s.mu.Unlock()
		return
	}
	s.count.Add(1)
	if s.opts.TotalOnly {
		s.answer(ctx, s.opts.Status)
		return
	}
	now := time.Now()
	var p struct {
		Messages []string `json:"messages"`
	}
	if json.Unmarshal(ctx.PostBody(), &p) == nil {
		key := string(ctx.QueryArgs().Peek("u"))
		if key == "" {
			key = string(ctx.Path())
		}
		s.mu.Lock()
		if s.messages == nil {
			s.messages = map[string]int64{}
			s.first = now
		}
		s.last = now
		change := false
		for _, m := range p.Messages {
			s.messages[m]++
			change = change || (m != "test" && m != "boot")
		}
		k, us := s.key(key), now.UnixMicro()
		if k.count > 0 && (k.minGap == 0 || us-k.last < k.minGap) {
			k.minGap = max(us-k.last, 1)
		}
		if k.count == 0 {
			k.first = us
		}
		k.count++
		k.last = us
		if change && k.changed == 0 {
			k.changed = us
		}
		s.mu.Unlock()
	}
	status := s.opts.Status
	if v, err := strconv.Atoi(string(ctx.QueryArgs().Peek("_status"))); err == nil && v >= 100 && v < 600 {
		status = v
	}
	delay := s.opts.Delay
	if v, err := strconv.Atoi(string(ctx.QueryArgs().Peek("_delayMs"))); err == nil && v > 0 {
		delay = time.Duration(v) * time.Millisecond
	}
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
	if delay > 0 {
		time.Sleep(delay)
	}
	s.answer(ctx, status)
}

// answer sets the status, and Retry-After if the query asks for one.
func (s *Server) answer(ctx *fasthttp.RequestCtx, status int) {
	if v := ctx.QueryArgs().Peek("_retryAfter"); len(v) > 0 {
		ctx.Response.Header.SetBytesV(fasthttp.HeaderRetryAfter, v)
	}
	ctx.SetStatusCode(status)
}

func (s *Server) key(k string) *keyStats {
	if s.keys == nil {
		s.keys = map[string]*keyStats{}
	}
	ks := s.keys[k]
	if ks == nil {
		ks = &keyStats{}
		s.keys[k] = ks
	}
	return ks
}

// Report is what GET /_report answers.
type Report struct {
	// Keys is how many keys got at least one notification.
	Keys int `json:"keys"`
	// Answered is how many keys a load script marked as changed;
	// Notified how many of those then got a change notification, and
	// Missing the others.
	Answered int `json:"answered"`
	Notified int `json:"notified"`
	Missing  int `json:"missing"`
	// LatencyMs holds, sorted, for every key marked and notified, the
	// time from the change's answer to the first change notification's
	// arrival, in milliseconds. A notification may arrive before the
	// client has read its answer, so an entry can be slightly negative.
	LatencyMs []float64 `json:"latencyMs"`
	// LateMs is, over the marked keys, how long after its change's answer
	// the latest notification arrived (ms): a last notification after
	// the last change shows that no change was left unnotified.
	LateMs []float64 `json:"lateMs"`
	// MinCount and MaxCount bound the notifications per key; MinGapMs is
	// the shortest time between two notifications to one key, and
	// SpanMs the longest time from a key's first to last notification.
	MinCount int64   `json:"minCount"`
	MaxCount int64   `json:"maxCount"`
	MinGapMs float64 `json:"minGapMs"`
	SpanMs   float64 `json:"spanMs"`
}

// Report summarises what arrived per key.
func (s *Server) Report() Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Report{LatencyMs: []float64{}, LateMs: []float64{}}
	for _, k := range s.keys {
		if k.answered > 0 {
			r.Answered++
			if k.changed > 0 {
				r.Notified++
				r.LatencyMs = append(r.LatencyMs, float64(k.changed-k.answered)/1000)
				r.LateMs = append(r.LateMs, float64(k.last-k.answered)/1000)
			} else {
				r.Missing++
			}
		}
		if k.count == 0 {
			continue
		}
		if r.Keys == 0 || k.count < r.MinCount {
			r.MinCount = k.count
		}
		r.Keys++
		r.MaxCount = max(r.MaxCount, k.count)
		if gap := float64(k.minGap) / 1000; k.minGap > 0 && (r.MinGapMs == 0 || gap < r.MinGapMs) {
			r.MinGapMs = gap
		}
		r.SpanMs = max(r.SpanMs, float64(k.last-k.first)/1000)
	}
	sort.Float64s(r.LatencyMs)
	sort.Float64s(r.LateMs)
	return r
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
