package core

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	th := Throttle{Every: 50 * time.Millisecond}
	if !th.Allow() {
		t.Fatal("the first line was held back")
	}
	for range 3 {
		if th.Allow() {
			t.Fatal("a line within the period was let through")
		}
	}
	if n := th.Suppressed(); n != 3 {
		t.Fatalf("suppressed %d; want 3", n)
	}
	time.Sleep(60 * time.Millisecond)
	if !th.Allow() || th.Suppressed() != 0 {
		t.Fatal("a line after the period was held back")
	}
}
