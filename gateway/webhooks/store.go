package webhooks

import (
	"bytes"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/state"
)

// Errors of the store, as every state.Registry gives them.
var (
	ErrDuplicateURL = state.ErrDuplicateURL
	ErrCapReached   = state.ErrCapReached
	ErrNotFound     = state.ErrNotFound
)

// Store is the Badger state.Registry: webhooks under
// store.PrefixWebhooks, and a state.Index of them in memory. An API
// change is written to Badger and applied to the index under the lock,
// then synced outside it, a sync shared with the writers of the moment
// (store.GroupSync): its caller is answered, and the delivery engine
// told, once that sync has ended. Readers never wait for the disk; they,
// and the engine (told of a record as it is then, see notify), may see a
// change up to one sync before it is on disk.
type Store struct {
	db     *badger.DB
	syncs  *store.GroupSync
	space  *store.Space // nil: no check; set once, before use
	sealer *Sealer      // nil: signing secrets stored as they are

	mu sync.RWMutex // guards x and the records it holds
	x  *state.Index

	// onChange, if set, hears of every change the API makes (not those of
	// Mutate), after it is stored. Set once, before use.
	onChange func(state.Change)
	notifyMu sync.Mutex // orders notify's reads of a record and its sends

	// flushMu orders disk writes: Flush holds it while it writes records
	// copied earlier, and the API's writers hold it too, so a stale copy
	// never lands after a newer API write. Lock order: flushMu, then mu.
	flushMu sync.Mutex

	// writing holds the runs Flush is writing, so that Get finds them
	// while they are on their way to disk. Guarded by mu.
	writing map[string]*state.NewRuns

	afterCopy func() // test hook: runs between Flush's copy and its write
}

var _ state.Registry = (*Store)(nil)

// SetSpace makes every write check sp first: while the disk is below its
// reserve, API writes fail with an error wrapping store.ErrNoSpace and run
// records wait in memory. Call it once, before use.
func (s *Store) SetSpace(sp *store.Space) { s.space = sp }

// Change tells the delivery engine what the API did to a webhook.
type Change = state.Change

// OnChange implements state.Registry.
func (s *Store) OnChange(f func(Change)) { s.onChange = f }

// notify tells the engine of a change once it is synced. Writers sync
// outside the lock and may come here in another order than they wrote:
// a webhook's notification carries its record as it is now, read and
// sent under notifyMu, so the last to arrive is the newest, and one for
// a webhook deleted since is dropped (its deletion tells).
func (s *Store) notify(c Change) {
	if s.onChange == nil {
		return
	}
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	if !c.Deleted {
		s.mu.RLock()
		w := s.x.ByID(c.Webhook.ID)
		s.mu.RUnlock()
		if w == nil {
			return
		}
		c.Webhook = w
	}
	s.onChange(c)
}

// stored is the JSON form of a record, which earlier versions wrote: the
// record and the user it belongs to, and maybe its runs, which the load
// moves to run keys. Records are now written in a binary form, with
// their counters and runs under keys of their own (record.go).
type stored struct {
	User    string        `json:"user"`
	Webhook *core.Webhook `json:"webhook"`
	// Secret is the signing secret, sealed when the store has a Sealer
	// (signing needs the secret itself; see README, "Signing").
	Secret string `json:"secret,omitempty"`
}

var (
	recordPrefix   = []byte(store.PrefixWebhooks + "\x00")
	countersPrefix = []byte(store.PrefixCounters + "\x00")
	runsPrefix     = []byte(store.PrefixRuns + "\x00")
)

func key(id string) []byte         { return append(slices.Clip(recordPrefix), id...) }
func countersKey(id string) []byte { return append(slices.Clip(countersPrefix), id...) }

// runsKey is the prefix of webhook id's runs: PrefixRuns, 0, id, 0.
func runsKey(id string) []byte {
	return append(append(slices.Clip(runsPrefix), id...), 0)
}

// ringKey is the key of run number n of webhook id: runsKey(id) and
// (n-1) mod RunsKept, as one byte.
func ringKey(id string, n int) []byte {
	return append(runsKey(id), byte((n-1)%state.RunsKept))
}

// OpenStore loads every webhook of db into memory, with signing secrets
// stored as they are.
func OpenStore(db *badger.DB) (*Store, error) { return OpenSealedStore(db, nil) }

// OpenSealedStore loads every webhook of db into memory; signing secrets
// are written sealed by sealer, and read whether sealed or not (a store
// that had no key is sealed as each webhook is next written). A sealed
// secret that sealer cannot open fails the load with ErrSecretKey.
//
// The records are read and decoded on every CPU. Records that
// still carry their run history (written by an older version) have it
// moved to run keys before the store is returned.
func OpenSealedStore(db *badger.DB, sealer *Sealer) (*Store, error) {
	s := &Store{db: db, sealer: sealer, syncs: store.NewGroupSync(db.Sync)}
	ks, legacy, err := load(db, sealer)
	if err != nil {
		return nil, fmt.Errorf("cannot load webhooks: %w", err)
	}
	if len(legacy) > 0 {
		if err := s.moveRuns(legacy); err != nil {
			return nil, fmt.Errorf("cannot move run histories to their own keys: %w", err)
		}
	}
	k := new(state.Packer)
	for _, w := range legacy {
		k.Add(w)
	}
	s.x = state.NewLoadedIndex(append(ks, k)...)
	return s, nil
}

// load reads and decodes every record of db, on every CPU: the key
// space is cut at the bounds of Badger's tables into more ranges than
// CPUs, and each goroutine reads, decodes and adds to its Packer one
// range after another. Records that still carry their runs come apart,
// in legacy.
func load(db *badger.DB, sealer *Sealer) (ks []*state.Packer, legacy []*core.Webhook, err error) {
	workers := runtime.GOMAXPROCS(0)
	ranges := keyRanges(db, recordPrefix, 4*workers)
	next := make(chan [2][]byte, len(ranges))
	for _, r := range ranges {
		next <- r
	}
	close(next)
	type part struct {
		k      state.Packer
		legacy []*core.Webhook
		err    error
	}
	parts := make([]part, workers)
	err = db.View(func(txn *badger.Txn) error {
		var wg sync.WaitGroup
		for i := range parts {
			wg.Add(1)
			go func(p *part) {
				defer wg.Done()
				for r := range next {
					if p.err == nil {
						p.err = loadRange(txn, r, sealer, &p.k, &p.legacy)
					}
				}
			}(&parts[i])
		}
		wg.Wait()
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for i := range parts {
		if parts[i].err != nil {
			return nil, nil, parts[i].err
		}
		ks = append(ks, &parts[i].k)
		legacy = append(legacy, parts[i].legacy...)
	}
	return ks, legacy, nil
}

// loadRange decodes the records in r, [r[0], r[1]) (r[1] nil: to the
// end of the prefix), with their counters: those that still carry their
// runs go to legacy, the others are added to k. Records and counters are
// both in id order: one pass over each joins them.
func loadRange(txn *badger.Txn, r [2][]byte, sealer *Sealer, k *state.Packer, legacy *[]*core.Webhook) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: recordPrefix})
	defer it.Close()
	ct := txn.NewIterator(badger.IteratorOptions{Prefix: countersPrefix})
	defer ct.Close()
	ct.Seek(append(slices.Clip(countersPrefix), r[0][len(recordPrefix):]...))
	var w core.Webhook
	for it.Seek(r[0]); it.Valid(); it.Next() {
		item := it.Item()
		if r[1] != nil && bytes.Compare(item.Key(), r[1]) >= 0 {
			return nil
		}
		id := item.Key()[len(recordPrefix):]
		// A binary record is decoded in place: its strings are views of
		// the value, packed (copied) before the value goes.
		err := item.Value(func(v []byte) error {
			rec, err := decodeInto(v, sealer, &w, true)
			if err != nil {
				return err
			}
			if err := joinCounters(ct, id, rec); err != nil {
				return err
			}
			if len(rec.Runs) > 0 {
				*legacy = append(*legacy, rec)
			} else {
				k.Add(rec)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// joinCounters moves ct, an iterator over counters, up to webhook id's,
// and applies them to w if there are any.
func joinCounters(ct *badger.Iterator, id []byte, w *core.Webhook) error {
	for ; ct.Valid(); ct.Next() {
		c := bytes.Compare(ct.Item().Key()[len(countersPrefix):], id)
		if c > 0 {
			return nil
		}
		if c < 0 {
			continue // a record deleted while its counters were written: left over
		}
		return ct.Item().Value(func(v []byte) error {
			c, err := decodeCounters(v)
			if err != nil {
				return fmt.Errorf("counters of webhook %s: %w", id, err)
			}
			c.Apply(w)
			return nil
		})
	}
	return nil
}

// keyRanges cuts the keys under prefix into at most n ranges, at the
// largest keys of Badger's tables, so that each range holds about as
// many tables. The first range starts at prefix; the last has no end.
func keyRanges(db *badger.DB, prefix []byte, n int) [][2][]byte {
	var bounds [][]byte
	for _, t := range db.Tables() {
		if len(t.Right) <= 8 {
			continue
		}
		k := t.Right[:len(t.Right)-8] // without its version
		if bytes.HasPrefix(k, prefix) {
			bounds = append(bounds, k)
		}
	}
	slices.SortFunc(bounds, bytes.Compare)
	bounds = slices.CompactFunc(bounds, bytes.Equal)
	cuts := [][]byte{prefix}
	if len(bounds) > 0 {
		step := max(len(bounds)/n, 1)
		for i := step - 1; i < len(bounds) && len(cuts) < n; i += step {
			cuts = append(cuts, bounds[i])
		}
	}
	out := make([][2][]byte, len(cuts))
	for i, c := range cuts {
		out[i][0] = c
		if i+1 < len(cuts) {
			out[i][1] = cuts[i+1]
		}
	}
	return out
}

// moveRuns writes the run histories that legacy records carry to run
// keys, and the records without them, with their counters, in as many
// transactions as needed, and syncs. A crash in between leaves records
// that still carry their runs: moved again at the next load.
func (s *Store) moveRuns(legacy []*core.Webhook) error {
	var entries []store.Entry
	for _, w := range legacy {
		top := max(w.RunCount, len(w.Runs))
		for i, r := range w.Runs[:min(len(w.Runs), state.RunsKept)] {
			entries = append(entries, store.Entry{Key: ringKey(w.ID, top-i), Value: runValue(top-i, r)})
		}
		w.RunCount = top
		w.Runs = nil
		es, err := s.recordEntries(w)
		if err != nil {
			return err
		}
		entries = append(entries, es...)
	}
	if _, err := store.WriteBatch(s.db, entries); err != nil {
		return err
	}
	return s.db.Sync()
}

// storedRuns reads webhook id's stored runs, in no order.
func storedRuns(txn *badger.Txn, id string) ([]state.Numbered, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: runsKey(id), PrefetchValues: true, PrefetchSize: state.RunsKept})
	defer it.Close()
	var out []state.Numbered
	for it.Rewind(); it.Valid(); it.Next() {
		err := it.Item().Value(func(v []byte) error {
			r, err := decodeRun(v)
			out = append(out, r)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", id, err)
		}
	}
	return out, nil
}

// lockWrite takes the locks an API write needs, in the lock order
// (flushMu, then mu), and returns the function that releases them.
func (s *Store) lockWrite() (unlock func()) {
	s.flushMu.Lock()
	s.mu.Lock()
	return func() { s.mu.Unlock(); s.flushMu.Unlock() }
}

// encode is a record's on-disk form (record.go), without its runs.
func (s *Store) encode(w *core.Webhook) ([]byte, error) { return EncodeRecord(w, s.sealer), nil }

// recordEntries encodes w's record and counters for store.WriteBatch.
func (s *Store) recordEntries(w *core.Webhook) ([]store.Entry, error) {
	v, err := s.encode(w)
	if err != nil {
		return nil, fmt.Errorf("cannot encode webhook %s: %w", w.ID, err)
	}
	return []store.Entry{
		{Key: key(w.ID), Value: v},
		{Key: countersKey(w.ID), Value: appendCounters(nil, state.CountersOf(w))},
	}, nil
}

// put writes w, to be synced (s.syncs.Wait) once mu is released. Must
// be called with mu held.
func (s *Store) put(w *core.Webhook) error {
	entries, err := s.recordEntries(w)
	if err != nil {
		return err
	}
	if err := s.space.Check(); err != nil {
		return fmt.Errorf("cannot store webhook: %w", err)
	}
	if _, err := store.WriteBatch(s.db, entries); err != nil { // one transaction: record and counters
		return fmt.Errorf("cannot store webhook: %w", err)
	}
	return nil
}

// synced waits for the writes made so far to be on disk. A failed sync
// leaves the change in memory and in Badger's log, where a later sync
// may still make it durable: its caller is told it failed, which means
// it may or may not last, and the engine is told of it all the same.
func (s *Store) synced() error {
	if err := s.syncs.Wait(); err != nil {
		return fmt.Errorf("cannot sync the webhooks' store: %w", err)
	}
	return nil
}

// Create implements state.Registry.
func (s *Store) Create(w *core.Webhook, maxPerAccess int) error {
	if err := s.create(w, maxPerAccess); err != nil {
		return err
	}
	// Told even when the sync fails: memory and Badger's log have it.
	err := s.synced()
	s.notify(Change{Webhook: w.Clone()})
	return err
}

func (s *Store) create(w *core.Webhook, maxPerAccess int) error {
	defer s.lockWrite()()
	if err := s.x.CheckCreate(w, maxPerAccess); err != nil {
		return err
	}
	if err := s.put(w); err != nil {
		return err
	}
	s.x.Add(w)
	return nil
}

// Import implements state.Registry: in as many transactions as the
// store's limits need, with one sync.
func (s *Store) Import(ws []*core.Webhook) error {
	defer s.lockWrite()()
	if err := state.CheckImport(s.x, ws); err != nil {
		return err
	}
	var entries []store.Entry
	for _, w := range ws {
		es, err := s.recordEntries(w)
		if err != nil {
			return err
		}
		entries = append(entries, es...)
	}
	if err := s.space.Check(); err != nil {
		return fmt.Errorf("cannot import webhooks: %w", err)
	}
	if _, err := store.WriteBatch(s.db, entries); err != nil {
		return fmt.Errorf("cannot import webhooks: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("cannot import webhooks: %w", err)
	}
	for _, w := range ws {
		s.x.Add(w)
	}
	return nil
}

// unstored is a copy of a record, with its runs not known to be on
// disk: those recorded since the last Flush, and those it is writing.
type unstored struct {
	w              *core.Webhook
	fresh, writing *state.NewRuns
}

// copyOut copies w and its runs not on disk; must be called with mu
// held.
func (s *Store) copyOut(w *core.Webhook) unstored {
	return unstored{w: w, fresh: s.x.Fresh(w.ID).Clone(), writing: s.writing[w.ID]}
}

// withRuns fills the run history of each record, from memory and disk.
// It is called without locks: a run Flush writes meanwhile is in
// writing, which it does not change, or on disk.
func (s *Store) withRuns(us []unstored) ([]*core.Webhook, error) {
	out := make([]*core.Webhook, len(us))
	err := s.db.View(func(txn *badger.Txn) error {
		for i, u := range us {
			var disk []state.Numbered
			if u.w.RunCount > 0 {
				var err error
				if disk, err = storedRuns(txn, u.w.ID); err != nil {
					return err
				}
			}
			u.w.Runs = state.MergeRuns(u.w.RunCount, disk, u.fresh, u.writing)
			state.LastOfRuns(u.w)
			out[i] = u.w
		}
		return nil
	})
	return out, err
}

// Get implements state.Registry. A run history that cannot be read is
// logged and left empty: the record itself is in memory.
func (s *Store) Get(user, id string) (*core.Webhook, bool) {
	s.mu.RLock()
	w, ok := s.x.Owned(user, id)
	var u unstored
	if ok {
		u = s.copyOut(w)
	}
	s.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return s.filled([]unstored{u})[0], true
}

// filled is withRuns, logging an error.
func (s *Store) filled(us []unstored) []*core.Webhook {
	ws, err := s.withRuns(us)
	if err != nil {
		slog.Error("cannot read run histories", "err", err)
		for i, u := range us {
			u.w.Runs = state.MergeRuns(u.w.RunCount, nil, u.fresh, u.writing)
			state.LastOfRuns(u.w)
			ws[i] = u.w
		}
	}
	return ws
}

// List implements state.Registry.
func (s *Store) List(user, accessID string) []*core.Webhook {
	s.mu.RLock()
	ws := s.x.List(user, accessID)
	us := make([]unstored, len(ws))
	for i, w := range ws {
		us[i] = s.copyOut(w)
	}
	s.mu.RUnlock()
	return s.filled(us)
}

// Update implements state.Registry.
func (s *Store) Update(user, id string, fn func(w *core.Webhook) error) (*core.Webhook, error) {
	u, err := s.update(user, id, fn)
	if err != nil {
		return nil, err
	}
	err = s.synced()
	s.notify(Change{Webhook: u.w.Clone()}) // even when the sync fails, as Create
	if err != nil {
		return nil, err
	}
	return s.filled([]unstored{u})[0], nil
}

func (s *Store) update(user, id string, fn func(w *core.Webhook) error) (unstored, error) {
	defer s.lockWrite()()
	w, ok := s.x.Owned(user, id)
	if !ok {
		return unstored{}, ErrNotFound
	}
	if err := fn(w); err != nil {
		return unstored{}, err
	}
	w.Runs = nil
	if err := s.put(w); err != nil {
		return unstored{}, err
	}
	s.x.Replace(w)
	return s.copyOut(w.Clone()), nil
}

// Delete implements state.Registry.
func (s *Store) Delete(user, id string) error {
	w, err := s.delete(user, id)
	if err != nil {
		return err
	}
	err = s.synced()
	s.notify(Change{Webhook: w, Deleted: true}) // even when the sync fails, as Create
	return err
}

func (s *Store) delete(user, id string) (*core.Webhook, error) {
	defer s.lockWrite()()
	if _, ok := s.x.Owned(user, id); !ok {
		return nil, ErrNotFound
	}
	if err := s.space.Check(); err != nil {
		return nil, fmt.Errorf("cannot delete webhook: %w", err)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(key(id)); err != nil {
			return err
		}
		if err := txn.Delete(countersKey(id)); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: runsKey(id)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := txn.Delete(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot delete webhook: %w", err)
	}
	w := s.x.Remove(id)
	w.Runs = []core.Run{}
	return w, nil
}

// RecordRun implements state.Registry: runs are written by Flush, in
// batches, rather than synced one by one.
func (s *Store) RecordRun(id string, run core.Run, fn func(w *core.Webhook)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.x.RecordRun(id, run, fn)
	return ok
}

// Flush implements state.Registry: it writes the counters and new runs
// of every webhook that RecordRun changed, in as many transactions as
// the store's limits need, and syncs once. The records are copied under the lock and written
// outside it, so readers (the delivery engine's lookups) never wait for
// the disk.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	batch := s.x.TakeDirty()
	if len(batch) > 0 {
		s.writing = make(map[string]*state.NewRuns, len(batch))
		for i := range batch {
			s.writing[batch[i].ID] = &batch[i].NewRuns
		}
	}
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if s.afterCopy != nil {
		s.afterCopy()
	}
	entries, ends, err := s.runEntries(batch)
	n := 0 // webhooks written
	if err == nil {
		err = s.space.Check()
	}
	if err == nil {
		var k int
		k, err = store.WriteBatch(s.db, entries)
		n, _ = slices.BinarySearch(ends, k+1) // webhooks whose entries all are in
	}
	if err == nil {
		err = s.syncs.Wait() // shared with the API's writers of the moment
		if err != nil {
			n = 0 // written, not known durable: written again
		}
	}
	s.mu.Lock()
	s.writing = nil
	if err != nil {
		s.x.PutBack(batch[n:]) // written again by the next flush
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cannot store webhook runs (%d of %d webhooks written): %w", n, len(batch), err)
	}
	return nil
}

// runEntries encodes what Flush writes for each webhook of batch: its
// new runs, each over the oldest of its ring, and its counters. ends[i]
// is the number of entries up to the end of batch[i]'s.
func (s *Store) runEntries(batch []state.Dirty) (entries []store.Entry, ends []int, err error) {
	entries = make([]store.Entry, 0, 2*len(batch))
	ends = make([]int, len(batch))
	for i, d := range batch {
		runs, first := d.Runs, d.First
		if n := len(runs) - state.RunsKept; n > 0 {
			runs, first = runs[n:], first+n
		}
		for j, r := range runs {
			entries = append(entries, store.Entry{Key: ringKey(d.ID, first+j), Value: runValue(first+j, r)})
		}
		entries = append(entries, store.Entry{Key: countersKey(d.ID), Value: appendCounters(make([]byte, 0, 24), d.Counters)})
		ends[i] = len(entries)
	}
	return entries, ends, nil
}

// ByID implements state.Registry.
func (s *Store) ByID(id string) *core.Webhook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.x.ByID(id)
}

// Target implements state.Registry.
func (s *Store) Target(id string) (state.Target, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.x.Target(id)
}

// Counts implements state.Registry.
func (s *Store) Counts() (active, inactive int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.x.Counts()
}

// Each implements state.Registry.
func (s *Store) Each(f func(w *core.Webhook) bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.x.Each(f)
}

// Scoped implements state.Registry.
func (s *Store) Scoped(user string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.x.Scoped(user)
}

// EachActive implements state.Registry.
func (s *Store) EachActive(f func(w *core.Webhook)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.x.EachActive(f)
}

// ByAccess returns copies of user's webhooks created by access id.
func (s *Store) ByAccess(user, accessID string) []*core.Webhook {
	return s.List(user, accessID)
}

// Active implements state.Registry.
func (s *Store) Active(user string) []*core.Webhook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.x.Active(user)
}
