package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/gateway/webhooks"
)

// TestCORSPreflightOnWebhooks: a browser's preflight of a webhooks call
// gets Pryv's answer from hookgate itself, 200 with no token, naming
// what it asked for; the call itself and its errors carry the headers
// too.
func TestCORSPreflightOnWebhooks(t *testing.T) {
	e := startWebhooks(t, t.TempDir(), Options{}, webhooks.Options{})
	const origin = "https://app.example.com"
	resp, b := do(t, "OPTIONS", gwURL(e.gw, "/alice/webhooks"), nil, header("Origin", origin),
		header("Access-Control-Request-Method", "POST"), header("Access-Control-Request-Headers", "authorization,content-type"))
	if resp.StatusCode != 200 || string(b) != "OK" {
		t.Fatalf("preflight: %d %q; want 200 OK", resp.StatusCode, b)
	}
	wantCORS(t, "preflight", resp.Header, origin, "POST", "authorization,content-type")

	resp, _ = do(t, "OPTIONS", gwURL(e.gw, "/alice/webhooks/abc/test"), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("preflight of a webhook's test, no origin: %d", resp.StatusCode)
	}
	wantCORS(t, "preflight with no origin", resp.Header, "*", "POST, GET, PUT, DELETE, OPTIONS", "Authorization, Content-Type")

	resp, b = do(t, "GET", gwURL(e.gw, "/alice/webhooks"), nil, header("Origin", origin), header("Authorization", "alice-app"))
	if resp.StatusCode != 200 {
		t.Fatalf("GET webhooks: %d %s", resp.StatusCode, b)
	}
	wantCORS(t, "GET webhooks", resp.Header, origin, "POST, GET, PUT, DELETE, OPTIONS", "Authorization, Content-Type")
	resp, _ = do(t, "GET", gwURL(e.gw, "/alice/webhooks/unknown"), nil, header("Origin", origin), header("Authorization", "alice-app"))
	if resp.StatusCode != 404 {
		t.Fatalf("unknown webhook: %d", resp.StatusCode)
	}
	wantCORS(t, "an error of the webhooks API", resp.Header, origin, "POST, GET, PUT, DELETE, OPTIONS", "Authorization, Content-Type")
	resp, _ = do(t, "PATCH", gwURL(e.gw, "/alice/webhooks"), nil, header("Origin", origin)) // no such route: hookgate's own error
	if v := resp.Header.Values("Vary"); resp.StatusCode != 404 || len(v) != 1 || v[0] != "Origin" {
		t.Errorf("an unknown webhooks route: %d, Vary %q; want 404 and Vary: Origin once", resp.StatusCode, v)
	}
}

// TestCORSOnProxiedAnswers: hookgate's own errors on proxied routes carry
// the CORS headers; a proxied answer keeps the upstream's, untouched.
func TestCORSOnProxiedAnswers(t *testing.T) {
	g := startGateway(t, Options{Upstreams: []string{refusedAddr(t)}})
	resp, _ := do(t, "GET", gwURL(g, "/alice/events"), nil, header("Origin", "https://a.example"))
	if resp.StatusCode != 502 {
		t.Fatalf("upstream down: %d", resp.StatusCode)
	}
	wantCORS(t, "502", resp.Header, "https://a.example", "POST, GET, PUT, DELETE, OPTIONS", "Authorization, Content-Type")

	up := startEcho(t)
	g = startGateway(t, Options{Upstreams: []string{up}})
	resp, _ = do(t, "GET", gwURL(g, "/alice/events?hdr=Access-Control-Allow-Origin:https://upstream.example"), nil, header("Origin", "https://a.example"))
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://upstream.example" {
		t.Fatalf("proxied answer's Access-Control-Allow-Origin %q; want the upstream's alone", got)
	}
	if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatal("hookgate added its CORS headers to a proxied answer")
	}
	// A preflight of a proxied route is the upstream's to answer.
	resp, b := do(t, "OPTIONS", gwURL(g, "/alice/events"), nil, header("Origin", "https://a.example"))
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"method":"OPTIONS"`) {
		t.Fatalf("preflight of a proxied route: %d %s; want the upstream's answer", resp.StatusCode, b)
	}
}

func wantCORS(t *testing.T, what string, h http.Header, origin, methods, headers string) {
	t.Helper()
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":      origin,
		"Access-Control-Allow-Methods":     methods,
		"Access-Control-Allow-Headers":     headers,
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Expose-Headers":    "API-Version",
		"Access-Control-Max-Age":           "31536000",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s = %q; want %q", what, k, got, want)
		}
	}
	if h.Get("API-Version") == "" {
		t.Errorf("%s: no API-Version", what)
	}
}
