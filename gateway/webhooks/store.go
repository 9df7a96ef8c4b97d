package webhooks

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	json "github.com/goccy/go-json"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/store"
)

var (
	// ErrDuplicateURL is returned by Store.Create when the access already
	// has a webhook with the same URL.
	ErrDuplicateURL = errors.New("webhooks: url already used by this access")
	// ErrCapReached is returned by Store.Create when the access already
	// has the maximum number of webhooks.
	ErrCapReached = errors.New("webhooks: too many webhooks for this access")
	// ErrNotFound is returned for an unknown webhook id.
	ErrNotFound = errors.New("webhooks: unknown webhook")
)

// Store keeps webhooks in Badger, under store.PrefixWebhooks, and in an
// index in memory. Every change is written and synced before it is
// visible in the index, so what a caller was told is on disk.
type Store struct {
	db     *badger.DB
	space  *store.Space // nil: no check; set once, before use
	sealer *Sealer      // nil: signing secrets stored as they are

	mu     sync.RWMutex // guards byID, byUser, the records they hold, dirty
	byID   map[string]*core.Webhook
	byUser map[string][]*core.Webhook // creation order
	dirty  map[string]bool            // ids changed by Mutate, not yet flushed

	// onChange, if set, hears of every change the API makes (not those of
	// Mutate), after it is stored. Set once, before use.
	onChange func(Change)

	// flushMu orders disk writes: Flush holds it while it writes records
	// copied earlier, and the API's writers hold it too, so a stale copy
	// never lands after a newer API write. Lock order: flushMu, then mu.
	flushMu sync.Mutex

	afterCopy func() // test hook: runs between Flush's copy and its write
}

// SetSpace makes every write check sp first: while the disk is below its
// reserve, API writes fail with an error wrapping store.ErrNoSpace and run
// records wait in memory. Call it once, before use.
func (s *Store) SetSpace(sp *store.Space) { s.space = sp }

// Change tells the delivery engine what the API did to a webhook.
type Change struct {
	Webhook *core.Webhook // a copy, as stored
	Deleted bool
}

// OnChange registers the function that hears of API changes. It is called
// outside the store's lock and must not call back into the store's
// writers synchronously.
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
	s := &Store{db: db, sealer: sealer, byID: map[string]*core.Webhook{}, byUser: map[string][]*core.Webhook{}, dirty: map[string]bool{}}
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
	sortByCreation(all)
	for _, w := range all {
		s.byID[w.ID] = w
		s.byUser[w.User] = append(s.byUser[w.User], w)
	}
	return s, nil
}

// sortByCreation orders ws by creation time, then id: O(n log n) in any
// starting order (records load in id order, which is random).
func sortByCreation(ws []*core.Webhook) {
	slices.SortFunc(ws, func(a, b *core.Webhook) int {
		if c := cmp.Compare(a.Created, b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// lockWrite takes the locks an API write needs, in the lock order
// (flushMu, then mu), and returns the function that releases them.
func (s *Store) lockWrite() (unlock func()) {
	s.flushMu.Lock()
	s.mu.Lock()
	return func() { s.mu.Unlock(); s.flushMu.Unlock() }
}

// owned returns user's webhook id. Must be called with mu held.
func (s *Store) owned(user, id string) (*core.Webhook, bool) {
	w := s.byID[id]
	return w, w != nil && w.User == user
}

// encode is a record's on-disk form.
func (s *Store) encode(w *core.Webhook) ([]byte, error) {
	secret := w.Secret
	if secret != "" && s.sealer != nil {
		secret = s.sealer.Seal(w.ID, secret)
	}
	return json.Marshal(stored{User: w.User, Webhook: w, Secret: secret})
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

// Create stores w, refusing a URL the same access already uses and more
// than maxPerAccess webhooks per access (0: no cap).
func (s *Store) Create(w *core.Webhook, maxPerAccess int) error {
	w, err := s.create(w, maxPerAccess)
	if err == nil {
		s.notify(Change{Webhook: w})
	}
	return err
}

func (s *Store) create(w *core.Webhook, maxPerAccess int) (*core.Webhook, error) {
	defer s.lockWrite()()
	n := 0
	for _, o := range s.byUser[w.User] {
		if o.AccessID != w.AccessID {
			continue
		}
		if o.URL == w.URL {
			return nil, ErrDuplicateURL
		}
		n++
	}
	if maxPerAccess > 0 && n >= maxPerAccess {
		return nil, ErrCapReached
	}
	w = w.Clone()
	if err := s.put(w); err != nil {
		return nil, err
	}
	s.byID[w.ID] = w
	s.byUser[w.User] = append(s.byUser[w.User], w)
	return w.Clone(), nil
}

// Import stores new webhooks as they are, in as many transactions as the
// store's limits need, with one sync: for tools that load many at once
// (the scale benchmark, a migration). It checks neither URLs nor caps,
// and refuses an id already stored. The API does not hear of them.
func (s *Store) Import(ws []*core.Webhook) error {
	defer s.lockWrite()()
	entries := make([]store.Entry, 0, len(ws))
	seen := make(map[string]bool, len(ws))
	for _, w := range ws {
		if s.byID[w.ID] != nil || seen[w.ID] {
			return fmt.Errorf("cannot import webhook %s: id already used", w.ID)
		}
		seen[w.ID] = true
		v, err := s.encode(w)
		if err != nil {
			return fmt.Errorf("cannot encode webhook %s: %w", w.ID, err)
		}
		entries = append(entries, store.Entry{Key: key(w.ID), Value: v})
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
		w = w.Clone()
		s.byID[w.ID] = w
		s.byUser[w.User] = append(s.byUser[w.User], w)
	}
	return nil
}

// Get returns a copy of user's webhook id.
func (s *Store) Get(user, id string) (*core.Webhook, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	w, ok := s.owned(user, id)
	if !ok {
		return nil, false
	}
	return w.Clone(), true
}

// List returns copies of user's webhooks in creation order; with
// accessID set, only that access's.
func (s *Store) List(user, accessID string) []*core.Webhook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []*core.Webhook{}
	for _, w := range s.byUser[user] {
		if accessID == "" || w.AccessID == accessID {
			out = append(out, w.Clone())
		}
	}
	return out
}

// Update applies fn to user's webhook id and stores the result; fn's
// error aborts the update and is returned.
func (s *Store) Update(user, id string, fn func(w *core.Webhook) error) (*core.Webhook, error) {
	w, err := s.update(user, id, fn)
	if err == nil {
		s.notify(Change{Webhook: w.Clone()})
	}
	return w, err
}

func (s *Store) update(user, id string, fn func(w *core.Webhook) error) (*core.Webhook, error) {
	defer s.lockWrite()()
	cur, ok := s.owned(user, id)
	if !ok {
		return nil, ErrNotFound
	}
	w := cur.Clone()
	if err := fn(w); err != nil {
		return nil, err
	}
	if err := s.put(w); err != nil {
		return nil, err
	}
	*cur = *w
	delete(s.dirty, id)
	return w.Clone(), nil
}

// Delete removes user's webhook id.
func (s *Store) Delete(user, id string) error {
	w, err := s.delete(user, id)
	if err == nil {
		s.notify(Change{Webhook: w, Deleted: true})
	}
	return err
}

func (s *Store) delete(user, id string) (*core.Webhook, error) {
	defer s.lockWrite()()
	cur, ok := s.owned(user, id)
	if !ok {
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
	delete(s.byID, id)
	list := s.byUser[user]
	for i, w := range list {
		if w.ID == id {
			s.byUser[user] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(s.byUser[user]) == 0 {
		delete(s.byUser, user)
	}
	delete(s.dirty, id)
	return cur, nil
}

// Mutate applies fn to webhook id in memory and marks it for the next
// Flush: for the delivery engine's run records, which are batched rather
// than synced one by one. It reports false for an unknown id.
func (s *Store) Mutate(id string, fn func(w *core.Webhook)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.byID[id]
	if w == nil {
		return false
	}
	fn(w)
	s.dirty[id] = true
	return true
}

// Flush writes every webhook changed by Mutate, in as many transactions
// as the store's limits need, and syncs once. The records are copied
// under the lock and written outside it, so readers (the delivery
// engine's lookups) never wait for the disk. On an error, what was not
// written stays marked for the next Flush, whatever was.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	batch := make([]*core.Webhook, 0, len(s.dirty))
	for id := range s.dirty {
		if w := s.byID[id]; w != nil {
			batch = append(batch, w.Clone())
		}
	}
	clear(s.dirty)
	s.mu.Unlock()
	if s.afterCopy != nil {
		s.afterCopy()
	}

	entries := make([]store.Entry, 0, len(batch))
	for _, w := range batch {
		v, err := s.encode(w)
		if err != nil {
			return fmt.Errorf("cannot encode webhook %s: %w", w.ID, err)
		}
		entries = append(entries, store.Entry{Key: key(w.ID), Value: v})
	}
	n := 0
	err := s.space.Check()
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
		for _, w := range batch[n:] { // written again by the next flush
			if s.byID[w.ID] != nil {
				s.dirty[w.ID] = true
			}
		}
		s.mu.Unlock()
		return fmt.Errorf("cannot store webhook runs (%d of %d written): %w", n, len(batch), err)
	}
	return nil
}

// ByID returns a copy of webhook id, whatever its user, or nil.
func (s *Store) ByID(id string) *core.Webhook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if w := s.byID[id]; w != nil {
		return w.Clone()
	}
	return nil
}

// Counts returns how many webhooks are active and inactive.
func (s *Store) Counts() (active, inactive int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, w := range s.byID {
		if w.State == core.StateActive {
			active++
		} else {
			inactive++
		}
	}
	return active, inactive
}

// AllActive returns copies of every active webhook, for the boot message.
func (s *Store) AllActive() []*core.Webhook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*core.Webhook
	for _, w := range s.byID {
		if w.State == core.StateActive {
			out = append(out, w.Clone())
		}
	}
	sortByCreation(out)
	return out
}

// ByAccess returns copies of user's webhooks created by access id.
func (s *Store) ByAccess(user, accessID string) []*core.Webhook {
	return s.List(user, accessID)
}

// Active returns copies of user's active webhooks, for the dispatcher:
// no disk read.
func (s *Store) Active(user string) []*core.Webhook {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*core.Webhook
	for _, w := range s.byUser[user] {
		if w.State == core.StateActive {
			out = append(out, w.Clone())
		}
	}
	return out
}
