package core

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestThrottle runs on synctest's fake clock, so the period's edges are
// exact: a line is held back up to the last nanosecond of the period and
// let through at its end.
func TestThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 50 * time.Millisecond
		th := Throttle{Every: every}
		if !th.Allow() {
			t.Fatal("the first line was held back")
		}
		for range 3 {
			if th.Allow() {
				t.Fatal("a line within the period was let through")
			}
		}
		time.Sleep(every - time.Nanosecond)
		if th.Allow() {
			t.Fatal("a line 1 ns before the period's end was let through")
		}
		if n := th.Suppressed(); n != 4 {
			t.Fatalf("suppressed %d; want 4", n)
		}
		if n := th.Suppressed(); n != 0 {
			t.Fatalf("suppressed %d right after Suppressed; want 0", n)
		}
		time.Sleep(time.Nanosecond)
		if !th.Allow() {
			t.Fatal("a line at the period's end was held back")
		}
		// A new period starts from the line let through.
		time.Sleep(every / 2)
		if th.Allow() || th.Suppressed() != 1 {
			t.Fatal("a line within the new period was let through, or not counted")
		}
		time.Sleep(every / 2)
		if !th.Allow() {
			t.Fatal("a line at the new period's end was held back")
		}
	})
}

// TestThrottleConcurrent: of many goroutines calling Allow at the same
// instant, exactly one line gets through and every other is counted.
func TestThrottleConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const callers = 32
		th := Throttle{Every: time.Second}
		allowed := make(chan bool, callers)
		for range callers {
			go func() { allowed <- th.Allow() }()
		}
		synctest.Wait()
		n := 0
		for range callers {
			if <-allowed {
				n++
			}
		}
		if n != 1 || th.Suppressed() != callers-1 {
			t.Fatalf("%d lines let through at one instant; want 1 and %d counted", n, callers-1)
		}
	})
}
