package gateway

import (
	"bytes"
	"testing"
)

// TestHelpWriter: empty # HELP lines of known families get their text,
// whatever the writes' boundaries; everything else passes unchanged.
func TestHelpWriter(t *testing.T) {
	in := "# HELP hookgate_queue_depth\n# TYPE hookgate_queue_depth gauge\nhookgate_queue_depth 3\n# HELP go_goroutines\nfoo 1\n# HELP hookgate_unknown\nbar"
	want := "# HELP hookgate_queue_depth " + metricHelp["hookgate_queue_depth"] + "\n# TYPE hookgate_queue_depth gauge\nhookgate_queue_depth 3\n# HELP go_goroutines\nfoo 1\n# HELP hookgate_unknown\nbar"
	for _, size := range []int{1, 3, 7, len(in)} {
		var out bytes.Buffer
		h := &helpWriter{w: &out}
		for i := 0; i < len(in); i += size {
			if _, err := h.Write([]byte(in[i:min(i+size, len(in))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Flush(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("writes of %d bytes:\n%s\nwant:\n%s", size, out.String(), want)
		}
	}
}
