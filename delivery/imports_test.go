package delivery

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeliveryImportsNoGateway keeps the seam: delivery reaches the
// gateway's state only through the interfaces of package state, so that
// another implementation of them (a cluster's) needs no change here.
func TestDeliveryImportsNoGateway(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/hookgate/hookgate/delivery").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps gave %d packages; something is off:\n%s", len(deps), out)
	}
	for _, dep := range deps {
		for _, f := range []string{"github.com/hookgate/hookgate/gateway", "github.com/dgraph-io/badger"} {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("delivery depends on %s; it must reach state through package state only", dep)
			}
		}
	}
}
