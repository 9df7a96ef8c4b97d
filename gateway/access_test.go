package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookgate/hookgate/gateway/webhooks"
)

func TestAccessCacheBoundedAndExpiring(t *testing.T) {
	c := accessCache{ttl: time.Minute, max: 100}
	now := time.Unix(1000, 0)
	for i := range 1000 {
		c.put(fmt.Sprint("k", i), "alice", webhooks.Access{ID: fmt.Sprint("a", i), Type: "app"}, now)
		if len(c.m) > 100 {
			t.Fatalf("cache holds %d entries; cap 100", len(c.m))
		}
	}
	if acc, ok := c.get("k999", now); !ok || acc.ID != "a999" {
		t.Fatalf("latest entry missing: %+v %v", acc, ok)
	}
	if _, ok := c.get("k999", now.Add(2*time.Minute)); ok {
		t.Fatal("entry served past its TTL")
	}
	c.put("x", "carol", webhooks.Access{ID: "a999"}, now) // same id, other user
	c.forget("alice", "a999")
	if _, ok := c.get("k999", now); ok {
		t.Fatal("forget left the access cached")
	}
	if _, ok := c.get("x", now); !ok {
		t.Fatal("forget dropped another user's access")
	}
}
