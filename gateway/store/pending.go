package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
	json "github.com/goccy/go-json"

	"github.com/hookgate/hookgate/state"
)

// Pending is the Badger state.Pending: each webhook's set under
// PrefixPending + 0x00 + its id, JSON-encoded.
//
// Writes are not synced. The change queue (gateway/queue) shares the
// database, and Badger writes every transaction to one ordered
// write-ahead log whose replay stops at the first damaged entry: an
// acknowledgement of markers that survives a crash implies that the sets
// written before it survive too, as state.Pending.Write requires.
type Pending struct {
	db    *badger.DB
	space *Space
}

var _ state.Pending = (*Pending)(nil)

var pendingPrefix = []byte(PrefixPending + "\x00")

// NewPending returns the pending sets of db; writes check space first,
// when it is not nil.
func NewPending(db *badger.DB, space *Space) *Pending { return &Pending{db: db, space: space} }

// Load implements state.Pending.
func (p *Pending) Load(f func(id string, set state.PendingSet) error) error {
	err := p.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pendingPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(pendingPrefix):])
			if err := it.Item().Value(func(v []byte) error {
				var s state.PendingSet
				if err := json.Unmarshal(v, &s); err != nil {
					return fmt.Errorf("pending set of %s: %w", id, err)
				}
				return f(id, s)
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot load pending notifications: %w", err)
	}
	return nil
}

// Write implements state.Pending.
func (p *Pending) Write(ws []state.PendingWrite) (int, error) {
	if err := p.space.Check(); err != nil {
		return 0, fmt.Errorf("cannot store pending notifications: %w", err)
	}
	entries := make([]Entry, len(ws))
	for i, w := range ws {
		entries[i].Key = append(append([]byte(nil), pendingPrefix...), w.ID...)
		if w.Set == nil {
			entries[i].Delete = true
			continue
		}
		v, err := json.Marshal(w.Set)
		if err != nil {
			return 0, err
		}
		entries[i].Value = v
	}
	n, err := WriteBatch(p.db, entries)
	if err != nil {
		return n, fmt.Errorf("cannot store pending notifications: %w", err)
	}
	return n, nil
}

// Sync implements state.Pending.
func (p *Pending) Sync() error { return p.db.Sync() }
