package webhooks

import (
	"errors"
	"fmt"
	"time"

	json "github.com/goccy/go-json"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/state"
)

// Access is the caller, as the upstream's access-info describes it.
type Access struct {
	ID   string
	Type string // core.AccessPersonal, AccessApp or AccessShared
	// Streams, if set, tells which streams the access can read, for
	// scopes that name streams.
	Streams StreamTree
}

// Tester sends one notification for webhooks.test.
type Tester interface {
	// Post sends body to url once, with extra headers, and returns the
	// HTTP status, or an error when no answer came (refused address,
	// timeout, ...).
	Post(url string, body []byte, headers [][2]string) (status int, err error)
}

// Options configures an API. The zero value is valid but for Tester.
type Options struct {
	// MinIntervalMs is stamped on new webhooks. Default 5000.
	MinIntervalMs int64
	// MaxRetries is stamped on new webhooks. Default 5.
	MaxRetries int
	// MinIntervalFloorMs is the smallest minIntervalMs a client may ask
	// for at creation. Default 1000.
	MinIntervalFloorMs int64
	// MaxRetriesCeiling is the largest maxRetries a client may ask for at
	// creation. Default 20.
	MaxRetriesCeiling int
	// MaxPerAccess caps the webhooks of one access. Default 100; a
	// negative value removes the cap.
	MaxPerAccess int
	// Tester sends webhooks.test notifications. Without it, test answers
	// 400 unknown-referenced-resource.
	Tester Tester
	// Meta goes into the test notification.
	Meta core.Meta
	// Reachable, if set, tells whether notifications may go to a URL's
	// host: an address the delivery client refuses (private, link-local,
	// a cloud metadata address) is refused at creation, rather than
	// stored and failed at every delivery. It returns why not, or "".
	Reachable func(host string) string
	// RotationGrace is how long a rotated signing secret still signs
	// notifications, beside the new one. Default 24h.
	RotationGrace time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// API runs the webhooks methods.
type API struct {
	store state.Registry
	opts  Options
}

// NewAPI returns an API over the registry s.
func NewAPI(s state.Registry, o Options) *API {
	if o.MinIntervalMs <= 0 {
		o.MinIntervalMs = 5000
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 5
	}
	if o.MinIntervalFloorMs <= 0 {
		o.MinIntervalFloorMs = 1000
	}
	if o.MaxRetriesCeiling <= 0 {
		o.MaxRetriesCeiling = 20
	}
	if o.MaxPerAccess == 0 {
		o.MaxPerAccess = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RotationGrace <= 0 {
		o.RotationGrace = 24 * time.Hour
	}
	return &API{store: s, opts: o}
}

// Store returns the API's registry.
func (a *API) Store() state.Registry { return a.store }

// Error is a Pryv API error with its HTTP status.
type Error struct {
	Status  int    `json:"-"`
	ID      string `json:"id"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string { return e.ID + ": " + e.Message }

func errorf(status int, id, format string, args ...any) *Error {
	return &Error{Status: status, ID: id, Message: fmt.Sprintf(format, args...)}
}

// Result is a method's answer: Key names the result (webhook, webhooks,
// webhookDeletion) and Status is the HTTP status of a plain call.
type Result struct {
	Status int
	Key    string
	Value  any
}

// IsMethod reports whether id is a webhooks method this API answers.
func IsMethod(id string) bool {
	switch id {
	case "webhooks.get", "webhooks.getOne", "webhooks.create", "webhooks.update", "webhooks.delete", "webhooks.test",
		"webhooks.rotateSecret":
		return true
	}
	return false
}

// Call runs method for the caller acc on user's webhooks. params is the
// method's JSON params as in a Pryv batch call: the webhook for create,
// {id} for getOne, delete and test, {id, update} for update.
func (a *API) Call(acc Access, user, method string, params []byte) (Result, *Error) {
	switch method {
	case "webhooks.get":
		return a.list(acc, user)
	case "webhooks.create":
		return a.create(acc, user, params)
	case "webhooks.getOne", "webhooks.delete", "webhooks.test":
		id, perr := idParam(params)
		if perr != nil {
			return Result{}, perr
		}
		w, perr := a.owned(acc, user, id, method)
		if perr != nil {
			return Result{}, perr
		}
		switch method {
		case "webhooks.getOne":
			return Result{200, "webhook", w}, nil
		case "webhooks.delete":
			return a.delete(user, w)
		default:
			return a.test(w)
		}
	case "webhooks.update":
		return a.update(acc, user, params)
	case "webhooks.rotateSecret":
		id, perr := idParam(params)
		if perr != nil {
			return Result{}, perr
		}
		if _, perr := a.owned(acc, user, id, "webhooks.update"); perr != nil {
			return Result{}, perr
		}
		return a.rotate(acc, user, id)
	}
	return Result{}, errorf(400, "invalid-method", "Invalid method %q", method)
}

func (a *API) list(acc Access, user string) (Result, *Error) {
	switch core.Permission(core.OpList, acc.Type, acc.ID, "") {
	case core.AllOfUser:
		return Result{200, "webhooks", a.store.List(user, "")}, nil
	default:
		return Result{200, "webhooks", a.store.List(user, acc.ID)}, nil
	}
}

func (a *API) create(acc Access, user string, params []byte) (Result, *Error) {
	if core.Permission(core.OpCreate, acc.Type, acc.ID, "") != core.Allowed {
		return Result{}, errorf(403, "forbidden", "You cannot access webhooks.create resource using the given access")
	}
	c, perr := a.parseCreate(params)
	if perr != nil {
		return Result{}, perr
	}
	now := seconds(a.opts.Now())
	w := &core.Webhook{
		ID: core.NewID(), AccessID: acc.ID, URL: c.url, User: user,
		MinIntervalMs: a.opts.MinIntervalMs, MaxRetries: a.opts.MaxRetries, State: core.StateActive,
		Runs: []core.Run{}, Created: now, CreatedBy: acc.ID, Modified: now, ModifiedBy: acc.ID,
	}
	if c.minIntervalMs != nil {
		w.MinIntervalMs = *c.minIntervalMs
	}
	if c.maxRetries != nil {
		w.MaxRetries = *c.maxRetries
	}
	if c.state != "" {
		w.State = c.state
	}
	if c.scopes != nil {
		if w.Scopes, perr = parseScopes(c.scopes, acc); perr != nil {
			return Result{}, perr
		}
	}
	if c.signed {
		w.Signed, w.Secret = true, core.NewSigningSecret()
	}
	maxPer := a.opts.MaxPerAccess
	if maxPer < 0 {
		maxPer = 0
	}
	switch err := a.store.Create(w, maxPer); {
	case errors.Is(err, ErrDuplicateURL):
		e := errorf(409, "item-already-exists", "A webhook with url %q already exists", w.URL)
		e.Data = map[string]string{"url": w.URL}
		return Result{}, e
	case errors.Is(err, ErrCapReached):
		return Result{}, errorf(400, "invalid-operation", "This access already has %d webhooks, the most hookgate allows per access.", maxPer)
	case err != nil:
		return Result{}, storeError(err, "stored")
	}
	if w.Signed {
		return Result{201, "webhook", withSecret{w, w.Secret}}, nil // the only time it is shown
	}
	return Result{201, "webhook", w}, nil
}

// storeError is the API's answer to a store that could not write: 503
// while the disk is below its reserve (try again later), else 500.
func storeError(err error, what string) *Error {
	if errors.Is(err, store.ErrNoSpace) {
		return errorf(503, "api-unavailable", "The webhook could not be %s: hookgate's disk is nearly full. Try again later.", what)
	}
	if errors.Is(err, state.ErrUnavailable) {
		return errorf(503, "api-unavailable", "The webhook could not be %s: hookgate's shared state does not answer. Try again later.", what)
	}
	return errorf(500, "unexpected-error", "The webhook could not be %s.", what)
}

// withSecret is a created webhook with its signing secret, shown once.
type withSecret struct {
	*core.Webhook
	SigningSecret string `json:"signingSecret"`
}

// owned looks up id and checks the caller may act on it: 404 first, then
// 403, as Pryv does.
func (a *API) owned(acc Access, user, id, method string) (*core.Webhook, *Error) {
	w, ok := a.store.Get(user, id)
	if !ok {
		return nil, errorf(404, "unknown-resource", "Unknown webhook %q", id)
	}
	op := map[string]core.Op{"webhooks.getOne": core.OpGetOne, "webhooks.update": core.OpUpdate,
		"webhooks.delete": core.OpDelete, "webhooks.test": core.OpTest}[method]
	if core.Permission(op, acc.Type, acc.ID, w.AccessID) != core.Allowed {
		if op == core.OpGetOne {
			return nil, errorf(403, "forbidden", "The webhook was not created by this access.")
		}
		return nil, errorf(403, "forbidden", "The webhook was not created by this app access.")
	}
	return w, nil
}

func (a *API) update(acc Access, user string, params []byte) (Result, *Error) {
	id, state, rawScopes, perr := parseUpdate(params)
	if perr != nil {
		return Result{}, perr
	}
	if _, perr := a.owned(acc, user, id, "webhooks.update"); perr != nil {
		return Result{}, perr
	}
	var scopes *core.Scopes
	if rawScopes != nil {
		if scopes, perr = parseScopes(rawScopes, acc); perr != nil {
			return Result{}, perr
		}
	}
	now := seconds(a.opts.Now())
	w, err := a.store.Update(user, id, func(w *core.Webhook) error {
		if state != "" {
			w.State = state
			if state == core.StateActive {
				w.CurrentRetries = 0
			}
		}
		if rawScopes != nil { // the whole map is replaced
			w.Scopes = scopes
		}
		w.Modified, w.ModifiedBy = now, acc.ID
		return nil
	})
	switch {
	case errors.Is(err, ErrNotFound): // deleted meanwhile
		return Result{}, errorf(404, "unknown-resource", "Unknown webhook %q", id)
	case err != nil:
		return Result{}, storeError(err, "stored")
	}
	return Result{200, "webhook", w}, nil
}

// rotated is webhooks.rotateSecret's result: the webhook, its new secret,
// shown this once, and until when the previous one still signs.
type rotated struct {
	*core.Webhook
	SigningSecret            string  `json:"signingSecret"`
	PreviousSecretValidUntil float64 `json:"previousSecretValidUntil"`
}

// rotate gives a signed webhook a new signing secret. For RotationGrace,
// notifications carry a signature under each (Standard Webhooks lets a
// header hold several), so that a receiver can switch without refusing
// one. A rotation during another's grace drops the oldest secret.
func (a *API) rotate(acc Access, user, id string) (Result, *Error) {
	now := a.opts.Now()
	w, err := a.store.Update(user, id, func(w *core.Webhook) error {
		if !w.Signed {
			return errNotSigned
		}
		w.PreviousSecret, w.PreviousUntil = w.Secret, seconds(now.Add(a.opts.RotationGrace))
		w.Secret = core.NewSigningSecret()
		w.Modified, w.ModifiedBy = seconds(now), acc.ID
		return nil
	})
	switch {
	case errors.Is(err, errNotSigned):
		return Result{}, errorf(400, "invalid-operation", "The webhook is not signed: it has no secret to rotate (create it with \"signed\": true).")
	case errors.Is(err, ErrNotFound):
		return Result{}, errorf(404, "unknown-resource", "Unknown webhook %q", id)
	case err != nil:
		return Result{}, storeError(err, "stored")
	}
	return Result{200, "webhook", rotated{w, w.Secret, w.PreviousUntil}}, nil
}

var errNotSigned = errors.New("not signed")

// LearnStream puts stream id into every scope of user's webhooks that
// holds parent: a stream created or moved below a scope's stream is in
// the scope from then on. A stream moved out stays in (a notification
// too many, never one missed).
func (a *API) LearnStream(user, id, parent string) error {
	for _, w := range a.store.List(user, "") {
		if w.Scopes == nil {
			continue
		}
		if _, changed := w.Scopes.Learn(id, parent); !changed {
			continue
		}
		_, err := a.store.Update(user, w.ID, func(w *core.Webhook) error {
			if w.Scopes != nil {
				w.Scopes, _ = w.Scopes.Learn(id, parent)
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

func (a *API) delete(user string, w *core.Webhook) (Result, *Error) {
	switch err := a.store.Delete(user, w.ID); {
	case errors.Is(err, ErrNotFound):
		return Result{}, errorf(404, "unknown-resource", "Unknown webhook %q", w.ID)
	case err != nil:
		return Result{}, storeError(err, "deleted")
	}
	return Result{200, "webhookDeletion", deletion{ID: w.ID, Deleted: seconds(a.opts.Now())}}, nil
}

// deletion is webhooks.delete's result, fields in Pryv's order.
type deletion struct {
	ID      string  `json:"id"`
	Deleted float64 `json:"deleted"`
}

// test sends {"messages":["test"],"meta":{...}} once, signed when the
// webhook is; it is not a run.
func (a *API) test(w *core.Webhook) (Result, *Error) {
	fail := func() (Result, *Error) {
		e := errorf(400, "unknown-referenced-resource", "Unknown referenced webhook %q", w.URL)
		e.Data = map[string]string{"url": w.URL}
		return Result{}, e
	}
	if a.opts.Tester == nil {
		return fail()
	}
	now := a.opts.Now()
	body := append([]byte(`{"messages":["test"],"meta":`), a.opts.Meta.AppendMeta(nil, now.UnixNano())...)
	body = append(body, '}')
	var headers [][2]string
	if w.Signed {
		// Signed as every notification of the webhook is, so that a
		// receiver that verifies takes the test too.
		var err error
		secret, also := w.SigningSecrets(seconds(now))
		if headers, err = core.SignatureHeaders(secret, core.NewMsgID(), now.Unix(), body, also...); err != nil {
			return fail()
		}
	}
	status, err := a.opts.Tester.Post(w.URL, body, headers)
	if err != nil || status < 200 || status > 299 {
		return fail()
	}
	return Result{200, "webhook", w}, nil
}

func seconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// MarshalResult encodes {"<key>": value} followed by extra, for a plain
// answer (extra is `,"meta":{...}`) or a batch slot (extra empty). Like
// Pryv, it does not escape <, > and & in strings.
func MarshalResult(r Result, extra []byte) []byte {
	v, err := json.MarshalWithOption(r.Value, json.DisableHTMLEscape())
	if err != nil {
		panic("BUG: webhook result does not encode: " + err.Error())
	}
	b := make([]byte, 0, len(v)+len(r.Key)+len(extra)+8)
	b = append(b, '{')
	b = core.AppendJSONString(b, r.Key)
	b = append(b, ':')
	b = append(b, v...)
	b = append(b, extra...)
	return append(b, '}')
}

// MarshalError encodes {"error": {...}} followed by extra.
func MarshalError(e *Error, extra []byte) []byte {
	v, err := json.MarshalWithOption(e, json.DisableHTMLEscape())
	if err != nil {
		panic("BUG: error does not encode: " + err.Error())
	}
	b := append([]byte(`{"error":`), v...)
	b = append(b, extra...)
	return append(b, '}')
}
