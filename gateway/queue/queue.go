package queue

import (
	"errors"
	"time"

	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/state"
)

// Record is one queued entry; Append assigns its Seq.
type Record = state.Record

// Queue is the contract every implementation meets: the marker log of
// the state seam (state.Log), with the gateway's side of it.
type Queue interface {
	// Append stores a copy of data and returns its sequence number once
	// the record is as durable as the queue is configured to make it.
	Append(data []byte) (seq uint64, err error)
	// Read appends to dst up to max records with Seq >= from, in order,
	// skipping acknowledged ones.
	Read(dst []Record, from uint64, max int) ([]Record, error)
	// Ack acknowledges every record with Seq <= upTo; they are never read
	// again. Acknowledging what is already acknowledged does nothing.
	Ack(upTo uint64) error
	// Len returns the number of appended, unacknowledged records.
	Len() uint64
	// Updated returns a channel that receives a value after appends
	// commit, for a consumer waiting for new records. Values may be
	// coalesced.
	Updated() <-chan struct{}
	// Close stops the queue. Appends in flight finish; later calls return
	// ErrClosed.
	Close() error
}

var (
	// ErrFull is returned by Append when the queue already holds
	// Options.MaxBacklog unacknowledged records, or Options.MaxPending
	// appends are waiting for the disk. Nothing was stored.
	ErrFull = errors.New("queue: full")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("queue: closed")
	// ErrAckAhead is returned by Ack for a sequence number that was never
	// appended.
	ErrAckAhead = errors.New("queue: ack beyond the last record")
)

// Options configures a queue. The zero value is valid.
type Options struct {
	// MaxBacklog caps unacknowledged records; 0 means no cap beyond the
	// disk. Past it, Append returns ErrFull.
	MaxBacklog uint64
	// MaxPending caps appends waiting for the committer (Badger only).
	// Default 16384. Past it, Append returns ErrFull.
	MaxPending int
	// MaxBatch caps the records written by one commit (Badger only).
	// Default 1024.
	MaxBatch int
	// Async skips the sync after each commit (Badger only): Append returns
	// once the record is in Badger's write-ahead log, which survives a
	// crash of hookgate but not of the machine; the log is synced every
	// SyncInterval, and at Close, by a goroutine that appends do not wait
	// for. Default false: Append returns after the sync.
	Async bool
	// SyncInterval is how often an Async queue syncs. Default 1s.
	SyncInterval time.Duration
	// OnCommit, if set, is called by the committer after each commit with
	// the number of records it wrote and the error, if any. It must not
	// block.
	OnCommit func(records int, err error)
	// OnSync, if set, is called after each sync of the markers (Badger
	// only: the committer's in the default mode, the syncer's with Async)
	// with how long it took. It must not block.
	OnSync func(took time.Duration)
	// Space, if set, is checked before every write (Badger only): while
	// the disk is below its reserve, appends fail with an error wrapping
	// store.ErrNoSpace and acknowledgements wait.
	Space *store.Space
}

// Interface guards
var (
	_ Queue     = (*Badger)(nil)
	_ Queue     = (*Memory)(nil)
	_ state.Log = Queue(nil)
)
