package delivery

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/ants/v2"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/state"
)

// Sender posts one notification; *Client implements it.
type Sender interface {
	Send(url string, body []byte, headers [][2]string) (Answer, error)
}

// EngineOptions configures an Engine. Queue, Pending, Webhooks and
// Sender are required; every other zero value takes the default its
// comment gives.
type EngineOptions struct {
	// Queue is the marker log the engine reads and acknowledges.
	Queue state.Log
	// Pending keeps each webhook's undelivered messages. While its
	// writes fail (a full disk, say), pending sets stay in memory and
	// markers stay queued, and both are written once they succeed.
	Pending state.Pending
	// Webhooks is the registry: the engine reads it, hears of the API's
	// changes, and records runs on it.
	Webhooks state.Registry
	Sender   Sender
	// Workers is the size of the delivery pool: deliveries in flight at
	// most, across all webhooks. Default 256.
	Workers int
	// MaxPerHost is how many deliveries to one receiver host (scheme,
	// host and port of the URL) are sent at once: the Client's
	// MaxConnsPerHost. Past it a due delivery is parked in the engine,
	// holding no worker and no goroutine, until one to its host ends.
	// Parked deliveries count against Workers. Default
	// DefaultMaxConnsPerHost.
	MaxPerHost int
	// Meta goes into every notification.
	Meta core.Meta
	// OnDeactivate, if set, is told of every webhook the engine turns
	// inactive, in a goroutine of its own: an operator's alert.
	OnDeactivate func(Deactivation)
	// RetrySchedule, when set, is the wait after each failure in a row,
	// the last step repeating, in place of Pryv's linear backoff
	// (minIntervalMs × failures in a row). A webhook still turns
	// inactive after its maxRetries failures.
	RetrySchedule []time.Duration
	// MaxJitter bounds the random delay added to each retry. Default 1s,
	// and never more than a tenth of the webhook's interval.
	MaxJitter time.Duration
	// FlushInterval is how often run records and emptied pending sets are
	// written. Default 200ms.
	FlushInterval time.Duration
	// ReadBatch is how many change markers are read at a time. Default 1024.
	ReadBatch int
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// AckAtFlush acknowledges markers at the flush tick, after the pending
	// sets of what is still undelivered are written, rather than after
	// each dispatch: the sets of webhooks delivered in between are never
	// written. For a log and pending sets where each write is a network
	// round trip (a cluster), it spares two of them per change; a crash
	// reads again up to FlushInterval's markers (at-least-once).
	AckAtFlush bool
	// Owner, when set, says which users' webhooks this engine delivers:
	// several engines share one state (a cluster), each delivering the
	// partitions it owns. nil: every webhook is this engine's.
	Owner Ownership
}

// Ownership is the share of the webhooks one engine of a cluster
// delivers: users fall into partitions, each owned by one engine at a
// time.
type Ownership interface {
	// Partitions returns how many partitions there are.
	Partitions() int
	// Partition returns the partition of user.
	Partition(user string) int
	// Owned returns the partitions this engine owns now.
	Owned() []int
	// Changed receives a value when Owned may have changed.
	Changed() <-chan struct{}
	// Restarted reports whether a partition gained now is gained at the
	// service's own restart (no instance was running before): its
	// webhooks then get webhooksServiceBoot, as a single instance's do
	// at its start. A partition taken over from an instance that died
	// gets none.
	Restarted() bool
}

var (
	deliveriesOK      = metrics.NewCounter(`hookgate_deliveries_total{outcome="success"}`)
	deliveriesFailed  = metrics.NewCounter(`hookgate_deliveries_total{outcome="failure"}`)
	deliveriesGone    = metrics.NewCounter(`hookgate_deliveries_total{outcome="gone"}`)
	deactivations     = metrics.NewCounter(`hookgate_webhook_deactivations_total`)
	markersDispatched = metrics.NewCounter(`hookgate_markers_dispatched_total`)
	// webhookChanges counts changes per active webhook they reach; over
	// deliveries it is the coalescing ratio.
	webhookChanges   = metrics.NewCounter(`hookgate_webhook_changes_total`)
	notifyLatency    = metrics.NewPrometheusHistogramExt(`hookgate_notification_latency_seconds`, core.LatencyBuckets)
	deliveryDuration = metrics.NewPrometheusHistogramExt(`hookgate_delivery_duration_seconds`, core.LatencyBuckets)
	enginePanics     = metrics.NewCounter(`hookgate_engine_panics_total`)
	slotsPruned      = metrics.NewCounter(`hookgate_delivery_slots_pruned_total`)
	// deliveriesParked counts deliveries that waited in the engine for
	// their receiver host's MaxPerHost.
	deliveriesParked = metrics.NewCounter(`hookgate_deliveries_parked_total`)
	// deliveryErrors counts failed attempts by class, index as in
	// core.RunErrors (0, success, unused).
	deliveryErrors = func() (cs [len(core.RunErrors)]*metrics.Counter) {
		for i, c := range core.RunErrors[1:] {
			cs[i+1] = metrics.NewCounter(`hookgate_delivery_errors_total{class="` + c + `"}`)
		}
		return cs
	}()
)

// Engine reads change markers, keeps each webhook's pending messages
// durable, and delivers them at the rate each webhook allows (SPEC §3).
// One loop goroutine owns the scheduler; deliveries run on an ants pool.
type Engine struct {
	opts  EngineOptions
	sched *core.Scheduler
	pool  *ants.Pool

	results chan result
	changes chan state.Change
	calls   chan func() // an operator's requests, run on the loop
	stop    chan struct{}
	done    chan struct{}

	// Loop-owned state.
	flying     int  // deliveries submitted, outcome not yet handled
	dueWaiting bool // the last fireDue filled the pool: slots may still be due
	flushing   bool // a run records flush is under way; it ends on flushed
	flushed    chan error
	// With AckAtFlush, the pending sets and the acknowledgement of a
	// flush tick are written by a goroutine of their own, one tick at a
	// time, so that the loop reads and delivers while JetStream
	// replicates them.
	settling     bool // a tick's sets and acknowledgement are being written; it ends on settled
	settled      chan settled
	hosts        map[string]*hostQueue
	parked       int             // deliveries parked in hosts, counted against Workers
	stopping     bool            // shutdown: no parked delivery starts
	retire       map[string]bool // deactivate after the next successful delivery
	dirtyPending map[string]bool
	cursor       uint64
	redispatch   bool   // a write error stopped dispatch: markers from cursor+1 wait
	unacked      uint64 // markers dispatched whose acknowledgement failed, up to this one
	errLog       core.Throttle
	failLog      core.Throttle // failed deliveries: at most one line in 10 s
	inflight     sync.WaitGroup
	serial       uint64

	// The boot: Run gives every active webhook a slot and a boot message,
	// a chunk at a time, so that a start with a million webhooks is ready
	// at once and delivers while it boots. The next chunk waits until
	// every slot due has been fired: the slots held stay about a chunk
	// ahead of the deliveries, not a million.
	started   int64               // when NewEngine ran: webhooks created since get no boot message
	boot      []bootSlot          // active webhooks still to boot
	bootState map[string]uint8    // bootChanged, bootEarly, bootSkip; nil once booted
	stored    map[string][]string // pending sets loaded, not yet given to a slot

	// idle holds the slots to forget once idle for their interval,
	// earliest first. A webhook succeeds at most once per interval, so it
	// has about one entry per webhook at most.
	idle core.TimeHeap[idleSlot]

	// owned is, with an Owner, the partitions this engine delivers, by
	// number.
	owned  []bool
	rewind bool   // partitions were gained during a dispatch: read from the start again
	toAck  uint64 // with AckAtFlush, markers dispatched up to this one, to acknowledge at the flush
	// reownAt is when dispatch may try again to take up the partitions
	// whose pending sets did not load; the flush tries at every tick.
	reownAt time.Time

	// beforeAck, if set, runs between a batch's pending write and its
	// acknowledgement: a test crashes the process there.
	beforeAck func()
}

// bootSlot is what a slot needs of an active webhook, taken at the boot.
type bootSlot struct {
	key                 uint64 // idKey(id)
	id                  string
	interval            time.Duration
	maxRetries, retries int
	lastEnd             int64
	created             float64
}

// bootChunk is how many webhooks bootNext boots at a time.
const bootChunk = 4096

// Boot states of a webhook not yet booted by bootNext.
const (
	// bootChanged: the API changed it: booted as the registry has it then.
	bootChanged = 1 + iota
	// bootEarly: a marker reached it first, and booted it (bootOne).
	bootEarly
	// bootSkip: created since the engine started: no boot message.
	bootSkip
)

// takeBoot lists the active webhooks to boot. With an Owner, none: a
// partition's webhooks are taken up when it is gained (reown).
func (e *Engine) takeBoot() {
	if e.opts.Owner != nil {
		e.bootDone()
		return
	}
	active, _ := e.opts.Webhooks.Counts()
	e.boot = make([]bootSlot, 0, active)
	e.opts.Webhooks.EachActive(func(w *core.Webhook) {
		e.boot = append(e.boot, bootSlot{key: idKey(w.ID), id: w.ID, interval: time.Duration(w.MinIntervalMs) * time.Millisecond,
			maxRetries: w.MaxRetries, retries: w.CurrentRetries, lastEnd: int64(w.LastRun.Timestamp * 1e9), created: w.Created})
	})
	// In id order, a webhook is booted by bootNext once its id is below
	// the next one's: no map of the booted, and their slots may be
	// pruned during the boot.
	slices.SortFunc(e.boot, func(a, b bootSlot) int {
		if a.key != b.key {
			return cmp.Compare(a.key, b.key)
		}
		return strings.Compare(a.id, b.id)
	})
	e.bootState = map[string]uint8{}
	if len(e.boot) == 0 {
		e.bootDone()
	}
}

// bootNext gives the next chunk of webhooks their slot, their stored
// pending set and a boot message. Slots and their first pending sets
// come from two slabs per chunk, two allocations instead of two per
// webhook: a chunk's memory goes once every slot of it is pruned
// (pruneIdle).
func (e *Engine) bootNext() {
	n := min(len(e.boot), bootChunk)
	chunk := e.boot[:n]
	e.boot = e.boot[n:]
	slab := make([]core.Slot, n)
	msgs := make([]string, n)
	now := e.opts.Now().UnixNano()
	for i, b := range chunk {
		switch e.bootState[b.id] {
		case bootEarly, bootSkip:
			continue
		case 0:
			if e.sinceStart(b.created) {
				e.bootState[b.id] = bootSkip
				continue
			}
		case bootChanged:
			w := e.opts.Webhooks.ByID(b.id)
			if w == nil || w.State != core.StateActive {
				continue // deleted or deactivated meanwhile: the change did what was needed
			}
			e.bootOne(w)
			continue
		}
		sl := &slab[i]
		sl.Interval, sl.MaxRetries, sl.Retries, sl.LastEnd = b.interval, b.maxRetries, b.retries, b.lastEnd
		sl.Schedule = e.opts.RetrySchedule
		if stored, ok := e.stored[b.id]; ok {
			sl.Stored = true
			sl.Add(stored...)
			sl.Add(core.MsgServiceBoot)
			delete(e.stored, b.id)
		} else {
			msgs[i] = core.MsgServiceBoot
			sl.Pending = msgs[i : i+1 : i+1]
		}
		sl.Since = now
		e.sched.Put(b.id, sl) // and schedules it
	}
	if len(e.boot) == 0 {
		e.bootDone()
	}
}

// sinceStart reports whether a webhook created at created (Unix
// seconds) was created after the engine started, by the clock that dates
// both: it gets no boot message.
func (e *Engine) sinceStart(created float64) bool {
	return created*1e9 >= float64(e.started)
}

// idKey is the first 8 bytes of id, big-endian, zero-padded: ordered as
// id's prefix, it spares the sort most string comparisons and their
// cache misses.
func idKey(id string) uint64 {
	var b [8]byte
	copy(b[:], id)
	return binary.BigEndian.Uint64(b[:])
}

// unbooted reports whether webhook id is still to boot: the boot is on,
// bootNext has not reached its id, and nothing booted or skipped it.
func (e *Engine) unbooted(id string) bool {
	if e.bootState == nil || (len(e.boot) > 0 && id < e.boot[0].id) {
		return false
	}
	st := e.bootState[id]
	return st != bootEarly && st != bootSkip
}

// bootOne boots w, active and not booted yet, out of turn, and returns
// its slot.
func (e *Engine) bootOne(w *core.Webhook) *core.Slot {
	sl := e.slotFor(w)
	if stored, ok := e.stored[w.ID]; ok {
		sl.Stored = true
		sl.Add(stored...)
		delete(e.stored, w.ID)
	}
	sl.Add(core.MsgServiceBoot)
	sl.Since = e.opts.Now().UnixNano()
	e.bootState[w.ID] = bootEarly
	e.sched.Touch(w.ID)
	return sl
}

// bootDone ends the boot: pending sets of inactive webhooks stay on
// disk, in a slot that does not fire, for a reactivation; those of
// deleted webhooks go.
func (e *Engine) bootDone() {
	e.boot, e.bootState = nil, nil
	for id, msgs := range e.stored {
		w := e.opts.Webhooks.ByID(id)
		if w == nil {
			e.dirtyPending[id] = true
			continue
		}
		sl := e.slotFor(w)
		sl.Stored = true
		sl.Add(msgs...)
		if w.State != core.StateActive {
			sl.Inactive = true
		}
		e.sched.Touch(id)
	}
	e.stored = nil
}

type result struct {
	sl         *core.Slot
	q          *hostQueue
	status     int
	retryAfter time.Duration
	answer     string // the start of a failed answer's body
	err        error
	sentAt     time.Time
	took       time.Duration
	ended      time.Time
	since      int64
}

// NewEngine loads the pending sets and active webhooks, queues the boot
// message for each active webhook, and returns an engine ready to Run.
func NewEngine(o EngineOptions) (*Engine, error) {
	if o.Queue == nil || o.Pending == nil || o.Webhooks == nil || o.Sender == nil {
		return nil, errors.New("delivery: Queue, Pending, Webhooks and Sender are required")
	}
	if o.Workers <= 0 {
		o.Workers = 256
	}
	if o.MaxPerHost <= 0 {
		o.MaxPerHost = DefaultMaxConnsPerHost
	}
	if o.MaxJitter <= 0 {
		o.MaxJitter = time.Second
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.ReadBatch <= 0 {
		o.ReadBatch = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	pool, err := ants.NewPool(o.Workers, ants.WithNonblocking(false), ants.WithPanicHandler(func(p any) {
		enginePanics.Inc()
		o.Logger.Error("delivery worker panicked", "panic", fmt.Sprint(p))
	}))
	if err != nil {
		return nil, fmt.Errorf("delivery pool: %w", err)
	}
	e := &Engine{
		opts: o, sched: core.NewScheduler(), pool: pool,
		results: make(chan result, o.Workers), changes: make(chan state.Change, 1024), calls: make(chan func()), flushed: make(chan error, 1),
		settled: make(chan settled, 1),
		stop:    make(chan struct{}), done: make(chan struct{}),
		retire: map[string]bool{}, dirtyPending: map[string]bool{}, hosts: map[string]*hostQueue{},
	}
	if o.Owner == nil { // with one, pending sets are loaded as partitions are gained
		pending, retire, err := e.loadPending()
		if err != nil {
			pool.Release()
			return nil, err
		}
		e.retire, e.stored = retire, pending
	}
	e.errLog.Every = 10 * time.Second
	e.failLog.Every = 10 * time.Second
	e.started = o.Now().UnixNano()
	o.Webhooks.OnChange(func(c state.Change) {
		select {
		case e.changes <- c:
		case <-e.done: // stopped: the change is on disk, read at the next start
		}
	})
	return e, nil
}

func (e *Engine) loadPending() (map[string][]string, map[string]bool, error) {
	out, retire := map[string][]string{}, map[string]bool{}
	err := e.opts.Pending.Load(func(id string, p state.PendingSet) error {
		out[id] = p.Messages
		if p.Retire {
			retire[id] = true
		}
		return nil
	})
	return out, retire, err
}

// slotFor returns the slot of w, creating it from the stored record.
func (e *Engine) slotFor(w *core.Webhook) *core.Slot {
	if sl := e.sched.Slot(w.ID); sl != nil {
		sl.Interval = time.Duration(w.MinIntervalMs) * time.Millisecond
		sl.MaxRetries = w.MaxRetries
		return sl
	}
	sl := new(core.Slot)
	e.initSlot(sl, w)
	return sl
}

// initSlot makes sl, a zero slot, the slot of w.
func (e *Engine) initSlot(sl *core.Slot, w *core.Webhook) {
	sl.Interval = time.Duration(w.MinIntervalMs) * time.Millisecond
	sl.MaxRetries = w.MaxRetries
	sl.Schedule = e.opts.RetrySchedule
	sl.Retries = w.CurrentRetries
	sl.LastEnd = int64(w.LastRun.Timestamp * 1e9)
	e.sched.Put(w.ID, sl)
}

// Run dispatches and delivers until Stop is called.
func (e *Engine) Run() {
	defer close(e.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	flush := time.NewTicker(e.opts.FlushInterval)
	defer flush.Stop()
	e.safely(e.takeBoot) // Run runs once
	var owners <-chan struct{}
	if e.opts.Owner != nil {
		owners = e.opts.Owner.Changed()
		e.safely(e.reown)
	}
	e.dispatch() // markers left from before a restart
	for {
		if len(e.boot) > 0 && !e.dueWaiting {
			e.safely(e.bootNext)
		}
		e.safely(e.fireDue)
		if len(e.boot) > 0 && !e.dueWaiting {
			timer.Reset(0) // the next chunk, after what is waiting
		} else if at, ok := e.sched.Next(); ok && e.flying+e.parked < e.opts.Workers {
			timer.Reset(max(time.Duration(at-e.opts.Now().UnixNano()), 0))
		} else {
			timer.Reset(time.Hour) // nothing due, or the pool is full: a result wakes the loop
		}
		select {
		case <-e.stop:
			e.shutdown()
			return
		case <-e.opts.Queue.Updated():
			e.safely(e.dispatch)
		case <-owners:
			e.safely(e.reown)
		case r := <-e.results:
			e.safely(func() { e.outcome(r) })
		case c := <-e.changes:
			e.safely(func() { e.change(c) })
		case f := <-e.calls:
			e.safely(f)
		case <-timer.C:
		case <-flush.C:
			e.safely(e.flush)
		case err := <-e.flushed:
			e.flushDone(err)
		case r := <-e.settled:
			e.safely(func() { e.settle(r) })
		}
	}
}

// safely runs one step of the loop; a panic is logged and counted, and
// the loop goes on.
func (e *Engine) safely(f func()) {
	defer func() {
		if p := recover(); p != nil {
			enginePanics.Inc()
			e.opts.Logger.Error("delivery loop step panicked", "panic", fmt.Sprint(p))
		}
	}()
	f()
}

// dispatch reads every new marker, adds its messages to the pending set
// of each active webhook of its user, makes those sets durable, and only
// then acknowledges the markers (SPEC §3.7).
func (e *Engine) dispatch() {
	var recs []state.Record
	for {
		var err error
		recs, err = e.opts.Queue.Read(recs[:0], e.cursor+1, e.opts.ReadBatch)
		if err != nil {
			e.opts.Logger.Error("cannot read change markers", "err", err)
			return
		}
		if len(recs) == 0 {
			return
		}
		active := map[string][]*core.Webhook{} // per user, looked up once per batch
		last, held, done := e.cursor, false, 0
		for k, r := range recs {
			m, err := core.DecodeMarker(r.Data)
			if err != nil {
				e.opts.Logger.Error("skipping an unreadable change marker", "seq", r.Seq, "err", err)
				last = max(last, r.Seq)
				done++
				continue
			}
			hooks, ok := active[m.User]
			if !ok {
				if !e.owns(m.User) && !e.opts.Now().Before(e.reownAt) {
					e.reown() // the log owns its partition: it may be just gained
				}
				if e.owns(m.User) {
					hooks = e.opts.Webhooks.Active(m.User)
				} else if e.logOwns(m.User) {
					// The log gave it, and the engine could not take its
					// partition up (the pending sets did not load): it
					// and the rest of the batch wait, unacknowledged, for
					// the next flush's try. A log that tells read from
					// unread gives them again, and acknowledges none of
					// them meanwhile, below the cursor too.
					held = true
					if u, ok := e.opts.Queue.(unreader); ok {
						for _, r := range recs[k:] {
							u.Unread(r.Seq)
						}
					}
					break
				} // else the log has just lost it too: it goes to the new owner
				active[m.User] = hooks
			}
			e.apply(m, hooks)
			last = max(last, r.Seq)
			done++
		}
		if held {
			e.redispatch = true
		}
		if e.opts.AckAtFlush {
			e.cursor, e.toAck = last, max(e.toAck, last)
			if e.rewind {
				e.cursor, e.rewind = 0, false
			}
			markersDispatched.Add(done)
			if held {
				return
			}
			e.redispatch = false
			continue
		}
		if err := e.persistPending(false); err != nil {
			e.logThrottled("cannot store pending notifications; markers stay queued", err)
			e.redispatch = true // on the next flush tick, or the next update
			return
		}
		e.redispatch = held
		e.cursor = last
		if e.rewind { // partitions gained meanwhile: their markers are older
			e.cursor, e.rewind = 0, false
		}
		if e.beforeAck != nil {
			e.beforeAck()
		}
		if err := e.opts.Queue.Ack(last); err != nil {
			e.logThrottled("cannot acknowledge change markers", err)
			e.unacked = last // retried on the flush tick
		} else {
			e.unacked = 0
		}
		markersDispatched.Add(done)
		if held {
			return
		}
	}
}

// apply adds a marker's messages to its user's active webhooks.
func (e *Engine) apply(m core.Marker, hooks []*core.Webhook) {
	webhookChanges.Add(len(hooks))
	now := float64(e.opts.Now().UnixMilli()) / 1000
	for _, w := range hooks {
		if changedBefore(m.Time, w.Created, now) {
			continue // as in Pryv, a webhook hears of the changes made after it was created
		}
		retire := slices.Contains(m.DeletedAccesses, w.AccessID)
		msgs := m.Messages
		if w.Scopes != nil {
			// Only the matched scopes' keys (PRYV-WEBHOOKS.md §5.9); a
			// webhook whose access went hears of it whatever its scopes.
			msgs = w.Scopes.Match(nil, m.Messages, m.Touches)
			if retire && len(msgs) == 0 {
				msgs = []string{core.MsgAccessesChanged}
			}
			if len(msgs) == 0 {
				continue
			}
		}
		var sl *core.Slot
		if e.unbooted(w.ID) && !e.sinceStart(w.Created) {
			sl = e.bootOne(w) // the boot message comes first
		} else {
			sl = e.slotFor(w)
		}
		if len(sl.Pending) == 0 && !sl.Flying {
			sl.Since = m.Time
		}
		sl.Add(msgs...)
		if retire {
			e.retire[w.ID] = true
		}
		e.dirtyPending[w.ID] = true
		e.sched.Touch(w.ID)
	}
}

// persistPending writes the pending (and in-flight) messages of every
// changed slot, and syncs when asked. What an error left unwritten stays
// dirty.
//
// The dispatch path does not sync: the markers it read were synced before
// their clients were answered, and state.Pending promises that a Write
// is as durable as any acknowledgement that follows it (the Badger
// implementations share one ordered write-ahead log), so a lost
// acknowledgement only means the markers are read again (at-least-once).
// A kill -9 loses nothing written. The periodic flush syncs, to bound
// what a machine crash can undo.
func (e *Engine) persistPending(sync bool) error {
	ws := e.pendingWrites()
	if len(ws) == 0 {
		return nil
	}
	written, durable, err := e.writePending(ws, sync)
	e.markStored(ws, written, durable)
	for _, w := range ws[:durable] {
		delete(e.dirtyPending, w.ID) // the rest is written again next time
	}
	return err
}

// pendingWrites returns the writes that store the changed slots' sets,
// and forgets those with nothing stored and nothing to store.
func (e *Engine) pendingWrites() []state.PendingWrite {
	if len(e.dirtyPending) == 0 {
		return nil
	}
	ws := make([]state.PendingWrite, 0, len(e.dirtyPending))
	for id := range e.dirtyPending {
		sl := e.sched.Slot(id)
		var msgs []string
		if sl != nil {
			msgs = append(append(msgs, sl.InFlight...), sl.Pending...)
		}
		if _, ok := e.opts.Webhooks.Target(id); !ok || (len(msgs) == 0 && !e.retire[id]) {
			if sl != nil && !sl.Stored {
				delete(e.dirtyPending, id) // nothing stored, nothing to delete
				continue
			}
			ws = append(ws, state.PendingWrite{ID: id})
			continue
		}
		ws = append(ws, state.PendingWrite{ID: id, Set: &state.PendingSet{Messages: msgs, Retire: e.retire[id]}})
	}
	return ws
}

// writePending writes ws, and syncs when asked: written of them are
// written, durable of them synced. It touches no loop state.
func (e *Engine) writePending(ws []state.PendingWrite, sync bool) (written, durable int, err error) {
	written, err = e.opts.Pending.Write(ws)
	durable = written
	if err == nil && sync {
		if err = e.opts.Pending.Sync(); err != nil {
			durable = 0
		}
	}
	return written, durable, err
}

// markStored notes in the slots what a write of ws left stored: a set
// written is on disk, synced or not, and its slot must delete it once
// empty; a deletion counts once it is durable.
func (e *Engine) markStored(ws []state.PendingWrite, written, durable int) {
	for i, w := range ws[:written] {
		sl := e.sched.Slot(w.ID)
		switch {
		case sl == nil:
		case w.Set != nil:
			sl.Stored = true
		case i < durable:
			sl.Stored = false
		}
	}
}

// unreader is a log that can give a record again, unacknowledged: the
// cluster's marker log, for a marker of a partition not taken up yet.
type unreader interface{ Unread(seq uint64) }

// settled is what a flush tick's goroutine wrote (AckAtFlush).
type settled struct {
	ws               []state.PendingWrite
	written, durable int
	err              error  // the write's, or the acknowledgement's
	upTo             uint64 // the markers to acknowledge, up to this one
	acked            bool
}

// settleAsync writes, with AckAtFlush, the sets of the changed slots,
// then acknowledges the markers dispatched, in a goroutine of its own:
// one tick at a time, the next waiting for the next tick. The slots
// written are no longer dirty unless they change again meanwhile.
func (e *Engine) settleAsync() {
	if e.settling {
		return
	}
	ws := e.pendingWrites()
	upTo := e.toAck
	if len(ws) == 0 && upTo == 0 {
		return
	}
	for _, w := range ws {
		delete(e.dirtyPending, w.ID)
		if sl := e.sched.Slot(w.ID); sl != nil && w.Set != nil {
			// Stored from now on, as far as the slot knows: a delivery
			// that empties it before the write ends must delete it.
			sl.Stored = true
		}
	}
	e.toAck = 0
	e.settling = true
	go func() {
		r := settled{ws: ws, upTo: upTo}
		if len(ws) > 0 {
			r.written, r.durable, r.err = e.writePending(ws, true)
		}
		if r.err == nil && upTo > 0 {
			if e.beforeAck != nil {
				e.beforeAck()
			}
			if r.err = e.opts.Queue.Ack(upTo); r.err == nil {
				r.acked = true
			}
		}
		e.settled <- r
	}()
}

// settle hears what a tick's goroutine wrote: what failed is tried
// again at the next tick, unless its partition went meanwhile (its set
// is the new owner's now).
func (e *Engine) settle(r settled) {
	e.settling = false
	e.markStored(r.ws, r.written, r.durable)
	for _, w := range r.ws[r.durable:] {
		if hook := e.opts.Webhooks.ByID(w.ID); hook == nil || e.owns(hook.User) {
			e.dirtyPending[w.ID] = true
		}
	}
	if !r.acked && r.upTo > 0 {
		e.toAck = max(e.toAck, r.upTo)
	}
	if r.err != nil {
		e.logThrottled("cannot store pending notifications, or acknowledge their markers", r.err)
	}
}

// hostQueue is one receiver host's deliveries: how many are being sent,
// and the slots of those parked until one ends, oldest first (their
// messages are in flight already).
type hostQueue struct {
	host   string
	flying int
	parked []*core.Slot
}

// hostOf is the part of a receiver URL that names its connection pool:
// scheme, host and port.
func hostOf(url string) string {
	rest := url
	if i := strings.Index(url, "://"); i >= 0 {
		rest = url[i+3:]
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return url[:len(url)-len(rest)+i]
	}
	return url
}

// fireDue starts a delivery for every slot whose time has come.
//
// It never takes more than the pool has free workers, parked deliveries
// counted: a worker then never waits to hand over its result (the
// results channel holds Workers), and the loop never waits for a worker.
//
// It sets dueWaiting when it took as many as the pool had room for: more
// may be due, and a result will bring the loop back to them.
func (e *Engine) fireDue() {
	now := e.opts.Now()
	free := max(e.opts.Workers-e.flying-e.parked, 0)
	due := e.sched.Due(nil, now.UnixNano(), free)
	e.dueWaiting = len(due) == free
	for _, sl := range due {
		e.start(sl, now)
	}
}

// start sends the messages a slot has in flight, or parks them while its
// receiver host has MaxPerHost deliveries being sent.
func (e *Engine) start(sl *core.Slot, now time.Time) {
	if !sl.Live() || !sl.Flying {
		return // deleted while parked
	}
	id := sl.ID()
	w, ok := e.opts.Webhooks.Target(id)
	if !ok {
		e.sched.Remove(id)
		e.dirtyPending[id] = true
		return
	}
	if !w.Active {
		cancel(sl)
		sl.Inactive = true
		return
	}
	host := hostOf(w.URL)
	q := e.hosts[host]
	if q == nil {
		q = &hostQueue{host: strings.Clone(host)}
		e.hosts[q.host] = q
	}
	if q.flying >= e.opts.MaxPerHost {
		q.parked = append(q.parked, sl)
		e.parked++
		deliveriesParked.Inc()
		return
	}
	q.flying++
	e.serial++
	bp := payloadBufs.Get().(*[]byte)
	*bp = e.AppendPayload((*bp)[:0], sl.InFlight, now)
	body := *bp
	since := sl.Since
	url := w.URL
	var headers [][2]string
	if w.Signed {
		var err error
		var also []string // while a rotated secret's grace lasts, it signs too
		if w.PreviousSecret != "" && float64(now.UnixMilli())/1000 < w.PreviousUntil {
			also = []string{w.PreviousSecret}
		}
		if headers, err = core.SignatureHeaders(w.Secret, sl.NotificationID(core.NewMsgID), now.Unix(), body, also...); err != nil {
			e.opts.Logger.Error("cannot sign a notification", "webhook", id, "err", err)
		}
	}
	e.inflight.Add(1)
	e.flying++
	err := e.pool.Submit(func() {
		defer e.inflight.Done()
		start := time.Now()
		a, err := e.opts.Sender.Send(url, body, headers)
		took := time.Since(start)
		releasePayload(bp)
		e.results <- result{sl: sl, q: q, status: a.Status, retryAfter: a.RetryAfter, answer: a.Head, err: err,
			sentAt: start, took: took, ended: e.opts.Now(), since: since}
	})
	if err != nil { // the pool is closed: only at shutdown
		releasePayload(bp)
		e.inflight.Done()
		e.flying--
		e.release(q)
		cancel(sl)
		e.sched.TouchSlot(sl)
	}
}

// release ends one delivery to host: the oldest parked one, if any,
// starts in its place.
func (e *Engine) release(q *hostQueue) {
	q.flying--
	for !e.stopping && q.flying < e.opts.MaxPerHost && len(q.parked) > 0 {
		sl := q.parked[0]
		q.parked[0] = nil
		q.parked = q.parked[1:]
		e.parked--
		e.start(sl, e.opts.Now())
	}
	if q.flying == 0 && len(q.parked) == 0 && e.hosts[q.host] == q {
		delete(e.hosts, q.host)
	}
}

// cancel puts a slot's in-flight messages back without a run.
func cancel(sl *core.Slot) {
	sl.Pending = append(append([]string(nil), sl.InFlight...), sl.Pending...)
	sl.InFlight, sl.Flying = nil, false
}

// payloadBufs holds notification bodies between encoding and sending.
var payloadBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// releasePayload returns a body buffer; it must not be used afterwards.
func releasePayload(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		payloadBufs.Put(bp)
	}
}

// AppendPayload appends {"messages":[...],"meta":{...}} to b.
func (e *Engine) AppendPayload(b []byte, msgs []string, now time.Time) []byte {
	b = append(b, `{"messages":[`...)
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = core.AppendJSONString(b, m)
	}
	b = append(b, `],"meta":`...)
	b = e.opts.Meta.AppendMeta(b, now.UnixNano())
	return append(b, '}')
}

// outcome records a finished delivery (SPEC §3.5).
func (e *Engine) outcome(r result) {
	e.flying--
	e.release(r.q)
	sl := r.sl
	if !sl.Live() || !sl.Flying {
		return // deleted meanwhile
	}
	id := sl.ID()
	now := r.ended.UnixNano()
	deliveryDuration.UpdateDuration(r.sentAt)
	ok := r.err == nil && r.status >= 200 && r.status <= 299
	run := core.Run{Status: r.status, Timestamp: float64(r.ended.UnixMilli()) / 1000,
		DurationMs: float64(r.took.Microseconds()) / 1000}
	if !ok {
		run.Error, run.Answer = ErrorClass(r.status, r.err), r.answer
		deliveryErrors[core.RunErrorIndex(run.Error)].Inc()
	}
	deactivate := false
	switch {
	case ok:
		deliveriesOK.Inc()
		if r.since > 0 {
			notifyLatency.Update(float64(now-r.since) / 1e9)
		}
		sl.Succeeded(now)
		if len(sl.Pending) > 0 {
			sl.Since = now
		}
		if e.retire[id] {
			delete(e.retire, id)
			deactivate = true // its access is gone: the news was delivered, now stop
		} else if len(sl.Pending) == 0 {
			e.idle.Push(idleSlot{sl: sl, at: now + int64(sl.Interval)})
		}
	case r.status == 410:
		deliveriesGone.Inc()
		sl.Failed(now, 0, 0)
		deactivate = true
	default:
		deliveriesFailed.Inc()
		iv := sl.Interval // the wait a tenth of which is the most jitter
		if n := len(sl.Schedule); n > 0 {
			iv = sl.Schedule[min(sl.Retries+1, n)-1]
		}
		jitter := time.Duration(rand.Int64N(int64(min(e.opts.MaxJitter, iv/10)) + 1))
		deactivate = sl.Failed(now, r.retryAfter, jitter)
		if e.failLog.Allow() {
			e.opts.Logger.Warn("a delivery failed; it will be retried", "webhook", id, "host", r.q.host, "status", r.status,
				"class", run.Error, "err", r.err, "answer", run.Answer, "tookMs", run.DurationMs,
				"retries", sl.Retries, "maxRetries", sl.MaxRetries, "suppressed", e.failLog.Suppressed())
		}
	}
	reason := ""
	if deactivate {
		sl.Inactive = true
		reason = "its access was deleted"
		switch {
		case r.status == 410:
			reason = "the receiver answered 410 Gone"
		case !ok:
			reason = "maxRetries failed attempts in a row"
		}
		e.opts.Logger.Warn("webhook deactivated", "webhook", id, "host", r.q.host, "reason", reason, "status", r.status,
			"class", run.Error, "err", r.err)
		delete(e.retire, id) // done with, whatever the reason
		deactivations.Inc()
	}
	retries := sl.Retries
	e.opts.Webhooks.RecordRun(id, run, func(w *core.Webhook) {
		w.CurrentRetries = retries
		if deactivate {
			w.State = core.StateInactive
		}
	})
	if f := e.opts.OnDeactivate; deactivate && f != nil {
		// Once the registry has it inactive: an operator alerted who
		// looks finds it so.
		d := Deactivation{ID: id, Reason: reason, LastRun: run, Failures: retries}
		if w, ok := e.opts.Webhooks.Target(id); ok {
			d.URL = w.URL
		}
		go f(d)
	}
	// Nothing stored and nothing left (a boot storm's every delivery):
	// no pending write to make.
	if sl.Stored || len(sl.Pending) > 0 || e.retire[id] {
		e.dirtyPending[id] = true
	}
	e.sched.TouchSlot(sl)
}

// changedBefore reports whether a change at unixNano came before a
// webhook created at created (Unix seconds, to the millisecond, as Pryv
// keeps it): a batch [events.create, webhooks.create] must not notify the
// new webhook of the event. A creation time past now (a record from a
// machine whose clock ran ahead) is not trusted.
func changedBefore(unixNano int64, created, now float64) bool {
	return created > float64(unixNano)/1e9 && created <= now
}

// change applies what the API did to a webhook.
func (e *Engine) change(c state.Change) {
	id := c.Webhook.ID
	sl := e.sched.Slot(id)
	if !c.Deleted && !e.owns(c.Webhook.User) {
		if sl != nil { // another engine's now
			e.forget(id)
		}
		return
	}
	switch {
	case c.Deleted:
		e.sched.Remove(id)
		delete(e.retire, id)
		e.dirtyPending[id] = true
		if e.bootState != nil && e.bootState[id] != bootEarly {
			e.bootState[id] = bootChanged // not booted, if not yet
		}
	case sl == nil && e.unbooted(id) && e.bootState[id] == 0:
		// Not booted yet: booted as it is then, unless created since the
		// engine started.
		e.bootState[id] = bootChanged
		if e.sinceStart(c.Webhook.Created) {
			e.bootState[id] = bootSkip
		}
	case c.Webhook.State == core.StateInactive:
		if sl != nil {
			sl.Inactive = true // stops at once; an in-flight POST finishes
		}
	default:
		if sl == nil {
			return // a new webhook: its slot comes with its first message
		}
		wasInactive := sl.Inactive
		e.slotFor(c.Webhook)
		if wasInactive {
			sl.Reactivate() // what was pending goes out now
			// Reactivated on purpose (say, by a personal access after its
			// app's access was deleted): it stays active.
			delete(e.retire, id)
			e.dirtyPending[id] = true
		}
		e.sched.Touch(id)
	}
}

// flush writes run records and pending sets changed since the last
// flush, and retries what a write error left undone.
//
// The run records are written by a goroutine of their own, one flush at
// a time, so that the loop goes on starting deliveries meanwhile (at a
// boot storm, a second's runs take tens of milliseconds to write). The
// pending sets are written here, acknowledgements waiting for them; with
// AckAtFlush, both by a goroutine of their own (settleAsync).
func (e *Engine) flush() {
	if !e.flushing {
		e.flushing = true
		go func() { e.flushed <- e.opts.Webhooks.Flush() }()
	}
	e.flushPending()
}

// flushDone hears that a run records flush has ended.
func (e *Engine) flushDone(err error) {
	e.flushing = false
	if err != nil {
		e.logThrottled("cannot store webhook runs", err)
	}
}

// flushPending writes and syncs the pending sets changed since the last
// flush, retries what a write error left undone, and prunes idle slots.
func (e *Engine) flushPending() {
	if e.opts.Owner != nil {
		// Ownership as of now: no set of a partition another engine has
		// taken is written, and one whose take-up failed is tried again.
		e.reown()
	}
	if e.opts.AckAtFlush {
		e.settleAsync()
	} else if err := e.persistPending(true); err != nil {
		e.logThrottled("cannot store pending notifications", err)
	}
	if e.redispatch {
		e.dispatch()
	}
	if e.unacked > 0 {
		if err := e.opts.Queue.Ack(e.unacked); err == nil {
			e.unacked = 0
		}
	}
	e.pruneIdle()
}

// idleSlot is a webhook whose delivery succeeded with nothing left: its
// slot may go once its interval has passed (at).
type idleSlot struct {
	sl *core.Slot
	at int64
}

// When implements core.Timed.
func (e idleSlot) When() int64 { return e.at }

// pruneIdle forgets the slots of webhooks idle for their interval, so
// that a million webhooks that were notified once, at boot, do not keep
// a slot each. A slot is what the registry has (the last run, no
// retries) plus what is pending: an idle one is made again from the
// registry by the next change, which then fires at once, as it would
// have. While booting too: whether a webhook is booted does not rest on
// its slot (unbooted).
func (e *Engine) pruneIdle() {
	if len(e.idle) == 0 {
		return
	}
	now := e.opts.Now().UnixNano()
	pruned := 0
	for len(e.idle) > 0 && e.idle[0].at <= now {
		sl := e.idle.Pop().sl
		id := sl.ID()
		if !sl.Live() || len(sl.Pending) > 0 || sl.Flying || sl.Retries > 0 || sl.Inactive || sl.Stored ||
			e.dirtyPending[id] || e.retire[id] || now < sl.LastEnd+int64(sl.Interval) {
			continue // busy again, or gone
		}
		e.sched.Remove(id)
		slotsPruned.Inc()
		pruned++
	}
	if len(e.idle) == 0 {
		e.idle = nil
	} else {
		e.idle = e.idle.Shrunk()
	}
	if pruned > 0 {
		e.sched.Shrink()
	}
}

// logThrottled logs a write error at most once every 10 s, with how
// many were not logged in between.
func (e *Engine) logThrottled(msg string, err error) {
	if e.errLog.Allow() {
		e.opts.Logger.Error(msg, "err", err, "suppressed", e.errLog.Suppressed())
	}
}

// Stop ends Run: no new delivery starts, those in flight finish (each is
// bounded by the client's timeout), and everything is flushed.
func (e *Engine) Stop() {
	close(e.stop)
	<-e.done
}

func (e *Engine) shutdown() {
	e.stopping = true
	drained := make(chan struct{})
	go func() { e.inflight.Wait(); close(drained) }()
	for {
		select {
		case r := <-e.results:
			e.outcome(r)
			continue
		case <-drained:
		}
		break
	}
	for {
		select {
		case r := <-e.results:
			e.outcome(r)
			continue
		default:
		}
		break
	}
	for _, q := range e.hosts { // parked: their messages stay pending
		for _, sl := range q.parked {
			if sl.Live() && sl.Flying {
				cancel(sl)
			}
		}
	}
	e.hosts, e.parked = nil, 0
	if e.flushing {
		e.flushDone(<-e.flushed)
	}
	if err := e.opts.Webhooks.Flush(); err != nil { // the runs since
		e.opts.Logger.Error("cannot store webhook runs at the stop", "err", err)
	}
	if e.settling {
		e.settle(<-e.settled)
	}
	e.flushPending()
	if e.settling { // the last tick's, written before the stop ends
		e.settle(<-e.settled)
	}
	e.pool.Release()
}

// PoolRunning returns the deliveries running now.
func (e *Engine) PoolRunning() int { return e.pool.Running() }

// PoolFree returns the idle delivery workers.
func (e *Engine) PoolFree() int { return e.pool.Free() }

// Deactivation tells an operator of a webhook the engine turned
// inactive.
type Deactivation struct {
	ID       string   `json:"id"`
	URL      string   `json:"url"`
	Reason   string   `json:"reason"`
	Failures int      `json:"failures"` // in a row, the last included
	LastRun  core.Run `json:"lastRun"`
}

// do runs f on the loop and waits for it; false when the engine has
// stopped.
func (e *Engine) do(f func()) bool {
	done := make(chan struct{})
	select {
	case e.calls <- func() { defer close(done); f() }:
	case <-e.done:
		return false
	}
	<-done
	return true
}

// SetRetrySchedule replaces the retry schedule (EngineOptions.RetrySchedule)
// for the retries scheduled from now on; nil brings back Pryv's linear
// backoff.
func (e *Engine) SetRetrySchedule(s []time.Duration) {
	e.do(func() {
		e.opts.RetrySchedule = s
		e.sched.Each(func(sl *core.Slot) { sl.Schedule = s })
	})
}

// Delivery is what the engine holds of a webhook, for an operator.
type Delivery struct {
	Pending  []string `json:"pending"` // in flight, then waiting
	InFlight bool     `json:"inFlight"`
	Inactive bool     `json:"inactive,omitempty"`
	// NextAt is when it fires next, in float Unix seconds; 0 when
	// nothing is due.
	NextAt float64 `json:"nextAt,omitempty"`
}

// Inspect returns what the engine holds of webhook id; false when it
// holds nothing (idle, unknown, or the engine stopped).
func (e *Engine) Inspect(id string) (Delivery, bool) {
	var d Delivery
	found := false
	e.do(func() {
		sl := e.sched.Slot(id)
		if sl == nil {
			return
		}
		found = true
		d.Pending = append(append([]string(nil), sl.InFlight...), sl.Pending...)
		d.InFlight, d.Inactive = sl.Flying, sl.Inactive
		if at, ok := sl.FireAt(); ok {
			d.NextAt = float64(max(at, e.opts.Now().UnixNano())/1e6) / 1000
		}
	})
	return d, found
}

// Redeliver sends webhook id's pending messages now, whatever its
// minIntervalMs or its retry backoff says, and returns how many; false
// when nothing is pending, the webhook is inactive (reactivate it
// first) or a delivery of it is in flight.
func (e *Engine) Redeliver(id string) (n int, ok bool) {
	e.do(func() {
		sl := e.sched.Slot(id)
		if sl == nil || sl.Inactive || sl.Flying || len(sl.Pending) == 0 {
			return
		}
		ok, n = true, len(sl.Pending)
		sl.LastEnd, sl.RetryAt = 0, 0
		e.sched.TouchSlot(sl)
	})
	return n, ok
}

// Pending returns the pending and in-flight messages of a webhook, for
// tests and diagnostics. Not safe while Run runs.
func (e *Engine) Pending(id string) []string {
	sl := e.sched.Slot(id)
	if sl == nil {
		return nil
	}
	return append(append([]string(nil), sl.InFlight...), sl.Pending...)
}

// MaxRetryAfter caps the wait a receiver's Retry-After can ask for, so
// that a receiver cannot park its webhook for years by mistake.
const MaxRetryAfter = time.Hour

// retryAfter parses a Retry-After header: seconds, or an HTTP date; 0 for
// none or an unreadable one, at most MaxRetryAfter.
func retryAfter(v []byte, now time.Time) time.Duration {
	if len(v) == 0 {
		return 0
	}
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n >= 0 {
		if n >= int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(string(v)); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}
