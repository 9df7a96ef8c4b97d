package store

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// Entry is one key of a batch write: Value is stored under Key, or Key
// is deleted.
type Entry struct {
	Key, Value []byte
	Delete     bool
}

// WriteBatch writes entries in order, in as many transactions as
// Badger's limits need: when the next entry would make a transaction too
// big (badger.ErrTxnTooBig), the transaction commits and the entry
// starts the next one. So a batch of any size fits, however large its
// values. Nothing is synced.
//
// It returns how many entries, counted from the first, were committed:
// on an error, entries[n:] were not written (each transaction is all or
// nothing), and the caller retries them, in parts again, later.
func WriteBatch(db *badger.DB, entries []Entry) (n int, err error) {
	for n < len(entries) {
		k, err := writeChunk(db, entries[n:])
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// writeChunk commits the longest prefix of entries that fits one
// transaction, and returns its length.
func writeChunk(db *badger.DB, entries []Entry) (int, error) {
	txn := db.NewTransaction(true)
	defer txn.Discard()
	k := 0
	for ; k < len(entries); k++ {
		e := entries[k]
		var err error
		if e.Delete {
			err = txn.Delete(e.Key)
		} else {
			err = txn.Set(e.Key, e.Value)
		}
		if errors.Is(err, badger.ErrTxnTooBig) && k > 0 {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if err := txn.Commit(); err != nil {
		return 0, err
	}
	return k, nil
}
