package queue

import (
	"sync"
)

// Memory is a Queue held in memory: nothing survives the process. For
// tests, benchmarks and the demo's in-memory mode.
type Memory struct {
	opts    Options
	updated chan struct{}

	mu     sync.Mutex // guards the fields below
	recs   []Record   // unacknowledged, in order
	next   uint64     // sequence number of the next append
	closed bool
}

// NewMemory returns an empty in-memory queue.
func NewMemory(o Options) *Memory {
	return &Memory{opts: o, next: 1, updated: make(chan struct{}, 1)}
}

// Append implements Queue.
func (q *Memory) Append(data []byte) (uint64, error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, ErrClosed
	}
	if q.opts.MaxBacklog > 0 && uint64(len(q.recs)) >= q.opts.MaxBacklog {
		q.mu.Unlock()
		return 0, ErrFull
	}
	seq := q.next
	q.next++
	q.recs = append(q.recs, Record{Seq: seq, Data: append([]byte(nil), data...)})
	q.mu.Unlock()
	if q.opts.OnCommit != nil {
		q.opts.OnCommit(1, nil)
	}
	signal(q.updated)
	return seq, nil
}

// Read implements Queue.
func (q *Memory) Read(dst []Record, from uint64, limit int) ([]Record, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return dst, ErrClosed
	}
	for _, r := range q.recs {
		if limit <= 0 {
			break
		}
		if r.Seq >= from {
			dst = append(dst, Record{Seq: r.Seq, Data: append([]byte(nil), r.Data...)})
			limit--
		}
	}
	return dst, nil
}

// Ack implements Queue.
func (q *Memory) Ack(upTo uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if upTo >= q.next {
		return ErrAckAhead
	}
	i := 0
	for i < len(q.recs) && q.recs[i].Seq <= upTo {
		i++
	}
	q.recs = append(q.recs[:0], q.recs[i:]...)
	return nil
}

// Len implements Queue.
func (q *Memory) Len() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return uint64(len(q.recs))
}

// Updated implements Queue.
func (q *Memory) Updated() <-chan struct{} { return q.updated }

// Close implements Queue.
func (q *Memory) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.closed = true
	return nil
}

// signal wakes a waiting consumer without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
