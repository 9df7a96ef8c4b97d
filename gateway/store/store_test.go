package store

import (
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// TestOpenReadsCompressedTables: a database whose tables an older
// version wrote with Snappy compression is read by Open, which writes
// uncompressed tables, and both kinds are read after a compaction.
func TestOpenReadsCompressedTables(t *testing.T) {
	dir := t.TempDir()
	old, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithCompression(options.Snappy))
	if err != nil {
		t.Fatal(err)
	}
	put := func(db *badger.DB, from, to int) {
		t.Helper()
		if _, err := WriteBatch(db, entries(from, to)); err != nil {
			t.Fatal(err)
		}
	}
	put(old, 0, 5000)
	if err := old.Close(); err != nil { // flushes the memtable to a Snappy table
		t.Fatal(err)
	}
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(db, 5000, 10000)
	if err := db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			want := fmt.Sprintf("k%06d", n)
			if got := string(it.Item().Key()); got != want {
				return fmt.Errorf("key %q; want %q", got, want)
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if string(v) != "v"+want {
				return fmt.Errorf("%s = %q", want, v)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 10000 {
		t.Fatalf("%d keys read back; want 10000", n)
	}
}

func entries(from, to int) []Entry {
	var es []Entry
	for i := from; i < to; i++ {
		k := fmt.Sprintf("k%06d", i)
		es = append(es, Entry{Key: []byte(k), Value: []byte("v" + k)})
	}
	return es
}

// TestSettledAtOpen: after bulk writes and a close, the database opens
// with nothing for its compactors to do (every level's score below 1),
// so that they do not compete with the webhooks' load for the CPU. The
// writes are many memtables' worth, overwriting each key three times, as
// run records do.
func TestSettledAtOpen(t *testing.T) {
	dir := t.TempDir()
	o := Options{MemTableSize: 8 << 20}
	db, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 1000)
	for round := range 3 {
		var es []Entry
		for i := range 30_000 {
			val[0] = byte(round)
			es = append(es, Entry{Key: fmt.Appendf(nil, "c\x00%08d", i*7919%30_000), Value: append([]byte(nil), val...)})
		}
		if _, err := WriteBatch(db, es); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, o); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := 0
	for _, l := range db.Levels() {
		tables += l.NumTables
		if l.Level > 0 && l.Score >= 1 {
			t.Errorf("level %d: %d tables, %d bytes, target %d: score %.2f; want below 1 (nothing to compact at open)",
				l.Level, l.NumTables, l.Size, l.TargetSize, l.Score)
		}
	}
	if tables < 3 {
		t.Fatalf("%d tables: the test wrote too little to fill levels", tables)
	}
}
