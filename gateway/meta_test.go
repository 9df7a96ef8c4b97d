package gateway

import (
	"strings"
	"testing"

	"github.com/hookgate/hookgate/bench/upstream"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/webhooks"
)

// TestMetaFollowsUpstream: hookgate's own answers report the upstream's
// apiVersion and serial once it has asked (LearnMeta, at start) or read
// them in an access check; a value the operator fixed stays.
func TestMetaFollowsUpstream(t *testing.T) {
	addr, stop, err := upstream.New(upstream.Options{Meta: core.Meta{APIVersion: "2.0.0", Serial: "2026010101"}}).Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	ownError := func(g *gw) string { // an answer hookgate writes itself
		_, b := rawDo(t, g.addr, "GET /alice/events HTTP/1.0\r\n\r\n")
		return string(b)
	}

	g := startGateway(t, Options{Upstreams: []string{addr}, Meta: core.FollowMeta("1.9.3", "hookgate", false, false)})
	if b := ownError(g); !strings.Contains(b, `"apiVersion":"1.9.3"`) {
		t.Fatalf("before learning: %s", b)
	}
	if err := g.LearnMeta(); err != nil {
		t.Fatal(err)
	}
	if b := ownError(g); !strings.Contains(b, `"apiVersion":"2.0.0"`) || !strings.Contains(b, `"serial":"2026010101"`) {
		t.Fatalf("after learning: %s; want the upstream's meta", b)
	}

	e := startWebhooks(t, t.TempDir(), Options{Upstreams: []string{addr}, Meta: core.FollowMeta("9.9.9", "hookgate", true, false)}, webhooks.Options{})
	// An access check teaches it too.
	e.call(t, "GET", "/alice/webhooks", "alice-app", "", 200)
	if b := ownError(e.gw); !strings.Contains(b, `"apiVersion":"9.9.9"`) || !strings.Contains(b, `"serial":"2026010101"`) {
		t.Fatalf("apiVersion fixed by the operator, serial learned from an access check: %s", b)
	}
}
