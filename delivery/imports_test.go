package delivery

import (
	"testing"

	"github.com/hookgate/hookgate/internal/testdeps"
)

// TestDeliveryImportsNoGateway keeps the seam: delivery reaches the
// gateway's state only through the interfaces of package state, so that
// another implementation of them (a cluster's) needs no change here.
func TestDeliveryImportsNoGateway(t *testing.T) {
	testdeps.Forbid(t, "github.com/hookgate/hookgate/delivery",
		[]string{"github.com/hookgate/hookgate/gateway", "github.com/dgraph-io/badger"},
		"it must reach state through package state only")
}
