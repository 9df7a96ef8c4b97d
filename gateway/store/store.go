// Package store opens hookgate's Badger database and owns its key space:
// every other package writes under the prefix this file gives it, so one
// database holds the change queue (and later the webhooks) without clashes.
//
// The *badger.DB it returns is safe for concurrent use; the caller that
// opened it closes it, after everything using it has stopped.
package store

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Key prefixes, one per user of the database.
const (
	// PrefixQueue holds change markers and the queue's cursor.
	PrefixQueue = "q"
	// PrefixWebhooks holds webhook records, one key per webhook.
	PrefixWebhooks = "w"
	// PrefixPending holds each webhook's undelivered messages.
	PrefixPending = "p"
	// PrefixRuns holds webhooks' run histories, one key per run.
	PrefixRuns = "r"
	// PrefixCounters holds the counters of each webhook's runs.
	PrefixCounters = "c"
)

// Options tunes the database. The zero value is valid.
type Options struct {
	// MemTableSize is the size of one Badger memtable, in bytes.
	// Default 16 MiB: markers are small, and a smaller table keeps the
	// gateway's resident memory low.
	MemTableSize int64
	// BlockCacheSize is Badger's cache of table blocks, in bytes.
	// Default none: tables are not compressed (see Open), so a block is
	// read in place from its memory-mapped file, and a cache would only
	// add its own bookkeeping to every read (at a million webhooks, a
	// tenth of the load's CPU). A table compressed by an older version
	// is decoded at each read until a compaction rewrites it.
	BlockCacheSize int64
	// Logger receives Badger's warnings and errors. Default slog.Default().
	Logger *slog.Logger
}

// BaseLevelSize is the size of Badger's base level: an LSM tree smaller
// than it is level 0 and one level, so that nothing is left to rebalance
// when the database opens.
const BaseLevelSize = 1 << 30

// Open opens (creating if needed) the database in dir. Writes are not
// synced by Badger itself: the queue groups its own syncs (see
// queue.Options.Sync).
func Open(dir string, o Options) (*badger.DB, error) {
	if o.MemTableSize == 0 {
		o.MemTableSize = 16 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data directory %q: %w", dir, err)
	}
	opt := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{o.Logger.With("component", "badger")}).
		WithSyncWrites(false).
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(3).
		WithNumCompactors(2).
		// A close compacts level 0, so that the next start does not load
		// the webhooks while the compaction competes for the CPU (at a
		// million webhooks, 2.0 s to ready after a graceful stop instead
		// of 2.1-2.3 s; the stop takes a second or two more).
		WithCompactL0OnClose(true).
		WithBlockCacheSize(o.BlockCacheSize).
		// Tables are not compressed: a block is read in place, where a
		// compressed one is decoded into a fresh buffer at every read,
		// compactions included. At a million webhooks' boot storm that
		// was a third of what the process allocated; the tables take
		// about twice the disk. Tables written compressed by an older
		// version are still read: each table records its own compression.
		WithCompression(options.None).
		// Levels below 1 GiB are one level: data that fits goes from
		// level 0 straight to the last level. With Badger's 10 MiB base a
		// million webhooks (330 MB) sat on three levels that its
		// compactors rebalanced at every open, on the CPUs the load
		// needs: 2.6-3.8 s to ready right after a million writes, 1.7 s
		// after a graceful stop; with one level, 1.4-1.8 s in both.
		WithBaseLevelSize(BaseLevelSize).
		WithValueLogFileSize(64 << 20)
	db, err := badger.Open(opt)
	if err != nil {
		return nil, fmt.Errorf("cannot open database in %q: %w", dir, err)
	}
	return db, nil
}

// badgerLogger passes Badger's warnings and errors to slog and drops its
// chatty info and debug lines.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(string, ...any)        {}
func (b badgerLogger) Debugf(string, ...any)       {}
