package state_test

import (
	"testing"

	"github.com/hookgate/hookgate/state"
	"github.com/hookgate/hookgate/state/statetest"
)

func TestMemoryRegistry(t *testing.T) {
	statetest.RunRegistry(t, func(t *testing.T) (state.Registry, func() state.Registry) { return state.NewMemory(), nil })
}

func TestMemoryPending(t *testing.T) {
	statetest.RunPending(t, func(t *testing.T) (state.Pending, func() state.Pending) { return state.NewMemPending(), nil })
}
