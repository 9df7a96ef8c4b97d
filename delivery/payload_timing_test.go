package delivery

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookgate/hookgate/core"
)

func BenchmarkAppendPayload(b *testing.B) {
	e := &Engine{opts: EngineOptions{Meta: core.Meta{APIVersion: "1.9.3", Serial: "2026112301"}}}
	now := time.Now()
	for _, msgs := range [][]string{
		{core.MsgEventsChanged},
		{core.MsgEventsChanged, core.MsgStreamsChanged, core.MsgAccessesChanged, core.MsgServiceBoot},
	} {
		b.Run(fmt.Sprintf("messages=%d", len(msgs)), func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				buf = e.AppendPayload(buf[:0], msgs, now)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkSignatureHeaders(b *testing.B) {
	secret := core.NewSigningSecret()
	body := []byte(`{"messages":["eventsChanged","streamsChanged"],"meta":{"apiVersion":"1.9.3","serverTime":1795436682.278,"serial":"hookgate"}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignatureHeaders(secret, "msg_2ulq3yb8n5fd8h6shs2ocwd1", 1795436682, body); err != nil {
			b.Fatal(err)
		}
	}
}

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
