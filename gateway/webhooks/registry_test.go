package webhooks

import (
	"testing"

	"github.com/hookgate/hookgate/gateway/store"
	"github.com/hookgate/hookgate/state"
	"github.com/hookgate/hookgate/state/statetest"
)

// TestRegistryContract: the Badger registry, plain and with sealed
// secrets, meets state's contract, reopened on the same directory.
func TestRegistryContract(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		name := "plain"
		if sealed {
			name = "sealed"
		}
		t.Run(name, func(t *testing.T) {
			statetest.RunRegistry(t, func(t *testing.T) (state.Registry, func() state.Registry) {
				var sealer *Sealer
				if sealed {
					var err error
					if sealer, err = NewSealer(make([]byte, 32)); err != nil {
						t.Fatal(err)
					}
				}
				dir := t.TempDir()
				open := func() *Store {
					db, err := store.Open(dir, store.Options{})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { db.Close() })
					s, err := OpenSealedStore(db, sealer)
					if err != nil {
						t.Fatal(err)
					}
					return s
				}
				s := open()
				return s, func() state.Registry {
					s.db.Close()
					s = open()
					return s
				}
			})
		})
	}
}
