package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/state"
)

// The marker log is the stream N-markers, with one subject per
// partition, "N.markers.<p>"; a user's markers all go to one partition,
// by a hash of the username. A marker acknowledged is purged from its
// subject.
//
// Ownership: each partition has one anchor message, "N.anchor.<p>" in
// the stream N-anchors, never acknowledged, read by a durable consumer
// with a pinned priority group (ADR-42). Every instance pulls from every partition's anchor
// consumer, and JetStream delivers the anchor to one of them only, the
// pinned one, until it stops pulling for the pin's time to live; then it
// pins another. It delivers the anchor again every AckWait (Failover/6),
// so an instance that received a partition's anchor within the last
// Failover/3 owns it: it delivers the webhooks of that partition's users.
// When it dies, the pin (living Failover/2) and the anchor move to a
// survivor, about Failover/2 later.
//
// The owner reads a partition's markers through an ordered consumer of
// its own: in memory, on one server, unacknowledged, so that a marker
// reaches it as soon as a quorum stored it, with no replicated consumer
// state in the way (a replicated consumer sends a message only once a
// quorum has recorded its delivery, and records each acknowledgement the
// same way: two more replication rounds per change). Acknowledging is a
// purge of the partition's subject below the oldest marker the owner
// still holds, one per partition and flush; a new owner reads what is
// left from the start.
//
// The anchors have a stream of their own: a durable consumer of the
// marker stream, even one whose filter takes none of the markers, writes
// its state to disk as each marker passes it by (on every replica), which
// cost a fifth of the cluster's CPU per change.

// Markers is the cluster's marker log: the gateway appends to it, and
// each instance's engine reads the partitions it owns (state.Log).
type Markers struct {
	c        *Conn
	stream   jetstream.Stream // the markers
	anchors  jetstream.Stream // the anchors and their consumers; nil when AppendOnly
	parts    []*part
	failover time.Duration
	now      func() time.Time

	mu      sync.Mutex
	updated chan struct{} // cap 1: markers or ownership came
	owners  chan struct{} // cap 1: ownership changed
	closed  bool

	opened    time.Time
	pulling   bool          // every partition is open: wake may pull again (guarded by mu)
	restarted bool          // no partition was pinned at the opening
	stop      chan struct{} // closed by Close
	checked   chan struct{} // closed when checkLoop ends
}

// part is one partition, as this instance sees it.
type part struct {
	n        int
	consumer jetstream.Consumer       // the anchor's, pinned
	cons     jetstream.ConsumeContext // pulls the anchor; nil while resting
	reader   *reader                  // reads the markers while owned; nil otherwise
	gain     int                      // counts the gains: a reader of an earlier one is stale
	opens    int                      // counts the readers opened: one that is not the last stops
	opening  bool                     // the last reader opened is being opened
	buf      [][]byte                 // markers read, in stream order, not acknowledged
	seqs     []uint64                 // their stream sequence numbers
	read     []bool                   // whether Read gave them: only those are acknowledged
	last     uint64                   // the last marker's sequence the reader had, this gain
	purged   uint64                   // the subject is purged below this sequence, as far as known
	anchor   jetstream.Msg            // the anchor as it last came
	anchorAt time.Time                // when it came; zero: never
	owned    bool                     // as last reported
	gained   time.Time                // when it was last gained
	resting  time.Time                // given up: pulled from again at this time; zero: pulled from
}

var _ state.Log = (*Markers)(nil)

// MinFailover is the shortest failover time: a pin lives half of it,
// which must outlast a pull request (pullExpiry) by half a second, or
// the pinned instance loses its pin between two pulls.
const MinFailover = 3 * time.Second

// settle is how long an instance keeps a partition it gained before it
// may give it up to balance the partitions: past the three beats for
// which a dead instance is still counted (Conn.Instances), with one to
// spare.
const settle = 4 * healthEvery

// pullExpiry is how long each pull request waits for messages; the
// client sends the next before it ends.
const pullExpiry = time.Second

// MarkersOptions configures the marker log.
type MarkersOptions struct {
	// Partitions splits the users; every instance must use the same
	// number. Default 16.
	Partitions int
	// Failover bounds how long a dead instance's partitions wait for a
	// survivor. Default 5 s; at least MinFailover.
	Failover time.Duration
	// AppendOnly opens the log to append only: no partition is pulled
	// from, none is owned (hookgate import).
	AppendOnly bool
	// Later opens the log to append, and pulls from the partitions only
	// once Start is called: an instance loading its webhooks is given
	// none, and is not counted among those that share them.
	Later bool
}

var (
	ownedPartitions = metrics.NewGauge(`hookgate_cluster_partitions_owned`, nil)
	// partitionsGained and partitionsLost count ownership changes: each
	// loss drops what the instance had read of the partition, for its
	// next owner to read again.
	partitionsGained = metrics.NewCounter(`hookgate_cluster_partitions_gained_total`)
	partitionsLost   = metrics.NewCounter(`hookgate_cluster_partitions_lost_total`)
	markersLost      = metrics.NewCounter(`hookgate_cluster_markers_unpublished_total`)
	// markersRepublished counts publishes made again after a cut.
	markersRepublished = metrics.NewCounter(`hookgate_cluster_markers_republished_total`)
)

// OpenMarkers opens the marker log, creating its stream and consumers
// when missing, and starts pulling from every partition.
func (c *Conn) OpenMarkers(ctx context.Context, o MarkersOptions) (*Markers, error) {
	if o.Partitions <= 0 {
		o.Partitions = 16
	}
	if o.Failover <= 0 {
		o.Failover = 5 * time.Second
	}
	if o.Failover < MinFailover {
		return nil, fmt.Errorf("failover %v: at least %v", o.Failover, MinFailover)
	}
	m := &Markers{c: c, failover: o.Failover, now: time.Now, updated: make(chan struct{}, 1), owners: make(chan struct{}, 1),
		opened: time.Now(), restarted: true, stop: make(chan struct{}), checked: make(chan struct{})}
	name := c.o.Name + "-markers"
	cfg := jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{c.o.Name + ".markers.*"},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   c.o.Replicas,
		Duplicates: time.Minute,
	}
	tctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	st, err := c.js.Stream(tctx, name)
	switch {
	case err == nil && st.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy:
		// Made by an earlier hookgate, whose consumers acknowledged
		// marker by marker; its retention cannot change in place.
		if !o.AppendOnly {
			return nil, fmt.Errorf("the marker stream %s is a work queue, from an earlier hookgate: "+
				"stop every instance, run hookgate export, delete the stream, then start and run hookgate import", name)
		}
	case err == nil || errors.Is(err, jetstream.ErrStreamNotFound):
		st, err = c.js.CreateOrUpdateStream(tctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open the marker stream %s: %w", name, err)
	}
	m.stream = st
	m.parts = make([]*part, o.Partitions)
	for p := range m.parts {
		m.parts[p] = &part{n: p}
	}
	if o.AppendOnly {
		close(m.checked)
		return m, nil
	}
	acfg := jetstream.StreamConfig{
		Name:       c.o.Name + "-anchors",
		Subjects:   []string{c.o.Name + ".anchor.*"},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   c.o.Replicas,
		Duplicates: time.Minute,
	}
	if m.anchors, err = c.js.CreateOrUpdateStream(tctx, acfg); err != nil {
		return nil, fmt.Errorf("cannot open the anchor stream %s: %w", acfg.Name, err)
	}
	go m.checkLoop()
	pull := !o.Later
	for _, pt := range m.parts {
		if err := m.openPart(ctx, pt, pull); err != nil {
			m.Close()
			return nil, err
		}
	}
	if pull {
		m.started()
	}
	return m, nil
}

// Start pulls from every partition, for a log opened Later; JetStream
// gives this instance its share of them from then on.
func (m *Markers) Start() error {
	m.mu.Lock()
	m.opened = m.now() // webhooksServiceBoot's period starts now
	m.mu.Unlock()
	for _, pt := range m.parts {
		if err := m.pull(pt); err != nil {
			return err
		}
	}
	m.started()
	return nil
}

// started notes that every partition is pulled from: wake may pull
// again, and this instance is counted among those that share them.
func (m *Markers) started() {
	m.mu.Lock()
	m.pulling = true
	m.mu.Unlock()
	m.c.pulling.Store(true)
}

func (m *Markers) markerSubject(p int) string { return m.c.o.Name + ".markers." + strconv.Itoa(p) }
func (m *Markers) anchorSubject(p int) string { return m.c.o.Name + ".anchor." + strconv.Itoa(p) }

// openPart makes sure partition pt has its consumer and its anchor, and
// with pull, starts pulling from it.
func (m *Markers) openPart(ctx context.Context, pt *part, pull bool) error {
	p := pt.n
	tctx, cancel := context.WithTimeout(ctx, m.c.o.Timeout)
	defer cancel()
	half := m.failover / 2
	// The anchor comes back every sixth of the failover time; an owner
	// believes in it for a third (holds: one anchor may come a whole
	// period late), and a new owner cannot have it before the pin, living
	// half of it, has expired: the two never overlap, with a sixth to
	// spare.
	sixth := m.failover / 6
	cons, err := m.anchors.CreateOrUpdateConsumer(tctx, jetstream.ConsumerConfig{
		Durable:        m.consumerName(p),
		FilterSubjects: []string{m.anchorSubject(p)},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        sixth,
		MaxAckPending:  16,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PinnedTTL:      half,
		PriorityGroups: []string{"owner"},
		Replicas:       m.c.o.Replicas,
		// Its state stays on disk: in memory, after a quorum loss, a
		// consumer whose replicas restarted empty was not led again, and
		// its partition stayed without an owner.
	})
	if err != nil {
		return fmt.Errorf("cannot open partition %d of the marker log: %w", p, err)
	}
	for _, g := range cons.CachedInfo().PriorityGroups {
		if g.PinnedClientID != "" {
			m.restarted = false // another instance holds it: the service runs
		}
	}
	if _, err := m.anchors.GetLastMsgForSubject(tctx, m.anchorSubject(p)); errors.Is(err, jetstream.ErrMsgNotFound) {
		// Every instance that finds none publishes one; the id keeps one.
		if _, err := m.c.js.Publish(tctx, m.anchorSubject(p), nil, jetstream.WithMsgID(m.anchorSubject(p))); err != nil {
			return fmt.Errorf("cannot anchor partition %d of the marker log: %w", p, err)
		}
	} else if err != nil {
		return fmt.Errorf("cannot read partition %d of the marker log: %w", p, err)
	}
	pt.consumer = cons
	if !pull {
		return nil
	}
	return m.pull(pt)
}

// pull starts pulling from pt.
func (m *Markers) pull(pt *part) error {
	cc, err := pt.consumer.Consume(func(msg jetstream.Msg) { m.receiveAnchor(pt, msg) },
		jetstream.PullPriorityGroup("owner"),
		jetstream.PullExpiry(pullExpiry),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrPinIDMismatch) && !errors.Is(err, nats.ErrConnectionClosed) {
				slog.Debug("marker log partition", "partition", pt.n, "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("cannot pull from partition %d of the marker log: %w", pt.n, err)
	}
	m.mu.Lock()
	pt.cons = cc
	m.mu.Unlock()
	return nil
}

// balance gives up partitions this instance holds beyond its share
// (the partitions over the instances alive, rounded up), for the others,
// which pull too, to take: it stops pulling from each, hands back what it
// was given, unpins it, and pulls again, as a standby, a failover period
// later. It waits until every partition it owns was gained at least
// settle ago: one gained since may come from an instance that died,
// whose beats are counted for up to three more beats, and giving
// partitions to the dead would leave them without an owner for a
// failover period.
func (m *Markers) balance() {
	n, err := m.c.Instances()
	if err != nil {
		slog.Debug("cannot count the instances", "err", err)
		return
	}
	if n < 2 {
		return
	}
	share := (len(m.parts) + n - 1) / n
	m.mu.Lock()
	var give []*part
	held := 0
	for _, pt := range m.parts {
		if pt.owned && m.now().Sub(pt.gained) < settle {
			m.mu.Unlock()
			return // the count may still hold the instance it came from
		}
	}
	for _, pt := range m.parts {
		if pt.owned {
			held++
			if held > share && pt.resting.IsZero() {
				give = append(give, pt)
			}
		}
	}
	m.mu.Unlock()
	for _, pt := range give {
		m.release(pt)
	}
	if len(give) > 0 {
		slog.Info("partitions given up for other instances", "given", len(give), "instances", n, "share", share)
	}
}

// release stops pulling from pt, hands back what it was given, and
// unpins it; pull starts again once the rest is over (checkLoop).
func (m *Markers) release(pt *part) {
	m.mu.Lock()
	cons, anchor := pt.cons, pt.anchor
	pt.cons, pt.anchor, pt.anchorAt = nil, nil, time.Time{}
	pt.resting = m.now().Add(m.failover)
	m.checkOwners() // lost: its reader stops, its buffer goes
	m.mu.Unlock()
	if cons != nil {
		cons.Stop()
	}
	if anchor != nil {
		anchor.Nak()
	}
	ctx, cancel := m.c.ctx()
	defer cancel()
	if err := m.anchors.UnpinConsumer(ctx, m.consumerName(pt.n), "owner"); err != nil {
		slog.Debug("cannot unpin a partition", "partition", pt.n, "err", err)
	}
}

// wake pulls again from partitions whose rest is over, and from those
// whose pulling stopped by itself (the client gives up on some errors,
// such as its consumer missing while the cluster has no quorum); and
// reads again the markers of owned partitions whose reader stopped or
// could not open.
func (m *Markers) wake() {
	m.mu.Lock()
	var due []*part
	for _, pt := range m.parts {
		switch {
		case !pt.resting.IsZero() && !m.now().Before(pt.resting):
			pt.resting = time.Time{}
			due = append(due, pt)
		case m.pulling && pt.resting.IsZero() && (pt.cons == nil || isClosed(pt.cons.Closed())):
			pt.cons = nil
			due = append(due, pt)
		}
		if pt.owned && !pt.opening && (pt.reader == nil || isClosed(pt.reader.done)) {
			m.openReader(pt)
		}
	}
	m.mu.Unlock()
	for _, pt := range due {
		if err := m.pull(pt); err != nil {
			slog.Warn("cannot pull again from a partition given up", "partition", pt.n, "err", err)
		}
	}
}

// isClosed reports whether ch is closed: a consumer that stopped pulling
// (its Closed channel), a reader that stopped reading (its done).
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (m *Markers) consumerName(p int) string { return fmt.Sprintf("%s-p%d", m.c.o.Name, p) }

// receiveAnchor takes the anchor of partition pt.
func (m *Markers) receiveAnchor(pt *part, msg jetstream.Msg) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || msg.Subject() != m.anchorSubject(pt.n) {
		return
	}
	pt.anchorAt, pt.anchor = m.now(), msg
	m.checkOwners()
	signal(m.updated)
}

// reader reads a partition's markers, one at a time in stream order, in
// a goroutine of its own (a handler per message could run two at once
// across a reset of the ordered consumer, and a marker that came second
// could be purged below the first).
type reader struct {
	it   jetstream.MessagesContext
	done chan struct{} // closed once it reads no more
}

// stop stops r in a goroutine: stopping an ordered consumer waits for a
// reset under way, up to its timeouts, which must not hold mu.
func (r *reader) stop() { go r.it.Stop() }

// openReader starts reading the markers of the owned partition pt, in a
// goroutine: from the start of its subject at a gain (what is there is
// unacknowledged), after the last marker read when a reader of the same
// gain stopped. Must be called with mu held.
func (m *Markers) openReader(pt *part) {
	if pt.reader != nil {
		pt.reader.stop()
		pt.reader = nil
	}
	pt.opens++
	pt.opening = true
	open, gain, after := pt.opens, pt.gain, pt.last
	go func() {
		cfg := jetstream.OrderedConsumerConfig{
			FilterSubjects:    []string{m.markerSubject(pt.n)},
			DeliverPolicy:     jetstream.DeliverAllPolicy,
			InactiveThreshold: m.failover, // the server drops it that long after a crash
		}
		if after > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
		}
		var it jetstream.MessagesContext
		ctx, cancel := m.c.ctx()
		oc, err := m.stream.OrderedConsumer(ctx, cfg)
		cancel()
		if err == nil {
			it, err = oc.Messages(jetstream.PullExpiry(pullExpiry))
		}
		m.mu.Lock()
		last := pt.opens == open
		if last {
			pt.opening = false
		}
		if err != nil {
			m.mu.Unlock()
			slog.Debug("cannot read a partition of the marker log (tried again)", "partition", pt.n, "err", err)
			return
		}
		if !last || m.closed || pt.gain != gain || !pt.owned {
			m.mu.Unlock()
			it.Stop() // lost, or opened again, meanwhile
			return
		}
		r := &reader{it: it, done: make(chan struct{})}
		pt.reader = r
		m.mu.Unlock()
		defer close(r.done)
		for {
			msg, err := it.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) && !errors.Is(err, nats.ErrConnectionClosed) {
					slog.Debug("a partition's reader stopped (opened again)", "partition", pt.n, "err", err)
				}
				return
			}
			m.receiveMarker(pt, gain, msg)
		}
	}()
}

// receiveMarker takes a marker of partition pt, read in its gain-th
// gain.
func (m *Markers) receiveMarker(pt *part, gain int, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || pt.gain != gain || !pt.owned {
		return // a stale reader's
	}
	seq := md.Sequence.Stream
	pt.last = max(pt.last, seq)
	if seq < pt.purged {
		return // acknowledged already
	}
	if i, found := slices.BinarySearch(pt.seqs, seq); !found { // a second reading is kept once
		pt.seqs = slices.Insert(pt.seqs, i, seq)
		pt.buf = slices.Insert(pt.buf, i, msg.Data())
		pt.read = slices.Insert(pt.read, i, false)
	}
	signal(m.updated)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// holds reports whether pt's anchor came recently enough for this
// instance to own it. Must be called with mu held.
func (m *Markers) holds(pt *part) bool {
	return !pt.anchorAt.IsZero() && m.now().Sub(pt.anchorAt) < m.failover/3
}

// checkOwners notes changes of ownership: it starts reading a partition
// gained, and stops reading one lost, dropping what it read (the new
// owner reads it again). Must be called with mu held.
func (m *Markers) checkOwners() {
	changed := false
	n := 0
	for _, pt := range m.parts {
		owned := m.holds(pt)
		if owned != pt.owned {
			pt.owned, changed = owned, true
			if owned {
				pt.gained = m.now()
				partitionsGained.Inc()
			} else {
				partitionsLost.Inc()
				slog.Info("partition lost", "partition", pt.n, "anchor age", m.now().Sub(pt.anchorAt))
			}
			v := 0.0
			if owned {
				v = 1
			}
			metrics.GetOrCreateGauge(fmt.Sprintf(`hookgate_cluster_partition_owned{partition="%d"}`, pt.n), nil).Set(v)
			pt.gain++
			pt.buf, pt.seqs, pt.read, pt.last, pt.purged = nil, nil, nil, 0, 0
			if owned && !m.closed {
				m.openReader(pt)
			} else if pt.reader != nil {
				pt.reader.stop()
				pt.reader = nil
			}
		}
		if owned {
			n++
		}
	}
	if changed {
		ownedPartitions.Set(float64(n))
		signal(m.owners)
	}
}

// fnv32a is FNV-1a, 32 bits: stable across processes and versions, as
// partitions must be.
func fnv32a[T string | []byte](s T) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// Partitions returns the number of partitions.
func (m *Markers) Partitions() int { return len(m.parts) }

// Partition returns the partition of user's markers.
func (m *Markers) Partition(user string) int { return PartitionOf(user, len(m.parts)) }

// PartitionOf returns the partition of user among n.
func PartitionOf(user string, n int) int { return int(fnv32a(user) % uint32(n)) }

// Owns reports whether this instance delivers user's webhooks now.
func (m *Markers) Owns(user string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.holds(m.parts[m.Partition(user)])
}

// Owned returns the partitions this instance owns.
func (m *Markers) Owned() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checkOwners()
	var out []int
	for _, pt := range m.parts {
		if pt.owned {
			out = append(out, pt.n)
		}
	}
	return out
}

// Changed returns a channel that receives a value when this instance
// gains or loses a partition.
func (m *Markers) Changed() <-chan struct{} { return m.owners }

// Restarted reports whether no instance was running when this one
// opened the log (no partition was pinned), and it is still the first
// failover period since: the service itself restarts, and partitions
// gained now get webhooksServiceBoot. An instance that restarts while
// others run sends none.
func (m *Markers) Restarted() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restarted && m.now().Sub(m.opened) < m.failover
}

// checkLoop notes, every eighth of the failover time, ownership lost for
// lack of the anchor, which no message would otherwise tell, pulls again
// from partitions given up, and every failover period gives up what is
// beyond this instance's share.
func (m *Markers) checkLoop() {
	defer close(m.checked)
	t := time.NewTicker(max(m.failover/8, 10*time.Millisecond))
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-t.C:
			m.mu.Lock()
			m.checkOwners()
			m.mu.Unlock()
			m.wake()
			if i%8 == 0 { // every failover period
				m.balance()
			}
		case <-m.stop:
			return
		}
	}
}

// Append publishes a marker to its user's partition and returns its
// sequence number once a quorum of the stream's replicas has it.
// Appends from concurrent requests are pipelined on the connection.
func (m *Markers) Append(data []byte) (uint64, error) {
	user, ok := core.MarkerUser(data)
	if !ok {
		return 0, core.ErrBadMarker
	}
	return m.AppendTo(int(fnv32a(user)%uint32(len(m.parts))), data)
}

// AppendTo publishes data to partition p, as Append does. Once JetStream
// has not answered for Options.Grace (no quorum), it fails at once rather
// than wait for the timeout: the client is answered, the loss counted.
// Before, while the connection moves to another server, it waits.
func (m *Markers) AppendTo(p int, data []byte) (uint64, error) {
	if err := m.c.Failing(); err != nil {
		markersLost.Inc()
		return 0, fmt.Errorf("cannot publish a change marker: %w", err)
	}
	// A client waits at most the failover time: what a leader's election
	// or a move to another server takes, not a lost quorum. A publish cut
	// by the move is made again, after a pause that doubles: the marker
	// may then be stored twice, and its webhooks notified twice (at least
	// once, as after any crash).
	wait := min(m.c.o.Timeout, m.failover)
	t := time.NewTimer(wait)
	defer t.Stop()
	pause := republishWait
	for {
		f, err := m.c.js.PublishAsync(m.markerSubject(p), data)
		if err == nil {
			select {
			case ack := <-f.Ok():
				return ack.Sequence, nil
			case err = <-f.Err():
			case <-t.C:
				err = fmt.Errorf("no acknowledgement within %v", wait)
			}
		}
		if !republish(err) {
			markersLost.Inc()
			return 0, fmt.Errorf("cannot publish a change marker: %w", err)
		}
		select {
		case <-t.C:
			markersLost.Inc()
			return 0, fmt.Errorf("cannot publish a change marker within %v: %w", wait, err)
		case <-time.After(pause + rand.N(pause)):
		}
		markersRepublished.Inc()
		pause = min(2*pause, republishMaxWait)
	}
}

// A marker whose publish was cut is published again after a pause of
// republishWait, doubled at each try up to republishMaxWait, with
// jitter: the clients waiting during an election do not all come back
// at once.
const (
	republishWait    = 20 * time.Millisecond
	republishMaxWait = 500 * time.Millisecond
)

// republish tells the errors of a publish that may pass if made again:
// the connection moving to another server, or no stream leader yet.
func republish(err error) bool {
	return errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// Read implements state.Log: the markers of the partitions this instance
// owns, in stream order, from from on, and below it those not given
// before. Partitions come apart: a marker can arrive after later ones of
// another partition were read, and a partition gained brings older ones.
func (m *Markers) Read(dst []state.Record, from uint64, max int) ([]state.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return dst, errors.New("marker log closed")
	}
	m.checkOwners() // as of now, not of the last tick
	type at struct {
		pt  *part
		i   int
		seq uint64
	}
	var give []at
	for _, pt := range m.parts {
		if !pt.owned {
			continue
		}
		taken := 0
		for i := 0; i < len(pt.seqs) && taken < max; i++ {
			if pt.seqs[i] < from && pt.read[i] {
				continue
			}
			give = append(give, at{pt, i, pt.seqs[i]})
			taken++
		}
	}
	// Each partition gave up to max, in order: the first max of all.
	slices.SortFunc(give, func(a, b at) int { return int64Cmp(a.seq, b.seq) })
	for _, g := range give[:min(len(give), max)] {
		dst = append(dst, state.Record{Seq: g.seq, Data: g.pt.buf[g.i]})
		g.pt.read[g.i] = true
	}
	return dst, nil
}

// Unread makes the marker seq, given by Read, unread: Read gives it
// again, and Ack leaves it, until it is read again. The engine hands
// back so the markers of a partition it has not taken up yet.
func (m *Markers) Unread(seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pt := range m.parts {
		if i, found := slices.BinarySearch(pt.seqs, seq); found {
			pt.read[i] = false
			return
		}
	}
}

func int64Cmp(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Ack implements state.Log: each marker up to upTo that Read gave is
// acknowledged. Its partition's subject is purged below the oldest
// marker this instance still holds, or up to the last it read: one
// request per partition, answered once a quorum applied it. A marker
// Read did not give (of a partition gained since, older than the
// reader's cursor) stays, to be read; so do the later ones of its
// partition, which a new owner would read again.
func (m *Markers) Ack(upTo uint64) error {
	if err := m.c.Healthy(); err != nil {
		return fmt.Errorf("cannot acknowledge change markers (they come again): %w", err)
	}
	type purge struct {
		pt    *part
		gain  int
		below uint64
	}
	var purges []purge
	m.mu.Lock()
	m.checkOwners() // a partition lost since the Read: its markers go to the new owner
	for _, pt := range m.parts {
		k := 0 // the markers kept
		for i, seq := range pt.seqs {
			if seq <= upTo && pt.read[i] {
				continue
			}
			pt.seqs[k], pt.buf[k], pt.read[k] = seq, pt.buf[i], pt.read[i]
			k++
		}
		clear(pt.buf[k:])
		pt.seqs, pt.buf, pt.read = pt.seqs[:k], pt.buf[:k], pt.read[:k]
		below := pt.last + 1
		if k > 0 {
			below = pt.seqs[0]
		}
		if pt.owned && pt.last > 0 && below > pt.purged {
			purges = append(purges, purge{pt, pt.gain, below})
		}
	}
	m.mu.Unlock()
	var first error
	for _, p := range purges {
		ctx, cancel := m.c.ctx()
		err := m.stream.Purge(ctx, jetstream.WithPurgeSubject(m.markerSubject(p.pt.n)), jetstream.WithPurgeSequence(p.below))
		cancel()
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		m.mu.Lock()
		if p.pt.gain == p.gain {
			p.pt.purged = max(p.pt.purged, p.below)
		}
		m.mu.Unlock()
	}
	if first != nil {
		return fmt.Errorf("cannot acknowledge change markers (they come again): %w", first)
	}
	return nil
}

// Len returns how many markers the stream holds, every partition's,
// unacknowledged; 0 when JetStream does not answer.
func (m *Markers) Len() uint64 {
	if m.c.Healthy() != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := m.stream.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// Each gives every marker the stream holds, of every partition, in
// stream order, without taking it: for hookgate export, from a cluster
// whose instances are stopped. It gets them one by one (a stream of an
// earlier hookgate is a work queue, which takes no second consumer), up
// to the last there was when it started.
func (m *Markers) Each(yield func(data []byte) error) error {
	ctx, cancel := m.c.ctx()
	info, err := m.stream.Info(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot read the marker stream: %w", err)
	}
	subject := m.c.o.Name + ".markers.*"
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; {
		ctx, cancel := m.c.ctx()
		msg, err := m.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot read the marker stream: %w", err)
		}
		if msg.Sequence > info.State.LastSeq {
			return nil
		}
		if err := yield(msg.Data); err != nil {
			return err
		}
		seq = msg.Sequence + 1
	}
	return nil
}

// Updated implements state.Log.
func (m *Markers) Updated() <-chan struct{} { return m.updated }

// Close stops pulling. The partitions this instance owned are unpinned,
// so that another instance takes them at once, and what it was
// delivered and did not acknowledge is handed back.
func (m *Markers) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	parts := m.parts
	m.mu.Unlock()
	close(m.stop)
	<-m.checked
	m.mu.Lock()
	var stop []jetstream.ConsumeContext
	for _, pt := range parts {
		if pt.cons != nil {
			stop = append(stop, pt.cons)
		}
		if pt.reader != nil {
			pt.reader.stop()
			pt.reader = nil
		}
	}
	m.mu.Unlock()
	for _, cc := range stop {
		cc.Stop()
	}
	ctx, cancel := m.c.ctx()
	defer cancel()
	reachable := m.c.Healthy() == nil // else each unpin would wait for its timeout
	for _, pt := range parts {
		if pt.owned && reachable {
			pt.anchor.Nak()
			if err := m.anchors.UnpinConsumer(ctx, m.consumerName(pt.n), "owner"); err != nil {
				slog.Debug("cannot unpin a partition", "partition", pt.n, "err", err)
			}
		}
	}
}
