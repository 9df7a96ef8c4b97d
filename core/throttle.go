package core

import (
	"sync/atomic"
	"time"
)

// Throttle lets one log line through per Every and counts the rest, so
// that an error repeated on every request or every loop turn is logged
// once a period with how many were left out. Safe for concurrent use;
// set Every before use.
type Throttle struct {
	Every time.Duration
	last  atomic.Int64 // Unix ns of the last line let through
	count atomic.Int64 // lines held back since
}

// Allow reports whether a line may be logged now; if not, it is counted.
func (t *Throttle) Allow() bool {
	now := time.Now().UnixNano()
	last := t.last.Load()
	if now-last < int64(t.Every) || !t.last.CompareAndSwap(last, now) {
		t.count.Add(1)
		return false
	}
	return true
}

// Suppressed returns how many lines were held back since it was last
// called, and starts counting again.
func (t *Throttle) Suppressed() int64 { return t.count.Swap(0) }
