package receiver

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestReceiver(t *testing.T) {
	s := New(Options{Status: 503, Delay: 100 * time.Millisecond})
	addr, stop, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	start := time.Now()
	resp, err := http.Post("http://"+addr+"/hook?x=1", "application/json", strings.NewReader(`{"messages":["test"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("status %d after %s; want 503 after 100ms", resp.StatusCode, time.Since(start))
	}
	got := s.Notifications()
	if s.Count() != 1 || len(got) != 1 || got[0].Path != "/hook?x=1" || string(got[0].Body) != `{"messages":["test"]}` {
		t.Fatalf("count %d, got %+v", s.Count(), got)
	}
}
