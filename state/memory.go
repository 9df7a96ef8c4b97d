package state

import (
	"fmt"
	"sync"

	"github.com/hookgate/hookgate/core"
)

// Memory is a Registry in memory: nothing survives the process. For tests
// and for running without a disk.
type Memory struct {
	mu       sync.RWMutex
	x        *Index
	runs     map[string][]core.Run // newest first
	onChange func(Change)
}

// NewMemory returns an empty in-memory registry.
func NewMemory() *Memory { return &Memory{x: NewIndex(nil), runs: map[string][]core.Run{}} }

// withRuns fills w's history; must be called with mu held.
func (m *Memory) withRuns(w *core.Webhook) *core.Webhook {
	w.Runs = append([]core.Run{}, m.runs[w.ID]...)
	LastOfRuns(w)
	return w
}

var _ Registry = (*Memory)(nil)

func (m *Memory) notify(c Change) {
	if m.onChange != nil {
		m.onChange(c)
	}
}

// Create implements Registry.
func (m *Memory) Create(w *core.Webhook, maxPerAccess int) error {
	m.mu.Lock()
	if err := m.x.CheckCreate(w, maxPerAccess); err != nil {
		m.mu.Unlock()
		return err
	}
	m.x.Add(w)
	m.mu.Unlock()
	m.notify(Change{Webhook: w.Clone()})
	return nil
}

// Update implements Registry.
func (m *Memory) Update(user, id string, fn func(w *core.Webhook) error) (*core.Webhook, error) {
	m.mu.Lock()
	w, ok := m.x.Owned(user, id)
	if !ok {
		m.mu.Unlock()
		return nil, ErrNotFound
	}
	if err := fn(w); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	m.x.Replace(w)
	m.withRuns(w)
	m.mu.Unlock()
	m.notify(Change{Webhook: w.Clone()})
	return w, nil
}

// Delete implements Registry.
func (m *Memory) Delete(user, id string) error {
	m.mu.Lock()
	if _, ok := m.x.Owned(user, id); !ok {
		m.mu.Unlock()
		return ErrNotFound
	}
	w := m.x.Remove(id)
	delete(m.runs, id)
	m.mu.Unlock()
	m.notify(Change{Webhook: w, Deleted: true})
	return nil
}

// Import implements Registry.
func (m *Memory) Import(ws []*core.Webhook) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := CheckImport(m.x, ws); err != nil {
		return err
	}
	for _, w := range ws {
		m.x.Add(w)
	}
	return nil
}

// CheckImport refuses ws if an id is indexed already or named twice, or
// a webhook has a negative count.
func CheckImport(x *Index, ws []*core.Webhook) error {
	seen := make(map[string]bool, len(ws))
	for _, w := range ws {
		if x.Has(w.ID) || seen[w.ID] {
			return fmt.Errorf("cannot import webhook %s: id already used", w.ID)
		}
		if w.RunCount < 0 || w.FailCount < 0 || w.CurrentRetries < 0 {
			return fmt.Errorf("cannot import webhook %s: negative runCount, failCount or currentRetries", w.ID)
		}
		seen[w.ID] = true
	}
	return nil
}

// Get implements Registry.
func (m *Memory) Get(user, id string) (*core.Webhook, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	w, ok := m.x.Owned(user, id)
	if ok {
		m.withRuns(w)
	}
	return w, ok
}

// List implements Registry.
func (m *Memory) List(user, accessID string) []*core.Webhook {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ws := m.x.List(user, accessID)
	for _, w := range ws {
		m.withRuns(w)
	}
	return ws
}

// ByID implements Registry.
func (m *Memory) ByID(id string) *core.Webhook {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.x.ByID(id)
}

// Active implements Registry.
func (m *Memory) Active(user string) []*core.Webhook {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.x.Active(user)
}

// Target implements Registry.
func (m *Memory) Target(id string) (Target, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.x.Target(id)
}

// EachActive implements Registry.
func (m *Memory) EachActive(f func(w *core.Webhook)) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	m.x.EachActive(f)
}

// Counts implements Registry.
func (m *Memory) Counts() (active, inactive int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.x.Counts()
}

// OnChange implements Registry.
func (m *Memory) OnChange(f func(Change)) { m.onChange = f }

// RecordRun implements Registry.
func (m *Memory) RecordRun(id string, run core.Run, fn func(w *core.Webhook)) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.x.RecordRun(id, run, fn); !ok {
		return false
	}
	h := m.runs[id]
	if len(h) < RunsKept {
		h = append(h, core.Run{})
	}
	copy(h[1:], h)
	h[0] = run
	m.runs[id] = h
	return true
}

// Flush implements Registry: there is nothing to write.
func (m *Memory) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.x.TakeDirty()
	return nil
}

// MemPending is a Pending in memory.
type MemPending struct {
	sets map[string]PendingSet
}

// NewMemPending returns an empty in-memory Pending.
func NewMemPending() *MemPending { return &MemPending{sets: map[string]PendingSet{}} }

var _ Pending = (*MemPending)(nil)

// Load implements Pending.
func (p *MemPending) Load(f func(id string, set PendingSet) error) error {
	for id, s := range p.sets {
		if err := f(id, PendingSet{Messages: append([]string(nil), s.Messages...), Retire: s.Retire}); err != nil {
			return err
		}
	}
	return nil
}

// Write implements Pending.
func (p *MemPending) Write(ws []PendingWrite) (int, error) {
	for _, w := range ws {
		if w.Set == nil {
			delete(p.sets, w.ID)
			continue
		}
		p.sets[w.ID] = PendingSet{Messages: append([]string(nil), w.Set.Messages...), Retire: w.Set.Retire}
	}
	return len(ws), nil
}

// Sync implements Pending.
func (p *MemPending) Sync() error { return nil }

// Scoped implements Registry.
func (m *Memory) Scoped(user string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.x.Scoped(user)
}

// Each implements Registry.
func (m *Memory) Each(f func(w *core.Webhook) bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	m.x.Each(f)
}
