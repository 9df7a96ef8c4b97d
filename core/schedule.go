package core

import (
	"slices"
	"time"
)

// Slot is the delivery state of one webhook (SPEC §3.2–3.5): the messages
// waiting, in order of first arrival and without duplicates; the messages
// of the delivery in flight, if any; when the last run ended; and the
// retry state. Times are Unix nanoseconds. Not safe for concurrent use.
type Slot struct {
	Pending  []string
	InFlight []string // nil when no delivery is in flight
	Flying   bool
	// Stored: a pending set of this slot is stored (the engine's to
	// keep), so that an empty one need not be deleted.
	Stored bool
	// Inactive slots keep their pending messages but never fire, until
	// Reactivate.
	Inactive bool
	LastEnd  int64         // when the last run ended; 0 before the first
	Interval time.Duration // minIntervalMs
	Retries  int           // currentRetries
	// MaxRetries: past it a failure deactivates the webhook.
	MaxRetries int
	// RetryAt is the earliest time of the next attempt after a failure.
	RetryAt int64
	// Since is when the oldest pending message was accepted (Unix
	// nanoseconds), for the notification latency.
	Since int64

	spare []string // the last delivery's slice, reused by the next Take
	gen   uint64   // the Scheduler's: heap entries of another gen are stale
}

// Reactivate lets an inactive slot fire again, with its retries reset:
// what was pending when it stopped goes out on the next fire.
func (s *Slot) Reactivate() {
	s.Inactive, s.Retries, s.RetryAt = false, 0, 0
}

// Add merges msgs into the pending set, keeping first-arrival order.
func (s *Slot) Add(msgs ...string) {
	for _, m := range msgs {
		if !contains(s.Pending, m) {
			s.Pending = append(s.Pending, m)
		}
	}
}

func contains(list []string, m string) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

// FireAt returns when the slot should next deliver, and false when it has
// nothing to deliver or a delivery is in flight. A slot idle for at least
// Interval fires at once (leading edge, any time not after now); otherwise
// at LastEnd + Interval (trailing edge), and after a failure not before
// RetryAt.
func (s *Slot) FireAt() (int64, bool) {
	if s.Flying || s.Inactive || len(s.Pending) == 0 {
		return 0, false
	}
	at := s.LastEnd + int64(s.Interval)
	if s.LastEnd == 0 {
		at = 0
	}
	return max(at, s.RetryAt), true
}

// Take starts a delivery: every pending message goes into flight. The
// returned slice is valid until the delivery ends.
func (s *Slot) Take() []string {
	s.InFlight, s.Pending, s.Flying = s.Pending, s.spare[:0], true
	s.spare = nil
	return s.InFlight
}

// Succeeded ends the delivery in flight with a 2xx at now.
func (s *Slot) Succeeded(now int64) {
	s.spare, s.InFlight, s.Flying = s.InFlight[:0], nil, false
	s.LastEnd, s.Retries, s.RetryAt = now, 0, 0
}

// Failed ends the delivery in flight with a failure at now: its messages
// go back in front of what arrived meanwhile, and the next attempt waits
// Interval × Retries (Pryv's linear backoff) plus jitter, or retryAfter
// when that is longer. It reports whether the webhook must now turn
// inactive (Retries past MaxRetries), in which case nothing is scheduled.
func (s *Slot) Failed(now int64, retryAfter, jitter time.Duration) (deactivate bool) {
	back := s.InFlight
	s.InFlight, s.Flying = nil, false
	s.Pending = mergeFront(back, s.Pending)
	s.LastEnd = now
	s.Retries++
	if s.Retries > s.MaxRetries {
		s.RetryAt, s.Inactive = 0, true
		return true
	}
	wait := s.Interval*time.Duration(s.Retries) + jitter
	s.RetryAt = now + int64(max(wait, retryAfter))
	return false
}

func mergeFront(front, rest []string) []string {
	out := append([]string(nil), front...)
	for _, m := range rest {
		if !contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// Scheduler drives many slots with one min-heap of fire times, so that
// thousands of webhooks need neither a goroutine nor a timer each. Not
// safe for concurrent use: one loop owns it.
type Scheduler struct {
	slots map[string]*Slot
	h     TimeHeap[fireEntry]
	gen   uint64 // the last generation given to a slot: every Touch takes a new one
	peak  int    // the most slots held since the map was last built
}

type fireEntry struct {
	at  int64
	id  string
	gen uint64
}

// When implements Timed.
func (e fireEntry) When() int64 { return e.at }

// NewScheduler returns an empty scheduler.
func NewScheduler() *Scheduler {
	return &Scheduler{slots: map[string]*Slot{}}
}

// Grow makes room for n more slots, so that loading many at once does
// not grow the map and the heap step by step.
func (s *Scheduler) Grow(n int) {
	if n <= 0 {
		return
	}
	if len(s.slots) == 0 {
		s.slots = make(map[string]*Slot, n)
	}
	s.h = slices.Grow(s.h, n)
}

// Slot returns the slot of id, or nil.
func (s *Scheduler) Slot(id string) *Slot { return s.slots[id] }

// Put installs (or replaces) the slot of id and schedules it. Heap
// entries of an earlier slot of id stay stale: generations are never
// given twice.
func (s *Scheduler) Put(id string, sl *Slot) {
	s.slots[id] = sl
	s.peak = max(s.peak, len(s.slots))
	s.Touch(id)
}

// Remove forgets id; its heap entries become stale. It may be Put again.
func (s *Scheduler) Remove(id string) {
	delete(s.slots, id)
}

// Shrink gives back the room of slots removed and of heap entries
// popped, once most of it is unused: a map keeps the size of its peak,
// and a boot storm's million slots would otherwise stay allocated.
func (s *Scheduler) Shrink() {
	if s.peak > 4096 && len(s.slots) < s.peak/4 {
		m := make(map[string]*Slot, len(s.slots))
		for id, sl := range s.slots {
			m[id] = sl
		}
		s.slots, s.peak = m, len(m)
	}
	s.h = s.h.Shrunk()
}

// Len returns the number of slots.
func (s *Scheduler) Len() int { return len(s.slots) }

// Touch reschedules id after its slot changed.
func (s *Scheduler) Touch(id string) {
	if sl := s.slots[id]; sl != nil {
		s.TouchSlot(id, sl)
	}
}

// TouchSlot is Touch for a caller that holds id's slot, sl, which must
// be the one the scheduler holds: it spares the lookup.
func (s *Scheduler) TouchSlot(id string, sl *Slot) {
	s.gen++
	sl.gen = s.gen
	if at, ok := sl.FireAt(); ok {
		s.h.Push(fireEntry{at: at, id: id, gen: sl.gen})
	}
}

// Next returns the earliest fire time, and false when nothing is
// scheduled.
func (s *Scheduler) Next() (int64, bool) {
	for len(s.h) > 0 {
		e := s.h[0]
		if sl := s.slots[e.id]; sl != nil && e.gen == sl.gen {
			return e.at, true
		}
		s.h.Pop()
	}
	return 0, false
}

// Due appends to dst the ids whose fire time is not after now, at most
// limit of them (no limit when limit < 0), in fire order, and takes their
// pending messages into flight. Read each slot's InFlight for the
// messages. Slots past the limit stay due for the next call.
func (s *Scheduler) Due(dst []string, now int64, limit int) []string {
	for len(s.h) > 0 && s.h[0].at <= now && limit != 0 {
		e := s.h.Pop()
		sl := s.slots[e.id]
		if sl == nil || e.gen != sl.gen {
			continue
		}
		if _, ok := sl.FireAt(); !ok {
			continue
		}
		sl.Take()
		s.gen++
		sl.gen = s.gen
		dst = append(dst, e.id)
		limit--
	}
	return dst
}
