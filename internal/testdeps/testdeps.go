// Package testdeps checks, for the module's tests, what a package may
// depend on.
package testdeps

import (
	"os/exec"
	"strings"
	"testing"
)

// Forbid fails t for every package pkg depends on, directly or not,
// that is one of forbidden or below one; why ends the failure message.
func Forbid(t *testing.T, pkg string, forbidden []string, why string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 2 {
		t.Fatalf("go list -deps %s gave %d packages; something is off:\n%s", pkg, len(deps), out)
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("%s depends on %s; %s", pkg, dep, why)
			}
		}
	}
}
