package queue

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/dgraph-io/badger/v4"

	"github.com/hookgate/hookgate/gateway/store"
)

// impl opens a queue for the contract suite; reopen, when not nil, closes
// it and opens it again on the same storage.
type impl struct {
	name string
	open func(t *testing.T, o Options) (q Queue, reopen func() Queue)
}

func openBadgerDB(t testing.TB, dir string) *badger.DB {
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

// bubbled runs f in a synctest bubble. The queue must be opened inside
// it (a Badger opened outside cannot be used from inside), and every
// goroutine f starts must end by the time f and its cleanups return.
// Tests of concurrent behaviour then synchronise with synctest.Wait,
// which returns once every other goroutine of the bubble (the committer,
// Badger's own, the test's appenders) is blocked, and assert what they
// see without waiting for anything.
func bubbled(f func(t *testing.T)) func(t *testing.T) {
	return func(t *testing.T) { synctest.Test(t, f) }
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

// TestContract runs every implementation through the Queue contract, each
// case in a synctest bubble (see bubbled).
func TestContract(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Run("order", bubbled(func(t *testing.T) {
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
			}))
			t.Run("ack", bubbled(func(t *testing.T) {
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
			}))
			t.Run("backpressure", bubbled(func(t *testing.T) {
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
			}))
			t.Run("updated", bubbled(func(t *testing.T) {
				q, _ := im.open(t, Options{})
				synctest.Wait()
				select {
				case <-q.Updated():
					t.Fatal("an update signal before any append")
				default:
				}
				for round := range 2 {
					mustAppend(t, q, "x")
					synctest.Wait() // whatever follows the commit has run
					select {
					case <-q.Updated():
					default:
						t.Fatalf("round %d: no update signal after an append", round)
					}
				}
			}))
			t.Run("concurrent", bubbled(func(t *testing.T) {
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
			}))
			t.Run("ack what was read at once", bubbled(func(t *testing.T) {
				// A consumer reading while appends commit may acknowledge
				// anything it read, even before the appender returns.
				q, _ := im.open(t, Options{})
				const n = 300
				done := make(chan struct{})
				go func() {
					defer close(done)
					for i := range n {
						if _, err := q.Append([]byte(fmt.Sprint(i))); err != nil {
							t.Errorf("Append: %v", err)
							return
						}
					}
				}()
				// Wait for the appender before returning, whatever
				// happens: the queue closes at cleanup.
				defer func() { <-done }()
				var acked uint64
				for acked < n {
					// Once every append has returned, one read must find
					// all that is left: checked before reading.
					finished := false
					select {
					case <-done:
						finished = true
					default:
					}
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
					if q.Len() > n {
						t.Fatalf("Len underflowed: %d", q.Len())
					}
					if len(recs) == 0 {
						if finished {
							t.Fatalf("every append returned, but only %d of %d records were read", acked, n)
						}
						// Nothing new yet: wait for a commit or for the
						// appender to finish, rather than spin.
						select {
						case <-q.Updated():
						case <-done:
						}
					}
				}
			}))
			t.Run("closed", bubbled(func(t *testing.T) {
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
			}))
			t.Run("reopen", bubbled(func(t *testing.T) {
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
			}))
		})
	}
}

// holdCommitter returns Options whose OnCommit records every commit's size
// and holds the committer inside its first OnCommit until release is
// called; held is closed once it is held. release is safe to call more
// than once: tests defer it after (so it runs before) the queue's Close,
// which waits for the committer.
func holdCommitter(o Options) (_ Options, held <-chan struct{}, release func(), sizes func() []int) {
	var mu sync.Mutex
	var got []int
	heldc, releasec := make(chan struct{}), make(chan struct{})
	o.OnCommit = func(n int, err error) {
		mu.Lock()
		got = append(got, n)
		first := len(got) == 1
		mu.Unlock()
		if first {
			close(heldc)
			<-releasec
		}
	}
	var once sync.Once
	release = func() { once.Do(func() { close(releasec) }) }
	sizes = func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	return o, heldc, release, sizes
}

// heldQueue opens a Badger queue with o, commits a first record and
// returns once the committer is held in OnCommit after it (see
// holdCommitter); everything is released and closed when the test ends,
// the committer first. Fake time: call it in a synctest bubble.
func heldQueue(t *testing.T, o Options) (q *Badger, release func(), sizes func() []int) {
	t.Helper()
	db := openBadgerDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	o, held, release, sizes := holdCommitter(o)
	q, err := OpenBadger(db, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	t.Cleanup(release) // before Close, which waits for the committer
	if s := mustAppend(t, q, "first"); s != 1 {
		t.Fatalf("first seq %d; want 1", s)
	}
	synctest.Wait()
	if !isClosed(held) {
		t.Fatal("the committer did not call OnCommit after the first commit")
	}
	return q, release, sizes
}

// isClosed reports whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestGroupCommit shows that appends that arrive while the committer is
// busy share its next commit, one transaction and one sync for all. In a
// synctest bubble: each step ends with synctest.Wait, after which every
// goroutine is parked where the step put it.
func TestGroupCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const writers = 16
		q, release, sizes := heldQueue(t, Options{})
		results := make(chan error, writers)
		for range writers {
			go func() { _, err := q.Append([]byte("m")); results <- err }()
		}
		synctest.Wait()
		if n, r := len(q.reqs), len(results); n != writers || r != 0 {
			t.Fatalf("with the committer held, %d appends wait and %d returned; want %d and 0", n, r, writers)
		}
		release()
		synctest.Wait()
		if n := len(results); n != writers {
			t.Fatalf("%d of %d queued appends returned after the committer was released", n, writers)
		}
		for range writers {
			if err := <-results; err != nil {
				t.Fatalf("queued append: %v", err)
			}
		}
		if got, want := sizes(), []int{1, writers}; !slices.Equal(got, want) {
			t.Fatalf("commit sizes %v; want %v: the queued appends were not grouped into one commit", got, want)
		}
	})
}

// TestAppendFailsWhenPendingFull: while the committer is busy and
// MaxPending appends already wait for it, further appends fail at once
// with ErrFull instead of queueing in memory, and the waiting ones are
// committed once the committer is free. In a synctest bubble, stepped
// with synctest.Wait as TestGroupCommit.
func TestAppendFailsWhenPendingFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxPending = 2
		q, release, _ := heldQueue(t, Options{MaxPending: maxPending, MaxBatch: 1})
		type result struct {
			seq uint64
			err error
		}
		accepted := make(chan result, maxPending)
		for range maxPending {
			go func() { s, err := q.Append([]byte("x")); accepted <- result{s, err} }()
		}
		synctest.Wait()
		if n, f, r := len(q.reqs), q.inflight.Load(), len(accepted); n != maxPending || f != maxPending || r != 0 {
			t.Fatalf("with the committer held, %d appends wait (%d in flight) and %d returned; want %d, %d and 0", n, f, r, maxPending, maxPending)
		}

		// The committer is held and every pending slot is taken: appends
		// must fail on their own, since nothing can make room. They run
		// on a goroutine, so that one that waited for room would show as
		// not finished rather than hang the test.
		refused := make(chan []error, 1)
		go func() {
			var errs []error
			for range 5 {
				_, err := q.Append([]byte("y"))
				errs = append(errs, err)
			}
			refused <- errs
		}()
		synctest.Wait()
		if len(refused) == 0 {
			t.Fatal("an append past MaxPending waits for room")
		}
		for i, err := range <-refused {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("append %d past MaxPending: %v; want ErrFull", i, err)
			}
		}
		if n := len(q.reqs); n != maxPending {
			t.Fatalf("%d appends pending after the refusals; want %d", n, maxPending)
		}
		if n := q.Len(); n != 1 {
			t.Fatalf("Len %d while the committer was held; want 1", n)
		}

		release()
		synctest.Wait()
		if n := len(accepted); n != maxPending {
			t.Fatalf("%d of %d accepted appends returned after the committer was released", n, maxPending)
		}
		var seqs []uint64
		for range maxPending {
			r := <-accepted
			if r.err != nil {
				t.Fatalf("accepted append failed: %v", r.err)
			}
			seqs = append(seqs, r.seq)
		}
		slices.Sort(seqs)
		if !slices.Equal(seqs, []uint64{2, 3}) {
			t.Fatalf("accepted appends got seqs %v; want [2 3]", seqs)
		}
		recs := readAll(t, q, 0)
		if len(recs) != 1+maxPending || string(recs[1].Data) != "x" || string(recs[2].Data) != "x" {
			t.Fatalf("stored %+v; want first, x, x and none of the refused", recs)
		}
	})
}
