package gateway

import (
	"fmt"
	"github.com/hookgate/hookgate/gateway/store"
	"log/slog"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/rules"
	"github.com/hookgate/hookgate/gateway/webhooks"
)

// UsernameMode says where requests carry the Pryv username.
type UsernameMode int

const (
	// UsernamePath: the first path segment, /{username}/events.
	UsernamePath UsernameMode = iota
	// UsernameSubdomain: the first label of the Host, {username}.domain.
	UsernameSubdomain
)

// ParseUsernameMode reads "path" or "subdomain".
func ParseUsernameMode(s string) (UsernameMode, error) {
	switch s {
	case "path":
		return UsernamePath, nil
	case "subdomain":
		return UsernameSubdomain, nil
	}
	return 0, fmt.Errorf("username mode %q: want path or subdomain", s)
}

// Appender is where the gateway puts change markers; queue.Badger and
// queue.Memory implement it.
type Appender interface {
	// Append stores a copy of data durably and returns once it is stored.
	Append(data []byte) (seq uint64, err error)
}

// Options configures a Gateway. Upstreams, Rules and Queue are required;
// every other zero value is replaced by the default its comment gives.
type Options struct {
	// Upstreams are the upstream API's addresses, host:port. With more
	// than one, requests go to the least loaded.
	Upstreams []string
	// UsernameMode says where the username is. Default UsernamePath.
	UsernameMode UsernameMode
	// Rules classify requests: the first table, which Gateway.SetRules
	// may replace. Required.
	Rules *rules.Table
	// Queue receives change markers. Required.
	Queue Appender
	// Meta is reported in the gateway's own error answers.
	// Default {APIVersion: "1.9.3", Serial: "hookgate"}.
	Meta core.Meta

	// UpstreamTimeout bounds one upstream exchange, from sending the
	// request to reading the end of the response (streamed bodies
	// included). Past it the client gets 504. Default 30s.
	UpstreamTimeout time.Duration
	// DialTimeout bounds connecting to the upstream. Default 3s.
	DialTimeout time.Duration
	// MaxConnsPerUpstream caps open connections to each upstream address.
	// Requests wait for a free one up to UpstreamTimeout. Default 1024.
	MaxConnsPerUpstream int
	// Pprof serves Go's profiles under /debug/pprof/ on the operations
	// handler. Default off: a profile costs CPU, and the operations port
	// is often opened to a scraper.
	Pprof bool
	// MaxIdleConnDuration closes pooled upstream connections idle this
	// long. Default 4s: below Node's keep-alive timeout (5 s, Pryv's
	// default), so that hookgate closes an idle connection before the
	// upstream does. A request caught by the upstream closing one anyway
	// is sent again on a new connection (upconn.go).
	MaxIdleConnDuration time.Duration

	// ReadTimeout bounds reading a client's request, body included.
	// Default 60s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response to the client, body
	// included. Default 60s.
	WriteTimeout time.Duration
	// IdleTimeout closes idle client keep-alive connections. Default 60s.
	IdleTimeout time.Duration
	// MaxHeaderSize is the largest request or response head, in bytes.
	// Default 16 KiB. A larger request head gets 431.
	MaxHeaderSize int
	// MaxBodySize is the largest request body forwarded, in bytes; a
	// larger one gets 413 (at once when its Content-Length says so, else
	// when the streamed body passes it). 0 means no limit. Default 0 here;
	// the binary's -max-body sets 1 GiB.
	MaxBodySize int64
	// MaxConns caps concurrent client connections; past it new ones get
	// 503 and are closed. Default 10,000.
	MaxConns int
	// MaxConnsPerIP caps concurrent connections from one client address;
	// 0 means no cap. Default 0 here; the binary's -max-conns-per-ip sets
	// an eighth of -max-client-conns.
	MaxConnsPerIP int
	// MaxWebSockets caps the WebSocket connections hookgate passes to the
	// upstream at once; past it an upgrade gets 503. They count among
	// MaxConns too. Default 10,000.
	MaxWebSockets int
	// WebSocketIdleTimeout closes an upgraded connection that carried
	// nothing either way for this long. Default 2 minutes: socket.io
	// pings every 25 s.
	WebSocketIdleTimeout time.Duration
	// WebSocketMaxDuration, if set, closes an upgraded connection this
	// long after the upgrade, active or not.
	WebSocketMaxDuration time.Duration
	// webSocketEnded, for tests, is called each time an upgraded
	// connection has been let go of, both sides closed.
	webSocketEnded func()
	// BufferBodySize is the largest request body read into memory before
	// the request is forwarded; larger bodies are streamed. Default 64 KiB.
	BufferBodySize int
	// MaxClassifyBody is the largest batch-call or form-override body
	// (request or answer) the gateway reads to learn what changed; larger
	// requests of those kinds get 413. Default 16 MiB.
	MaxClassifyBody int
	// State, if set, reports whether the shared state answers (a
	// JetStream cluster's quorum): /readyz fails while it returns an
	// error.
	State func() error
	// Space, if set, is the data disk's reserve: /readyz fails while the
	// disk is below it.
	Space *store.Space

	// Webhooks serves /{username}/webhooks and webhooks.* batch calls.
	// Without it (and without WebhooksLater) those requests are proxied
	// like any other.
	Webhooks *webhooks.API
	// WebhooksLater: the webhooks API comes later, through SetWebhooks,
	// once its registry is loaded. Meanwhile the proxy works, changes are
	// queued, /readyz reports the webhooks as loading, and a webhooks
	// request waits for the API up to WebhooksWait, then answers 503
	// api-unavailable with Retry-After.
	WebhooksLater bool
	// WebhooksWait bounds how long a webhooks request waits for
	// SetWebhooks. Default 2s; a negative value does not wait.
	WebhooksWait time.Duration
	// AccessCacheTTL is how long an access-info answer is trusted.
	// Default 5s.
	AccessCacheTTL time.Duration
	// AccessCacheSize caps the cached access-info answers. Default 10000.
	AccessCacheSize int

	// Logger receives the gateway's logs. Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.WebhooksWait == 0 {
		o.WebhooksWait = 2 * time.Second // negative: no wait, kept
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.UpstreamTimeout, 30*time.Second)
	def(&o.DialTimeout, 3*time.Second)
	def(&o.MaxIdleConnDuration, 4*time.Second)
	def(&o.ReadTimeout, 60*time.Second)
	def(&o.WriteTimeout, 60*time.Second)
	def(&o.IdleTimeout, 60*time.Second)
	defInt(&o.MaxConnsPerUpstream, 1024)
	defInt(&o.MaxHeaderSize, 16<<10)
	defInt(&o.MaxConns, 10_000)
	defInt(&o.BufferBodySize, 64<<10)
	defInt(&o.MaxClassifyBody, 16<<20)
	def(&o.AccessCacheTTL, 5*time.Second)
	defInt(&o.MaxWebSockets, 10_000)
	def(&o.WebSocketIdleTimeout, 2*time.Minute)
	defInt(&o.AccessCacheSize, 10000)
	if o.Meta.APIVersion == "" {
		o.Meta.APIVersion = "1.9.3"
	}
	if o.Meta.Serial == "" {
		o.Meta.Serial = "hookgate"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}
