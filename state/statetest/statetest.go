// Package statetest is the contract suite of package state: every
// implementation of state.Registry, state.Pending and state.Log runs it
// from its own tests, so that each one meets the contracts the delivery engine
// relies on, in memory, on Badger or in a cluster alike.
package statetest

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/internal/testproc"
	"github.com/hookgate/hookgate/state"
)

// OpenRegistry returns an empty registry for one subtest. reopen, when
// not nil, closes it and opens it again on the same storage (nil for an
// implementation that keeps nothing).
type OpenRegistry func(t *testing.T) (r state.Registry, reopen func() state.Registry)

// OpenPending is OpenRegistry's counterpart for state.Pending.
type OpenPending func(t *testing.T) (p state.Pending, reopen func() state.Pending)

var created float64

// hook returns a new active webhook of user and access, created after
// every earlier one.
func hook(user, access, url string) *core.Webhook {
	created++
	return &core.Webhook{ID: core.NewID(), User: user, AccessID: access, URL: url, State: core.StateActive,
		MinIntervalMs: 5000, MaxRetries: 5, Runs: []core.Run{}, Created: created}
}

func ids(ws []*core.Webhook) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.ID
	}
	return out
}

// changes records what a registry's change feed said.
type changes struct {
	mu  sync.Mutex
	got []string
}

func (c *changes) hear(ch state.Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	what := "set"
	if ch.Deleted {
		what = "del"
	}
	c.got = append(c.got, what+" "+ch.Webhook.ID+" "+ch.Webhook.State)
}

func (c *changes) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.got
	c.got = nil
	return out
}

// RunRegistry runs the registry contract.
func RunRegistry(t *testing.T, open OpenRegistry) {
	t.Run("create get list", func(t *testing.T) {
		r, _ := open(t)
		var feed changes
		r.OnChange(feed.hear)
		a1 := hook("alice", "app1", "http://127.0.0.1/a")
		a2 := hook("alice", "app2", "http://127.0.0.1/a") // same URL, another access
		a3 := hook("alice", "app1", "http://127.0.0.1/b")
		b1 := hook("bob", "app1", "http://127.0.0.1/a")
		for _, w := range []*core.Webhook{a1, a2, a3, b1} {
			if err := r.Create(w, 0); err != nil {
				t.Fatalf("Create %s: %v", w.URL, err)
			}
		}
		if got := feed.take(); !slices.Equal(got, []string{"set " + a1.ID + " active", "set " + a2.ID + " active", "set " + a3.ID + " active", "set " + b1.ID + " active"}) {
			t.Fatalf("change feed after creates: %v", got)
		}
		if err := r.Create(hook("alice", "app1", a1.URL), 0); !errors.Is(err, state.ErrDuplicateURL) {
			t.Fatalf("a URL the access already uses: %v; want ErrDuplicateURL", err)
		}
		if err := r.Create(hook("alice", "app1", "http://127.0.0.1/c"), 2); !errors.Is(err, state.ErrCapReached) {
			t.Fatalf("a third webhook with a cap of 2: %v; want ErrCapReached", err)
		}
		if got := feed.take(); len(got) != 0 {
			t.Fatalf("refused creates were heard: %v", got)
		}
		if got := ids(r.List("alice", "")); !slices.Equal(got, ids([]*core.Webhook{a1, a2, a3})) {
			t.Fatalf("List(alice) = %v; want creation order", got)
		}
		if got := ids(r.List("alice", "app1")); !slices.Equal(got, ids([]*core.Webhook{a1, a3})) {
			t.Fatalf("List(alice, app1) = %v", got)
		}
		if got := r.List("nobody", ""); got == nil || len(got) != 0 {
			t.Fatalf("List of an unknown user = %#v; want an empty, non-nil list", got)
		}
		w, ok := r.Get("alice", a1.ID)
		if !ok || w.URL != a1.URL || w.User != "alice" || w.AccessID != "app1" {
			t.Fatalf("Get = %+v, %v", w, ok)
		}
		w.URL = "changed by the caller"
		if again, _ := r.Get("alice", a1.ID); again.URL != a1.URL {
			t.Fatal("Get returned the registry's own record, not a copy")
		}
		if _, ok := r.Get("bob", a1.ID); ok {
			t.Fatal("Get of another user's webhook succeeded")
		}
		if w := r.ByID(b1.ID); w == nil || w.User != "bob" {
			t.Fatalf("ByID = %+v", w)
		}
		if r.ByID("nope") != nil {
			t.Fatal("ByID of an unknown id is not nil")
		}
		if got := ids(r.Active("alice")); !slices.Equal(got, ids([]*core.Webhook{a1, a2, a3})) {
			t.Fatalf("Active(alice) = %v", got)
		}
		if a, i := r.Counts(); a != 4 || i != 0 {
			t.Fatalf("Counts = %d, %d; want 4, 0", a, i)
		}
		var each []string
		r.Each(func(w *core.Webhook) bool { each = append(each, w.ID+" "+w.User); return true })
		slices.Sort(each)
		want := []string{a1.ID + " alice", a2.ID + " alice", a3.ID + " alice", b1.ID + " bob"}
		slices.Sort(want)
		if !slices.Equal(each, want) {
			t.Fatalf("Each gave %v; want %v", each, want)
		}
		n := 0
		r.Each(func(*core.Webhook) bool { n++; return n < 2 })
		if n != 2 {
			t.Fatalf("Each went on for %d records after f returned false at 2", n)
		}
	})
	t.Run("update delete", func(t *testing.T) {
		r, _ := open(t)
		var feed changes
		r.OnChange(feed.hear)
		w1, w2 := hook("alice", "app", "http://127.0.0.1/1"), hook("alice", "app", "http://127.0.0.1/2")
		r.Create(w1, 0)
		r.Create(w2, 0)
		feed.take()
		got, err := r.Update("alice", w1.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil })
		if err != nil || got.State != core.StateInactive {
			t.Fatalf("Update = %+v, %v", got, err)
		}
		refused := errors.New("refused")
		if _, err := r.Update("alice", w2.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return refused }); err != refused {
			t.Fatalf("Update whose fn fails: %v; want fn's error", err)
		}
		if _, err := r.Update("bob", w2.ID, func(*core.Webhook) error { return nil }); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Update of another user's webhook: %v; want ErrNotFound", err)
		}
		if w, _ := r.Get("alice", w2.ID); w.State != core.StateActive {
			t.Fatal("a failed update changed the webhook")
		}
		if got := ids(r.Active("alice")); !slices.Equal(got, []string{w2.ID}) {
			t.Fatalf("Active after deactivating one: %v", got)
		}
		if a, i := r.Counts(); a != 1 || i != 1 {
			t.Fatalf("Counts = %d, %d; want 1, 1", a, i)
		}
		if all := allActive(r); !slices.Equal(all, []string{w2.ID}) {
			t.Fatalf("EachActive = %v", all)
		}
		if tg, ok := r.Target(w1.ID); !ok || tg.Active || tg.URL != w1.URL {
			t.Fatalf("Target of the inactive one = %+v, %v", tg, ok)
		}
		if err := r.Delete("bob", w1.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Delete of another user's webhook: %v", err)
		}
		if err := r.Delete("alice", w1.ID); err != nil {
			t.Fatal(err)
		}
		if err := r.Delete("alice", w1.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("second Delete: %v; want ErrNotFound", err)
		}
		if _, ok := r.Get("alice", w1.ID); ok || r.ByID(w1.ID) != nil {
			t.Fatal("a deleted webhook is still found")
		}
		if got := feed.take(); !slices.Equal(got, []string{"set " + w1.ID + " inactive", "del " + w1.ID + " inactive"}) {
			t.Fatalf("change feed: %v", got)
		}
		// A URL is free again once its webhook is deleted.
		if err := r.Create(hook("alice", "app", w1.URL), 0); err != nil {
			t.Fatalf("re-creating a deleted webhook's URL: %v", err)
		}
	})
	t.Run("runs", func(t *testing.T) {
		r, reopen := open(t)
		var feed changes
		r.OnChange(feed.hear)
		w := hook("alice", "app", "http://127.0.0.1/r")
		r.Create(w, 0)
		feed.take()
		if r.RecordRun("nope", core.Run{Status: 200}, nil) {
			t.Fatal("RecordRun of an unknown id reported true")
		}
		if !r.RecordRun(w.ID, core.Run{Status: 500, Timestamp: 1}, func(w *core.Webhook) { w.CurrentRetries = 1 }) {
			t.Fatal("RecordRun reported false")
		}
		if got := r.ByID(w.ID); got.RunCount != 1 || got.FailCount != 1 || got.CurrentRetries != 1 || got.LastRun.Timestamp != 1 || len(got.Runs) != 0 {
			t.Fatalf("ByID after RecordRun: %+v; want the counts, no history", got)
		}
		if got, _ := r.Get("alice", w.ID); len(got.Runs) != 1 || got.Runs[0] != (core.Run{Status: 500, Timestamp: 1}) {
			t.Fatalf("Get before any Flush: runs %v", got.Runs)
		}
		if got := feed.take(); len(got) != 0 {
			t.Fatalf("RecordRun was heard: %v", got)
		}
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		// An API write after a RecordRun keeps the run: it starts from the
		// record as changed.
		r.Update("alice", w.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil })
		r.RecordRun(w.ID, core.Run{Status: 200, Timestamp: 2}, nil)
		got, _ := r.Update("alice", w.ID, func(w *core.Webhook) error { w.URL = "http://127.0.0.1/r2"; return nil })
		if got.RunCount != 2 || len(got.Runs) != 2 || got.Runs[0].Timestamp != 2 {
			t.Fatalf("Update's result: %+v; want both runs", got)
		}
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		// More runs than a history keeps, over several flushes and in one.
		for i := 3; i <= 2*state.RunsKept+7; i++ {
			r.RecordRun(w.ID, core.Run{Status: 200 + i%2, Timestamp: float64(i)}, nil)
			if i%13 == 0 {
				if err := r.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		checkHistory := func(r state.Registry, top int) {
			t.Helper()
			got, _ := r.Get("alice", w.ID)
			if got == nil || got.RunCount != top || got.FailCount != 1 || got.LastRun.Timestamp != float64(top) || got.State != core.StateInactive || got.URL != "http://127.0.0.1/r2" {
				t.Fatalf("record: %+v", got)
			}
			if len(got.Runs) != state.RunsKept {
				t.Fatalf("%d runs kept; want %d", len(got.Runs), state.RunsKept)
			}
			for i, run := range got.Runs {
				if want := float64(top - i); run.Timestamp != want || run.Status != 200+(top-i)%2 {
					t.Fatalf("run %d = %+v; want timestamp %v, newest first", i, run, want)
				}
			}
		}
		top := 2*state.RunsKept + 7
		checkHistory(r, top)
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		checkHistory(r, top)
		if reopen == nil {
			return
		}
		r = reopen()
		checkHistory(r, top)
		// A deleted webhook's history goes with it: the same id imported
		// again has none.
		if err := r.Delete("alice", w.ID); err != nil {
			t.Fatal(err)
		}
		again := *w
		again.RunCount, again.FailCount = 0, 0
		if err := r.Import([]*core.Webhook{&again}); err != nil {
			t.Fatal(err)
		}
		r.RecordRun(w.ID, core.Run{Status: 200, Timestamp: 9}, nil)
		if got, _ := r.Get("alice", w.ID); len(got.Runs) != 1 || got.Runs[0].Timestamp != 9 {
			t.Fatalf("a re-imported id's history: %v; want its one new run", got.Runs)
		}
	})
	t.Run("durable", func(t *testing.T) {
		r, reopen := open(t)
		if reopen == nil {
			t.Skip("keeps nothing")
		}
		a, b, c := hook("alice", "app", "http://127.0.0.1/1"), hook("alice", "app", "http://127.0.0.1/2"), hook("bob", "app", "http://127.0.0.1/3")
		for _, w := range []*core.Webhook{a, b, c} {
			r.Create(w, 0)
		}
		r.Update("alice", b.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil })
		r.Delete("bob", c.ID)
		r = reopen()
		if got := ids(r.List("alice", "")); !slices.Equal(got, []string{a.ID, b.ID}) {
			t.Fatalf("after reopen List(alice) = %v", got)
		}
		if w, _ := r.Get("alice", b.ID); w.State != core.StateInactive {
			t.Fatal("an update was lost by the reopen")
		}
		if r.ByID(c.ID) != nil {
			t.Fatal("a deletion was lost by the reopen")
		}
		if err := r.Create(hook("alice", "app", a.URL), 0); !errors.Is(err, state.ErrDuplicateURL) {
			t.Fatalf("after reopen a duplicate URL was accepted: %v", err)
		}
	})
	t.Run("scopes", func(t *testing.T) {
		r, reopen := open(t)
		scopes := &core.Scopes{List: []core.Scope{{Key: "notes", Kind: core.KindEvents, Streams: []string{"diary"},
			Types: []string{"note/txt"}, Within: []string{"diary", "diary-work"}}}}
		plain, scoped := hook("alice", "app", "http://127.0.0.1/1"), hook("alice", "app", "http://127.0.0.1/2")
		scoped.Scopes = scopes
		for _, w := range []*core.Webhook{plain, scoped} {
			if err := r.Create(w, 0); err != nil {
				t.Fatal(err)
			}
		}
		check := func(when string) {
			t.Helper()
			if !r.Scoped("alice") || r.Scoped("bob") || !r.Scoped("") {
				t.Fatalf("%s: Scoped(alice) = %v, Scoped(bob) = %v; want true, false", when, r.Scoped("alice"), r.Scoped("bob"))
			}
			if w, _ := r.Get("alice", scoped.ID); w == nil || !reflect.DeepEqual(w.Scopes, scopes) {
				t.Fatalf("%s: scopes read back as %+v", when, w)
			}
			if w, _ := r.Get("alice", plain.ID); w.Scopes != nil {
				t.Fatalf("%s: a webhook without scopes has %+v", when, w.Scopes)
			}
			for _, w := range r.Active("alice") {
				if (w.ID == scoped.ID) != (w.Scopes != nil) {
					t.Fatalf("%s: Active gives %s scopes %+v", when, w.ID, w.Scopes)
				}
			}
		}
		check("created")
		if reopen != nil {
			r = reopen()
			check("after reopen")
		}
		// Scopes replaced, then removed: the user is no longer scoped.
		learned, _ := scopes.Learn("diary-home", "diary")
		if _, err := r.Update("alice", scoped.ID, func(w *core.Webhook) error { w.Scopes = learned; return nil }); err != nil {
			t.Fatal(err)
		}
		if w, _ := r.Get("alice", scoped.ID); !reflect.DeepEqual(w.Scopes, learned) {
			t.Fatalf("updated scopes read back as %+v", w.Scopes)
		}
		if _, err := r.Update("alice", scoped.ID, func(w *core.Webhook) error { w.Scopes = nil; return nil }); err != nil {
			t.Fatal(err)
		}
		if r.Scoped("alice") || r.Scoped("") {
			t.Fatal("Scoped after every scope was removed")
		}
		r.Update("alice", plain.ID, func(w *core.Webhook) error { w.Scopes = scopes; return nil })
		if err := r.Delete("alice", plain.ID); err != nil || r.Scoped("alice") {
			t.Fatalf("Scoped(alice) after its scoped webhook was deleted: %v", err)
		}
	})
	t.Run("import and flush of any size", func(t *testing.T) {
		r, reopen := open(t)
		// 5,000 records of about 1.3 KiB: some 7 MiB, where one Badger
		// transaction holds about 2.4 MiB (1,750 real webhooks did not fit).
		const n = 5000
		pad := strings.Repeat("p", 1000)
		ws := make([]*core.Webhook, n)
		for i := range ws {
			ws[i] = hook(fmt.Sprintf("user%05d", i%1000), "app", fmt.Sprintf("http://127.0.0.1/%d?%s", i, pad))
		}
		// In reverse: the registry orders by creation, not by arrival.
		slices.Reverse(ws)
		if err := r.Import(ws); err != nil {
			t.Fatal(err)
		}
		if err := r.Import(ws[:1]); err == nil {
			t.Fatal("importing a known id again was accepted")
		}
		bad := hook("alice", "app", "http://127.0.0.1/neg")
		bad.RunCount = -1
		if err := r.Import([]*core.Webhook{bad}); err == nil {
			t.Fatal("importing a negative runCount was accepted")
		}
		for _, w := range ws {
			r.RecordRun(w.ID, core.Run{Status: 200, Timestamp: 3}, nil)
		}
		if err := r.Flush(); err != nil {
			t.Fatalf("flush of %d webhooks: %v", n, err)
		}
		if reopen != nil {
			r = reopen()
		}
		if a, _ := r.Counts(); a != n {
			t.Fatalf("%d active webhooks; want %d", a, n)
		}
		for _, w := range ws {
			if got := r.ByID(w.ID); got == nil || got.RunCount != 1 {
				t.Fatalf("%s: %+v; want its run", w.ID, got)
			}
		}
		list := r.List("user00000", "")
		for i := 1; i < len(list); i++ {
			if list[i].Created <= list[i-1].Created {
				t.Fatalf("List not in creation order: %v then %v", list[i-1].Created, list[i].Created)
			}
		}
		if got := len(allActive(r)); got != n {
			t.Fatalf("EachActive saw %d webhooks; want %d", got, n)
		}
		if w, _ := r.Get(ws[0].User, ws[0].ID); len(w.Runs) != 1 || w.Runs[0].Timestamp != 3 {
			t.Fatalf("Get after the big flush: runs %v", w.Runs)
		}
	})
}

// allActive returns the ids EachActive gives, sorted.
func allActive(r state.Registry) []string {
	var out []string
	r.EachActive(func(w *core.Webhook) { out = append(out, w.ID) })
	slices.Sort(out)
	return out
}

// RunPending runs the pending-set contract.
func RunPending(t *testing.T, open OpenPending) {
	load := func(t *testing.T, p state.Pending) map[string]state.PendingSet {
		t.Helper()
		out := map[string]state.PendingSet{}
		if err := p.Load(func(id string, s state.PendingSet) error { out[id] = s; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Run("write load delete", func(t *testing.T) {
		p, reopen := open(t)
		if got := load(t, p); len(got) != 0 {
			t.Fatalf("a new Pending holds %v", got)
		}
		n, err := p.Write([]state.PendingWrite{
			{ID: "a", Set: &state.PendingSet{Messages: []string{"eventsChanged", "streamsChanged"}}},
			{ID: "b", Set: &state.PendingSet{Messages: []string{"accessesChanged"}, Retire: true}},
			{ID: "c", Set: &state.PendingSet{Messages: []string{"eventsChanged"}}},
		})
		if err != nil || n != 3 {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if n, err := p.Write([]state.PendingWrite{{ID: "c"}, {ID: "a", Set: &state.PendingSet{Messages: []string{"streamsChanged"}}}}); err != nil || n != 2 {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if err := p.Sync(); err != nil {
			t.Fatal(err)
		}
		check := func(got map[string]state.PendingSet) {
			t.Helper()
			if len(got) != 2 || !slices.Equal(got["a"].Messages, []string{"streamsChanged"}) || got["a"].Retire ||
				!slices.Equal(got["b"].Messages, []string{"accessesChanged"}) || !got["b"].Retire {
				t.Fatalf("Load = %+v", got)
			}
		}
		check(load(t, p))
		if reopen != nil {
			check(load(t, reopen()))
		}
	})
	t.Run("write of any size", func(t *testing.T) {
		p, reopen := open(t)
		const n = 20_000
		ws := make([]state.PendingWrite, n)
		long := strings.Repeat("m", 200)
		for i := range ws {
			ws[i] = state.PendingWrite{ID: fmt.Sprintf("hook%06d", i), Set: &state.PendingSet{Messages: []string{"eventsChanged", long}}}
		}
		if k, err := p.Write(ws); err != nil || k != n {
			t.Fatalf("Write of %d sets = %d, %v", n, k, err)
		}
		if err := p.Sync(); err != nil {
			t.Fatal(err)
		}
		if reopen != nil {
			p = reopen()
		}
		if got := load(t, p); len(got) != n {
			t.Fatalf("%d sets loaded; want %d", len(got), n)
		}
	})
}

// OpenLog returns an empty marker log for one subtest, the function that
// appends to it (the gateway's side, which state.Log leaves out), and
// reopen, which closes it and opens it again on the same storage (nil for
// an implementation that keeps nothing).
type OpenLog func(t *testing.T) (l state.Log, appendData func([]byte) (uint64, error), reopen func() state.Log)

// LogOptions says how an implementation runs the log contract.
type LogOptions struct {
	// RealTime runs each case on the wall clock rather than in a
	// testing/synctest bubble: for a log that talks to a server outside
	// the test process's bubble, where an append is read once the server
	// delivers it. Reads that expect records then wait for them on
	// Updated, up to a minute.
	RealTime bool
}

// RunLog runs the marker log contract: order, acknowledgement, the
// update signal and, where it keeps anything, durability across a
// reopen. Sequence numbers are compared with one another, never with
// fixed values: they increase with every append and are never reused.
//
// Fake time (unless o.RealTime): each case runs in a testing/synctest
// bubble, and opens its log inside it; every goroutine the log starts
// must end with the case (its cleanups included). An update signal that
// never comes fails at once, when nothing else can happen.
func RunLog(t *testing.T, open OpenLog, o LogOptions) {
	run := func(name string, f func(t *testing.T)) {
		if o.RealTime {
			t.Run(name, f)
			return
		}
		t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
	}
	add := func(t *testing.T, appendData func([]byte) (uint64, error), data string) uint64 {
		t.Helper()
		seq, err := appendData([]byte(data))
		if err != nil {
			t.Fatalf("append %q: %v", data, err)
		}
		return seq
	}
	adds := func(t *testing.T, appendData func([]byte) (uint64, error), data ...string) []uint64 {
		t.Helper()
		seqs := make([]uint64, len(data))
		for i, d := range data {
			seqs[i] = add(t, appendData, d)
			if i > 0 && seqs[i] <= seqs[i-1] {
				t.Fatalf("append %q: seq %d after %d; want it to increase", d, seqs[i], seqs[i-1])
			}
		}
		return seqs
	}
	read := func(t *testing.T, l state.Log, from uint64, max int) []string {
		t.Helper()
		recs, err := l.Read(nil, from, max)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = fmt.Sprintf("%d:%s", r.Seq, r.Data)
		}
		return out
	}
	// readWant reads until it gets want: at once in a bubble, where an
	// append is readable when it returns; on the wall clock, as updates
	// come, for a minute at most.
	readWant := func(t *testing.T, l state.Log, from uint64, max int, want []string, what string) {
		t.Helper()
		got := read(t, l, from, max)
		if o.RealTime {
			deadline := time.After(time.Minute)
			for !slices.Equal(got, want) {
				select {
				case <-l.Updated():
				case <-deadline:
					t.Fatalf("%s = %v; want %v", what, got, want)
				}
				got = read(t, l, from, max)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s = %v; want %v", what, got, want)
		}
	}
	rec := func(seq uint64, data string) string { return fmt.Sprintf("%d:%s", seq, data) }
	run("order", func(t *testing.T) {
		l, appendData, _ := open(t)
		s := adds(t, appendData, "a", "b", "c")
		readWant(t, l, 0, 10, []string{rec(s[0], "a"), rec(s[1], "b"), rec(s[2], "c")}, "Read(0)")
		if got := read(t, l, s[1], 1); !slices.Equal(got, []string{rec(s[1], "b")}) {
			t.Fatalf("Read(%d, max 1) = %v", s[1], got)
		}
		if got := read(t, l, s[2]+1, 10); len(got) != 0 {
			t.Fatalf("Read past the end = %v", got)
		}
		dst := []state.Record{{Seq: 99}}
		dst, err := l.Read(dst, s[2], 10)
		if err != nil || len(dst) != 2 || dst[0].Seq != 99 || dst[1].Seq != s[2] {
			t.Fatalf("Read appends to dst: %+v, %v", dst, err)
		}
	})
	run("ack", func(t *testing.T) {
		l, appendData, _ := open(t)
		s := adds(t, appendData, "0", "1", "2", "3", "4")
		readWant(t, l, 0, 10, []string{rec(s[0], "0"), rec(s[1], "1"), rec(s[2], "2"), rec(s[3], "3"), rec(s[4], "4")}, "Read(0)")
		if err := l.Ack(s[1]); err != nil {
			t.Fatal(err)
		}
		rest := []string{rec(s[2], "2"), rec(s[3], "3"), rec(s[4], "4")}
		if got := read(t, l, 0, 10); !slices.Equal(got, rest) {
			t.Fatalf("after Ack(%d): %v; want %v", s[1], got, rest)
		}
		if err := l.Ack(s[0]); err != nil {
			t.Fatalf("acknowledging again: %v", err)
		}
		if got := read(t, l, 0, 10); !slices.Equal(got, rest) {
			t.Fatalf("after a second, older Ack: %v", got)
		}
		if err := l.Ack(s[4]); err != nil {
			t.Fatal(err)
		}
		if got := read(t, l, 0, 10); len(got) != 0 {
			t.Fatalf("after Ack of all: %v", got)
		}
		if seq := add(t, appendData, "next"); seq <= s[4] {
			t.Fatalf("after acknowledging all, the next seq is %d; want more than %d (never reused)", seq, s[4])
		}
	})
	run("updated", func(t *testing.T) {
		l, appendData, _ := open(t)
		s := add(t, appendData, "x")
		if o.RealTime {
			select {
			case <-l.Updated():
			case <-time.After(time.Minute):
				t.Fatal("no update signal within a minute of an append")
			}
		} else {
			synctest.Wait()
			select {
			case <-l.Updated():
			default:
				t.Fatal("no update signal after an append")
			}
		}
		readWant(t, l, 0, 10, []string{rec(s, "x")}, "after the signal")
	})
	run("durable", func(t *testing.T) {
		l, appendData, reopen := open(t)
		if reopen == nil {
			t.Skip("keeps nothing")
		}
		s := adds(t, appendData, "a", "b", "c")
		readWant(t, l, 0, 10, []string{rec(s[0], "a"), rec(s[1], "b"), rec(s[2], "c")}, "Read(0)")
		if err := l.Ack(s[0]); err != nil {
			t.Fatal(err)
		}
		l = reopen()
		readWant(t, l, 0, 10, []string{rec(s[1], "b"), rec(s[2], "c")}, "after reopen, the unacknowledged records")
	})
}

// OpenShared opens, in dir, a marker log, the function that appends to
// it, and the pending sets that go with it, as a process would at start;
// done releases them (a child that crashes never calls it).
type OpenShared func(t *testing.T, dir string) (l state.Log, appendData func([]byte) (uint64, error), p state.Pending, done func())

// RunAckOrder runs the acknowledgement rule across a real crash. The
// test binary runs again, as a child, the test that called it (name); the
// child appends a marker, writes the pending set it produces, and kills
// itself with SIGKILL, once before acknowledging the marker and once just
// after. After the first crash the marker is still in the log; after
// the second the set is found: an acknowledgement never outlives the
// pending state written before it.
//
// The calling test must call it before anything else: in the child it
// does the child's part and does not return.
//
// Each child is a process of its own, waited for at most a minute
// (testproc.RunKilled).
func RunAckOrder(t *testing.T, name string, open OpenShared) {
	const env = "HOOKGATE_STATETEST_ACK"
	if v := os.Getenv(env); v != "" {
		step, dir, _ := strings.Cut(v, ":")
		ackOrderChild(t, step, dir, open)
		return
	}
	for _, step := range []string{"before-ack", "after-ack"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			testproc.RunKilled(t, name, env+"="+step+":"+dir)
			l, _, p, done := open(t, dir)
			defer done()
			recs, err := l.Read(nil, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			if err := p.Load(func(id string, s state.PendingSet) error {
				found = append(found, id+" "+strings.Join(s.Messages, ","))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			switch step {
			case "before-ack":
				if len(recs) != 1 || string(recs[0].Data) != "marker" {
					t.Fatalf("after a crash before the acknowledgement the log holds %+v; want the marker", recs)
				}
			case "after-ack":
				if len(recs) != 0 {
					t.Fatalf("after a crash past the acknowledgement the log still holds %+v", recs)
				}
				if !slices.Equal(found, []string{"w1 " + core.MsgEventsChanged}) {
					t.Fatalf("the marker's acknowledgement survived the crash, its pending set did not: %v", found)
				}
			}
		})
	}
}

// ackOrderChild is RunAckOrder's child: it never returns.
func ackOrderChild(t *testing.T, step, dir string, open OpenShared) {
	l, appendData, p, _ := open(t, dir)
	seq, err := appendData([]byte("marker"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.Write([]state.PendingWrite{{ID: "w1", Set: &state.PendingSet{Messages: []string{core.MsgEventsChanged}}}}); err != nil || n != 1 {
		t.Fatalf("pending write: %d, %v", n, err)
	}
	if step == "after-ack" {
		if err := l.Ack(seq); err != nil {
			t.Fatal(err)
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
