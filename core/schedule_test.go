package core

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

func TestSlotEdges(t *testing.T) {
	s := &Slot{Interval: time.Second, MaxRetries: 5}
	if _, ok := s.FireAt(); ok {
		t.Fatal("an empty slot fires")
	}
	// Never run: leading edge, fires at once.
	s.Add("eventsChanged")
	if at, ok := s.FireAt(); !ok || at != 0 {
		t.Fatalf("first message: FireAt = %d, %v; want at once", at, ok)
	}
	s.Take()
	s.Add("streamsChanged", "eventsChanged", "streamsChanged") // arrives while in flight
	if _, ok := s.FireAt(); ok {
		t.Fatal("fires while a delivery is in flight")
	}
	s.Succeeded(10_000 * ms)
	// Trailing edge: LastEnd + Interval.
	if at, _ := s.FireAt(); at != 11_000*ms {
		t.Fatalf("trailing edge at %d; want %d", at, 11_000*ms)
	}
	if got := s.Take(); !reflect.DeepEqual(got, []string{"streamsChanged", "eventsChanged"}) {
		t.Fatalf("coalesced %v", got)
	}
	s.Succeeded(11_050 * ms)
	// Idle long enough: leading edge again (a time in the past).
	s.Add("accessesChanged")
	if at, _ := s.FireAt(); at != 12_050*ms {
		t.Fatalf("after a quiet interval, at %d", at)
	}
}

func TestSlotRetries(t *testing.T) {
	s := &Slot{Interval: 2 * time.Second, MaxRetries: 5}
	s.Add("eventsChanged")
	now := int64(0)
	var gaps []time.Duration
	for attempt := 1; ; attempt++ {
		at, ok := s.FireAt()
		if !ok {
			t.Fatalf("attempt %d not scheduled", attempt)
		}
		if attempt > 1 {
			gaps = append(gaps, time.Duration(at-now))
		}
		now = max(now, at)
		s.Take()
		s.Add("streamsChanged") // rides along with the retry
		if s.Failed(now, 0, 0) {
			if attempt != 6 || s.Retries != 6 {
				t.Fatalf("deactivated after attempt %d with Retries %d; want 6 and 6", attempt, s.Retries)
			}
			break
		}
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 6 * time.Second, 8 * time.Second, 10 * time.Second}
	if !reflect.DeepEqual(gaps, want) {
		t.Fatalf("retry gaps %v; want %v (Pryv's linear backoff)", gaps, want)
	}
	if !reflect.DeepEqual(s.Pending, []string{"eventsChanged", "streamsChanged"}) {
		t.Fatalf("pending after giving up %v: nothing may be lost", s.Pending)
	}
	if _, ok := s.FireAt(); ok {
		t.Fatal("a deactivated slot would fire")
	}
	s.Reactivate()
	if at, ok := s.FireAt(); !ok || s.Retries != 0 || at != s.LastEnd+int64(s.Interval) {
		t.Fatalf("after Reactivate: FireAt %d, %v, retries %d", at, ok, s.Retries)
	}

	// Retry-After longer than the backoff wins; jitter adds.
	s = &Slot{Interval: time.Second, MaxRetries: 5}
	s.Add("m")
	s.Take()
	s.Failed(0, 30*time.Second, 0)
	if at, _ := s.FireAt(); at != int64(30*time.Second) {
		t.Fatalf("Retry-After ignored: %d", at)
	}
	s.Take()
	s.Failed(0, 0, 250*time.Millisecond)
	if at, _ := s.FireAt(); at != int64(2*time.Second+250*time.Millisecond) {
		t.Fatalf("jitter: %d", at)
	}
	s.Take()
	s.Succeeded(5 * int64(time.Second))
	if s.Retries != 0 || s.RetryAt != 0 {
		t.Fatalf("success did not reset retries: %+v", s)
	}
}

func TestSchedulerOrderAndStaleEntries(t *testing.T) {
	sc := NewScheduler()
	mk := func(last int64, iv time.Duration, msgs ...string) *Slot {
		s := &Slot{LastEnd: last, Interval: iv, MaxRetries: 5}
		s.Add(msgs...)
		return s
	}
	sc.Put("a", mk(1000*ms, time.Second, "x")) // due at 2000ms
	sc.Put("b", mk(0, time.Second, "x"))       // never ran: at once
	sc.Put("c", mk(500*ms, time.Second, "x"))  // due at 1500ms
	sc.Put("idle", mk(0, time.Second))         // nothing pending
	if at, ok := sc.Next(); !ok || at != 0 {
		t.Fatalf("Next = %d, %v", at, ok)
	}
	if got := ids(sc.Due(nil, 1600*ms, -1)); !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Fatalf("Due(1600ms) = %v; want [b c]", got)
	}
	// c's slot changes (a new message while in flight) and is touched:
	// nothing new is due while it flies.
	sc.Slot("c").Add("y")
	sc.Touch("c")
	sc.Remove("a")
	if got := sc.Due(nil, 5000*ms, -1); len(got) != 0 {
		t.Fatalf("Due after removal = %v", got)
	}
	sc.Slot("c").Succeeded(1700 * ms)
	sc.Touch("c")
	if at, _ := sc.Next(); at != 2700*ms {
		t.Fatalf("c next at %d; want 2700ms", at)
	}
	if got := ids(sc.Due(nil, 2700*ms, -1)); !reflect.DeepEqual(got, []string{"c"}) || !reflect.DeepEqual(sc.Slot("c").InFlight, []string{"y"}) {
		t.Fatalf("Due = %v, in flight %v", got, sc.Slot("c").InFlight)
	}
}

func TestSchedulerManySlots(t *testing.T) {
	sc := NewScheduler()
	const n = 10000
	for i := range n {
		s := &Slot{LastEnd: int64(i) * ms, Interval: time.Second, MaxRetries: 5}
		s.Add("m")
		sc.Put(string(rune(i+0x1000)), s)
	}
	due := sc.Due(nil, int64(time.Second)+5000*ms, -1)
	if len(due) != 5001 {
		t.Fatalf("%d due; want 5001", len(due))
	}
	if got := sc.Due(nil, int64(time.Second)+n*ms, -1); len(got) != n-5001 {
		t.Fatalf("%d due later; want %d", len(got), n-5001)
	}
}

func TestSchedulerDueLimit(t *testing.T) {
	sc := NewScheduler()
	for i := range 10 {
		s := &Slot{Interval: time.Second, MaxRetries: 5}
		s.Add("m")
		sc.Put(string(rune('a'+i)), s)
	}
	if got := sc.Due(nil, 0, 3); len(got) != 3 {
		t.Fatalf("Due with limit 3 gave %d", len(got))
	}
	if got := sc.Due(nil, 0, 0); len(got) != 0 {
		t.Fatalf("Due with limit 0 gave %d", len(got))
	}
	if at, ok := sc.Next(); !ok || at != 0 {
		t.Fatalf("the rest must stay due: Next = %d, %v", at, ok)
	}
	if got := sc.Due(nil, 0, -1); len(got) != 7 {
		t.Fatalf("the rest: %d; want 7", len(got))
	}
}

// TestSchedulerRemovePutAgain: a slot removed and put again is scheduled
// as the new one says, never by the old one's heap entries; Shrink keeps
// every slot and its schedule.
func TestSchedulerRemovePutAgain(t *testing.T) {
	sc := NewScheduler()
	old := &Slot{LastEnd: 0, Interval: time.Second}
	old.Add("x")
	sc.Put("a", old) // due at once
	sc.Remove("a")
	fresh := &Slot{LastEnd: 1000 * ms, Interval: time.Second}
	fresh.Add("y")
	sc.Put("a", fresh) // due at 2000ms
	if got := sc.Due(nil, 1500*ms, -1); len(got) != 0 {
		t.Fatalf("Due(1500ms) = %v: the removed slot's entry fired the new one", got)
	}
	if at, ok := sc.Next(); !ok || at != 2000*ms {
		t.Fatalf("Next = %d, %v; want 2000ms", at, ok)
	}

	for i := range 10000 {
		s := &Slot{Interval: time.Second, LastEnd: int64(i) * ms}
		s.Add("m")
		sc.Put(fmt.Sprint(i), s)
	}
	for i := range 9990 {
		sc.Remove(fmt.Sprint(i))
	}
	sc.Shrink()
	if sc.Len() != 11 || sc.peak != 11 {
		t.Fatalf("after Shrink: %d slots, peak %d; want 11", sc.Len(), sc.peak)
	}
	got := ids(sc.Due(nil, 20000*ms, -1))
	slices.Sort(got)
	want := []string{"9990", "9991", "9992", "9993", "9994", "9995", "9996", "9997", "9998", "9999", "a"}
	if !slices.Equal(got, want) {
		t.Fatalf("Due after Shrink = %v; want %v", got, want)
	}
}

// ids returns the ids of slots, in order.
func ids(slots []*Slot) []string {
	out := make([]string, len(slots))
	for i, sl := range slots {
		out[i] = sl.ID()
	}
	return out
}

// TestSlotLive: a slot is Live from Put until it is removed or another
// slot is put under its id; one not Live is never due again, and
// TouchSlot leaves it unscheduled.
func TestSlotLive(t *testing.T) {
	sc := NewScheduler()
	mk := func() *Slot {
		s := &Slot{Interval: time.Second}
		s.Add("x")
		return s
	}
	a, b, c := mk(), mk(), mk()
	if a.Live() {
		t.Fatal("a slot never put is Live")
	}
	sc.Put("a", a)
	sc.Put("b", b)
	if !a.Live() || a.ID() != "a" || !b.Live() {
		t.Fatalf("after Put: live %v %v, id %q", a.Live(), b.Live(), a.ID())
	}
	sc.Remove("a")
	sc.Put("b", c) // replaces b
	if a.Live() || b.Live() || !c.Live() {
		t.Fatalf("after Remove and a replacing Put: live %v %v %v; want false false true", a.Live(), b.Live(), c.Live())
	}
	sc.TouchSlot(a)
	sc.TouchSlot(b)
	if got := sc.Due(nil, 0, -1); len(got) != 1 || got[0] != c {
		t.Fatalf("Due = %v; want only the replacing slot", ids(got))
	}
	if a.Flying || b.Flying {
		t.Fatal("a slot not Live was taken into flight")
	}
}

// TestNotificationID: a notification sent again with the same messages
// keeps its id; one that messages joined, or the next after a success,
// gets a new one.
func TestNotificationID(t *testing.T) {
	n := 0
	newID := func() string { n++; return fmt.Sprint("msg_", n) }
	s := &Slot{Interval: time.Second, MaxRetries: 5}
	s.Add("a", "b")
	s.Take()
	first := s.NotificationID(newID)
	s.Failed(1, 0, 0)
	s.Add("b") // already pending: the same notification
	s.Take()
	if id := s.NotificationID(newID); id != first {
		t.Fatalf("resent with the same messages: id %q; want %q", id, first)
	}
	s.Failed(2, 0, 0)
	s.Add("c")
	s.Take()
	joined := s.NotificationID(newID)
	if joined == first {
		t.Fatal("a message joined, and the id stayed")
	}
	s.Succeeded(3)
	s.Add("c")
	s.Take()
	if id := s.NotificationID(newID); id == joined || id == first {
		t.Fatalf("after a success the next notification has id %q again", id)
	}
}
