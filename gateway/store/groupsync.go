package store

import "sync"

// GroupSync shares syncs among concurrent writers: Wait returns once a
// sync that began after it was called has ended, so one sync makes the
// writes of every caller waiting for it durable, rather than each
// writer paying for its own, one after another.
type GroupSync struct {
	sync func() error

	mu      sync.Mutex
	cond    sync.Cond
	started uint64 // syncs begun
	ended   uint64 // the last sync ended
	failed  uint64 // the last sync that failed; 0: none
	err     error  // its error
	running bool
}

// NewGroupSync shares calls of sync (a database's Sync).
func NewGroupSync(sync func() error) *GroupSync {
	g := &GroupSync{sync: sync}
	g.cond.L = &g.mu
	return g
}

// Wait makes what the caller wrote before it durable: it runs a sync,
// or waits for the one that another caller runs for it. It returns the
// error of that sync, or of a later one that failed.
func (g *GroupSync) Wait() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	want := g.started + 1 // one begun now or later: a running sync may miss this caller's write
	for g.ended < want {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		n := g.started
		g.mu.Unlock()
		err := g.sync()
		g.mu.Lock()
		g.running = false
		g.ended = n
		if err != nil {
			g.failed, g.err = n, err
		}
		g.cond.Broadcast()
	}
	if g.failed >= want {
		return g.err
	}
	return nil
}

// Syncs returns how many syncs have begun.
func (g *GroupSync) Syncs() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started
}
