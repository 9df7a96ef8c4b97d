package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"text/tabwriter"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/admin"
	"github.com/hookgate/hookgate/delivery"
)

const adminUsage = `usage: hookgate admin [-ops-listen ADDR] [-admin-key KEY] COMMAND [ARGS]

Speaks to the operator API of the instance at -ops-listen (HOOKGATE_OPS_LISTEN,
default 127.0.0.1:9090) with the admin key (-admin-key, HOOKGATE_ADMIN_KEY or
HOOKGATE_ADMIN_KEY_FILE).

commands:
  list [-state active|inactive] [-failing] [-host HOST] [-user USER] [-limit N] [-json]
                        webhooks across users, by id; every page with -limit 0
  get ID                one webhook: its record, runs and pending messages
  deactivate ID         stop a webhook now (its pending messages are kept)
  reactivate ID         start it again, retries reset
  redeliver ID          send its pending messages now, whatever its interval or backoff
  deactivate-host HOST  stop every active webhook whose URL's host is HOST
`

// runAdmin runs `hookgate admin ...` and returns the exit code: 0 done,
// 1 refused or failed, 2 misused.
func runAdmin(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hookgate admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage) }
	opsDefault, _, err := envValue("ops-listen")
	if err != nil {
		fmt.Fprintln(stderr, "hookgate admin:", err)
		return 2
	}
	if opsDefault == "" {
		opsDefault = "127.0.0.1:9090"
	}
	addr := fs.String("ops-listen", opsDefault, "address of the instance's ops listener")
	key := fs.String("admin-key", "", "the admin key")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *key == "" { // as the server reads it: HOOKGATE_ADMIN_KEY or its _FILE
		if *key, _, err = envValue("admin-key"); err != nil {
			fmt.Fprintln(stderr, "hookgate admin:", err)
			return 2
		}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	if *key == "" {
		fmt.Fprintln(stderr, "hookgate admin: no admin key: set -admin-key, HOOKGATE_ADMIN_KEY or HOOKGATE_ADMIN_KEY_FILE")
		return 2
	}
	c := &adminClient{base: "http://" + loopbackIfUnspecified(*addr) + "/admin", key: *key, out: stdout, err: stderr}
	cmd, rest := rest[0], rest[1:]
	one := func() (string, bool) {
		if len(rest) != 1 || rest[0] == "" {
			fmt.Fprintf(stderr, "hookgate admin %s: takes one argument\n", cmd)
			return "", false
		}
		return url.PathEscape(rest[0]), true
	}
	switch cmd {
	case "list":
		return c.list(rest)
	case "get":
		id, ok := one()
		if !ok {
			return 2
		}
		return c.show("GET", "/webhooks/"+id)
	case "deactivate", "reactivate", "redeliver":
		id, ok := one()
		if !ok {
			return 2
		}
		return c.show("POST", "/webhooks/"+id+"/"+cmd)
	case "deactivate-host":
		host, ok := one()
		if !ok {
			return 2
		}
		return c.show("POST", "/hosts/"+host+"/deactivate")
	}
	fmt.Fprintf(stderr, "hookgate admin: unknown command %q\n\n%s", cmd, adminUsage)
	return 2
}

// loopbackIfUnspecified turns ":9090" or "0.0.0.0:9090" into an address
// of this machine.
func loopbackIfUnspecified(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

type adminClient struct {
	base, key string
	out, err  io.Writer
}

// do sends one request and returns the status and body; on an error
// answer it prints the API's message and returns false.
func (c *adminClient) do(method, path string) ([]byte, bool) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(c.base + path)
	req.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+c.key)
	if err := fasthttp.DoTimeout(req, resp, 30*time.Second); err != nil {
		fmt.Fprintln(c.err, "hookgate admin:", err)
		return nil, false
	}
	body := append([]byte(nil), resp.Body()...)
	if resp.StatusCode() != fasthttp.StatusOK {
		var e struct {
			Error struct{ ID, Message string }
		}
		if json.Unmarshal(body, &e) == nil && e.Error.ID != "" {
			fmt.Fprintf(c.err, "hookgate admin: %d %s: %s\n", resp.StatusCode(), e.Error.ID, e.Error.Message)
		} else {
			fmt.Fprintf(c.err, "hookgate admin: %d %s\n", resp.StatusCode(), bytes.TrimSpace(body))
		}
		return nil, false
	}
	return body, true
}

// show prints an answer as indented JSON.
func (c *adminClient) show(method, path string) int {
	body, ok := c.do(method, path)
	if !ok {
		return 1
	}
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		out.Reset()
		out.Write(body)
	}
	out.WriteByte('\n')
	_, _ = c.out.Write(out.Bytes())
	return 0
}

func (c *adminClient) list(args []string) int {
	fs := flag.NewFlagSet("hookgate admin list", flag.ContinueOnError)
	fs.SetOutput(c.err)
	state := fs.String("state", "", "active or inactive")
	failing := fs.Bool("failing", false, "only webhooks with failures in a row")
	host := fs.String("host", "", "only webhooks whose URL's host is this")
	user := fs.String("user", "", "only this user's webhooks")
	limit := fs.Int("limit", admin.DefaultLimit, "at most this many; 0 for every page")
	asJSON := fs.Bool("json", false, "print each page's answer as it is")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return 2
	}
	q := url.Values{}
	for k, v := range map[string]string{"state": *state, "host": *host, "user": *user} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *failing {
		q.Set("failing", "true")
	}
	pageSize := *limit
	if pageSize <= 0 || pageSize > admin.MaxLimit {
		pageSize = admin.MaxLimit
	}
	q.Set("limit", fmt.Sprint(pageSize))
	tw := tabwriter.NewWriter(c.out, 2, 8, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "ID\tUSER\tSTATE\tRETRIES\tLAST RUN\tURL")
	}
	shown := 0
	for {
		body, ok := c.do("GET", "/webhooks?"+q.Encode())
		if !ok {
			return 1
		}
		var page struct {
			Webhooks []admin.Summary `json:"webhooks"`
			Next     string          `json:"next"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			fmt.Fprintln(c.err, "hookgate admin: unreadable answer:", err)
			return 1
		}
		if *asJSON {
			_, _ = c.out.Write(append(body, '\n'))
		} else {
			for _, w := range page.Webhooks {
				last := "-"
				if w.LastRun.Timestamp > 0 {
					last = fmt.Sprintf("%d %s", w.LastRun.Status, time.UnixMilli(int64(w.LastRun.Timestamp*1000)).UTC().Format(time.RFC3339))
					if w.LastRun.Error != "" {
						last += " " + w.LastRun.Error
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", w.ID, w.User, w.State, w.CurrentRetries, w.MaxRetries, last, w.URL)
			}
		}
		shown += len(page.Webhooks)
		if page.Next == "" || (*limit > 0 && shown >= *limit) {
			break
		}
		q.Set("after", page.Next)
	}
	_ = tw.Flush()
	return 0
}

// withAdmin serves the operator API under /admin/ beside the ops routes.
func withAdmin(ops fasthttp.RequestHandler, adm *admin.API) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if p := ctx.Path(); string(p) == "/admin" || bytes.HasPrefix(p, []byte("/admin/")) {
			adm.Handler(ctx)
			return
		}
		ops(ctx)
	}
}

// alerter returns what tells -alert-url of a deactivation: one JSON POST,
// {"type": "webhook.deactivated", "time": ..., "webhook": {...}}, logged
// when it fails. The operator chose the address: it is not held to the
// delivery client's address rules.
func alerter(rawURL string, timeout time.Duration, log *slog.Logger) (func(delivery.Deactivation), error) {
	if u, err := url.Parse(rawURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-alert-url %q: want an absolute http or https URL", rawURL)
	}
	client := &fasthttp.Client{Name: "hookgate", ReadTimeout: timeout, WriteTimeout: timeout, MaxIdleConnDuration: time.Minute}
	return func(d delivery.Deactivation) {
		body, err := json.Marshal(struct {
			Type    string                `json:"type"`
			Time    float64               `json:"time"`
			Webhook delivery.Deactivation `json:"webhook"`
		}{"webhook.deactivated", float64(time.Now().UnixMilli()) / 1000, d})
		if err != nil {
			log.Error("cannot encode a deactivation alert", "err", err)
			return
		}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(rawURL)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
		err = client.DoTimeout(req, resp, timeout)
		if err == nil && resp.StatusCode()/100 != 2 {
			err = fmt.Errorf("status %d", resp.StatusCode())
		}
		if err != nil {
			log.Warn("the deactivation alert failed", "url", rawURL, "webhook", d.ID, "err", err)
		}
	}, nil
}
