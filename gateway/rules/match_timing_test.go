package rules

import (
	"fmt"
	"strings"
	"testing"
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
