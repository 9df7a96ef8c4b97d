package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/state"
)

// Pending is the JetStream state.Pending: each webhook's set under
// "p.<id>" of the pending bucket, in JSON. Every write is acknowledged
// by a quorum of the bucket's replicas before Write returns, so Sync has
// nothing to do.
type Pending struct {
	c    *Conn
	bulk bool // writes go at once, not paced
}

var _ state.Pending = (*Pending)(nil)

// Pending returns the pending sets, for the engine: each Write is paced
// as a flush's writes are (publishPaced).
func (c *Conn) Pending() *Pending { return &Pending{c: c} }

// Bulk returns the same sets with writes that go at once, for hookgate
// import: at a window of 8 the first second, its writes of 1,000 sets
// would take a second each.
func (p *Pending) Bulk() *Pending { return &Pending{c: p.c, bulk: true} }

// Load implements state.Pending.
func (p *Pending) Load(f func(id string, set state.PendingSet) error) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := p.c.pending.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("cannot read pending sets: %w", err)
	}
	defer w.Stop()
	// Each entry comes within the request timeout, or the bucket cannot
	// be read.
	idle := time.NewTimer(p.c.o.Timeout)
	defer idle.Stop()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("cannot read pending sets: the watch ended")
			}
			if e == nil {
				return nil
			}
			var set state.PendingSet
			if err := json.Unmarshal(e.Value(), &set); err != nil {
				return fmt.Errorf("unreadable pending set %s: %w", e.Key(), err)
			}
			if err := f(e.Key()[2:], set); err != nil {
				return err
			}
			idle.Reset(p.c.o.Timeout)
		case <-idle.C:
			return fmt.Errorf("cannot read pending sets: nothing came for %v", p.c.o.Timeout)
		}
	}
}

// Write implements state.Pending.
func (p *Pending) Write(ws []state.PendingWrite) (int, error) {
	if err := p.c.Healthy(); err != nil {
		return 0, fmt.Errorf("cannot store pending sets: %w", err) // at once: they are tried again
	}
	msgs := make([]*nats.Msg, len(ws))
	for i, w := range ws {
		if !validKey(w.ID) {
			return i, fmt.Errorf("pending set: id %q cannot be a key", w.ID)
		}
		key := "p." + w.ID
		if w.Set == nil {
			msgs[i] = delMsg(&p.c.pending, key)
			continue
		}
		v, err := json.Marshal(w.Set)
		if err != nil {
			return i, err
		}
		msgs[i] = putMsg(&p.c.pending, key, v)
	}
	publish := p.c.publishPaced
	if p.bulk {
		publish = p.c.publish
	}
	_, n, err := publish(msgs)
	if err != nil {
		return n, fmt.Errorf("cannot store pending sets (%d of %d written): %w", n, len(ws), err)
	}
	return n, nil
}

// Sync implements state.Pending: every Write is durable when it returns.
func (p *Pending) Sync() error { return nil }
