package state

import (
	"cmp"
	"slices"
	"strings"

	"github.com/hookgate/hookgate/core"
)

// Index is the in-memory view of a registry's webhooks: by id, by user
// in creation order, and the runs recorded since the last flush. Its
// records hold no run history (Runs is nil). Registries build on it; it
// is not safe for concurrent use, and the records it holds are its own
// (it copies in and out).
type Index struct {
	byID   map[string]*core.Webhook
	byUser map[string][]*core.Webhook // creation order
	fresh  map[string]*NewRuns        // recorded since the last TakeDirty
	active int
}

// NewRuns are runs of one webhook not yet flushed, oldest first: Runs[i]
// is the webhook's run number First+i (its first run is number 1). Of
// more than RunsKept, only the newest are kept.
type NewRuns struct {
	First int
	Runs  []core.Run
}

// Counters are the fields of a record that delivery changes.
type Counters struct {
	RunCount, FailCount, CurrentRetries int
	LastRun                             core.Run
	State                               string
}

// CountersOf returns w's counters.
func CountersOf(w *core.Webhook) Counters {
	return Counters{RunCount: w.RunCount, FailCount: w.FailCount, CurrentRetries: w.CurrentRetries, LastRun: w.LastRun, State: w.State}
}

// Apply sets w's counters to c.
func (c Counters) Apply(w *core.Webhook) {
	w.RunCount, w.FailCount, w.CurrentRetries, w.LastRun, w.State = c.RunCount, c.FailCount, c.CurrentRetries, c.LastRun, c.State
}

// Dirty is a webhook changed by RecordRun since the last flush: its
// counters, and its new runs.
type Dirty struct {
	ID string
	Counters
	NewRuns
}

// NewIndex returns an index of ws (taken as they are, not copied, their
// Runs dropped), in O(n log n) whatever their order.
func NewIndex(ws []*core.Webhook) *Index {
	x := &Index{byID: make(map[string]*core.Webhook, len(ws)), byUser: map[string][]*core.Webhook{}, fresh: map[string]*NewRuns{}}
	for _, w := range ws {
		w.Runs = nil
		if w.State == core.StateActive {
			x.active++
		}
	}
	// The two maps are built side by side: each insert is mostly a cache
	// miss, and a million of them take a second.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, w := range ws {
			x.byUser[w.User] = append(x.byUser[w.User], w)
		}
		for _, list := range x.byUser {
			SortByCreation(list)
		}
	}()
	for _, w := range ws {
		x.byID[w.ID] = w
	}
	<-done
	return x
}

// SortByCreation orders ws by creation time, then id.
func SortByCreation(ws []*core.Webhook) {
	slices.SortFunc(ws, byCreation)
}

// CheckCreate returns the error Registry.Create must give for w, or nil.
func (x *Index) CheckCreate(w *core.Webhook, maxPerAccess int) error {
	n := 0
	for _, o := range x.byUser[w.User] {
		if o.AccessID != w.AccessID {
			continue
		}
		if o.URL == w.URL {
			return ErrDuplicateURL
		}
		n++
	}
	if maxPerAccess > 0 && n >= maxPerAccess {
		return ErrCapReached
	}
	return nil
}

// Has reports whether id is indexed.
func (x *Index) Has(id string) bool { return x.byID[id] != nil }

// resident returns a copy of w as the index keeps it.
func resident(w *core.Webhook) *core.Webhook {
	c := *w
	c.Runs = nil
	return &c
}

// Add indexes a copy of w, in creation order among its user's.
func (x *Index) Add(w *core.Webhook) {
	w = resident(w)
	x.byID[w.ID] = w
	list := x.byUser[w.User]
	i := len(list)
	for i > 0 && byCreation(list[i-1], w) > 0 { // new webhooks come last: no step
		i--
	}
	x.byUser[w.User] = slices.Insert(list, i, w)
	x.count(w.State, 1)
}

func (x *Index) count(state string, d int) {
	if state == core.StateActive {
		x.active += d
	}
}

func byCreation(a, b *core.Webhook) int {
	if c := cmp.Compare(a.Created, b.Created); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// Owned returns a copy of user's webhook id (without runs).
func (x *Index) Owned(user, id string) (*core.Webhook, bool) {
	w := x.byID[id]
	if w == nil || w.User != user {
		return nil, false
	}
	return w.Clone(), true
}

// Replace stores w over the record of its id, which must exist. Runs
// recorded and not yet flushed stay to be flushed.
func (x *Index) Replace(w *core.Webhook) {
	old := x.byID[w.ID]
	x.count(old.State, -1)
	*old = *resident(w)
	x.count(old.State, 1)
}

// Remove forgets id and returns its last record, or nil.
func (x *Index) Remove(id string) *core.Webhook {
	w := x.byID[id]
	if w == nil {
		return nil
	}
	delete(x.byID, id)
	list := x.byUser[w.User]
	for i, o := range list {
		if o.ID == id {
			x.byUser[w.User] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(x.byUser[w.User]) == 0 {
		delete(x.byUser, w.User)
	}
	delete(x.fresh, id)
	x.count(w.State, -1)
	return w
}

// List returns copies of user's webhooks in creation order; with
// accessID set, only that access's.
func (x *Index) List(user, accessID string) []*core.Webhook {
	out := []*core.Webhook{}
	for _, w := range x.byUser[user] {
		if accessID == "" || w.AccessID == accessID {
			out = append(out, w.Clone())
		}
	}
	return out
}

// ByID returns a copy of webhook id, or nil.
func (x *Index) ByID(id string) *core.Webhook {
	if w := x.byID[id]; w != nil {
		return w.Clone()
	}
	return nil
}

// Target returns what a notification to webhook id needs.
func (x *Index) Target(id string) (Target, bool) {
	w := x.byID[id]
	if w == nil {
		return Target{}, false
	}
	return Target{URL: w.URL, Secret: w.Secret, Signed: w.Signed, Active: w.State == core.StateActive}, true
}

// Active returns copies of user's active webhooks.
func (x *Index) Active(user string) []*core.Webhook {
	var out []*core.Webhook
	for _, w := range x.byUser[user] {
		if w.State == core.StateActive {
			out = append(out, w.Clone())
		}
	}
	return out
}

// EachActive calls f with every active record (not copies).
func (x *Index) EachActive(f func(w *core.Webhook)) {
	for _, w := range x.byID {
		if w.State == core.StateActive {
			f(w)
		}
	}
}

// Counts returns how many webhooks are active and inactive.
func (x *Index) Counts() (active, inactive int) {
	return x.active, len(x.byID) - x.active
}

// RecordRun counts run on webhook id, keeps it for the next TakeDirty,
// applies fn (when not nil), and returns the run's number; false for an
// unknown id.
func (x *Index) RecordRun(id string, run core.Run, fn func(w *core.Webhook)) (int, bool) {
	w := x.byID[id]
	if w == nil {
		return 0, false
	}
	x.count(w.State, -1)
	w.CountRun(run)
	if fn != nil {
		fn(w)
		w.Runs = nil
	}
	x.count(w.State, 1)
	f := x.fresh[id]
	if f == nil {
		f = &NewRuns{First: w.RunCount}
		x.fresh[id] = f
	}
	f.Runs = append(f.Runs, run)
	if len(f.Runs) > RunsKept { // older ones would be dropped anyway
		n := len(f.Runs) - RunsKept
		f.First += n
		f.Runs = append(f.Runs[:0], f.Runs[n:]...)
	}
	return w.RunCount, true
}

// Fresh returns id's runs recorded since the last TakeDirty, or nil;
// the caller must not change them.
func (x *Index) Fresh(id string) *NewRuns { return x.fresh[id] }

// TakeDirty returns the webhooks changed by RecordRun since the last
// call, with their counters, and forgets them.
func (x *Index) TakeDirty() []Dirty {
	out := make([]Dirty, 0, len(x.fresh))
	for id, f := range x.fresh {
		if w := x.byID[id]; w != nil {
			out = append(out, Dirty{ID: w.ID, Counters: CountersOf(w), NewRuns: *f})
		}
	}
	// A new map rather than clear: one that held a boot storm's million
	// entries would keep their room.
	x.fresh = make(map[string]*NewRuns, min(len(out), 1024))
	return out
}

// PutBack returns ds, taken by TakeDirty and not written, to be taken
// again, before any run recorded since (those still indexed).
func (x *Index) PutBack(ds []Dirty) {
	for _, d := range ds {
		if x.byID[d.ID] == nil {
			continue
		}
		if f := x.fresh[d.ID]; f != nil {
			d.Runs = append(slices.Clip(d.Runs), f.Runs...)
		}
		d.Runs = slices.Clone(d.Runs)
		if n := len(d.Runs) - RunsKept; n > 0 {
			d.First += n
			d.Runs = d.Runs[n:]
		}
		x.fresh[d.ID] = &NewRuns{First: d.First, Runs: d.Runs}
	}
}

// Numbered is a stored run and its number.
type Numbered struct {
	N   int
	Run core.Run
}

// MergeRuns returns a webhook's history, newest first: its runs
// numbered upTo (its runCount) and down, at most RunsKept, from the
// runs not yet flushed (fresh) and those stored; a number found in
// neither is skipped.
func MergeRuns(upTo int, stored []Numbered, fresh ...*NewRuns) []core.Run {
	out := make([]core.Run, 0, min(upTo, RunsKept))
	for n := upTo; n >= 1 && n > upTo-RunsKept; n-- {
		if r, ok := runNumbered(n, stored, fresh); ok {
			out = append(out, r)
		}
	}
	return out
}

func runNumbered(n int, stored []Numbered, fresh []*NewRuns) (core.Run, bool) {
	for _, f := range fresh {
		if f != nil && n >= f.First && n < f.First+len(f.Runs) {
			return f.Runs[n-f.First], true
		}
	}
	for _, s := range stored {
		if s.N == n {
			return s.Run, true
		}
	}
	return core.Run{}, false
}

// Clone returns a copy of r, or nil for nil.
func (r *NewRuns) Clone() *NewRuns {
	if r == nil {
		return nil
	}
	c := *r
	c.Runs = slices.Clone(r.Runs)
	return &c
}
