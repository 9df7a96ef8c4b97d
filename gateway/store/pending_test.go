package store

import (
	"testing"

	"github.com/hookgate/hookgate/state"
	"github.com/hookgate/hookgate/state/statetest"
)

// TestPendingContract: the Badger pending sets meet state's contract,
// reopened on the same directory.
func TestPendingContract(t *testing.T) {
	statetest.RunPending(t, func(t *testing.T) (state.Pending, func() state.Pending) {
		dir := t.TempDir()
		open := func() *Pending {
			db, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return NewPending(db, nil)
		}
		p := open()
		return p, func() state.Pending {
			p.db.Close()
			p = open()
			return p
		}
	})
}
