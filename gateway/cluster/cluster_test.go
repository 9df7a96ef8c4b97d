package cluster

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/internal/natstest"
	"github.com/hookgate/hookgate/state"
	"github.com/hookgate/hookgate/state/statetest"
)

// TestSealedRegistryContract runs the registry contract with signing
// secrets sealed, and checks that no secret reaches the bucket in clear.
func TestSealedRegistryContract(t *testing.T) {
	nodes := natstest.Start(t, 3)
	sealer, err := webhooks.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	statetest.RunRegistry(t, func(t *testing.T) (state.Registry, func() state.Registry) {
		name := uniqueName()
		c := connect(t, nodes, name, sealer)
		r := openRegistry(t, c)
		return r, func() state.Registry {
			r.Close()
			c.Close()
			c = connect(t, nodes, name, sealer)
			r = openRegistry(t, c)
			return r
		}
	})

	c := connect(t, nodes, uniqueName(), sealer)
	r := openRegistry(t, c)
	w := hook("alice", "app", "http://127.0.0.1/signed")
	w.Secret = core.NewSigningSecret()
	if err := r.Create(w, 0); err != nil {
		t.Fatal(err)
	}
	e, err := c.hooks.kv.Get(context.Background(), "w."+w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(e.Value(), []byte(w.Secret)) || bytes.Contains(e.Value(), []byte(w.Secret[len("whsec_"):])) {
		t.Fatal("the signing secret is in the bucket in clear")
	}
	other := connect(t, nodes, c.o.Name, sealer)
	if got := openRegistry(t, other).ByID(w.ID); got == nil || got.Secret != w.Secret {
		t.Fatalf("another instance with the key reads secret %v", got)
	}
}

func uniqueName() string { return "t" + time.Now().Format("150405") + "-" + core.NewID()[:8] }

func connect(t *testing.T, nodes *natstest.Cluster, name string, sealer *webhooks.Sealer) *Conn {
	t.Helper()
	c, err := Connect(context.Background(), Options{URLs: nodes.URLs(), Name: name, Sealer: sealer, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

var created float64

func hook(user, access, url string) *core.Webhook {
	created++
	return &core.Webhook{ID: core.NewID(), User: user, AccessID: access, URL: url, State: core.StateActive,
		MinIntervalMs: 5000, MaxRetries: 5, Runs: []core.Run{}, Created: created}
}

// feed collects a registry's change feed.
type feed struct {
	mu  sync.Mutex
	got []state.Change
	ch  chan struct{}
}

func listen(r state.Registry) *feed {
	f := &feed{ch: make(chan struct{}, 1)}
	r.OnChange(func(c state.Change) {
		f.mu.Lock()
		f.got = append(f.got, c)
		f.mu.Unlock()
		select {
		case f.ch <- struct{}{}:
		default:
		}
	})
	return f
}

// wait returns the first change that ok accepts, and fails the test if
// none comes within a minute.
//
// Real time: it waits on the other instance's watch, bounded by a
// minute for a failing test.
func (f *feed) wait(t *testing.T, what string, ok func(state.Change) bool) state.Change {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		f.mu.Lock()
		for _, c := range f.got {
			if ok(c) {
				f.mu.Unlock()
				return c
			}
		}
		f.mu.Unlock()
		select {
		case <-f.ch:
		case <-deadline:
			t.Fatalf("no change %s came", what)
		}
	}
}

// TestInstancesShareWebhooks: two instances on one cluster. A webhook
// created through one is read at once through the other, and its
// change feed hears of it; an update, runs, a deactivation and a
// deletion travel the same way.
func TestInstancesShareWebhooks(t *testing.T) {
	nodes := natstest.Start(t, 3)
	name := uniqueName()
	ca := connect(t, nodes, name, nil)
	a := openRegistry(t, ca)
	b := openRegistry(t, connect(t, nodes, name, nil))
	fb := listen(b)

	w := hook("alice", "app", "http://127.0.0.1/a")
	if err := a.Create(w, 0); err != nil {
		t.Fatal(err)
	}
	// Read-your-writes: no wait between the write on a and the read on b.
	if got, ok := b.Get("alice", w.ID); !ok || got.URL != w.URL {
		t.Fatalf("b.Get right after a.Create = %v, %v", got, ok)
	}
	if got := b.List("alice", ""); len(got) != 1 || got[0].ID != w.ID {
		t.Fatalf("b.List = %v", got)
	}
	fb.wait(t, "for the creation", func(c state.Change) bool { return c.Webhook.ID == w.ID && !c.Deleted })

	if _, err := b.Update("alice", w.ID, func(w *core.Webhook) error { w.MinIntervalMs = 60000; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Get("alice", w.ID); got.MinIntervalMs != 60000 {
		t.Fatalf("a reads minIntervalMs %d after b's update", got.MinIntervalMs)
	}

	// a delivers: its runs and the deactivation reach b.
	for i := range 3 {
		a.RecordRun(w.ID, core.Run{Status: 503, Timestamp: float64(100 + i)}, func(w *core.Webhook) {
			if w.CurrentRetries++; w.CurrentRetries == 3 {
				w.State = core.StateInactive
			}
		})
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	fb.wait(t, "for the deactivation", func(c state.Change) bool { return c.Webhook.ID == w.ID && c.Webhook.State == core.StateInactive })
	got, _ := b.Get("alice", w.ID)
	if got.RunCount != 3 || got.FailCount != 3 || len(got.Runs) != 3 || got.Runs[0].Timestamp != 102 || got.State != core.StateInactive {
		t.Fatalf("b reads %+v after a's runs", got)
	}
	if act, inact := b.Counts(); act != 0 || inact != 1 {
		t.Fatalf("b counts %d active, %d inactive", act, inact)
	}

	// An update elsewhere keeps the runs a recorded since.
	a.RecordRun(w.ID, core.Run{Status: 200, Timestamp: 200}, nil)
	if _, err := b.Update("alice", w.ID, func(w *core.Webhook) error { w.State = core.StateActive; w.CurrentRetries = 0; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Get("alice", w.ID); got.State != core.StateActive || got.RunCount != 4 {
		t.Fatalf("a after b's reactivation: state %s, runCount %d; want active, 4", got.State, got.RunCount)
	}

	// The owner's counters, decided on a record older than the API's
	// last write, do not undo it: a deactivation counted on the old
	// record and written after b's reactivation leaves the webhook
	// active, with the owner's run counts.
	if _, err := b.Update("alice", w.ID, func(w *core.Webhook) error { w.Modified = 1000; return nil }); err != nil {
		t.Fatal(err)
	}
	cur, _ := a.Get("alice", w.ID)
	stale := state.CountersOf(cur) // its basis: cur's modification time
	stale.State, stale.CurrentRetries, stale.RunCount = core.StateInactive, 5, cur.RunCount+1
	if _, err := b.Update("alice", w.ID, func(w *core.Webhook) error { w.Modified = cur.Modified + 1; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.hooks.kv.Put(context.Background(), "c."+w.ID, webhooks.EncodeCounters(stale)); err != nil {
		t.Fatal(err)
	}
	fresh := openRegistry(t, connect(t, nodes, name, nil))
	for i, r := range []*Registry{a, b, fresh} {
		got, _ := r.Get("alice", w.ID)
		if got.State != core.StateActive || got.CurrentRetries != 0 || got.RunCount != cur.RunCount+1 {
			t.Fatalf("instance %d after a stale deactivation: state %s, retries %d, runCount %d; want active, 0, %d",
				i, got.State, got.CurrentRetries, got.RunCount, cur.RunCount+1)
		}
	}

	if err := a.Delete("alice", w.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Get("alice", w.ID); ok {
		t.Fatal("b still reads a webhook a deleted")
	}
	fb.wait(t, "for the deletion", func(c state.Change) bool { return c.Webhook.ID == w.ID && c.Deleted })
}

// TestCreateRaces: instances creating at the same moment for one access
// still refuse a second webhook with the same URL, and hold the cap.
func TestCreateRaces(t *testing.T) {
	nodes := natstest.Start(t, 3)
	name := uniqueName()
	regs := []*Registry{openRegistry(t, connect(t, nodes, name, nil)), openRegistry(t, connect(t, nodes, name, nil)), openRegistry(t, connect(t, nodes, name, nil))}
	race := func(url func(i int) string, cap int) (ok int, errs []error) {
		var wg sync.WaitGroup
		results := make([]error, 3*len(regs))
		hooks := make([]*core.Webhook, len(results))
		for i := range hooks {
			hooks[i] = hook("bob", "app", url(i))
		}
		for i := range results {
			wg.Go(func() { results[i] = regs[i%len(regs)].Create(hooks[i], cap) })
		}
		wg.Wait()
		for _, err := range results {
			if err == nil {
				ok++
			} else {
				errs = append(errs, err)
			}
		}
		return ok, errs
	}
	ok, errs := race(func(int) string { return "http://127.0.0.1/same" }, 0)
	if ok != 1 || !all(errs, state.ErrDuplicateURL) {
		t.Fatalf("9 creations of one URL: %d stored, errors %v; want 1 stored, the others ErrDuplicateURL", ok, errs)
	}
	ok, errs = race(func(i int) string { return "http://127.0.0.1/" + string(rune('a'+i)) }, 4)
	if ok != 3 || !all(errs, state.ErrCapReached) { // the cap of 4 and the first webhook
		t.Fatalf("9 creations under a cap of 4 with 1 stored: %d stored, errors %v", ok, errs)
	}
	for _, r := range regs {
		if got := r.List("bob", ""); len(got) != 4 {
			t.Fatalf("an instance lists %d webhooks; want 4", len(got))
		}
	}
}

func all(errs []error, want error) bool {
	return !slices.ContainsFunc(errs, func(err error) bool { return !errors.Is(err, want) })
}
