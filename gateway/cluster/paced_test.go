package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/internal/natstest"
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
	if w := size(0); w != minWindow {
		t.Fatalf("first window %d; want %d", w, minWindow)
	}
}

// TestPublishWindows: publishing in windows, paced or not, gives every
// message's revision, and on a refusal part-way counts as written the
// messages before it only, though later ones of its window passed.
func TestPublishWindows(t *testing.T) {
	nodes := natstest.Start(t, 3)
	c := connect(t, nodes, uniqueName(), nil)
	for _, mode := range []struct {
		name    string
		publish func([]*nats.Msg) ([]uint64, int, error)
	}{{"paced", c.publishPaced}, {"bulk", c.publish}} {
		t.Run(mode.name, func(t *testing.T) {
			msgs := make([]*nats.Msg, 30)
			for i := range msgs {
				msgs[i] = putMsg(&c.pending, fmt.Sprintf("%s%d", mode.name, i), []byte("x"))
			}
			revs, n, err := mode.publish(msgs)
			if err != nil || n != len(msgs) {
				t.Fatalf("published %d of %d: %v", n, len(msgs), err)
			}
			for i := 1; i < len(revs); i++ {
				if revs[i] <= revs[i-1] {
					t.Fatalf("revisions %v: want each above the last", revs)
				}
			}
			for i := range msgs {
				msgs[i] = putMsg(&c.pending, fmt.Sprintf("%s%d", mode.name, i), []byte("y"))
			}
			msgs[10] = expect(msgs[10], revs[10]-1) // not the key's revision: refused
			if _, n, err = mode.publish(msgs); err == nil || n != 10 {
				t.Fatalf("a refusal at the 11th: %d written, %v; want 10 and an error", n, err)
			}
		})
	}
}
