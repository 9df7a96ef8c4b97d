//go:build !race

package delivery

import (
	"testing"
	"time"

	"github.com/hookgate/hookgate/core"
)

func TestAppendPayloadAllocs(t *testing.T) {
	e := &Engine{opts: EngineOptions{Meta: core.Meta{APIVersion: "1.9.3", Serial: "s"}}}
	buf := make([]byte, 0, 256)
	msgs := []string{core.MsgEventsChanged, core.MsgStreamsChanged}
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { buf = e.AppendPayload(buf[:0], msgs, now) }); n != 0 {
		t.Fatalf("AppendPayload allocates %v times; want 0", n)
	}
	if got := string(e.AppendPayload(nil, msgs, time.Unix(1700000000, 5e8))); got !=
		`{"messages":["eventsChanged","streamsChanged"],"meta":{"apiVersion":"1.9.3","serverTime":1700000000.500,"serial":"s"}}` {
		t.Fatalf("payload %s", got)
	}
}
