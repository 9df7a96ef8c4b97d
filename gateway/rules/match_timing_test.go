package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/core"
)

// BenchmarkMatch: the per-request lookup of what a method and path
// change, serially and from every CPU at once.
func BenchmarkMatch(b *testing.B) {
	tb, err := Compile(Pryv(true))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, method, path string }{
		{"read", "GET", "/events/ck123"},
		{"change", "POST", "/events"},
		{"deep", "DELETE", "/events/ck123/file456"},
		{"optout", "POST", "/accesses/check-app"},
	} {
		m, p := []byte(c.method), []byte(c.path)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tb.Match(m, p)
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tb.Match(m, p)
				}
			})
		})
	}
}

// BenchmarkBatchCalls: reading a batch call's methods and then its
// answer's result slots, for 1, 10 and 100 calls.
func BenchmarkBatchCalls(b *testing.B) {
	tb, _ := Compile(Pryv(false))
	for _, n := range []int{1, 10, 100} {
		calls := []string{
			`{"method":"events.create","params":{"streamIds":["diary"],"type":"note/txt","content":"hello"}}`,
			`{"method":"events.get","params":{"limit":10}}`,
			`{"method":"streams.update","params":{"id":"diary","update":{"name":"D"}}}`,
		}
		results := []string{`{"event":{"id":"c1"}}`, `{"events":[]}`, `{"error":{"id":"unknown-resource"}}`}
		var cs, rs []string
		for i := range n {
			cs = append(cs, calls[i%3])
			rs = append(rs, results[i%3])
		}
		body := []byte("[" + strings.Join(cs, ",") + "]")
		answer := []byte(`{"results":[` + strings.Join(rs, ",") + `]}`)
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(body) + len(answer)))
			b.ReportAllocs()
			for b.Loop() {
				calls, _ := tb.BatchCalls(body)
				BatchResults(calls, answer)
			}
		})
		b.Run(fmt.Sprintf("calls=%d/parallel", n), func(b *testing.B) {
			b.SetBytes(int64(len(body) + len(answer)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					calls, _ := tb.BatchCalls(body)
					BatchResults(calls, answer)
				}
			})
		})
	}
}

// BenchmarkScopedChange: what a change costs a user with scoped webhooks
// beyond the rule lookup, against the lookup itself in the same run:
// reading what it touched from a typical events.create answer (Pryv's,
// with meta), writing the marker with it, decoding the marker and
// matching it against four scopes.
func BenchmarkScopedChange(b *testing.B) {
	tb, _ := Compile(Pryv(false))
	ev, _ := tb.Vocabulary().Lookup(core.MsgEventsChanged)
	answer := []byte(`{"event":{"id":"ckxyz0123456789abcdefgh","streamIds":["diary","work"],"type":"note/txt","content":"hello, a note of some length",` +
		`"time":1732700000.123,"tags":[],"created":1732700000.123,"createdBy":"ckaccess0123456789abcdef","modified":1732700000.123,` +
		`"modifiedBy":"ckaccess0123456789abcdef","integrity":"EVENT:0:sha256-abc"},"meta":{"apiVersion":"2.0.0","serverTime":1732700000.2,"serial":"2019061301"}}`)
	scopes := &core.Scopes{List: []core.Scope{
		{Key: "a", Kind: core.KindEvents, Types: []string{"mass/*"}},
		{Key: "b", Kind: core.KindEvents, Streams: []string{"health"}, Within: []string{"health", "health-mass"}},
		{Key: "c", Kind: core.KindEvents, Streams: []string{"work"}, Within: []string{"work"}, Types: []string{"note/txt"}},
		{Key: "d", Kind: core.KindStreams},
	}}
	var voc core.Vocabulary
	voc.Add(core.MsgEventsChanged)
	m, p := []byte("POST"), []byte("/events")
	b.Run("lookup", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tb.Match(m, p)
		}
	})
	b.Run("touches", func(b *testing.B) {
		b.SetBytes(int64(len(answer)))
		b.ReportAllocs()
		for b.Loop() {
			tb.CallTouches(ev, answer)
		}
	})
	touches := tb.CallTouches(ev, answer)
	b.Run("marker", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf = core.AppendExtras(core.AppendMarker(buf[:0], 1, []byte("alice"), &voc, 1), nil, touches)
		}
	})
	rec := core.AppendExtras(core.AppendMarker(nil, 1, []byte("alice"), &voc, 1), nil, touches)
	b.Run("decode+match", func(b *testing.B) {
		b.ReportAllocs()
		var keys []string
		for b.Loop() {
			mk, _ := core.DecodeMarker(rec)
			keys = scopes.Match(keys[:0], mk.Messages, mk.Touches)
		}
		if len(keys) != 1 || keys[0] != "c" {
			b.Fatalf("matched %v; want [c]", keys)
		}
	})
}
