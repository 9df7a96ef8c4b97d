package core

import (
	"fmt"
	"slices"
	"strings"
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
	// Schedule, when set, is the wait after each failure in a row
	// (the last repeats) in place of Pryv's Interval × Retries. Shared:
	// never changed.
	Schedule []time.Duration
	// Since is when the oldest pending message was accepted (Unix
	// nanoseconds), for the notification latency.
	Since int64
	// MsgID is the Standard Webhooks id (webhook-id) of the notification
	// in flight or last failed, kept while it is sent again with the same
	// msgN messages; "" once one succeeded. See NotificationID.
	MsgID string
	msgN  int

	spare []string // the last delivery's slice, reused by the next Take
	id    string   // the id a Scheduler holds it under
	gen   uint64   // the Scheduler's: heap entries of another gen are stale; 0 when not held
}

// ID returns the id the slot was Put under.
func (s *Slot) ID() string { return s.id }

// Live reports whether a Scheduler holds the slot: false before Put, and
// once it is removed or replaced. A caller that kept a slot (a delivery
// in flight, a parked one) checks it rather than looking its id up.
func (s *Slot) Live() bool { return s.gen != 0 }

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

// NotificationID returns the id of the delivery in flight: that of the
// one that failed, when the same messages are sent again (Standard
// Webhooks: the id stays when the same message is resent, so that a
// receiver may drop one it already took); a new one, from newID, when
// messages joined them or the last one succeeded.
func (s *Slot) NotificationID(newID func() string) string {
	if s.MsgID == "" || len(s.InFlight) != s.msgN {
		s.MsgID, s.msgN = newID(), len(s.InFlight)
	}
	return s.MsgID
}

// Succeeded ends the delivery in flight with a 2xx at now.
func (s *Slot) Succeeded(now int64) {
	s.MsgID = ""
	s.spare, s.InFlight, s.Flying = s.InFlight[:0], nil, false
	s.LastEnd, s.Retries, s.RetryAt = now, 0, 0
}

// Failed ends the delivery in flight with a failure at now: its messages
// go back in front of what arrived meanwhile, and the next attempt waits
// Interval × Retries (Pryv's linear backoff), or the Schedule's step,
// plus jitter, or retryAfter when that is longer. It reports whether the webhook must now turn
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
	wait := s.Interval * time.Duration(s.Retries)
	if n := len(s.Schedule); n > 0 {
		wait = s.Schedule[min(s.Retries, n)-1]
	}
	wait += jitter
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

// fireEntry is a slot's fire time. It holds the slot itself, so that
// popping it needs no lookup; gen tells whether it is still current.
type fireEntry struct {
	at  int64
	sl  *Slot
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

// Put installs (or replaces) the slot of id and schedules it. An earlier
// slot of id is no longer Live, and its heap entries are stale.
func (s *Scheduler) Put(id string, sl *Slot) {
	if old := s.slots[id]; old != nil && old != sl {
		old.gen = 0
	}
	sl.id = id
	s.slots[id] = sl
	s.peak = max(s.peak, len(s.slots))
	s.touch(sl)
}

// Remove forgets id; its slot is no longer Live and its heap entries are
// stale. It may be Put again.
func (s *Scheduler) Remove(id string) {
	if sl := s.slots[id]; sl != nil {
		sl.gen = 0
		delete(s.slots, id)
	}
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

// Each calls f with every slot held, in no set order.
func (s *Scheduler) Each(f func(*Slot)) {
	for _, sl := range s.slots {
		f(sl)
	}
}

// Len returns the number of slots.
func (s *Scheduler) Len() int { return len(s.slots) }

// Touch reschedules id after its slot changed.
func (s *Scheduler) Touch(id string) {
	if sl := s.slots[id]; sl != nil {
		s.TouchSlot(sl)
	}
}

// TouchSlot is Touch for a caller that holds a Live slot: it spares the
// lookup. A slot not Live is left as it is.
func (s *Scheduler) TouchSlot(sl *Slot) {
	if sl.gen != 0 {
		s.touch(sl)
	}
}

func (s *Scheduler) touch(sl *Slot) {
	s.gen++
	sl.gen = s.gen
	if at, ok := sl.FireAt(); ok {
		s.h.Push(fireEntry{at: at, sl: sl, gen: sl.gen})
	}
}

// Next returns the earliest fire time, and false when nothing is
// scheduled.
func (s *Scheduler) Next() (int64, bool) {
	for len(s.h) > 0 {
		if e := s.h[0]; e.gen == e.sl.gen {
			return e.at, true
		}
		s.h.Pop()
	}
	return 0, false
}

// Due appends to dst the slots whose fire time is not after now, at
// most limit of them (no limit when limit < 0), in fire order, and takes
// their pending messages into flight. Read each slot's InFlight for the
// messages. Slots past the limit stay due for the next call.
func (s *Scheduler) Due(dst []*Slot, now int64, limit int) []*Slot {
	for len(s.h) > 0 && s.h[0].at <= now && limit != 0 {
		e := s.h.Pop()
		sl := e.sl
		if e.gen != sl.gen {
			continue
		}
		if _, ok := sl.FireAt(); !ok {
			continue
		}
		sl.Take()
		s.gen++
		sl.gen = s.gen
		dst = append(dst, sl)
		limit--
	}
	return dst
}

// ParseSchedule reads a retry schedule: waits separated by commas
// ("5s,5m,30m,2h"), each a Go duration of at least a millisecond and at
// most a week. "" is no schedule.
func ParseSchedule(s string) ([]time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > 100 {
		return nil, fmt.Errorf("retry schedule of %d steps; at most 100", len(parts))
	}
	out := make([]time.Duration, len(parts))
	for i, p := range parts {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("retry schedule step %d: %w", i+1, err)
		}
		if d < time.Millisecond || d > 7*24*time.Hour {
			return nil, fmt.Errorf("retry schedule step %d: %s is outside 1ms to 168h", i+1, d)
		}
		out[i] = d
	}
	return out, nil
}
