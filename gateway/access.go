package gateway

import (
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/gateway/webhooks"
)

// tokenOf reads a Pryv token in every form Pryv accepts (PRYV-WEBHOOKS.md
// §7.3): Authorization as the raw token ("<token> <callerId>" keeps the
// part before the space), Basic (the user part), Bearer or DPoP, then the
// auth query parameter, then formAuth (the _auth form field).
func tokenOf(ctx *fasthttp.RequestCtx, formAuth string) string {
	h := string(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	switch {
	case len(h) > 6 && strings.EqualFold(h[:6], "Basic "):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[6:]))
		if err != nil {
			return ""
		}
		tok, _, _ := strings.Cut(string(raw), ":")
		return tok
	case len(h) > 7 && strings.EqualFold(h[:7], "Bearer "), len(h) > 5 && strings.EqualFold(h[:5], "DPoP "):
		_, tok, _ := strings.Cut(h, " ")
		return strings.TrimSpace(tok)
	case h != "":
		tok, _, _ := strings.Cut(strings.TrimSpace(h), " ")
		return tok
	}
	if a := ctx.QueryArgs().Peek("auth"); len(a) > 0 {
		return string(a)
	}
	return formAuth
}

// accessCache remembers access-info answers for a short time. It holds at
// most max entries; when full, expired entries go first, then arbitrary
// ones.
type accessCache struct {
	ttl time.Duration
	max int

	mu sync.Mutex // guards m
	m  map[string]cachedAccess
}

type cachedAccess struct {
	user  string
	acc   webhooks.Access
	until time.Time
}

func (c *accessCache) get(key string, now time.Time) (webhooks.Access, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || now.After(e.until) {
		return webhooks.Access{}, false
	}
	return e.acc, true
}

func (c *accessCache) put(key, user string, acc webhooks.Access, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedAccess{}
	}
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if now.After(e.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = cachedAccess{user: user, acc: acc, until: now.Add(c.ttl)}
}

// forget drops every cached token of user's access id.
func (c *accessCache) forget(user, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.user == user && e.acc.ID == id {
			delete(c.m, k)
		}
	}
}

// authenticate resolves the caller's token into an access through the
// upstream's GET /{user}/access-info, with a short cache. When it returns
// false the client has been answered: 401 without a token, the upstream's
// own answer when it refuses the token, 502/504 when it cannot answer.
func (g *Gateway) authenticate(ctx *fasthttp.RequestCtx, user []byte, formAuth string) (webhooks.Access, bool) {
	tok := tokenOf(ctx, formAuth)
	if tok == "" {
		g.writeError(ctx, fasthttp.StatusUnauthorized, "invalid-access-token",
			`The access token is missing: expected an "Authorization" header or an "auth" query string parameter.`)
		return webhooks.Access{}, false
	}
	key := string(user) + "\x00" + tok
	now := time.Now()
	host, u := string(ctx.Host()), string(user) // not user itself: it would escape
	withTree := func(acc webhooks.Access) webhooks.Access {
		acc.Streams = func() (map[string]string, *webhooks.Error) { return g.streamTree(host, u, tok) }
		return acc
	}
	if acc, ok := g.access.get(key, now); ok {
		return withTree(acc), true
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI("/" + string(user) + "/access-info")
	req.Header.SetHostBytes(ctx.Host())
	req.UseHostHeader = true
	req.Header.Set(fasthttp.HeaderAuthorization, tok)
	req.Header.SetBytesV(fasthttp.HeaderXForwardedFor, appendIP(nil, ctx.RemoteIP()))
	if err := g.doUpstream(req, resp); err != nil {
		g.lastUpFail.Store(time.Now().UnixNano())
		g.upstreamError(ctx, err)
		return webhooks.Access{}, false
	}
	body, err := responseBody(resp, 1<<20)
	if err != nil {
		g.upstreamError(ctx, err)
		return webhooks.Access{}, false
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		// 401, 403, 404 (unknown user): the upstream's words, as they are.
		ctx.Response.SetStatusCode(resp.StatusCode())
		ctx.Response.Header.SetContentTypeBytes(resp.Header.ContentType())
		ctx.Response.SetBody(body)
		return webhooks.Access{}, false
	}
	acc, meta, ok := parseAccessInfo(body)
	g.opts.Meta.Learn(meta.APIVersion, meta.Serial)
	if !ok {
		g.writeError(ctx, fasthttp.StatusBadGateway, "api-unavailable", "The API's access-info answer has no access id or type.")
		return webhooks.Access{}, false
	}
	g.access.put(key, string(user), acc, now)
	return withTree(acc), true
}

// streamTree asks the upstream which streams tok can read, trashed ones
// included (GET /{user}/streams?state=all), for scopes that name streams.
func (g *Gateway) streamTree(host, user, tok string) (map[string]string, *webhooks.Error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI("/" + user + "/streams?state=all")
	req.Header.SetHost(host)
	req.UseHostHeader = true
	req.Header.Set(fasthttp.HeaderAuthorization, tok)
	unavailable := &webhooks.Error{Status: fasthttp.StatusBadGateway, ID: "api-unavailable", Message: "The API could not tell which streams this access can read."}
	if err := g.doUpstream(req, resp); err != nil {
		g.lastUpFail.Store(time.Now().UnixNano())
		return nil, unavailable
	}
	body, err := responseBody(resp, g.opts.MaxClassifyBody)
	if err != nil {
		return nil, unavailable
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		// The upstream's refusal, as it gave it (a token that cannot
		// read streams, say).
		var v struct {
			Error struct {
				ID      string `json:"id"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &v) != nil || v.Error.ID == "" {
			return nil, unavailable
		}
		return nil, &webhooks.Error{Status: resp.StatusCode(), ID: v.Error.ID, Message: v.Error.Message}
	}
	tree, err := parseStreamTree(body)
	if err != nil {
		return nil, unavailable
	}
	return tree, nil
}

// streamNode is a stream of a streams.get answer.
type streamNode struct {
	ID       string       `json:"id"`
	ParentID *string      `json:"parentId"`
	Children []streamNode `json:"children"`
}

// parseStreamTree reads a streams.get answer into a map of each stream
// id to its parent's id ("" for none).
func parseStreamTree(body []byte) (map[string]string, error) {
	var v struct {
		Streams *[]streamNode `json:"streams"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	if v.Streams == nil {
		return nil, fmt.Errorf("a streams answer without streams")
	}
	out := map[string]string{}
	var walk func(ns []streamNode, parent string)
	walk = func(ns []streamNode, parent string) {
		for _, n := range ns {
			if n.ID == "" {
				continue
			}
			p := parent
			if n.ParentID != nil {
				p = *n.ParentID
			}
			out[n.ID] = p
			walk(n.Children, n.ID)
		}
	}
	walk(*v.Streams, "")
	return out, nil
}

// parseAccessInfo reads the id and type of a Pryv access-info answer,
// whose access properties sit at the top level.
func parseAccessInfo(body []byte) (webhooks.Access, pryvMeta, bool) {
	var v struct {
		ID   string   `json:"id"`
		Type string   `json:"type"`
		Meta pryvMeta `json:"meta"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.ID == "" || v.Type == "" {
		return webhooks.Access{}, pryvMeta{}, false
	}
	return webhooks.Access{ID: v.ID, Type: v.Type}, v.Meta, true
}

// pryvMeta is what hookgate learns of the upstream from the meta of its
// answers.
type pryvMeta struct {
	APIVersion string `json:"apiVersion"`
	Serial     string `json:"serial"`
}

// LearnMeta asks the upstream for its service info and takes the
// apiVersion and serial of its answer's meta, for every answer hookgate
// writes itself and every notification, unless the operator fixed them
// (core.FollowMeta). Any answer with a Pryv meta will do, an error
// included. Access-info answers keep it current afterwards.
func (g *Gateway) LearnMeta() error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI("/reg/service/info")
	req.Header.SetHost(g.opts.Upstreams[0])
	if err := g.doUpstream(req, resp); err != nil {
		return err
	}
	body, err := responseBody(resp, 1<<20)
	if err != nil {
		return err
	}
	var v struct {
		Meta pryvMeta `json:"meta"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Meta.APIVersion == "" {
		return fmt.Errorf("the upstream's answer to /reg/service/info (%d) has no meta.apiVersion", resp.StatusCode())
	}
	g.opts.Meta.Learn(v.Meta.APIVersion, v.Meta.Serial)
	return nil
}

// responseBody reads a response body, streamed or not, up to limit bytes.
func responseBody(resp *fasthttp.Response, limit int) ([]byte, error) {
	if !resp.IsBodyStream() {
		return resp.Body(), nil
	}
	stream := resp.BodyStream()
	b, err := readLimited(stream, limit)
	_ = resp.CloseBodyStream()
	return b, err
}
