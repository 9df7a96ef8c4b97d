package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/state"
)

// Registry is the JetStream state.Registry: every webhook in memory, kept
// current by a watch of the webhooks bucket, and written through to it.
//
// What this instance writes is in its memory when the write returns;
// what another instance wrote is there once the watch brings it, which
// Get, List, Update and Delete wait for (read-your-writes across
// instances: they first catch up with the bucket's last revision).
type Registry struct {
	c *Conn

	// applyMu orders this instance's writes with the watch: a write holds
	// it from its publication until its revisions are noted in own, so
	// that the watch, which takes it for each entry, skips them.
	applyMu sync.Mutex
	own     map[uint64]struct{} // revisions written here, not yet seen by the watch

	flushMu sync.Mutex // one Flush at a time: it owns writing

	mu      sync.RWMutex // guards x, guards and writing
	x       *state.Index
	guards  map[string]uint64 // an access's guard key: its revision
	writing map[string]*state.NewRuns

	applied   atomic.Uint64 // the last revision the watch applied
	appliedMu sync.Mutex
	advanced  chan struct{} // closed when applied grows

	onChange atomic.Pointer[func(state.Change)]
	watcher  jetstream.KeyWatcher
	done     chan struct{} // closed when the watch ends
}

var _ state.Registry = (*Registry)(nil)

// attempts bounds how often a write that lost a race with another
// instance's is tried again.
const attempts = 16

// OpenRegistry loads every webhook of the bucket and starts watching it.
func (c *Conn) OpenRegistry(ctx context.Context) (*Registry, error) {
	r := &Registry{c: c, own: map[uint64]struct{}{}, guards: map[string]uint64{}, advanced: make(chan struct{}), done: make(chan struct{})}
	w, err := c.hooks.kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("cannot watch the webhooks: %w", err)
	}
	r.watcher = w
	records := map[string]*core.Webhook{}
	counters := map[string]state.Counters{}
	for initial := true; initial; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("the watch of the webhooks ended while loading them")
			}
			if e == nil {
				initial = false
				break
			}
			if err := r.load(e, records, counters); err != nil {
				w.Stop()
				return nil, err
			}
			r.applied.Store(e.Revision())
		case <-ctx.Done():
			w.Stop()
			return nil, fmt.Errorf("cannot load the webhooks: %w", ctx.Err())
		}
	}
	ws := make([]*core.Webhook, 0, len(records))
	for id, w := range records {
		if c, ok := counters[id]; ok {
			c.Rebase(w)
			c.Apply(w)
		}
		ws = append(ws, w)
	}
	r.x = state.NewIndex(ws)
	go r.watch()
	return r, nil
}

// load adds a bucket entry read at start to records, counters or guards.
func (r *Registry) load(e jetstream.KeyValueEntry, records map[string]*core.Webhook, counters map[string]state.Counters) error {
	if e.Operation() != jetstream.KeyValuePut {
		return nil
	}
	key := e.Key()
	switch {
	case strings.HasPrefix(key, "w."):
		w, err := webhooks.DecodeRecord(e.Value(), r.c.o.Sealer)
		if err != nil {
			return err
		}
		records[w.ID] = w
	case strings.HasPrefix(key, "c."):
		c, err := webhooks.DecodeCounters(e.Value())
		if err != nil {
			return fmt.Errorf("webhook %s: %w", idOf(key), err)
		}
		counters[idOf(key)] = c
	case strings.HasPrefix(key, "g."):
		r.guards[key] = e.Revision()
	}
	return nil
}

// Close stops the watch.
func (r *Registry) Close() {
	r.watcher.Stop()
	<-r.done
}

// watch applies the bucket's changes until the watch stops.
func (r *Registry) watch() {
	defer close(r.done)
	for e := range r.watcher.Updates() {
		if e == nil {
			continue
		}
		r.applyMu.Lock()
		var ch *state.Change
		if _, mine := r.own[e.Revision()]; mine {
			delete(r.own, e.Revision())
		} else {
			var err error
			if ch, err = r.apply(e); err != nil {
				slog.Error("cannot apply a change of the webhooks bucket", "key", e.Key(), "revision", e.Revision(), "err", err)
			}
		}
		r.advance(e.Revision())
		r.applyMu.Unlock()
		if ch != nil {
			r.notify(*ch)
		}
	}
}

// advance notes that the watch applied revision rev.
func (r *Registry) advance(rev uint64) {
	r.applied.Store(rev)
	r.appliedMu.Lock()
	close(r.advanced)
	r.advanced = make(chan struct{})
	r.appliedMu.Unlock()
}

// apply applies an entry another instance wrote, and returns the change
// the engine hears of, if any. Must be called with applyMu held.
func (r *Registry) apply(e jetstream.KeyValueEntry) (*state.Change, error) {
	key, put := e.Key(), e.Operation() == jetstream.KeyValuePut
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case strings.HasPrefix(key, "g."):
		if put {
			r.guards[key] = e.Revision()
		} else {
			delete(r.guards, key)
		}
	case strings.HasPrefix(key, "w."):
		if !put {
			w := r.x.Remove(idOf(key))
			if w == nil {
				return nil, nil
			}
			w.Runs = []core.Run{}
			return &state.Change{Webhook: w, Deleted: true}, nil
		}
		w, err := webhooks.DecodeRecord(e.Value(), r.c.o.Sealer)
		if err != nil {
			return nil, err
		}
		if old := r.x.ByID(w.ID); old != nil {
			keepCounts(w, old)
			r.x.Replace(w)
		} else {
			r.x.Add(w)
		}
		return &state.Change{Webhook: w.Clone()}, nil
	case strings.HasPrefix(key, "c.") && put:
		c, err := webhooks.DecodeCounters(e.Value())
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", idOf(key), err)
		}
		w := r.x.ByID(idOf(key))
		if w == nil || c.RunCount < w.RunCount {
			return nil, nil // older than what this instance recorded since
		}
		c.Rebase(w) // an owner's decision on a record the API has changed since
		was := w.State
		c.Apply(w)
		r.x.Replace(w)
		if w.State != was {
			return &state.Change{Webhook: w.Clone()}, nil
		}
	}
	return nil, nil
}

// keepCounts keeps in w, a record the API wrote elsewhere from its copy,
// the run counts of old, this instance's, where they are ahead: runs are
// only ever added, and the API sets the state and the retries.
func keepCounts(w, old *core.Webhook) {
	if old.RunCount > w.RunCount {
		w.RunCount, w.FailCount, w.LastRun = old.RunCount, old.FailCount, old.LastRun
	}
}

// catchUp waits until the watch has applied every revision the bucket
// had when it was called.
func (r *Registry) catchUp() error {
	ctx, cancel := r.c.ctx()
	defer cancel()
	info, err := r.c.hooks.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("cannot reach the webhooks bucket: %w: %w", state.ErrUnavailable, err)
	}
	want := info.State.LastSeq
	for {
		r.appliedMu.Lock()
		ch := r.advanced
		r.appliedMu.Unlock()
		if r.applied.Load() >= want {
			return nil
		}
		select {
		case <-ch:
		case <-r.done:
			return fmt.Errorf("the watch of the webhooks ended: %w", state.ErrUnavailable)
		case <-ctx.Done():
			return fmt.Errorf("the watch of the webhooks is behind: %w: %w", state.ErrUnavailable, ctx.Err())
		}
	}
}

// OnChange implements state.Registry. It hears of every instance's API
// writes, and of webhooks another instance turned inactive.
func (r *Registry) OnChange(f func(state.Change)) { r.onChange.Store(&f) }

func (r *Registry) notify(c state.Change) {
	if f := r.onChange.Load(); f != nil {
		(*f)(c)
	}
}

// recordMsgs returns the messages that store w's record and counters.
// The record rolls its subject up: the bucket keeps history for the
// counters' runs, not for records, whose earlier signing secrets must go
// when they are replaced.
func (r *Registry) recordMsgs(w *core.Webhook) []*nats.Msg {
	return []*nats.Msg{
		rollup(putMsg(&r.c.hooks, "w."+w.ID, webhooks.EncodeRecord(w, r.c.o.Sealer))),
		putMsg(&r.c.hooks, "c."+w.ID, webhooks.EncodeCounters(state.CountersOf(w))),
	}
}

// guarded publishes msgs and, last, the guard of user's access, if the
// guard is still at the revision this instance has, in one atomic
// batch. It returns the revisions written, in order, and notes them as
// this instance's own. Must be called with applyMu held.
func (r *Registry) guarded(user, access string, msgs []*nats.Msg) ([]uint64, error) {
	gk := guardKey(user, access)
	r.mu.RLock()
	rev := r.guards[gk]
	r.mu.RUnlock()
	msgs = append(msgs, expect(putMsg(&r.c.hooks, gk, nil), rev))
	ctx, cancel := r.c.ctx()
	defer cancel()
	ack, err := jetstreamext.PublishMsgBatch(ctx, r.c.js, msgs)
	if err != nil {
		return nil, err
	}
	revs := make([]uint64, len(msgs))
	for i := range revs {
		revs[i] = ack.Sequence - uint64(len(msgs)-1-i)
		r.own[revs[i]] = struct{}{}
	}
	r.mu.Lock()
	r.guards[gk] = ack.Sequence
	r.mu.Unlock()
	return revs, nil
}

// noteOwn notes revisions this instance wrote to the webhooks bucket,
// for the watch to skip (0: none). Must be called with applyMu held.
func (r *Registry) noteOwn(revs []uint64) {
	for _, rev := range revs {
		if rev != 0 {
			r.own[rev] = struct{}{}
		}
	}
}

// retry runs write, which holds applyMu, until it does not lose a race
// with another instance, catching up with the bucket after each loss.
// healthy returns ErrUnavailable, at once, once JetStream has not
// answered for Options.Grace.
func (r *Registry) healthy() error {
	if err := r.c.Failing(); err != nil {
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	return nil
}

func (r *Registry) retry(write func() error) error {
	if err := r.healthy(); err != nil {
		return err
	}
	for range attempts {
		r.applyMu.Lock()
		// Again under the lock: a write that waited there for others
		// during a failure answers at once once its grace is over.
		err := r.healthy()
		if err == nil {
			err = write()
		}
		r.applyMu.Unlock()
		if !conflict(err) {
			return err
		}
		if err := r.catchUp(); err != nil {
			return err
		}
	}
	return errors.New("webhooks: the write lost the race with other instances too often")
}

// Create implements state.Registry.
func (r *Registry) Create(w *core.Webhook, maxPerAccess int) error {
	if !validKey(w.ID) {
		return fmt.Errorf("webhooks: id %q cannot be a key", w.ID)
	}
	err := r.retry(func() error {
		r.mu.RLock()
		err := r.x.CheckCreate(w, maxPerAccess)
		r.mu.RUnlock()
		if err != nil {
			return err
		}
		if _, err := r.guarded(w.User, w.AccessID, r.recordMsgs(w)); err != nil {
			return storeErr("store", err)
		}
		r.mu.Lock()
		r.x.Add(w)
		r.mu.Unlock()
		return nil
	})
	if err == nil {
		r.notify(state.Change{Webhook: w.Clone()})
	}
	return err
}

// storeErr wraps a JetStream error, a conflict left as it is for retry.
func storeErr(what string, err error) error {
	if conflict(err) {
		return err
	}
	return fmt.Errorf("cannot %s webhook: %w: %w", what, state.ErrUnavailable, err)
}

// Update implements state.Registry.
func (r *Registry) Update(user, id string, fn func(w *core.Webhook) error) (*core.Webhook, error) {
	if err := r.readable(); err != nil {
		return nil, err
	}
	var out *core.Webhook
	err := r.retry(func() error {
		w, ok := r.owned(user, id)
		if !ok {
			return state.ErrNotFound
		}
		if err := fn(w); err != nil {
			return err
		}
		w.Runs = nil
		if _, err := r.guarded(w.User, w.AccessID, r.recordMsgs(w)); err != nil {
			return storeErr("store", err)
		}
		r.mu.Lock()
		r.x.Replace(w)
		r.mu.Unlock()
		out = w
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.notify(state.Change{Webhook: out.Clone()})
	return r.withRuns([]*core.Webhook{out})[0], nil
}

// Delete implements state.Registry.
func (r *Registry) Delete(user, id string) error {
	if err := r.readable(); err != nil {
		return err
	}
	var gone *core.Webhook
	err := r.retry(func() error {
		w, ok := r.owned(user, id)
		if !ok {
			return state.ErrNotFound
		}
		msgs := []*nats.Msg{purgeMsg(&r.c.hooks, "w."+id), purgeMsg(&r.c.hooks, "c."+id)} // their history too
		if _, err := r.guarded(w.User, w.AccessID, msgs); err != nil {
			return storeErr("delete", err)
		}
		r.mu.Lock()
		gone = r.x.Remove(id)
		r.mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	r.forget(id)
	gone.Runs = []core.Run{}
	r.notify(state.Change{Webhook: gone, Deleted: true})
	return nil
}

// forget deletes a deleted webhook's runs from the runs bucket of an
// earlier version, if there is one.
func (r *Registry) forget(id string) {
	if r.c.runs.kv == nil {
		return
	}
	ctx, cancel := r.c.ctx()
	defer cancel()
	if err := r.c.runs.stream.Purge(ctx, jetstream.WithPurgeSubject(r.c.runs.subj("r."+id+".>"))); err != nil {
		slog.Warn("cannot delete the runs of a deleted webhook", "webhook", id, "err", err)
	}
}

// Import implements state.Registry: records and counters are published
// a window at a time without waiting one for another, and Import returns
// when every one is acknowledged. The watch applies other instances'
// writes between windows: held for a whole import of a million, it fell
// behind by as many entries, and reads waited for it.
func (r *Registry) Import(ws []*core.Webhook) error {
	for _, w := range ws {
		if !validKey(w.ID) {
			return fmt.Errorf("webhooks: id %q cannot be a key", w.ID)
		}
	}
	r.applyMu.Lock()
	r.mu.RLock()
	err := state.CheckImport(r.x, ws)
	r.mu.RUnlock()
	r.applyMu.Unlock()
	if err != nil {
		return err
	}
	done := 0
	for len(ws) > 0 {
		chunk := ws[:min(len(ws), window/2)] // two messages each
		ws = ws[len(chunk):]
		msgs := make([]*nats.Msg, 0, 2*len(chunk))
		for _, w := range chunk {
			msgs = append(msgs, r.recordMsgs(w)...)
		}
		r.applyMu.Lock()
		revs, n, err := r.c.publish(msgs)
		r.noteOwn(revs)
		r.mu.Lock()
		for _, w := range chunk[:n/2] {
			r.x.Add(w)
		}
		r.mu.Unlock()
		r.applyMu.Unlock()
		done += n / 2
		if err != nil {
			return fmt.Errorf("cannot import webhooks (%d of %d stored): %w", done, done+len(chunk)-n/2+len(ws), err)
		}
	}
	return nil
}

// window is how many publications wait for their acknowledgement at
// once.
const window = 1024

// The writes of a flush (counters with their runs, pending sets) go
// minWindow at a time for up to spread: a tick's writes at once,
// hundreds of replicated puts, delayed the markers that came meanwhile
// (at 2,000 changes a second, windows of 1,024 gave a notification p99
// of 30-47 ms, windows of 8 12-14 ms; sizing the windows to end within
// the tick gave 20-44 ms, for larger windows take longer and grow
// larger still). A flush that lasts longer than spread doubles its
// window at each round trip, up to window, so that a boot storm's runs
// keep up.
const (
	spread    = time.Second
	minWindow = 8
)

// publish publishes msgs, a window at a time without waiting one for
// another, and returns how many, from the first, are acknowledged, and
// the revision of each message acknowledged (0 for the others).
func (c *Conn) publish(msgs []*nats.Msg) (revs []uint64, n int, err error) {
	return c.publishWindows(msgs, func(int) int { return window })
}

// publishPaced publishes msgs as publish does, minWindow at a time for
// up to spread, then in windows that double.
func (c *Conn) publishPaced(msgs []*nats.Msg) (revs []uint64, n int, err error) {
	return c.publishWindows(msgs, paced(time.Now))
}

// paced returns the window sizes of publishPaced, from now on.
func paced(now func() time.Time) func(last int) int {
	start := now()
	return func(last int) int {
		if last == 0 || now().Sub(start) < spread {
			return minWindow
		}
		return min(2*last, window)
	}
}

// publishWindows publishes msgs, a window at a time, each as large as
// size says given the last one's size (0 for the first).
func (c *Conn) publishWindows(msgs []*nats.Msg, size func(last int) int) (revs []uint64, n int, err error) {
	revs = make([]uint64, len(msgs))
	var futures []jetstream.PubAckFuture
	w := 0
	for start := 0; start < len(msgs); {
		w = max(size(w), 1)
		futures = futures[:0]
		for _, m := range msgs[start:min(start+w, len(msgs))] {
			f, err := c.js.PublishMsgAsync(m)
			if err != nil {
				break
			}
			futures = append(futures, f)
		}
		ok := true
		for i, f := range futures {
			select {
			case ack := <-f.Ok():
				revs[start+i] = ack.Sequence
				if ok {
					n++
				}
			case e := <-f.Err():
				if ok {
					ok, err = false, e
				}
			}
		}
		if !ok {
			return revs, n, err
		}
		if len(futures) < w && start+len(futures) < len(msgs) {
			return revs, n, errors.New("the connection refused to publish more")
		}
		start += len(futures)
	}
	return revs, n, nil
}

// owned returns a copy of user's webhook id, without runs.
func (r *Registry) owned(user, id string) (*core.Webhook, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.x.Owned(user, id)
}

// Get implements state.Registry.
func (r *Registry) Get(user, id string) (*core.Webhook, bool) {
	if err := r.readable(); err != nil {
		slog.Warn("webhooks: reading a copy that may be behind", "err", err)
	}
	w, ok := r.owned(user, id)
	if !ok {
		return nil, false
	}
	return r.withRuns([]*core.Webhook{w})[0], true
}

// List implements state.Registry.
func (r *Registry) List(user, accessID string) []*core.Webhook {
	if err := r.readable(); err != nil {
		slog.Warn("webhooks: reading a copy that may be behind", "err", err)
	}
	r.mu.RLock()
	ws := r.x.List(user, accessID)
	r.mu.RUnlock()
	return r.withRuns(ws)
}

// readable catches up with the bucket, and returns ErrUnavailable at
// once while JetStream does not answer (a read then gets this instance's
// copy, which may be behind).
func (r *Registry) readable() error {
	if err := r.c.Healthy(); err != nil {
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	return r.catchUp()
}

// runsPerRequest is how many webhooks' runs one request reads from the
// runs bucket of an earlier version: at most RunsKept each, within what
// one direct get returns.
const runsPerRequest = 16

// withRuns fills each webhook's run history: its counters' history in
// the webhooks bucket (and the runs bucket of an earlier version, where
// there is one), and the runs recorded here and not yet stored. A
// history that cannot be read is logged and left with what memory holds.
func (r *Registry) withRuns(ws []*core.Webhook) []*core.Webhook {
	stored := map[string][]state.Numbered{}
	var (
		legacy   []string // subjects of the runs bucket of an earlier version
		wg       sync.WaitGroup
		storedMu sync.Mutex
		reads    = make(chan struct{}, historyReads)
	)
	reachable := r.c.Healthy() == nil // else: what memory holds, at once
	for _, w := range ws {
		if w.RunCount == 0 || !reachable {
			continue
		}
		if r.c.runs.kv != nil {
			legacy = append(legacy, r.c.runs.subj("r."+w.ID+".*"))
		}
		wg.Add(1)
		reads <- struct{}{}
		go func(id string) {
			defer wg.Done()
			runs, err := r.readHistory(id)
			<-reads
			if err != nil {
				slog.Error("cannot read a run history", "webhook", id, "err", err)
			}
			storedMu.Lock()
			stored[id] = append(stored[id], runs...)
			storedMu.Unlock()
		}(w.ID)
	}
	wg.Wait()
	for len(legacy) > 0 {
		k := min(len(legacy), runsPerRequest)
		if err := r.readRuns(legacy[:k], stored); err != nil {
			slog.Error("cannot read run histories", "err", err)
		}
		legacy = legacy[k:]
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, w := range ws {
		w.Runs = state.MergeRuns(w.RunCount, stored[w.ID], r.x.Fresh(w.ID).Clone(), r.writing[w.ID])
		state.LastOfRuns(w)
	}
	return ws
}

// historyReads bounds the run histories one call of withRuns reads at
// once.
const historyReads = 8

// readHistory returns the runs of webhook id's counters' history, or
// those it read before an error: one request. The newest entry's runs
// come first, so that where two entries hold a run of the same number (a
// new owner that had not yet heard of the old one's last flush), the
// later one is the one state.MergeRuns finds.
func (r *Registry) readHistory(id string) ([]state.Numbered, error) {
	ctx, cancel := r.c.ctx()
	defer cancel()
	msgs, err := jetstreamext.GetBatch(ctx, r.c.js, r.c.hooks.stream.CachedInfo().Config.Name, historyKept,
		jetstreamext.GetBatchSubject(r.c.hooks.subj("c."+id)))
	if err != nil {
		return nil, err
	}
	var all []state.Numbered
	for m, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return all, nil
		}
		if err != nil {
			return all, err
		}
		if len(m.Data) == 0 {
			continue // a deletion
		}
		_, runs, err := webhooks.DecodeCountersRuns(m.Data)
		if err != nil {
			return all, err
		}
		all = append(runs, all...)
	}
	return all, nil
}

// readRuns reads the last run of each subject of the runs bucket of an
// earlier version into stored, by webhook.
func (r *Registry) readRuns(subjects []string, stored map[string][]state.Numbered) error {
	ctx, cancel := r.c.ctx()
	defer cancel()
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, r.c.js, r.c.runs.stream.CachedInfo().Config.Name, subjects)
	if err != nil {
		return err
	}
	for m, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(m.Data) == 0 {
			continue // a deletion
		}
		key := strings.TrimPrefix(m.Subject, r.c.runs.subject)
		id, _, _ := strings.Cut(strings.TrimPrefix(key, "r."), ".")
		n, err := webhooks.DecodeRun(m.Data)
		if err != nil {
			return fmt.Errorf("webhook %s: %w", id, err)
		}
		stored[id] = append(stored[id], n)
	}
	return nil
}

// RecordRun implements state.Registry.
func (r *Registry) RecordRun(id string, run core.Run, fn func(w *core.Webhook)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.x.RecordRun(id, run, fn)
	return ok
}

// Flush implements state.Registry: the counters of every webhook
// RecordRun changed, each with the runs it recorded since the last flush
// in one entry, published without waiting one for another.
func (r *Registry) Flush() error {
	if err := r.c.Healthy(); err != nil {
		return fmt.Errorf("cannot store webhook runs: %w", err) // at once: they are tried again
	}
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	batch := r.x.TakeDirty()
	if len(batch) > 0 {
		r.writing = make(map[string]*state.NewRuns, len(batch))
		for i := range batch {
			r.writing[batch[i].ID] = &batch[i].NewRuns
		}
	}
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	msgs := make([]*nats.Msg, len(batch))
	for i, d := range batch {
		runs, first := d.Runs, d.First
		if n := len(runs) - state.RunsKept; n > 0 {
			runs, first = runs[n:], first+n
		}
		msgs[i] = putMsg(&r.c.hooks, "c."+d.ID, webhooks.EncodeCountersRuns(d.Counters, first, runs))
	}
	// applyMu is held a window's worth at a time, as in Import: the
	// watch applies other instances' writes between them (a boot storm's
	// flush of a million webhooks lasted 40 s, and held the watch back as
	// long).
	pace, last := paced(time.Now), 0
	size := func(int) int { last = pace(last); return last }
	n := 0
	var err error
	for n < len(msgs) && err == nil {
		chunk := msgs[n:min(n+window, len(msgs))]
		r.applyMu.Lock()
		revs, k, e := r.c.publishWindows(chunk, size)
		r.noteOwn(revs)
		r.applyMu.Unlock()
		n, err = n+k, e
	}
	r.mu.Lock()
	r.writing = nil
	if err != nil {
		r.x.PutBack(batch[n:])
	}
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cannot store webhook runs (%d of %d webhooks written): %w", n, len(batch), err)
	}
	return nil
}

// ByID implements state.Registry.
func (r *Registry) ByID(id string) *core.Webhook {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.x.ByID(id)
}

// Target implements state.Registry.
func (r *Registry) Target(id string) (state.Target, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.x.Target(id)
}

// Active implements state.Registry.
func (r *Registry) Active(user string) []*core.Webhook {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.x.Active(user)
}

// EachActive implements state.Registry.
func (r *Registry) EachActive(f func(w *core.Webhook)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.x.EachActive(f)
}

// Each implements state.Registry.
func (r *Registry) Each(f func(w *core.Webhook) bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.x.Each(f)
}

// Counts implements state.Registry.
func (r *Registry) Counts() (active, inactive int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.x.Counts()
}

// Scoped implements state.Registry.
func (r *Registry) Scoped(user string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.x.Scoped(user)
}
