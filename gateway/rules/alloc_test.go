//go:build !race

package rules

import "testing"

func TestMatchAllocs(t *testing.T) {
	tb := mustCompile(t, Pryv(true))
	m, p := []byte("GET"), []byte("/events/ck123/file456")
	pm, pp := []byte("POST"), []byte("/events/ck123/series")
	if n := testing.AllocsPerRun(100, func() {
		tb.Match(m, p)
		tb.Match(pm, pp)
	}); n != 0 {
		t.Fatalf("Match allocates %v times; want 0", n)
	}
}
