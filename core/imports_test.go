package core_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreImportsNoIO keeps core the leaf of the module: no I/O libraries,
// no networking, directly or through another package.
func TestCoreImportsNoIO(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/hookgate/hookgate/core").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/valyala/fasthttp",
		"github.com/dgraph-io/badger",
		"github.com/panjf2000/ants",
		"github.com/goccy/go-json",
		"github.com/VictoriaMetrics/metrics",
		"github.com/hookgate/hookgate/gateway",
		"github.com/hookgate/hookgate/delivery",
		"net",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("core depends on %s; core must stay free of I/O packages", dep)
			}
		}
	}
}
