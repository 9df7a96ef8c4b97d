// Package admin is hookgate's operator API: webhooks across users, their
// runs and what the delivery engine holds of them, and the actions an
// operator needs (deactivate, reactivate, redeliver, stop a host). It is
// served under /admin/ on the ops listener, behind a key.
package admin

import (
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/delivery"
	"github.com/hookgate/hookgate/state"
)

// Engine is what the API asks of the delivery engine; *delivery.Engine
// implements it.
type Engine interface {
	Inspect(id string) (delivery.Delivery, bool)
	Redeliver(id string) (n int, ok bool)
}

// API serves the operator API. Its zero value is not usable: see New.
type API struct {
	key []byte
	log *slog.Logger
	st  atomic.Pointer[loaded]
}

type loaded struct {
	reg state.Registry
	eng Engine
}

// New returns an API that takes requests bearing key ("Authorization:
// Bearer <key>"). With an empty key it answers 404 to everything: the
// operator API is off.
func New(key string, log *slog.Logger) *API {
	if log == nil {
		log = slog.Default()
	}
	return &API{key: []byte(key), log: log}
}

// Enabled reports whether the API has a key.
func (a *API) Enabled() bool { return len(a.key) > 0 }

// Set hands over the registry and the engine once the webhooks are
// loaded; until then the API answers 503.
func (a *API) Set(reg state.Registry, eng Engine) { a.st.Store(&loaded{reg, eng}) }

// Limits of a listing.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Summary is a webhook in a listing: its record without runs or secret,
// with its user.
type Summary struct {
	ID             string   `json:"id"`
	User           string   `json:"user"`
	AccessID       string   `json:"accessId"`
	URL            string   `json:"url"`
	State          string   `json:"state"`
	CurrentRetries int      `json:"currentRetries"`
	MaxRetries     int      `json:"maxRetries"`
	RunCount       int      `json:"runCount"`
	FailCount      int      `json:"failCount"`
	LastRun        core.Run `json:"lastRun"`
	Created        float64  `json:"created"`
	Modified       float64  `json:"modified"`
	Signed         bool     `json:"signed,omitempty"`
	Scoped         bool     `json:"scoped,omitempty"`
}

func summary(w *core.Webhook) Summary {
	return Summary{ID: w.ID, User: w.User, AccessID: w.AccessID, URL: w.URL, State: w.State, CurrentRetries: w.CurrentRetries,
		MaxRetries: w.MaxRetries, RunCount: w.RunCount, FailCount: w.FailCount, LastRun: w.LastRun, Created: w.Created,
		Modified: w.Modified, Signed: w.Signed, Scoped: w.Scopes != nil}
}

// Filter selects webhooks for a listing; zero fields select all.
type Filter struct {
	State   string // active or inactive
	Failing bool   // with failures in a row (currentRetries > 0)
	Host    string // the URL's host name, any case
	User    string
	After   string // ids after this one, for the next page
	Limit   int
}

func (f Filter) match(w *core.Webhook) bool {
	return (f.State == "" || w.State == f.State) && (!f.Failing || w.CurrentRetries > 0) &&
		(f.User == "" || w.User == f.User) && (f.Host == "" || strings.EqualFold(HostOf(w.URL), f.Host)) &&
		w.ID > f.After
}

// HostOf returns the host name of a webhook URL, "" if it has none.
func HostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Hostname()
}

// List returns the webhooks f selects, by id, at most f.Limit of them,
// and the id to list after for the next page ("" on the last).
func List(reg state.Registry, f Filter) ([]Summary, string) {
	if f.Limit <= 0 {
		f.Limit = DefaultLimit
	}
	f.Limit = min(f.Limit, MaxLimit)
	// The Limit+1 smallest ids that match, kept sorted: a page of a
	// million webhooks costs one pass, not a sort of them all.
	var out []Summary
	reg.Each(func(w *core.Webhook) bool {
		if !f.match(w) {
			return true
		}
		if len(out) > f.Limit && w.ID >= out[len(out)-1].ID {
			return true
		}
		i, _ := slices.BinarySearchFunc(out, w.ID, func(s Summary, id string) int { return strings.Compare(s.ID, id) })
		out = slices.Insert(out, i, summary(w))
		if len(out) > f.Limit+1 {
			out = out[:f.Limit+1]
		}
		return true
	})
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[len(out)-1].ID
	}
	if out == nil {
		out = []Summary{}
	}
	return out, next
}

// Handler serves the API's routes, under /admin/.
func (a *API) Handler(ctx *fasthttp.RequestCtx) {
	if !a.Enabled() {
		ctx.Error("not found", fasthttp.StatusNotFound)
		return
	}
	tok, ok := strings.CutPrefix(string(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), a.key) != 1 {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="hookgate admin"`)
		a.fail(ctx, fasthttp.StatusUnauthorized, "invalid-access-token", "The admin API needs the admin key: Authorization: Bearer <key>.")
		return
	}
	st := a.st.Load()
	if st == nil {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		a.fail(ctx, fasthttp.StatusServiceUnavailable, "api-unavailable", "Webhooks are loading; try again in a second.")
		return
	}
	segs := strings.Split(strings.Trim(strings.TrimPrefix(string(ctx.Path()), "/admin"), "/"), "/")
	get, post := ctx.IsGet(), ctx.IsPost()
	switch {
	case len(segs) == 1 && segs[0] == "webhooks" && get:
		a.list(ctx, st)
	case len(segs) == 2 && segs[0] == "webhooks" && get:
		a.get(ctx, st, segs[1])
	case len(segs) == 3 && segs[0] == "webhooks" && post && (segs[2] == "deactivate" || segs[2] == "reactivate"):
		a.setState(ctx, st, segs[1], segs[2] == "reactivate")
	case len(segs) == 3 && segs[0] == "webhooks" && post && segs[2] == "redeliver":
		a.redeliver(ctx, st, segs[1])
	case len(segs) == 3 && segs[0] == "hosts" && post && segs[2] == "deactivate":
		a.deactivateHost(ctx, st, segs[1])
	default:
		a.fail(ctx, fasthttp.StatusNotFound, "unknown-resource", "Unknown admin route "+string(ctx.Method())+" "+string(ctx.Path()))
	}
}

func (a *API) list(ctx *fasthttp.RequestCtx, st *loaded) {
	q := ctx.QueryArgs()
	f := Filter{State: string(q.Peek("state")), Host: string(q.Peek("host")), User: string(q.Peek("user")), After: string(q.Peek("after"))}
	if f.State != "" && f.State != core.StateActive && f.State != core.StateInactive {
		a.fail(ctx, fasthttp.StatusBadRequest, "invalid-parameters-format", `state must be "active" or "inactive"`)
		return
	}
	if v := string(q.Peek("failing")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			a.fail(ctx, fasthttp.StatusBadRequest, "invalid-parameters-format", "failing must be true or false")
			return
		}
		f.Failing = b
	}
	if v := string(q.Peek("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			a.fail(ctx, fasthttp.StatusBadRequest, "invalid-parameters-format", "limit must be 1 to "+strconv.Itoa(MaxLimit))
			return
		}
		f.Limit = n
	}
	list, next := List(st.reg, f)
	a.answer(ctx, fasthttp.StatusOK, struct {
		Webhooks []Summary `json:"webhooks"`
		Next     string    `json:"next,omitempty"`
	}{list, next})
}

// Detail is one webhook for an operator: its record with runs, and what
// the engine holds of it.
type Detail struct {
	Webhook  *core.Webhook     `json:"webhook"`
	User     string            `json:"user"`
	Delivery delivery.Delivery `json:"delivery"`
}

func (a *API) get(ctx *fasthttp.RequestCtx, st *loaded, id string) {
	w := a.find(ctx, st, id)
	if w == nil {
		return
	}
	d, _ := st.eng.Inspect(id)
	if d.Pending == nil {
		d.Pending = []string{}
	}
	a.answer(ctx, fasthttp.StatusOK, Detail{Webhook: w, User: w.User, Delivery: d})
}

// find returns webhook id with its runs, or answers 404.
func (a *API) find(ctx *fasthttp.RequestCtx, st *loaded, id string) *core.Webhook {
	if w := st.reg.ByID(id); w != nil {
		if full, ok := st.reg.Get(w.User, id); ok {
			return full
		}
	}
	a.fail(ctx, fasthttp.StatusNotFound, "unknown-resource", "Unknown webhook "+strconv.Quote(id))
	return nil
}

// setState deactivates or reactivates a webhook, as an app's PUT of
// state would (reactivation resets currentRetries), without touching
// modified and modifiedBy, which tell of the app's own changes.
func (a *API) setState(ctx *fasthttp.RequestCtx, st *loaded, id string, active bool) {
	w := st.reg.ByID(id)
	if w == nil {
		a.fail(ctx, fasthttp.StatusNotFound, "unknown-resource", "Unknown webhook "+strconv.Quote(id))
		return
	}
	to := core.StateInactive
	if active {
		to = core.StateActive
	}
	got, err := st.reg.Update(w.User, id, func(w *core.Webhook) error {
		w.State = to
		if active {
			w.CurrentRetries = 0
		}
		return nil
	})
	if err != nil {
		a.storeFail(ctx, err, id)
		return
	}
	a.log.Info("admin: webhook state set", "webhook", id, "user", got.User, "state", to)
	a.answer(ctx, fasthttp.StatusOK, struct {
		Webhook *core.Webhook `json:"webhook"`
	}{got})
}

func (a *API) redeliver(ctx *fasthttp.RequestCtx, st *loaded, id string) {
	w := st.reg.ByID(id)
	if w == nil {
		a.fail(ctx, fasthttp.StatusNotFound, "unknown-resource", "Unknown webhook "+strconv.Quote(id))
		return
	}
	if w.State != core.StateActive {
		a.fail(ctx, fasthttp.StatusConflict, "invalid-operation", "The webhook is inactive: reactivate it first.")
		return
	}
	n, ok := st.eng.Redeliver(id)
	if !ok {
		a.fail(ctx, fasthttp.StatusConflict, "invalid-operation", "Nothing to send now: nothing is pending, or a delivery is in flight.")
		return
	}
	a.log.Info("admin: redelivery", "webhook", id, "messages", n)
	a.answer(ctx, fasthttp.StatusOK, struct {
		Messages int `json:"messages"`
	}{n})
}

// deactivateHost deactivates every active webhook whose URL's host is
// host: a receiver that abuses or suffers from the traffic is left alone
// at once.
func (a *API) deactivateHost(ctx *fasthttp.RequestCtx, st *loaded, host string) {
	var hits []*core.Webhook
	st.reg.Each(func(w *core.Webhook) bool {
		if w.State == core.StateActive && strings.EqualFold(HostOf(w.URL), host) {
			hits = append(hits, &core.Webhook{ID: w.ID, User: w.User})
		}
		return true
	})
	ids := []string{}
	for _, w := range hits {
		_, err := st.reg.Update(w.User, w.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil })
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			a.storeFail(ctx, err, w.ID)
			return
		}
		ids = append(ids, w.ID)
	}
	a.log.Info("admin: host's webhooks deactivated", "host", host, "webhooks", len(ids))
	a.answer(ctx, fasthttp.StatusOK, struct {
		Deactivated []string `json:"deactivated"`
	}{ids})
}

func (a *API) storeFail(ctx *fasthttp.RequestCtx, err error, id string) {
	if errors.Is(err, state.ErrNotFound) {
		a.fail(ctx, fasthttp.StatusNotFound, "unknown-resource", "Unknown webhook "+strconv.Quote(id))
		return
	}
	a.log.Error("admin: cannot store a change", "webhook", id, "err", err)
	a.fail(ctx, fasthttp.StatusInternalServerError, "unexpected-error", "The change could not be stored.")
}

func (a *API) answer(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.MarshalWithOption(v, json.DisableHTMLEscape())
	if err != nil {
		panic("BUG: admin answer does not encode: " + err.Error())
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(b)
}

func (a *API) fail(ctx *fasthttp.RequestCtx, status int, id, message string) {
	a.answer(ctx, status, map[string]map[string]string{"error": {"id": id, "message": message}})
}
