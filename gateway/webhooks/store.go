package webhooks

import (
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
	json "github.com/goccy/go-json"

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
// store.PrefixWebhooks, and a state.Index of them in memory. Every API
// change is written and synced before it is visible in the index, so
// what a caller was told is on disk.
type Store struct {
	db     *badger.DB
	space  *store.Space // nil: no check; set once, before use
	sealer *Sealer      // nil: signing secrets stored as they are

	mu sync.RWMutex // guards x and the records it holds
	x  *state.Index

	// onChange, if set, hears of every change the API makes (not those of
	// Mutate), after it is stored. Set once, before use.
	onChange func(state.Change)

	// flushMu orders disk writes: Flush holds it while it writes records
	// copied earlier, and the API's writers hold it too, so a stale copy
	// never lands after a newer API write. Lock order: flushMu, then mu.
	flushMu sync.Mutex

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

func (s *Store) notify(c Change) {
	if s.onChange != nil {
		s.onChange(c)
	}
}

// stored is the on-disk form: the record and the user it belongs to.
type stored struct {
	User    string        `json:"user"`
	Webhook *core.Webhook `json:"webhook"`
	// Secret is the signing secret, sealed when the store has a Sealer
	// (signing needs the secret itself; see README, "Signing").
	Secret string `json:"secret,omitempty"`
}

func key(id string) []byte { return []byte(store.PrefixWebhooks + "\x00" + id) }

// OpenStore loads every webhook of db into memory, with signing secrets
// stored as they are.
func OpenStore(db *badger.DB) (*Store, error) { return OpenSealedStore(db, nil) }

// OpenSealedStore loads every webhook of db into memory; signing secrets
// are written sealed by sealer, and read whether sealed or not (a store
// that had no key is sealed as each webhook is next written). A sealed
// secret that sealer cannot open fails the load with ErrSecretKey.
func OpenSealedStore(db *badger.DB, sealer *Sealer) (*Store, error) {
	s := &Store{db: db, sealer: sealer}
	var all []*core.Webhook
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(store.PrefixWebhooks + "\x00"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			err := it.Item().Value(func(v []byte) error {
				var st stored
				if err := json.Unmarshal(v, &st); err != nil || st.Webhook == nil {
					return fmt.Errorf("webhook record %q: %v", it.Item().Key(), err)
				}
				secret, err := sealer.Open(st.Webhook.ID, st.Secret)
				if err != nil {
					return fmt.Errorf("webhook %s: %w", st.Webhook.ID, err)
				}
				st.Webhook.User, st.Webhook.Secret = st.User, secret
				if st.Webhook.Runs == nil {
					st.Webhook.Runs = []core.Run{}
				}
				compact(st.Webhook)
				all = append(all, st.Webhook)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load webhooks: %w", err)
	}
	s.x = state.NewIndex(all)
	return s, nil
}

// compact shares the strings a decoded record repeats, so that a million
// resident webhooks do not hold a million copies of "active".
func compact(w *core.Webhook) {
	switch w.State {
	case core.StateActive:
		w.State = core.StateActive
	case core.StateInactive:
		w.State = core.StateInactive
	}
	if w.CreatedBy == w.AccessID {
		w.CreatedBy = w.AccessID
	}
	if w.ModifiedBy == w.CreatedBy {
		w.ModifiedBy = w.CreatedBy
	}
}

// lockWrite takes the locks an API write needs, in the lock order
// (flushMu, then mu), and returns the function that releases them.
func (s *Store) lockWrite() (unlock func()) {
	s.flushMu.Lock()
	s.mu.Lock()
	return func() { s.mu.Unlock(); s.flushMu.Unlock() }
}

// encode is a record's on-disk form.
func (s *Store) encode(w *core.Webhook) ([]byte, error) {
	secret := w.Secret
	if secret != "" && s.sealer != nil {
		secret = s.sealer.Seal(w.ID, secret)
	}
	return json.Marshal(stored{User: w.User, Webhook: w, Secret: secret})
}

// entries encodes ws for store.WriteBatch.
func (s *Store) entries(ws []*core.Webhook) ([]store.Entry, error) {
	out := make([]store.Entry, 0, len(ws))
	for _, w := range ws {
		v, err := s.encode(w)
		if err != nil {
			return nil, fmt.Errorf("cannot encode webhook %s: %w", w.ID, err)
		}
		out = append(out, store.Entry{Key: key(w.ID), Value: v})
	}
	return out, nil
}

// put writes w durably. Must be called with mu held.
func (s *Store) put(w *core.Webhook) error {
	v, err := s.encode(w)
	if err != nil {
		return err
	}
	if err := s.space.Check(); err != nil {
		return fmt.Errorf("cannot store webhook: %w", err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key(w.ID), v) }); err != nil {
		return fmt.Errorf("cannot store webhook: %w", err)
	}
	return s.db.Sync()
}

// Create implements state.Registry.
func (s *Store) Create(w *core.Webhook, maxPerAccess int) error {
	err := s.create(w, maxPerAccess)
	if err == nil {
		s.notify(Change{Webhook: w.Clone()})
	}
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
	entries, err := s.entries(ws)
	if err != nil {
		return err
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

// Get implements state.Registry.
func (s *Store) Get(user, id string) (*core.Webhook, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.x.Owned(user, id)
}

// List implements state.Registry.
func (s *Store) List(user, accessID string) []*core.Webhook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.x.List(user, accessID)
}

// Update implements state.Registry.
func (s *Store) Update(user, id string, fn func(w *core.Webhook) error) (*core.Webhook, error) {
	w, err := s.update(user, id, fn)
	if err == nil {
		s.notify(Change{Webhook: w.Clone()})
	}
	return w, err
}

func (s *Store) update(user, id string, fn func(w *core.Webhook) error) (*core.Webhook, error) {
	defer s.lockWrite()()
	w, ok := s.x.Owned(user, id)
	if !ok {
		return nil, ErrNotFound
	}
	if err := fn(w); err != nil {
		return nil, err
	}
	if err := s.put(w); err != nil {
		return nil, err
	}
	s.x.Replace(w)
	return w.Clone(), nil
}

// Delete implements state.Registry.
func (s *Store) Delete(user, id string) error {
	w, err := s.delete(user, id)
	if err == nil {
		s.notify(Change{Webhook: w, Deleted: true})
	}
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
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(key(id)) }); err != nil {
		return nil, fmt.Errorf("cannot delete webhook: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return nil, err
	}
	return s.x.Remove(id), nil
}

// Mutate implements state.Registry: run records are batched by Flush
// rather than synced one by one.
func (s *Store) Mutate(id string, fn func(w *core.Webhook)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.x.Mutate(id, fn)
}

// Flush implements state.Registry: it writes every webhook changed by
// Mutate, in as many transactions as the store's limits need, and syncs
// once. The records are copied under the lock and written outside it, so
// readers (the delivery engine's lookups) never wait for the disk.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	batch := s.x.TakeDirty()
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if s.afterCopy != nil {
		s.afterCopy()
	}

	entries, err := s.entries(batch)
	if err != nil {
		return err
	}
	n := 0
	err = s.space.Check()
	if err == nil {
		n, err = store.WriteBatch(s.db, entries)
	}
	if err == nil {
		err = s.db.Sync()
		if err != nil {
			n = 0 // written, not known durable: written again
		}
	}
	if err != nil {
		s.mu.Lock()
		s.x.MarkDirty(batch[n:]) // written again by the next flush
		s.mu.Unlock()
		return fmt.Errorf("cannot store webhook runs (%d of %d written): %w", n, len(batch), err)
	}
	return nil
}

// ByID implements state.Registry.
func (s *Store) ByID(id string) *core.Webhook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.x.ByID(id)
}

// Counts implements state.Registry.
func (s *Store) Counts() (active, inactive int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.x.Counts()
}

// AllActive implements state.Registry.
func (s *Store) AllActive() []*core.Webhook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.x.AllActive()
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
