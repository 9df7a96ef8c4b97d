package delivery

import (
	"slices"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/state"
)

// owns reports whether this engine delivers user's webhooks.
func (e *Engine) owns(user string) bool {
	o := e.opts.Owner
	if o == nil {
		return true
	}
	p := o.Partition(user)
	return p < len(e.owned) && e.owned[p]
}

// logOwns reports whether the log gives user's markers to this engine,
// whether or not the engine has taken the partition up.
func (e *Engine) logOwns(user string) bool {
	o := e.opts.Owner
	return o != nil && slices.Contains(o.Owned(), o.Partition(user))
}

// forget drops the slot of webhook id, which another engine delivers
// now, and what this one had yet to write for it: what is stored stays
// for the new owner. A delivery in flight ends without a run recorded
// here (its slot is no longer live): the new owner sends it again.
func (e *Engine) forget(id string) {
	e.sched.Remove(id)
	delete(e.dirtyPending, id)
	delete(e.retire, id)
}

// reown takes up the partitions gained since the last call and lets go
// of those lost.
//
// A partition lost: the slots of its webhooks go. A partition gained:
// its webhooks' stored pending sets are loaded into slots (an inactive
// webhook's stay, in a slot that does not fire), with webhooksServiceBoot
// at the service's restart; the log is then read from its start again,
// for the markers of the partition that were waiting.
func (e *Engine) reown() {
	o := e.opts.Owner
	now := make([]bool, o.Partitions())
	for _, p := range o.Owned() {
		if p >= 0 && p < len(now) {
			now[p] = true
		}
	}
	old := e.owned
	if len(old) != len(now) {
		old = make([]bool, len(now))
	}
	e.owned = now
	if slices.Equal(old, now) {
		return
	}
	lost, gained := false, false
	for p := range now {
		lost = lost || old[p] && !now[p]
		gained = gained || now[p] && !old[p]
	}
	if lost {
		var drop []string
		e.sched.Each(func(sl *core.Slot) {
			w := e.opts.Webhooks.ByID(sl.ID())
			if w != nil && !now[o.Partition(w.User)] {
				drop = append(drop, sl.ID())
			}
		})
		for _, id := range drop {
			e.forget(id)
		}
		e.opts.Logger.Info("partitions let go", "owned", o.Owned(), "webhooks", len(drop))
	}
	if !gained {
		return
	}
	hooks := map[string]*core.Webhook{}
	e.opts.Webhooks.Each(func(w *core.Webhook) bool {
		if p := o.Partition(w.User); now[p] && !old[p] {
			hooks[w.ID] = w.Clone()
		}
		return true
	})
	stored := map[string]state.PendingSet{}
	err := e.opts.Pending.Load(func(id string, s state.PendingSet) error {
		if hooks[id] != nil {
			stored[id] = s
		}
		return nil
	})
	if err != nil {
		// Not taken up: a slot made without its stored set would write
		// over it. Tried again at the next flush.
		e.logThrottled("cannot load the pending sets of partitions gained; trying again", err)
		e.reownAt = e.opts.Now().Add(e.opts.FlushInterval)
		for p := range now {
			if now[p] && !old[p] {
				e.owned[p] = false
			}
		}
		return
	}
	boot := o.Restarted()
	at := e.opts.Now().UnixNano()
	for id, w := range hooks {
		s, has := stored[id]
		active := w.State == core.StateActive
		booted := boot && active && !e.sinceStart(w.Created)
		if !has && !booted {
			continue // its slot comes with its first message
		}
		sl := e.slotFor(w)
		if has {
			sl.Stored = true
			sl.Add(s.Messages...)
			if s.Retire {
				e.retire[id] = true
			}
		}
		if booted {
			sl.Add(core.MsgServiceBoot)
		}
		if !active {
			sl.Inactive = true
		}
		sl.Since = at
		e.sched.Touch(id)
	}
	e.opts.Logger.Info("partitions taken up", "owned", o.Owned(), "webhooks", len(hooks), "pending", len(stored), "boot", boot)
	// The gained partitions' markers are older than the cursor: read
	// them from the start (a log acknowledges only what it gave).
	e.cursor, e.rewind = 0, true
}
