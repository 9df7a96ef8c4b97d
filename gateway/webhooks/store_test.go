package webhooks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	json "github.com/goccy/go-json"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/state"
)

func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// scaleN is how many webhooks TestFlushAnySize flushes at once: 5,000
// records of about 1.3 KiB in make test (some 7 MiB, three times what
// one Badger transaction holds), and HOOKGATE_SCALE_N where set.
func scaleN(t *testing.T) int {
	n, err := strconv.Atoi(os.Getenv("HOOKGATE_SCALE_N"))
	if err != nil || n <= 0 {
		return 5000
	}
	t.Logf("HOOKGATE_SCALE_N=%d", n)
	return n
}

// manyHooks returns n webhooks of n/4 users, created in random order.
func manyHooks(n int) []*core.Webhook {
	pad := strings.Repeat("s", 1000)
	ws := make([]*core.Webhook, n)
	for i := range ws {
		ws[i] = &core.Webhook{ID: core.NewID(), User: fmt.Sprintf("user%07d", i/4), AccessID: "app", State: core.StateActive,
			URL: fmt.Sprintf("http://127.0.0.1:4000/notify?u=%d&secret=%s", i, pad), MinIntervalMs: 5000, MaxRetries: 5, Runs: []core.Run{},
			Created: float64(1_700_000_000 + i)}
	}
	rand.Shuffle(len(ws), func(i, j int) { ws[i], ws[j] = ws[j], ws[i] })
	return ws
}

// TestFlushAnySize: a flush of more changed webhooks than one Badger
// transaction holds (about 1,750 did not fit) is written whole, and
// survives a reopen; the loaded order is the creation order, whatever
// the order on disk.
func TestFlushAnySize(t *testing.T) {
	n := scaleN(t)
	dir := t.TempDir()
	db := openDB(t, dir)
	s, err := OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	ws := manyHooks(n)
	if err := s.Import(ws); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		s.RecordRun(w.ID, core.Run{Status: 200, Timestamp: 1}, func(w *core.Webhook) { w.CurrentRetries = 0 })
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("flush of %d webhooks: %v", n, err)
	}
	_, s = reopen(t, db, dir)
	if a, i := s.Counts(); a != n || i != 0 {
		t.Fatalf("after reopen %d active, %d inactive; want %d active", a, i, n)
	}
	for _, w := range ws[:1000] {
		got := s.ByID(w.ID)
		if got == nil || got.RunCount != 1 || got.LastRun.Status != 200 {
			t.Fatalf("after reopen %+v; want its run", got)
		}
	}
	list := s.List("user0000000", "")
	if len(list) != 4 {
		t.Fatalf("user0000000 has %d webhooks; want 4", len(list))
	}
	for i := 1; i < len(list); i++ {
		if list[i].Created < list[i-1].Created {
			t.Fatalf("list not in creation order: %v then %v", list[i-1].Created, list[i].Created)
		}
	}
}

// TestFlushRetriesWhatFailed: a flush that cannot write keeps every
// record marked, and the next one writes them all.
func TestFlushRetriesWhatFailed(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	s, err := OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	ws := manyHooks(5000)
	if err := s.Import(ws); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		s.RecordRun(w.ID, core.Run{Status: 500, Timestamp: 2}, nil)
	}
	full := store.NewSpace(dir, 1<<62) // no disk has that much free
	s.SetSpace(full)
	if err := s.Flush(); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("flush on a full disk: %v; want ErrNoSpace", err)
	}
	s.SetSpace(nil)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if got := s2.ByID(w.ID); got.FailCount != 1 {
			t.Fatalf("after the retry %s has failCount %d; want 1", w.ID, got.FailCount)
		}
	}
}

// reopen closes db and opens it again, with its store; closed at the
// end of t.
func reopen(t *testing.T, db *badger.DB, dir string) (*badger.DB, *Store) {
	t.Helper()
	db.Close()
	db = openDB(t, dir)
	t.Cleanup(func() { db.Close() })
	s, err := OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	return db, s
}

// newStore returns a store on a fresh database, closed at the end of t.
func newStore(t *testing.T) (*badger.DB, *Store) {
	t.Helper()
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	s, err := OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	return db, s
}

func TestImportRefusesKnownIDs(t *testing.T) {
	_, s := newStore(t)
	ws := manyHooks(3)
	if err := s.Import(ws); err != nil {
		t.Fatal(err)
	}
	if err := s.Import(ws[:1]); err == nil {
		t.Fatal("a second import of the same id was accepted")
	}
	if err := s.Import([]*core.Webhook{ws[1].Clone(), ws[1].Clone()}); err == nil {
		t.Fatal("an import naming one id twice was accepted")
	}
}

// countKeys counts the keys under prefix.
func countKeys(t *testing.T, db *badger.DB, prefix []byte) int {
	t.Helper()
	n := 0
	db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n
}

// TestRunsOffTheRecord: a webhook's runs are keys of their own, at most
// RunsKept of them, not part of its record; Get finds the runs a Flush
// is writing.
func TestRunsOffTheRecord(t *testing.T) {
	db, s := newStore(t)
	w := manyHooks(1)[0]
	if err := s.Create(w, 0); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3*state.RunsKept; i++ {
		s.RecordRun(w.ID, core.Run{Status: 200, Timestamp: float64(i)}, nil)
		if i%7 == 0 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.RecordRun(w.ID, core.Run{Status: 503, Timestamp: 1000}, nil)
	var during []core.Run
	s.afterCopy = func() {
		got, _ := s.Get(w.User, w.ID)
		during = got.Runs
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(during) != state.RunsKept || during[0].Timestamp != 1000 {
		t.Fatalf("Get during the flush: %d runs, newest %+v; want %d, the one being written first", len(during), during[0], state.RunsKept)
	}
	if n := countKeys(t, db, runsKey(w.ID)); n != state.RunsKept {
		t.Fatalf("%d run keys on disk; want %d", n, state.RunsKept)
	}
	get := func(k []byte) []byte {
		var v []byte
		err := db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(k)
			if err == nil {
				v, err = item.ValueCopy(nil)
			}
			return err
		})
		if err != nil {
			t.Fatalf("%q: %v", k, err)
		}
		return v
	}
	// Runs rewrite the counters, never the record.
	if got, err := decodeRecord(get(key(w.ID)), nil); err != nil || got.RunCount != 0 || len(got.Runs) != 0 {
		t.Fatalf("the record on disk: %+v (%v); want it as created", got, err)
	}
	if c, err := decodeCounters(get(countersKey(w.ID))); err != nil || c.RunCount != 3*state.RunsKept+1 || c.FailCount != 1 || c.LastRun.Status != 503 {
		t.Fatalf("the counters on disk: %+v (%v)", c, err)
	}
}

// TestLegacyRunsMoved: a record written with its runs inside (before
// runs had keys of their own) loads with its history, which moves to
// run keys, numbered so that new runs follow it.
func TestLegacyRunsMoved(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	w := manyHooks(1)[0]
	for i := 60; i >= 1; i-- { // newest first, 50 kept, as earlier versions stored them
		if len(w.Runs) < state.RunsKept {
			w.Runs = append(w.Runs, core.Run{Status: 200 + i, Timestamp: float64(i)})
		}
	}
	w.RunCount, w.LastRun = 60, w.Runs[0]
	v, err := json.Marshal(stored{User: w.User, Webhook: w})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key(w.ID), v) }); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(w.User, w.ID)
	if got == nil || got.RunCount != 60 || !reflect.DeepEqual(got.Runs, w.Runs) {
		t.Fatalf("after the move: %+v; want runs %v", got, w.Runs)
	}
	if len(s.ByID(w.ID).Runs) != 0 {
		t.Fatal("the resident record holds runs")
	}
	if n := countKeys(t, db, runsKey(w.ID)); n != state.RunsKept {
		t.Fatalf("%d run keys; want %d", n, state.RunsKept)
	}
	s.RecordRun(w.ID, core.Run{Status: 200, Timestamp: 61}, nil)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	_, s = reopen(t, db, dir)
	got, _ = s.Get(w.User, w.ID)
	if got.RunCount != 61 || len(got.Runs) != state.RunsKept || got.Runs[0].Timestamp != 61 || got.Runs[1].Timestamp != 60 || got.Runs[49].Timestamp != 12 {
		t.Fatalf("after a new run and a reopen: count %d, runs %v", got.RunCount, got.Runs)
	}
}

// TestNotifyCarriesTheNewestRecord: API writers sync outside the lock,
// so their notifications can reach the engine in another order than
// their writes. A late notification carries the record as it is when
// sent, not the writer's older copy; one for a webhook deleted since is
// dropped.
func TestNotifyCarriesTheNewestRecord(t *testing.T) {
	_, s := newStore(t)
	var got []Change
	s.OnChange(func(c Change) { got = append(got, c) })
	w := createAlices(t, s)
	stale := w.Clone() // what the creating writer held
	if _, err := s.Update("alice", w.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil }); err != nil {
		t.Fatal(err)
	}
	s.notify(Change{Webhook: stale}) // the creation's notification, arriving last
	if n := len(got); n != 3 {
		t.Fatalf("%d changes heard; want 3", n)
	}
	if st := got[2].Webhook.State; st != core.StateInactive {
		t.Fatalf("a late notification carries state %q; want the record's now, %q", st, core.StateInactive)
	}
	if err := s.Delete("alice", w.ID); err != nil {
		t.Fatal(err)
	}
	s.notify(Change{Webhook: stale})
	if n := len(got); n != 4 || !got[3].Deleted {
		t.Fatalf("changes heard after the deletion and a late notification: %d, last %+v; want 4, the deletion last", n, got[len(got)-1])
	}
}

// TestFailedSyncStillTold: a write whose sync fails is in memory and in
// Badger's log, where a later sync may make it last: its caller gets the
// error, and the engine hears of it all the same (a deletion it did not
// hear of would leave the webhook's slot and pending set behind).
func TestFailedSyncStillTold(t *testing.T) {
	_, s := newStore(t)
	var got []Change
	s.OnChange(func(c Change) { got = append(got, c) })
	w := createAlices(t, s)
	failure := errors.New("disk gone")
	s.syncs = store.NewGroupSync(func() error { return failure })
	if _, err := s.Update("alice", w.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil }); !errors.Is(err, failure) {
		t.Fatalf("update with a failing sync: %v; want the sync's error", err)
	}
	if err := s.Delete("alice", w.ID); !errors.Is(err, failure) {
		t.Fatalf("delete with a failing sync: %v; want the sync's error", err)
	}
	if len(got) != 3 || got[1].Webhook.State != core.StateInactive || !got[2].Deleted {
		t.Fatalf("changes heard: %+v; want the creation, the update and the deletion", got)
	}
}

// createAlices creates an active webhook for alice in s.
func createAlices(t *testing.T, s *Store) *core.Webhook {
	t.Helper()
	w := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: "http://example.com/h", State: core.StateActive,
		MinIntervalMs: 5000, MaxRetries: 5, Runs: []core.Run{}}
	if err := s.Create(w, 0); err != nil {
		t.Fatal(err)
	}
	return w
}
