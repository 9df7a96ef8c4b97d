package delivery

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/queue"
	"github.com/hookgate/hookgate/state"
)

// nopSender answers 200 to every notification without sending it.
type nopSender struct{}

func (nopSender) Send(string, []byte, [][2]string) (Answer, error) { return Answer{Status: 200}, nil }

// TestBootInChunks drives the boot one step at a time, as Run does,
// over more webhooks than one chunk: each active webhook gets one boot
// message, first; a stored pending set goes before it; a marker that
// reaches a webhook not booted yet boots it first; a webhook deleted or
// deactivated before its turn gets none, one created meanwhile none,
// and an inactive one keeps its stored set without firing.
//
// Real time: only to date a webhook an hour after the engine starts.
func TestBootInChunks(t *testing.T) {
	reg, pend := state.NewMemory(), state.NewMemPending()
	n := 3*bootChunk + 17
	var ws []*core.Webhook
	for i := range n {
		w := &core.Webhook{ID: core.NewID(), User: fmt.Sprintf("u%05d", i), AccessID: "a", URL: "http://127.0.0.1:1/",
			State: core.StateActive, MinIntervalMs: 1000, MaxRetries: 3, CurrentRetries: i % 2, Created: float64(i)}
		ws = append(ws, w)
	}
	off := &core.Webhook{ID: core.NewID(), User: "off", AccessID: "a", URL: "http://127.0.0.1:1/", State: core.StateInactive}
	// ws[5] is created after the engine starts (by its clock), yet found
	// in the registry when the boot lists its webhooks: no boot message.
	ws[5].Created = float64(time.Now().Add(time.Hour).Unix())
	if err := reg.Import(append(slices.Clone(ws), off)); err != nil {
		t.Fatal(err)
	}
	stored, marked, deleted, deactivated, late := ws[1], ws[2], ws[3], ws[4], ws[5]
	pend.Write([]state.PendingWrite{
		{ID: stored.ID, Set: &state.PendingSet{Messages: []string{core.MsgEventsChanged}}},
		{ID: off.ID, Set: &state.PendingSet{Messages: []string{core.MsgStreamsChanged}}},
		{ID: "gone", Set: &state.PendingSet{Messages: []string{core.MsgEventsChanged}}},
	})
	q := queue.NewMemory(queue.Options{})
	e, err := NewEngine(EngineOptions{Queue: q, Pending: pend, Webhooks: reg, Sender: nopSender{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.pool.Release()

	e.takeBoot()
	if len(e.boot) != n {
		t.Fatalf("%d webhooks to boot; want %d", len(e.boot), n)
	}
	// Before the first chunk: a marker, an API deletion, a deactivation,
	// a creation.
	e.apply(core.Marker{User: marked.User, Messages: []string{core.MsgStreamsChanged}, Time: time.Now().UnixNano()}, reg.Active(marked.User))
	reg.Delete(deleted.User, deleted.ID)
	e.change(state.Change{Webhook: deleted, Deleted: true})
	d, _ := reg.Update(deactivated.User, deactivated.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil })
	e.change(state.Change{Webhook: d})
	fresh := &core.Webhook{ID: core.NewID(), User: "new", AccessID: "a", URL: "http://127.0.0.1:1/", State: core.StateActive}
	reg.Create(fresh, 0)
	e.change(state.Change{Webhook: fresh.Clone()})

	for steps := 0; e.bootState != nil; steps++ {
		if steps > n/bootChunk+1 {
			t.Fatalf("still booting after %d steps", steps)
		}
		e.bootNext()
	}
	for _, w := range ws {
		got := e.Pending(w.ID)
		var want []string
		switch w {
		case deleted, deactivated, late:
		case stored:
			want = []string{core.MsgEventsChanged, core.MsgServiceBoot}
		case marked:
			want = []string{core.MsgServiceBoot, core.MsgStreamsChanged}
		default:
			want = []string{core.MsgServiceBoot}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("webhook %s pending %v; want %v", w.User, got, want)
		}
		if sl := e.sched.Slot(w.ID); sl != nil && (sl.Retries != w.CurrentRetries || sl.Interval != time.Second || sl.MaxRetries != 3) {
			t.Fatalf("webhook %s slot %+v", w.User, sl)
		}
	}
	if got := e.Pending(fresh.ID); len(got) != 0 {
		t.Fatalf("a webhook created while booting has %v pending", got)
	}
	if sl := e.sched.Slot(off.ID); sl == nil || !sl.Inactive || !slices.Equal(e.Pending(off.ID), []string{core.MsgStreamsChanged}) {
		t.Fatalf("inactive webhook's slot %+v, pending %v; want its stored set, not firing", sl, e.Pending(off.ID))
	}
	if !e.dirtyPending["gone"] {
		t.Fatal("the pending set of a deleted webhook is not marked for deletion")
	}
}

// syncFails is a pending store whose Sync fails while fail is set.
type syncFails struct {
	*state.MemPending
	fail bool
}

func (p *syncFails) Sync() error {
	if p.fail {
		return errors.New("sync failed")
	}
	return nil
}

// TestStoredAfterFailedSync: a pending set written, whose sync failed, is
// on disk all the same: once its messages are delivered, it is deleted,
// not left to be delivered again after a restart.
func TestStoredAfterFailedSync(t *testing.T) {
	reg, pend := state.NewMemory(), &syncFails{MemPending: state.NewMemPending(), fail: true}
	w := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: "http://127.0.0.1:1/", State: core.StateActive, MinIntervalMs: 1000, MaxRetries: 3}
	if err := reg.Import([]*core.Webhook{w}); err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineOptions{Queue: queue.NewMemory(queue.Options{}), Pending: pend, Webhooks: reg, Sender: nopSender{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.pool.Release()
	e.takeBoot()
	for e.bootState != nil {
		e.bootNext()
	}
	e.apply(core.Marker{User: "alice", Messages: []string{core.MsgEventsChanged}, Time: time.Now().UnixNano()}, reg.Active("alice"))
	if err := e.persistPending(true); err == nil {
		t.Fatal("persistPending did not report the failed sync")
	}
	stored := func() bool {
		found := false
		pend.Load(func(id string, _ state.PendingSet) error { found = found || id == w.ID; return nil })
		return found
	}
	if !stored() || !e.sched.Slot(w.ID).Stored {
		t.Fatalf("after a write whose sync failed: stored %v, slot says %v; want both true", stored(), e.sched.Slot(w.ID).Stored)
	}
	pend.fail = false
	now := time.Now()
	due := e.sched.Due(nil, now.UnixNano(), 10)
	if len(due) != 1 || due[0].ID() != w.ID {
		t.Fatalf("due: %d slots", len(due))
	}
	e.flying++
	e.outcome(result{sl: due[0], q: &hostQueue{flying: 1}, status: 200, sentAt: now, ended: now})
	if err := e.persistPending(true); err != nil {
		t.Fatal(err)
	}
	if stored() {
		t.Fatal("the delivered set is still stored: it would go out again after a restart")
	}
}

// TestBootSkipsWebhooksCreatedSinceStart: a webhook created after the
// engine started, reached by a marker before its change is heard, gets
// no boot message.
func TestBootSkipsWebhooksCreatedSinceStart(t *testing.T) {
	reg := state.NewMemory()
	old := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: "http://127.0.0.1:1/old", State: core.StateActive, MinIntervalMs: 1000, MaxRetries: 3}
	if err := reg.Import([]*core.Webhook{old}); err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineOptions{Queue: queue.NewMemory(queue.Options{}), Pending: state.NewMemPending(), Webhooks: reg, Sender: nopSender{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.pool.Release()
	e.takeBoot()
	created := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: "http://127.0.0.1:1/new", State: core.StateActive,
		MinIntervalMs: 1000, MaxRetries: 3, Created: float64(e.started)/1e9 + 1}
	if err := reg.Create(created, 0); err != nil {
		t.Fatal(err)
	}
	e.apply(core.Marker{User: "alice", Messages: []string{core.MsgEventsChanged}, Time: time.Now().UnixNano()}, reg.Active("alice"))
	for e.bootState != nil {
		e.bootNext()
	}
	if got := e.Pending(created.ID); !slices.Equal(got, []string{core.MsgEventsChanged}) {
		t.Fatalf("the new webhook has %v pending; want only the change", got)
	}
	if got := e.Pending(old.ID); !slices.Equal(got, []string{core.MsgServiceBoot, core.MsgEventsChanged}) {
		t.Fatalf("the old webhook has %v pending; want its boot message, then the change", got)
	}
}

// TestChangedBefore: a change made before a webhook was created is not
// its to hear of; one in the same millisecond or after is; a creation
// time past now is not trusted.
func TestChangedBefore(t *testing.T) {
	const ms = int64(time.Millisecond)
	change := int64(1_700_000_000_000) * ms
	now := 1_700_000_100.0
	for _, c := range []struct {
		created float64
		want    bool
	}{
		{1_700_000_000.001, true},  // created a millisecond after the change
		{1_700_000_000.000, false}, // the same millisecond: notified
		{1_699_999_999.999, false},
		{1_700_000_200.000, false}, // in the future: not trusted
	} {
		if got := changedBefore(change, c.created, now); got != c.want {
			t.Errorf("changedBefore(created %.3f) = %v; want %v", c.created, got, c.want)
		}
	}
}
