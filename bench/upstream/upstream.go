package upstream

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
)

// Access is a Pryv access: a token with a type and permissions.
type Access struct {
	ID          string       `json:"id"`
	Token       string       `json:"token"`
	Type        string       `json:"type"` // personal, app or shared
	Name        string       `json:"name"`
	Permissions []Permission `json:"permissions,omitempty"`
	Created     float64      `json:"created"`
	CreatedBy   string       `json:"createdBy"`
	Modified    float64      `json:"modified"`
	ModifiedBy  string       `json:"modifiedBy"`
}

// Permission is a stream permission of an app or shared access.
type Permission struct {
	StreamID string `json:"streamId"`
	Level    string `json:"level"`
}

// Options configures a Server. The zero value is valid.
type Options struct {
	// ServiceTime is added to every answer, to play an upstream doing
	// real work per request. Default 0.
	ServiceTime time.Duration
	// Meta is reported on every answer. Default {1.9.3, "demo"}.
	Meta core.Meta
	// Trivial answers every request with the same small JSON (201 for a
	// POST), doing no work: for benchmarks where the proxy's own cost must
	// dominate.
	Trivial bool
	// Users adds that many users, user00001 to userNNNNN, seeded like
	// alice and carol: for load tests with many webhooks.
	Users int
}

// Server is the demo API.
type Server struct {
	opts Options
	seq  atomic.Uint64

	mu     sync.Mutex // guards users and tokens
	users  map[string]*user
	tokens map[string]*Access
	names  []string // seeded usernames, in order
}

type user struct {
	name     string
	events   map[string]map[string]any
	streams  map[string]map[string]any
	accesses map[string]*Access
	account  map[string]any
}

// Seeded users and their tokens, printed by the demo binary.
var seedUsers = []string{"alice", "carol"}

// New returns a server with the seeded users: for each, a personal, an
// app and a shared access whose tokens are "<user>-personal",
// "<user>-app" and "<user>-shared", and a "diary" stream.
func New(o Options) *Server {
	if o.Meta.APIVersion == "" {
		o.Meta = core.Meta{APIVersion: "1.9.3", Serial: "demo"}
	}
	s := &Server{opts: o, users: map[string]*user{}, tokens: map[string]*Access{}}
	now := nowSeconds()
	names := append([]string(nil), seedUsers...)
	for i := 1; i <= o.Users; i++ {
		names = append(names, fmt.Sprintf("user%05d", i))
	}
	s.names = names
	for _, name := range names {
		u := &user{name: name, events: map[string]map[string]any{}, streams: map[string]map[string]any{},
			accesses: map[string]*Access{}, account: map[string]any{"username": name, "email": name + "@example.com", "language": "en"}}
		u.streams["diary"] = map[string]any{"id": "diary", "name": "Diary", "parentId": nil, "created": now, "createdBy": "system"}
		for _, typ := range []string{"personal", "app", "shared"} {
			a := &Access{ID: name + "-" + typ + "-id", Token: name + "-" + typ, Type: typ, Name: "demo " + typ,
				Created: now, CreatedBy: "system", Modified: now, ModifiedBy: "system"}
			if typ != "personal" {
				a.Permissions = []Permission{{StreamID: "diary", Level: "manage"}}
			}
			u.accesses[a.ID] = a
			s.tokens[a.Token] = a
		}
		s.users[name] = u
	}
	return s
}

// Accesses returns the seeded and created accesses of a user, sorted by id.
func (s *Server) Accesses(username string) []Access {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[username]
	if u == nil {
		return nil
	}
	var out []Access
	for _, a := range u.accesses {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Users returns the seeded usernames: alice, carol, then user00001 on.
func (s *Server) Users() []string { return append([]string(nil), s.names...) }

// Start serves on addr ("127.0.0.1:0" for any port) and returns the
// address it listens on and a function that stops it.
func (s *Server) Start(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := s.FastServer()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Shutdown(); <-done }, nil
}

// FastServer returns a fasthttp server for s.
func (s *Server) FastServer() *fasthttp.Server {
	return &fasthttp.Server{Handler: s.Handle, MaxRequestBodySize: 256 << 20, Name: "pryv-demo", ReadBufferSize: 16 << 10}
}

var trivialBody = []byte(`{"events":[],"meta":{"apiVersion":"1.9.3","serverTime":1795436682.278,"serial":"demo"}}`)

// Handle serves one request.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	if s.opts.ServiceTime > 0 {
		time.Sleep(s.opts.ServiceTime)
	}
	if s.opts.Trivial {
		if ctx.IsPost() {
			ctx.SetStatusCode(fasthttp.StatusCreated)
		}
		ctx.SetContentType("application/json; charset=utf-8")
		ctx.Response.SetBodyRaw(trivialBody)
		return
	}
	ctx.Response.Header.Set("API-Version", s.opts.Meta.APIVersion)
	name, rest := s.route(ctx)
	if name == "" {
		if len(rest) == 0 || (len(rest) == 1 && rest[0] == "") {
			s.answer(ctx, 200, map[string]any{"cheersFrom": "Pryv demo API"})
			return
		}
		s.fail(ctx, 404, "unknown-resource", "Unknown user or resource")
		return
	}
	a, status, id, msg := s.authenticate(ctx, name)
	if a == nil {
		s.fail(ctx, status, id, msg)
		return
	}
	ctx.Response.Header.Set("Pryv-Access-Id", a.ID)
	method := string(ctx.Method())
	var params map[string]any
	body := ctx.PostBody()
	if form := ctx.Request.Header.ContentType(); strings.HasPrefix(string(form), "application/x-www-form-urlencoded") && method == "POST" {
		args := ctx.PostArgs()
		if m := args.Peek("_method"); len(m) > 0 {
			method = strings.ToUpper(string(m))
		}
		body = args.Peek("_json")
	}
	if len(body) > 0 && !strings.HasPrefix(string(ctx.Request.Header.ContentType()), "multipart/") {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			s.fail(ctx, 400, "invalid-request-structure", "The request body is not valid JSON.")
			return
		}
		if m, ok := v.(map[string]any); ok {
			params = m
		} else if list, ok := v.([]any); ok && method == "POST" && (len(rest) == 0 || rest[0] == "") {
			s.batch(ctx, name, a, list)
			return
		}
	}
	call, args := s.methodFor(method, rest, params, ctx)
	if call == "" {
		s.fail(ctx, 404, "unknown-resource", "Unknown route "+method+" /"+strings.Join(rest, "/"))
		return
	}
	res, st, e := s.call(name, a, call, args)
	if e != nil {
		s.answer(ctx, st, map[string]any{"error": e})
		return
	}
	s.answer(ctx, st, res)
}

// route finds the user (first path segment, else first host label) and
// the path segments below the user's root.
func (s *Server) route(ctx *fasthttp.RequestCtx) (string, []string) {
	segs := strings.Split(strings.Trim(string(ctx.Path()), "/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[segs[0]]; ok {
		return segs[0], segs[1:]
	}
	host := string(ctx.Host())
	if i := strings.IndexByte(host, '.'); i > 0 {
		if _, ok := s.users[host[:i]]; ok {
			return host[:i], segs
		}
	}
	return "", segs
}

// Token reads a Pryv token in any accepted form: Authorization raw, Basic,
// Bearer (the part before a space is the token; what follows is a caller
// id), or the auth query parameter.
func Token(ctx *fasthttp.RequestCtx) string {
	h := string(ctx.Request.Header.Peek("Authorization"))
	switch {
	case strings.HasPrefix(h, "Basic "):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[6:]))
		if err != nil {
			return ""
		}
		tok, _, _ := strings.Cut(string(raw), ":")
		return tok
	case strings.HasPrefix(h, "Bearer "), strings.HasPrefix(h, "DPoP "):
		_, tok, _ := strings.Cut(h, " ")
		return strings.TrimSpace(tok)
	case h != "":
		tok, _, _ := strings.Cut(h, " ")
		return tok
	}
	if a := ctx.QueryArgs().Peek("auth"); len(a) > 0 {
		return string(a)
	}
	return string(ctx.PostArgs().Peek("_auth"))
}

func (s *Server) authenticate(ctx *fasthttp.RequestCtx, name string) (*Access, int, string, string) {
	tok := Token(ctx)
	if tok == "" {
		return nil, 401, "invalid-access-token", `The access token is missing: expected an "Authorization" header or an "auth" query string parameter.`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.tokens[tok]
	if a == nil || s.users[name].accesses[a.ID] == nil {
		return nil, 403, "invalid-access-token", "Cannot find access from token."
	}
	cp := *a
	return &cp, 0, "", ""
}

// methodFor maps an HTTP route to a Pryv method id and its params.
func (s *Server) methodFor(method string, rest []string, params map[string]any, ctx *fasthttp.RequestCtx) (string, map[string]any) {
	if params == nil {
		params = map[string]any{}
	}
	res := ""
	if len(rest) > 0 {
		res = rest[0]
	}
	id := ""
	if len(rest) > 1 {
		id = rest[1]
	}
	switch {
	case res == "access-info" && method == "GET":
		return "getAccessInfo", params
	case res == "account" && len(rest) == 1 && method == "GET":
		return "account.get", params
	case res == "account" && len(rest) == 1 && method == "PUT":
		return "account.update", map[string]any{"update": params}
	case res == "account" && id == "change-password" && method == "POST":
		return "account.changePassword", params
	case res == "events" || res == "streams" || res == "accesses":
	default:
		return "", nil
	}
	switch {
	case method == "GET" && id == "":
		return res + ".get", params
	case method == "GET" && len(rest) == 2:
		return res + ".getOne", map[string]any{"id": id}
	case method == "POST" && id == "" && res == "events" && len(ctx.Request.Header.MultipartFormBoundary()) > 0:
		return "events.create", s.multipartEvent(ctx)
	case method == "POST" && id == "":
		return res + ".create", params
	case method == "POST" && res == "events" && len(rest) == 2:
		p := s.multipartEvent(ctx)
		p["id"] = id
		return "events.addAttachment", p
	case method == "PUT" && len(rest) == 2:
		return res + ".update", map[string]any{"id": id, "update": params}
	case method == "DELETE" && len(rest) == 2:
		return res + ".delete", map[string]any{"id": id}
	case method == "DELETE" && res == "events" && len(rest) == 3:
		return "events.deleteAttachment", map[string]any{"id": id, "fileId": rest[2]}
	}
	return "", nil
}

// multipartEvent reads a Pryv multipart upload: an "event" JSON part and
// file parts, which are recorded by name and size.
func (s *Server) multipartEvent(ctx *fasthttp.RequestCtx) map[string]any {
	p := map[string]any{}
	form, err := ctx.MultipartForm()
	if err != nil {
		return p
	}
	for _, v := range form.Value["event"] {
		_ = json.Unmarshal([]byte(v), &p)
	}
	var files []any
	for field, fhs := range form.File {
		for _, fh := range fhs {
			files = append(files, map[string]any{"id": s.newID(), "fileName": fh.Filename, "size": fh.Size, "field": field})
		}
	}
	p["attachments"] = files
	return p
}

func (s *Server) batch(ctx *fasthttp.RequestCtx, name string, a *Access, list []any) {
	results := make([]any, len(list))
	for i, item := range list {
		m, _ := item.(map[string]any)
		method, _ := m["method"].(string)
		params, _ := m["params"].(map[string]any)
		if params == nil {
			params = map[string]any{}
		}
		res, _, e := s.call(name, a, method, params)
		if e != nil {
			results[i] = map[string]any{"error": e}
		} else {
			delete(res, "meta")
			results[i] = res
		}
	}
	s.answer(ctx, 200, map[string]any{"results": results})
}

func (s *Server) answer(ctx *fasthttp.RequestCtx, status int, v map[string]any) {
	var meta map[string]any
	_ = json.Unmarshal(s.opts.Meta.AppendMeta(nil, time.Now().UnixNano()), &meta)
	v["meta"] = meta
	b, err := json.Marshal(v)
	if err != nil {
		status, b = 500, s.opts.Meta.AppendError(nil, time.Now().UnixNano(), "unexpected-error", err.Error())
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(b)
}

func (s *Server) fail(ctx *fasthttp.RequestCtx, status int, id, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(s.opts.Meta.AppendError(nil, time.Now().UnixNano(), id, msg))
}

// newID returns a cuid-like id: 'c', a base-36 time and counter, random.
func (s *Server) newID() string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return "c" + strconv.FormatInt(time.Now().UnixMilli(), 36) + strconv.FormatUint(s.seq.Add(1), 36) +
		fmt.Sprintf("%08x", r)
}

func nowSeconds() float64 { return float64(time.Now().UnixMilli()) / 1000 }
