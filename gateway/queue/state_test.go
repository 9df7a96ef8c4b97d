package queue

import (
	"fmt"
	"testing"

	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/state"
	"github.com/hookgate/hookgate/state/statetest"
)

// TestStateLogContract runs every implementation through the state.Log
// contract suite, the one every marker log, whatever its storage, passes.
func TestStateLogContract(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			statetest.RunLog(t, func(t *testing.T) (state.Log, func([]byte) (uint64, error), func() state.Log) {
				q, reopen := im.open(t, Options{})
				var again func() state.Log
				if reopen != nil {
					again = func() state.Log { q = reopen(); return q }
				}
				return q, func(b []byte) (uint64, error) { return q.Append(b) }, again
			}, statetest.LogOptions{})
		})
	}
}

// TestStateAckOrder runs the acknowledgement rule of package state across
// a real crash, on the Badger queue and pending sets sharing a database,
// synced and not.
func TestStateAckOrder(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			statetest.RunAckOrder(t, "TestStateAckOrder/"+fmt.Sprintf("async=%v", async), func(t *testing.T, dir string) (state.Log, func([]byte) (uint64, error), state.Pending, func()) {
				db := openBadgerDB(t, dir)
				q, err := OpenBadger(db, Options{Async: async})
				if err != nil {
					t.Fatal(err)
				}
				return q, q.Append, store.NewPending(db, nil), func() { q.Close(); db.Close() }
			})
		})
	}
}
