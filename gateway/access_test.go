package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookgate/hookgate/gateway/webhooks"
)

// The access cache takes the time as an argument: these tests inject it,
// so expiry is exact to the nanosecond and takes no time.

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
	if acc, ok := c.get("k999", now.Add(time.Minute)); !ok || acc.ID != "a999" {
		t.Fatalf("entry not served at the end of its TTL: %+v %v", acc, ok)
	}
	if _, ok := c.get("k999", now.Add(time.Minute+time.Nanosecond)); ok {
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

func TestAccessCacheEvictsExpiredFirst(t *testing.T) {
	c := accessCache{ttl: time.Minute, max: 100}
	t0 := time.Unix(1000, 0)
	for i := range 50 {
		c.put(fmt.Sprint("old", i), "alice", webhooks.Access{ID: fmt.Sprint("o", i)}, t0)
		c.put(fmt.Sprint("new", i), "alice", webhooks.Access{ID: fmt.Sprint("n", i)}, t0.Add(30*time.Second))
	}
	// Full; the old half expired a nanosecond ago, the new half has 30 s
	// left. Room is made by dropping the expired entries only.
	now := t0.Add(time.Minute + time.Nanosecond)
	c.put("k", "alice", webhooks.Access{ID: "k"}, now)
	if len(c.m) != 51 {
		t.Fatalf("cache holds %d entries; want the 50 unexpired and the new one", len(c.m))
	}
	for i := range 50 {
		if acc, ok := c.get(fmt.Sprint("new", i), now); !ok || acc.ID != fmt.Sprint("n", i) {
			t.Fatalf("unexpired entry new%d evicted while expired ones were there", i)
		}
	}
	if _, ok := c.get("k", now); !ok {
		t.Fatal("the new entry is missing")
	}
}
