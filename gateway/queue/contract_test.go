package queue

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/hookgate/hookgate/gateway/store"
)

// impl opens a queue for the contract suite; reopen, when not nil, closes
// it and opens it again on the same storage.
type impl struct {
	name string
	open func(t *testing.T, o Options) (q Queue, reopen func() Queue)
}

func openBadgerDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func impls() []impl {
	badgerImpl := func(async bool) impl {
		return impl{fmt.Sprintf("badger/async=%v", async), func(t *testing.T, o Options) (Queue, func() Queue) {
			o.Async = async
			dir := t.TempDir()
			db := openBadgerDB(t, dir)
			q, err := OpenBadger(db, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { q.Close(); db.Close() })
			reopen := func() Queue {
				q.Close()
				db.Close()
				db = openBadgerDB(t, dir)
				q, err = OpenBadger(db, o)
				if err != nil {
					t.Fatal(err)
				}
				return q
			}
			return q, reopen
		}}
	}
	return []impl{
		{"memory", func(t *testing.T, o Options) (Queue, func() Queue) { return NewMemory(o), nil }},
		badgerImpl(false),
		badgerImpl(true),
	}
}

func mustAppend(t *testing.T, q Queue, data string) uint64 {
	t.Helper()
	seq, err := q.Append([]byte(data))
	if err != nil {
		t.Fatalf("Append(%q): %v", data, err)
	}
	return seq
}

func readAll(t *testing.T, q Queue, from uint64) []Record {
	t.Helper()
	recs, err := q.Read(nil, from, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestContract(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Run("order", func(t *testing.T) {
				q, _ := im.open(t, Options{})
				if q.Len() != 0 {
					t.Fatalf("new queue Len = %d", q.Len())
				}
				buf := []byte("first")
				s1, _ := q.Append(buf)
				copy(buf, "XXXXX") // the queue keeps its own copy
				s2 := mustAppend(t, q, "second")
				s3 := mustAppend(t, q, "third")
				if s1 != 1 || s2 != 2 || s3 != 3 {
					t.Fatalf("seqs = %d %d %d; want 1 2 3", s1, s2, s3)
				}
				recs := readAll(t, q, 0)
				if len(recs) != 3 || string(recs[0].Data) != "first" || string(recs[2].Data) != "third" || recs[1].Seq != 2 {
					t.Fatalf("Read = %+v", recs)
				}
				if got, _ := q.Read(nil, 2, 1); len(got) != 1 || got[0].Seq != 2 {
					t.Fatalf("Read(from 2, max 1) = %+v", got)
				}
				if got, _ := q.Read(nil, 4, 10); len(got) != 0 {
					t.Fatalf("Read past the end = %+v", got)
				}
				if q.Len() != 3 {
					t.Fatalf("Len = %d; want 3", q.Len())
				}
			})
			t.Run("ack", func(t *testing.T) {
				q, _ := im.open(t, Options{})
				for i := range 5 {
					mustAppend(t, q, fmt.Sprint(i))
				}
				if err := q.Ack(2); err != nil {
					t.Fatal(err)
				}
				recs := readAll(t, q, 0)
				if len(recs) != 3 || recs[0].Seq != 3 {
					t.Fatalf("after Ack(2), Read = %+v", recs)
				}
				if err := q.Ack(1); err != nil {
					t.Fatalf("Ack behind the cursor: %v", err)
				}
				if q.Len() != 3 {
					t.Fatalf("Len = %d; want 3", q.Len())
				}
				if err := q.Ack(6); !errors.Is(err, ErrAckAhead) {
					t.Fatalf("Ack(6) of 5 records: err = %v; want ErrAckAhead", err)
				}
				if err := q.Ack(5); err != nil || q.Len() != 0 || len(readAll(t, q, 0)) != 0 {
					t.Fatalf("Ack all: err %v, Len %d", err, q.Len())
				}
				if s := mustAppend(t, q, "after"); s != 6 {
					t.Fatalf("seq after acking all = %d; want 6", s)
				}
			})
			t.Run("backpressure", func(t *testing.T) {
				q, _ := im.open(t, Options{MaxBacklog: 3})
				for i := range 3 {
					mustAppend(t, q, fmt.Sprint(i))
				}
				if _, err := q.Append([]byte("x")); !errors.Is(err, ErrFull) {
					t.Fatalf("Append past MaxBacklog: err = %v; want ErrFull", err)
				}
				if q.Len() != 3 {
					t.Fatalf("a refused append changed Len to %d", q.Len())
				}
				q.Ack(1)
				mustAppend(t, q, "room again")
			})
			t.Run("updated", func(t *testing.T) {
				q, _ := im.open(t, Options{})
				mustAppend(t, q, "x")
				select {
				case <-q.Updated():
				case <-time.After(5 * time.Second):
					t.Fatal("no update signal after an append")
				}
			})
			t.Run("concurrent", func(t *testing.T) {
				q, _ := im.open(t, Options{})
				const writers, each = 16, 50
				var wg sync.WaitGroup
				seen := make([]map[uint64]string, writers)
				for w := range writers {
					seen[w] = map[uint64]string{}
					wg.Go(func() {
						for i := range each {
							d := fmt.Sprintf("w%d-%d", w, i)
							s, err := q.Append([]byte(d))
							if err != nil {
								t.Error(err)
								return
							}
							seen[w][s] = d
						}
					})
				}
				wg.Wait()
				recs := readAll(t, q, 0)
				if len(recs) != writers*each {
					t.Fatalf("read %d records; want %d", len(recs), writers*each)
				}
				for i, r := range recs {
					if r.Seq != uint64(i+1) {
						t.Fatalf("record %d has seq %d: gap or disorder", i, r.Seq)
					}
				}
				for _, m := range seen {
					for s, d := range m {
						if !bytes.Equal(recs[s-1].Data, []byte(d)) {
							t.Fatalf("seq %d holds %q; want %q", s, recs[s-1].Data, d)
						}
					}
				}
			})
			t.Run("ack what was read at once", func(t *testing.T) {
				// A consumer reading while appends commit may acknowledge
				// anything it read, even before the appender returns.
				q, _ := im.open(t, Options{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					for i := range 300 {
						if _, err := q.Append([]byte(fmt.Sprint(i))); err != nil {
							t.Errorf("Append: %v", err)
							return
						}
					}
				}()
				var acked uint64
				for acked < 300 && !t.Failed() {
					recs, err := q.Read(nil, acked+1, 50)
					if err != nil {
						t.Fatal(err)
					}
					if len(recs) > 0 {
						if err := q.Ack(recs[len(recs)-1].Seq); err != nil {
							t.Fatalf("Ack of a record just read: %v", err)
						}
						acked = recs[len(recs)-1].Seq
					}
					if q.Len() > 300 {
						t.Fatalf("Len underflowed: %d", q.Len())
					}
				}
				<-done
			})
			t.Run("closed", func(t *testing.T) {
				q, _ := im.open(t, Options{})
				mustAppend(t, q, "x")
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := q.Append([]byte("y")); !errors.Is(err, ErrClosed) {
					t.Fatalf("Append after Close: %v", err)
				}
				if _, err := q.Read(nil, 0, 1); !errors.Is(err, ErrClosed) {
					t.Fatalf("Read after Close: %v", err)
				}
				if err := q.Ack(1); !errors.Is(err, ErrClosed) {
					t.Fatalf("Ack after Close: %v", err)
				}
				if err := q.Close(); !errors.Is(err, ErrClosed) {
					t.Fatalf("second Close: %v", err)
				}
			})
			t.Run("reopen", func(t *testing.T) {
				q, reopen := im.open(t, Options{})
				if reopen == nil {
					t.Skip("not persistent")
				}
				for i := range 10 {
					mustAppend(t, q, fmt.Sprint(i))
				}
				q.Ack(4)
				q = reopen()
				recs := readAll(t, q, 0)
				if len(recs) != 6 || recs[0].Seq != 5 || string(recs[0].Data) != "4" {
					t.Fatalf("after reopen, Read = %+v", recs)
				}
				if q.Len() != 6 {
					t.Fatalf("after reopen, Len = %d; want 6", q.Len())
				}
				if s := mustAppend(t, q, "10"); s != 11 {
					t.Fatalf("seq after reopen = %d; want 11", s)
				}
				q.Ack(11)
				q = reopen()
				if s := mustAppend(t, q, "11"); s != 12 {
					t.Fatalf("seq after reopening an empty queue = %d; want 12 (never reused)", s)
				}
			})
		})
	}
}

// TestGroupCommit shows that concurrent appends share syncs: with many
// writers, commits carry more than one record each.
func TestGroupCommit(t *testing.T) {
	var mu sync.Mutex
	commits, records := 0, 0
	db := openBadgerDB(t, t.TempDir())
	defer db.Close()
	q, err := OpenBadger(db, Options{OnCommit: func(n int, err error) {
		mu.Lock()
		commits++
		records += n
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const writers, each = 64, 20
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				if _, err := q.Append([]byte("m")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	q.Close() // callers are woken before OnCommit runs: wait for the last one
	mu.Lock()
	defer mu.Unlock()
	if records != writers*each {
		t.Fatalf("committed %d records; want %d", records, writers*each)
	}
	if commits >= records/2 {
		t.Fatalf("%d commits for %d records: appends are not grouped", commits, records)
	}
	t.Logf("%d records in %d commits (%.1f per sync)", records, commits, float64(records)/float64(commits))
}

// TestAppendFailsWhenPendingFull: appends beyond MaxPending while the
// committer is busy fail at once instead of queueing in memory.
func TestAppendFailsWhenPendingFull(t *testing.T) {
	db := openBadgerDB(t, t.TempDir())
	defer db.Close()
	block := make(chan struct{})
	var once sync.Once
	q, err := OpenBadger(db, Options{MaxPending: 2, MaxBatch: 1, OnCommit: func(int, error) {
		once.Do(func() { <-block }) // hold the committer after its first commit
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	results := make(chan error, 10)
	for range 10 {
		go func() { _, err := q.Append([]byte("x")); results <- err }()
	}
	var full int
	deadline := time.After(10 * time.Second)
	for full < 10-3 { // at most 1 committing + 2 pending may wait
		select {
		case err := <-results:
			if !errors.Is(err, ErrFull) {
				t.Fatalf("while the committer is blocked, Append returned %v; want ErrFull", err)
			}
			full++
		case <-deadline:
			t.Fatalf("only %d appends failed fast; want at least 7", full)
		}
	}
	close(block)
	for range 10 - full {
		if err := <-results; err != nil {
			t.Fatalf("accepted append failed: %v", err)
		}
	}
}
