package rules

import "testing"

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
	}
}

func BenchmarkBatchCalls(b *testing.B) {
	tb, _ := Compile(Pryv(false))
	body := []byte(`[{"method":"events.create","params":{"streamIds":["diary"],"type":"note/txt","content":"hello"}},
		{"method":"events.get","params":{"limit":10}},{"method":"streams.update","params":{"id":"diary","update":{"name":"D"}}}]`)
	answer := []byte(`{"results":[{"event":{"id":"c1"}},{"events":[]},{"error":{"id":"unknown-resource"}}]}`)
	b.SetBytes(int64(len(body) + len(answer)))
	b.ReportAllocs()
	for b.Loop() {
		calls, _ := tb.BatchCalls(body)
		BatchResults(calls, answer)
	}
}
