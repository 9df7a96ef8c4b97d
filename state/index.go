package state

import (
	"cmp"
	"slices"
	"strings"

	"github.com/hookgate/hookgate/core"
)

// Index is the in-memory view of a registry's webhooks: by id, by user
// in creation order, and the ids changed by Mutate since the last
// flush. Registries build on it; it is not safe for concurrent use, and
// the records it holds are its own (it copies in and out).
type Index struct {
	byID   map[string]*core.Webhook
	byUser map[string][]*core.Webhook // creation order
	dirty  map[string]bool
}

// NewIndex returns an index of ws (taken as they are, not copied), in
// O(n log n) whatever their order.
func NewIndex(ws []*core.Webhook) *Index {
	x := &Index{byID: make(map[string]*core.Webhook, len(ws)), byUser: map[string][]*core.Webhook{}, dirty: map[string]bool{}}
	SortByCreation(ws)
	for _, w := range ws {
		x.byID[w.ID] = w
		x.byUser[w.User] = append(x.byUser[w.User], w)
	}
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

// Add indexes a copy of w, in creation order among its user's.
func (x *Index) Add(w *core.Webhook) {
	w = w.Clone()
	x.byID[w.ID] = w
	list := x.byUser[w.User]
	i := len(list)
	for i > 0 && byCreation(list[i-1], w) > 0 { // new webhooks come last: no step
		i--
	}
	x.byUser[w.User] = slices.Insert(list, i, w)
}

func byCreation(a, b *core.Webhook) int {
	if c := cmp.Compare(a.Created, b.Created); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// Owned returns a copy of user's webhook id.
func (x *Index) Owned(user, id string) (*core.Webhook, bool) {
	w := x.byID[id]
	if w == nil || w.User != user {
		return nil, false
	}
	return w.Clone(), true
}

// Replace stores w over the record of its id, which must exist, and
// forgets a Mutate not yet flushed (w carries it).
func (x *Index) Replace(w *core.Webhook) {
	*x.byID[w.ID] = *w.Clone()
	delete(x.dirty, w.ID)
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
	delete(x.dirty, id)
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

// AllActive returns copies of every active webhook, in creation order.
func (x *Index) AllActive() []*core.Webhook {
	var out []*core.Webhook
	for _, w := range x.byID {
		if w.State == core.StateActive {
			out = append(out, w.Clone())
		}
	}
	SortByCreation(out)
	return out
}

// Counts returns how many webhooks are active and inactive.
func (x *Index) Counts() (active, inactive int) {
	for _, w := range x.byID {
		if w.State == core.StateActive {
			active++
		} else {
			inactive++
		}
	}
	return active, inactive
}

// Mutate applies fn to webhook id and marks it dirty; false for an
// unknown id.
func (x *Index) Mutate(id string, fn func(w *core.Webhook)) bool {
	w := x.byID[id]
	if w == nil {
		return false
	}
	fn(w)
	x.dirty[id] = true
	return true
}

// TakeDirty returns copies of the webhooks marked dirty, and clears the
// marks.
func (x *Index) TakeDirty() []*core.Webhook {
	out := make([]*core.Webhook, 0, len(x.dirty))
	for id := range x.dirty {
		if w := x.byID[id]; w != nil {
			out = append(out, w.Clone())
		}
	}
	clear(x.dirty)
	return out
}

// MarkDirty marks ws dirty again (a flush that failed), those still
// indexed.
func (x *Index) MarkDirty(ws []*core.Webhook) {
	for _, w := range ws {
		if x.byID[w.ID] != nil {
			x.dirty[w.ID] = true
		}
	}
}
