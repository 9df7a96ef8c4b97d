package core

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkScheduler: 1,000 to 100,000 webhooks with staggered windows;
// each op adds a change to one webhook, reschedules it, and takes and
// settles whatever is due, as the engine's loop does. The scheduler is
// owned by the engine's one loop, so there is no parallel variant.
func BenchmarkScheduler(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run("webhooks="+strconv.Itoa(n), func(b *testing.B) { benchScheduler(b, n) })
	}
}

func benchScheduler(b *testing.B, n int) {
	sc := NewScheduler()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "w" + strconv.Itoa(i)
		sc.Put(ids[i], &Slot{Interval: time.Second, MaxRetries: 5, LastEnd: int64(i) * int64(10*time.Microsecond)})
	}
	now := int64(time.Second)
	var due []*Slot
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := ids[i%n]
		sl := sc.Slot(id)
		sl.Add(MsgEventsChanged)
		sc.Touch(id)
		now += int64(10 * time.Microsecond)
		due = sc.Due(due[:0], now, -1)
		for _, d := range due {
			d.Succeeded(now)
			sc.TouchSlot(d)
		}
		i++
	}
}

func BenchmarkSlotAddTake(b *testing.B) {
	s := &Slot{Interval: time.Second, MaxRetries: 5}
	msgs := []string{MsgEventsChanged, MsgStreamsChanged, MsgEventsChanged}
	b.ReportAllocs()
	for b.Loop() {
		s.Add(msgs...)
		s.Take()
		s.Succeeded(1)
	}
}
