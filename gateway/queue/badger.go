package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/hookgate/hookgate/gateway/store"
)

// Badger is a Queue on disk, in a Badger database shared with the rest of
// hookgate, under store.PrefixQueue.
//
// Appends go through one committer goroutine: it takes every append that
// is waiting (up to MaxBatch), writes them in one transaction, syncs once,
// and wakes their callers. While it syncs, new appends gather for the next
// commit, so the more concurrent mutations there are, the fewer syncs each
// one pays for.
//
// An Async queue's committer does not sync: a goroutine of its own syncs
// Badger's write-ahead logs every SyncInterval, and appends go on
// meanwhile (see logSyncer).
type Badger struct {
	db      *badger.DB
	opts    Options
	reqs    chan *appendReq
	updated chan struct{}
	done    chan struct{} // closed when the committer has exited
	// synced is closed when the syncer has made its last sync, after
	// the committer's last commit (at once when not Async).
	synced chan struct{}
	sync   func() error // the syncer's sync

	closeMu sync.RWMutex // held for reading while sending on reqs; see Close
	closed  bool         // guarded by closeMu

	next atomic.Uint64 // next sequence number; written by the committer only
	// reserved bounds (exclusive) the sequence numbers a reader may see:
	// the committer raises it before writing a batch, since records are
	// readable as soon as the transaction commits, before next moves.
	reserved atomic.Uint64
	acked    atomic.Uint64 // highest acknowledged sequence number
	// inflight counts appends accepted but not yet committed, so MaxBacklog
	// holds while they wait.
	inflight atomic.Int64
	reqPool  sync.Pool // of *appendReq
}

type appendReq struct {
	data []byte
	seq  uint64
	err  error
	done chan struct{}
}

// newReq makes a request for the pool. Each queue has a pool of its own,
// so that a request's channel never serves two queues (nor a test's
// synctest bubble and the world outside it).
func newReq() any { return &appendReq{done: make(chan struct{}, 1)} }

// Keys: prefix + 0x00 + big-endian seq for records, prefix + 0x01 for the
// acknowledged cursor.
var (
	recPrefix = []byte(store.PrefixQueue + "\x00")
	ackKey    = []byte(store.PrefixQueue + "\x01")
)

func recKey(dst []byte, seq uint64) []byte {
	dst = append(dst, recPrefix...)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// OpenBadger opens the queue stored in db and starts its committer (and,
// if Async, its syncer).
func OpenBadger(db *badger.DB, o Options) (*Badger, error) {
	return openBadger(db, o, logSyncer(db))
}

// openBadger is OpenBadger with the function the syncer of an Async
// queue calls every SyncInterval and once at Close.
func openBadger(db *badger.DB, o Options, sync func() error) (*Badger, error) {
	if o.MaxPending <= 0 {
		o.MaxPending = 16384
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	q := &Badger{
		db:      db,
		opts:    o,
		reqs:    make(chan *appendReq, o.MaxPending),
		updated: make(chan struct{}, 1),
		done:    make(chan struct{}),
		synced:  make(chan struct{}),
		sync:    sync,
	}
	q.reqPool.New = newReq
	var acked, last uint64
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(ackKey)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("queue cursor has %d bytes; want 8", len(v))
				}
				acked = binary.BigEndian.Uint64(v)
				return nil
			}); err != nil {
				return err
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: recPrefix})
		defer it.Close()
		it.Seek(recKey(nil, ^uint64(0)))
		if it.Valid() {
			last = binary.BigEndian.Uint64(it.Item().Key()[len(recPrefix):])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot open queue: %w", err)
	}
	q.next.Store(max(last, acked) + 1)
	q.reserved.Store(q.next.Load())
	q.acked.Store(acked)
	go q.commitLoop()
	if o.Async {
		go q.syncLoop()
	} else {
		close(q.synced)
	}
	return q, nil
}

// Append implements Queue. It blocks until the record is committed (and,
// unless Async, synced), and fails at once with ErrFull rather than wait
// for room.
func (q *Badger) Append(data []byte) (uint64, error) {
	if q.opts.MaxBacklog > 0 && q.Len()+uint64(q.inflight.Load()) >= q.opts.MaxBacklog {
		return 0, ErrFull
	}
	r := q.reqPool.Get().(*appendReq)
	r.data = append(r.data[:0], data...)
	q.closeMu.RLock()
	if q.closed {
		q.closeMu.RUnlock()
		q.releaseReq(r)
		return 0, ErrClosed
	}
	select {
	case q.reqs <- r:
		q.inflight.Add(1)
	default:
		q.closeMu.RUnlock()
		q.releaseReq(r)
		return 0, ErrFull
	}
	q.closeMu.RUnlock()
	<-r.done
	seq, err := r.seq, r.err
	q.releaseReq(r)
	return seq, err
}

// releaseReq returns r to the pool; r must not be used afterwards.
func (q *Badger) releaseReq(r *appendReq) {
	if cap(r.data) > 64<<10 {
		r.data = nil
	}
	r.seq, r.err = 0, nil
	q.reqPool.Put(r)
}

func (q *Badger) commitLoop() {
	defer close(q.done)
	batch := make([]*appendReq, 0, q.opts.MaxBatch)
	var keys []byte
	for {
		r, ok := <-q.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], r)
	gather:
		for len(batch) < q.opts.MaxBatch {
			select {
			case r, ok := <-q.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		keys = q.commit(batch, keys)
	}
}

// syncLoop is an Async queue's syncer: it syncs every SyncInterval, and
// once more after the committer's last commit. Appends never wait for
// it. Errors are not returned: they resurface on the next sync or
// write, and the async mode promises no more than the write-ahead log.
func (q *Badger) syncLoop() {
	defer close(q.synced)
	t := time.NewTicker(q.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = q.timedSync(q.sync)
		case <-q.done:
			_ = q.timedSync(q.sync)
			return
		}
	}
}

// timedSync runs sync and tells OnSync how long it took.
func (q *Badger) timedSync(sync func() error) error {
	if q.opts.OnSync == nil {
		return sync()
	}
	start := time.Now()
	err := sync()
	q.opts.OnSync(time.Since(start))
	return err
}

// commit writes batch in one transaction and wakes its callers. It reuses
// keys as scratch space and returns it.
func (q *Badger) commit(batch []*appendReq, keys []byte) []byte {
	first := q.next.Load()
	keys = keys[:0]
	for i := range batch {
		keys = recKey(keys, first+uint64(i))
	}
	kl := len(recPrefix) + 8
	err := q.opts.Space.Check()
	if err == nil {
		q.reserved.Store(first + uint64(len(batch)))
		err = q.db.Update(func(txn *badger.Txn) error {
			for i, r := range batch {
				if err := txn.Set(keys[i*kl:(i+1)*kl:(i+1)*kl], r.data); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err == nil {
		q.next.Store(first + uint64(len(batch)))
		if !q.opts.Async {
			err = q.timedSync(q.db.Sync)
		}
	}
	if err != nil {
		err = fmt.Errorf("cannot write change markers: %w", err)
	}
	q.inflight.Add(-int64(len(batch)))
	for i, r := range batch {
		if err == nil {
			r.seq = first + uint64(i)
		}
		r.err = err
		r.done <- struct{}{}
		batch[i] = nil
	}
	if q.opts.OnCommit != nil {
		q.opts.OnCommit(len(batch), err)
	}
	if err == nil {
		signal(q.updated)
	}
	return keys
}

// Read implements Queue.
func (q *Badger) Read(dst []Record, from uint64, limit int) ([]Record, error) {
	if q.isClosed() {
		return dst, ErrClosed
	}
	from = max(from, q.acked.Load()+1)
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recPrefix, PrefetchValues: true, PrefetchSize: min(limit, 100)})
		defer it.Close()
		for it.Seek(recKey(nil, from)); it.Valid() && limit > 0; it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			dst = append(dst, Record{Seq: binary.BigEndian.Uint64(item.Key()[len(recPrefix):]), Data: v})
			limit--
		}
		return nil
	})
	if err != nil {
		return dst, fmt.Errorf("cannot read change markers: %w", err)
	}
	return dst, nil
}

// Ack implements Queue. The deletions are not synced: after a crash, some
// acknowledged records may be read again (at-least-once), never fewer.
func (q *Badger) Ack(upTo uint64) error {
	if q.isClosed() {
		return ErrClosed
	}
	if upTo >= max(q.next.Load(), q.reserved.Load()) {
		return ErrAckAhead
	}
	prev := q.acked.Load()
	if upTo <= prev {
		return nil
	}
	if err := q.opts.Space.Check(); err != nil {
		return fmt.Errorf("cannot acknowledge change markers: %w", err)
	}
	wb := q.db.NewWriteBatch()
	defer wb.Cancel()
	var key []byte
	for s := prev + 1; s <= upTo; s++ {
		key = recKey(key[:0], s)
		if err := wb.Delete(append([]byte(nil), key...)); err != nil {
			return fmt.Errorf("cannot acknowledge change markers: %w", err)
		}
	}
	if err := wb.Set(append([]byte(nil), ackKey...), binary.BigEndian.AppendUint64(nil, upTo)); err != nil {
		return fmt.Errorf("cannot acknowledge change markers: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("cannot acknowledge change markers: %w", err)
	}
	q.acked.Store(upTo)
	return nil
}

// Len implements Queue.
func (q *Badger) Len() uint64 {
	last, acked := q.next.Load()-1, q.acked.Load()
	if acked >= last { // a reader may acknowledge a batch before next moves
		return 0
	}
	return last - acked
}

// Updated implements Queue.
func (q *Badger) Updated() <-chan struct{} { return q.updated }

// Close implements Queue: it refuses new appends, commits those already
// accepted, stops the committer and, if Async, syncs once more and stops
// the syncer.
func (q *Badger) Close() error {
	q.closeMu.Lock()
	if q.closed {
		q.closeMu.Unlock()
		return ErrClosed
	}
	q.closed = true
	close(q.reqs) // no sender holds closeMu for reading now
	q.closeMu.Unlock()
	<-q.done
	<-q.synced
	return nil
}

func (q *Badger) isClosed() bool {
	q.closeMu.RLock()
	defer q.closeMu.RUnlock()
	return q.closed
}
