package core_test

import (
	"testing"

	"github.com/hookgate/hookgate/internal/testdeps"
)

// TestCoreImportsNoIO keeps core the leaf of the module: no I/O libraries,
// no networking, directly or through another package.
func TestCoreImportsNoIO(t *testing.T) {
	testdeps.Forbid(t, "github.com/hookgate/hookgate/core", []string{
		"github.com/valyala/fasthttp",
		"github.com/dgraph-io/badger",
		"github.com/panjf2000/ants",
		"github.com/goccy/go-json",
		"github.com/VictoriaMetrics/metrics",
		"github.com/hookgate/hookgate/gateway",
		"github.com/hookgate/hookgate/delivery",
		"net",
	}, "core must stay free of I/O packages")
}
