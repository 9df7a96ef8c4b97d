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
		b.Run(fmt.Sprintf("messages=%d/parallel", len(msgs)), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 0, 256)
				for pb.Next() {
					buf = e.AppendPayload(buf[:0], msgs, now)
				}
			})
		})
	}
}

// BenchmarkSignatureHeaders: Standard Webhooks signing of a real
// notification (about 120 bytes) and of larger bodies, serially and in
// parallel.
func BenchmarkSignatureHeaders(b *testing.B) {
	secret := core.NewSigningSecret()
	real := []byte(`{"messages":["eventsChanged","streamsChanged"],"meta":{"apiVersion":"1.9.3","serverTime":1795436682.278,"serial":"hookgate"}}`)
	for _, size := range []int{len(real), 1 << 10, 16 << 10} {
		body := real
		if size > len(real) {
			body = make([]byte, size)
		}
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := core.SignatureHeaders(secret, "msg_2ulq3yb8n5fd8h6shs2ocwd1", 1795436682, body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("size=%d/parallel", size), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := core.SignatureHeaders(secret, "msg_2ulq3yb8n5fd8h6shs2ocwd1", 1795436682, body); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
