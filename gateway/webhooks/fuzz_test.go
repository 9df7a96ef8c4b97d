package webhooks

import (
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
func TestFlushNeverOverwritesAPIWrites(t *testing.T) {
	dir := t.TempDir()
	open := func() (*badger.DB, *Store) {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		st, err := OpenStore(db)
		if err != nil {
			t.Fatal(err)
		}
		return db, st
	}
	db, st := open()
	w := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: "https://x.example/", State: core.StateActive, Runs: []core.Run{}}
	if err := st.Create(w, 0); err != nil {
		t.Fatal(err)
	}
	st.Mutate(w.ID, func(w *core.Webhook) { w.RecordRun(core.Run{Status: 200, Timestamp: 1}, 50) })
	apiDone := make(chan error, 1)
	st.afterCopy = func() {
		// The API turns the webhook inactive while the copy (still active)
		// waits to be written.
		go func() {
			_, err := st.Update("alice", w.ID, func(w *core.Webhook) error { w.State = core.StateInactive; return nil })
			apiDone <- err
		}()
		time.Sleep(50 * time.Millisecond)
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := <-apiDone; err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, st = open()
	defer db.Close()
	got, _ := st.Get("alice", w.ID)
	if got.State != core.StateInactive || got.RunCount != 1 {
		t.Fatalf("on disk: state %s, runCount %d; want inactive (the API's write) and 1", got.State, got.RunCount)
	}
}
