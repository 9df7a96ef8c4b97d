package cluster

import (
	"testing"
	"time"
)

// TestPaced: a flush's writes go minWindow at a time for spread, then in
// windows that double up to window.
func TestPaced(t *testing.T) {
	at := time.Unix(0, 0)
	size := paced(func() time.Time { return at })
	last := 0
	for range 100 {
		if last = size(last); last != minWindow {
			t.Fatalf("window %d within the spread; want %d", last, minWindow)
		}
		at = at.Add(spread / 200)
	}
	at = at.Add(spread)
	want := []int{2 * minWindow, 4 * minWindow, 8 * minWindow}
	for _, w := range want {
		if last = size(last); last != w {
			t.Fatalf("window %d past the spread; want %d", last, w)
		}
	}
	for range 20 {
		last = size(last)
	}
	if last != window {
		t.Fatalf("window %d after many doublings; want at most %d", last, window)
	}
}
