package rules

import (
	"testing"
)

// FuzzClassify feeds the classifier arbitrary methods, paths, batch bodies,
// batch answers and form bodies: nothing may panic, and what comes out must
// be messages of the table's vocabulary.
func FuzzClassify(f *testing.F) {
	f.Add("POST", "/events/ck1/file", []byte(`[{"method":"events.create","params":{}}]`), []byte(`{"results":[{"event":{}}]}`))
	f.Add("POST", "/", []byte(`[{"method":"streams.delete","params":{"id":"x"}},{"method":"events.get"}]`), []byte(`{"results":[{"error":{"id":"unknown-resource"}},{"events":[]}]}`))
	f.Add("DELETE", "//accesses/a1/", []byte(`_method=DELETE&_json=%5B%5D`), []byte(`{"results":[]}`))
	f.Add("GET", "/events?x=1", []byte{}, []byte(`{`))
	f.Add("POST", "/accesses/check-app", []byte(`[{"method":1}]`), []byte(`{"results":[{"error":null}]}`))
	tb, err := Compile(Pryv(true))
	if err != nil {
		f.Fatal(err)
	}
	all := tb.Vocabulary().All()
	f.Fuzz(func(t *testing.T, method, path string, body, answer []byte) {
		a := tb.Match([]byte(method), []byte(path))
		if a.Messages&^all != 0 {
			t.Fatalf("Match gave messages outside the vocabulary: %b", a.Messages)
		}
		if m, j := FormOverride(body); m != "" || j != nil {
			_ = tb.Match([]byte(m), []byte(path))
			body = j
		}
		calls, ok := tb.BatchCalls(body)
		if !ok {
			return
		}
		var union = BatchResults(calls, nil)
		got := BatchResults(calls, answer)
		if got&^union != 0 {
			t.Fatalf("BatchResults %b is not within the calls' union %b", got, union)
		}
		if union&^all != 0 {
			t.Fatalf("batch messages outside the vocabulary")
		}
	})
}
