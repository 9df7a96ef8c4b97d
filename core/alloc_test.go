//go:build !race

package core

import (
	"strconv"
	"testing"
	"time"
)

func TestAppendMarkerAllocs(t *testing.T) {
	var v Vocabulary
	ev, _ := v.Add(MsgEventsChanged)
	buf := make([]byte, 0, 128)
	user := []byte("alice")
	if n := testing.AllocsPerRun(100, func() { buf = AppendMarker(buf[:0], 1, user, &v, ev) }); n != 0 {
		t.Fatalf("AppendMarker allocates %v times; want 0", n)
	}
}

// TestSchedulerAllocs: once a webhook's slot exists, adding changes,
// rescheduling and taking what is due allocate nothing.
func TestSchedulerAllocs(t *testing.T) {
	sc := NewScheduler()
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = "w" + strconv.Itoa(i)
		sc.Put(ids[i], &Slot{Interval: time.Second, MaxRetries: 5})
	}
	due := make([]*Slot, 0, len(ids))
	now, i := int64(time.Hour), 0
	step := func() {
		id := ids[i%len(ids)]
		i++
		sc.Slot(id).Add(MsgEventsChanged)
		sc.Touch(id)
		now += int64(time.Millisecond)
		due = sc.Due(due[:0], now, -1)
		for _, d := range due {
			d.Succeeded(now)
			sc.TouchSlot(d)
		}
	}
	for range ids { // each slot's pending list gets its backing array once
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("the scheduler allocates %v times per change; want 0", n)
	}
	if len(due) != 1 {
		t.Fatalf("the last step delivered %d webhooks; want 1", len(due))
	}
}
