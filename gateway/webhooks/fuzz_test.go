package webhooks

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/hookgate/hookgate/core"
)

// FuzzCreateUpdate feeds create and update arbitrary bodies: every call
// answers either a webhook or a Pryv error with a 4xx status, and nothing
// stored breaks the record's invariants.
func FuzzCreateUpdate(f *testing.F) {
	f.Add([]byte(`{"url":"https://x.example/hook?s=1","minIntervalMs":2000,"maxRetries":3,"state":"inactive"}`), []byte(`{"state":"active"}`))
	f.Add([]byte(`{"url":"not a url","bogus":1}`), []byte(`{"url":"x"}`))
	f.Add([]byte(`{"url":42}`), []byte(`{"state":"paused"}`))
	f.Add([]byte(`[`), []byte(`null`))
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	st, err := OpenStore(db)
	if err != nil {
		f.Fatal(err)
	}
	api := NewAPI(st, Options{MaxPerAccess: -1, Now: func() time.Time { return time.Unix(1700000000, 0) }})
	app := Access{ID: "app-id", Type: core.AccessApp}
	f.Fuzz(func(t *testing.T, create, update []byte) {
		res, perr := api.Call(app, "alice", "webhooks.create", create)
		if perr != nil {
			if perr.Status < 400 || perr.Status > 499 || perr.ID == "" {
				t.Fatalf("create error %+v", perr)
			}
			return
		}
		w := res.Value.(*core.Webhook)
		if res.Status != 201 || checkURL(w.URL) != "" || (w.State != core.StateActive && w.State != core.StateInactive) ||
			w.MinIntervalMs < 1000 || w.MaxRetries < 0 || w.MaxRetries > 20 || w.AccessID != app.ID {
			t.Fatalf("created an invalid webhook %+v", w)
		}
		params := append([]byte(`{"id":"`+w.ID+`","update":`), update...)
		params = append(params, '}')
		res, perr = api.Call(app, "alice", "webhooks.update", params)
		if perr != nil {
			if perr.Status < 400 || perr.Status > 499 {
				t.Fatalf("update error %+v", perr)
			}
		} else if u := res.Value.(*core.Webhook); u.URL != w.URL || (u.State != core.StateActive && u.State != core.StateInactive) {
			t.Fatalf("update changed more than the state: %+v", u)
		}
		if _, perr := api.Call(app, "alice", "webhooks.delete", []byte(`{"id":"`+w.ID+`"}`)); perr != nil {
			t.Fatalf("delete: %+v", perr)
		}
	})
}

func TestMarshalResultPryvShape(t *testing.T) {
	w := &core.Webhook{ID: "w1", URL: "https://x.example/?a=1&b=<2>", Runs: []core.Run{}}
	got := string(MarshalResult(Result{200, "webhook", w}, []byte(`,"meta":{}`)))
	if want := `"url":"https://x.example/?a=1&b=<2>"`; !contains(got, want) {
		t.Fatalf("%s lacks %s", got, want)
	}
	got = string(MarshalResult(Result{200, "webhookDeletion", deletion{ID: "w1", Deleted: 1.5}}, nil))
	if got != `{"webhookDeletion":{"id":"w1","deleted":1.5}}` {
		t.Fatalf("deletion %s", got)
	}
	got = string(MarshalError(errorf(404, "unknown-resource", "Unknown webhook %q", "x&y"), nil))
	if got != `{"error":{"id":"unknown-resource","message":"Unknown webhook \"x&y\""}}` {
		t.Fatalf("error %s", got)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestFlushNeverOverwritesAPIWrites: an API write made while a flush of
// run records is between its copy and its write must not be undone on
// disk by that older copy.
//
// Real time: the API writer must be seen parked on the store's lock (or
// finished, if the store let it through), and a goroutine parked on a
// sync.Mutex is not durably blocked, so this cannot run in a synctest
// bubble; waitParked's bound is a failure bound only.
func TestFlushNeverOverwritesAPIWrites(t *testing.T) {
	dir := t.TempDir()
	open := func() (*badger.DB, *Store) {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		st, err := OpenStore(db)
		if err != nil {
			db.Close()
			t.Fatal(err)
		}
		return db, st
	}
	db, st := open()
	w := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: "https://x.example/", State: core.StateActive, Runs: []core.Run{}}
	if err := st.Create(w, 0); err != nil {
		db.Close()
		t.Fatal(err)
	}
	st.RecordRun(w.ID, core.Run{Status: 200, Timestamp: 1}, nil)
	apiDone := make(chan error, 1)
	var parked error
	st.afterCopy = func() {
		// The API turns the webhook inactive while the copy (still active)
		// waits to be written. The flush goes on once the API's write has
		// either finished (a store that lets it through is caught by the
		// check on disk below) or is parked on the store's write lock.
		go func() {
			_, err := st.Update("alice", w.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil })
			apiDone <- err
		}()
		parked = waitParked(apiDone, "(*Store).lockWrite")
	}
	flushErr := st.Flush()
	apiErr := <-apiDone // Flush has returned: nothing holds the API's write back
	db.Close()
	if flushErr != nil || apiErr != nil || parked != nil {
		t.Fatalf("flush: %v; API update: %v; waiting for the API write: %v", flushErr, apiErr, parked)
	}
	db, st = open()
	defer db.Close()
	got, _ := st.Get("alice", w.ID)
	if got == nil || got.State != core.StateInactive || got.RunCount != 1 {
		t.Fatalf("on disk: %+v; want inactive (the API's write) and runCount 1", got)
	}
}

// waitParked waits until a goroutine is parked on a sync.Mutex inside fn
// (a function name as goroutine dumps print it), or until done holds a
// value (which it leaves there for the caller). It returns an error if
// neither happens within 30 s.
//
// Real time: polls the goroutine dump; the bound only turns a hang into a
// failure, and a state already reached is seen within a millisecond.
func waitParked(done chan error, fn string) error {
	const patience = 30 * time.Second
	deadline := time.Now().Add(patience)
	buf := make([]byte, 1<<20)
	for {
		if len(done) > 0 {
			return nil
		}
		n := runtime.Stack(buf, true)
		if n == len(buf) { // truncated: look again with room for all
			buf = make([]byte, 2*len(buf))
			continue
		}
		for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
			header, _, _ := strings.Cut(g, "\n")
			if strings.Contains(header, "[sync.Mutex.Lock") && strings.Contains(g, fn) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no goroutine parked on a lock in %s after %v", fn, patience)
		}
		time.Sleep(time.Millisecond)
	}
}
