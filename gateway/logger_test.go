package gateway

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestServerLogThrottled: a burst of fasthttp's messages (a client
// dropping thousands of connections) writes one line a second, the next
// one counting those held back.
func TestServerLogThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		f := newFasthttpLogger(slog.New(slog.NewTextHandler(&buf, nil)))
		for range 1000 {
			f.Printf("error when serving connection %q", "x")
		}
		if n := strings.Count(buf.String(), "\n"); n != 1 {
			t.Fatalf("%d lines for a burst of 1000; want 1", n)
		}
		time.Sleep(time.Second)
		f.Printf("error when serving connection %q", "y")
		if lines := strings.Split(strings.TrimSpace(buf.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "suppressed=999") {
			t.Fatalf("after a second: %q; want a second line counting 999 held back", lines)
		}
	})
}
