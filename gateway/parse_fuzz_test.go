package gateway

import (
	"testing"

	"github.com/hookgate/hookgate/gateway/webhooks"
)

// FuzzBatchAndAccessInfo: batch bodies and access-info answers come from
// outside; neither parser may panic, and what they accept is consistent.
func FuzzBatchAndAccessInfo(f *testing.F) {
	f.Add([]byte(`[{"method":"webhooks.create","params":{"url":"https://x/"}},{"method":"events.get","params":{}}]`),
		[]byte(`{"meta":{},"type":"app","name":"n","id":"a1","token":"t","permissions":[{"streamId":"*","level":"read"}]}`))
	f.Add([]byte(`[{"method":1},2,"x",null]`), []byte(`{"id":"","type":"personal"}`))
	f.Add([]byte(`{}`), []byte(`[`))
	f.Fuzz(func(t *testing.T, batch, info []byte) {
		entries, raws, mixed := hasWebhookCalls(batch)
		if len(entries) != len(raws) {
			t.Fatalf("%d entries for %d raw calls", len(entries), len(raws))
		}
		found := false
		for _, e := range entries {
			found = found || webhooks.IsMethod(e.Method)
		}
		if found != mixed {
			t.Fatalf("mixed = %v, but webhooks calls found = %v", mixed, found)
		}
		if acc, _, ok := parseAccessInfo(info); ok && (acc.ID == "" || acc.Type == "") {
			t.Fatalf("accepted an access without id or type: %+v", acc)
		}
	})
}

// FuzzStreamTree: a streams.get answer comes from outside: no answer
// crashes the reader, and every stream it gives has an id.
func FuzzStreamTree(f *testing.F) {
	f.Add([]byte(`{"streams":[{"id":"a","parentId":null,"children":[{"id":"b","parentId":"a","children":[]}]}]}`))
	f.Add([]byte(`{"streams":[{"id":"b","parentId":"a"},{"id":"a"}]}`))
	f.Add([]byte(`{"streams":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tree, err := parseStreamTree(body)
		if err != nil {
			return
		}
		for id := range tree {
			if id == "" {
				t.Fatalf("a stream without id in %q", body)
			}
		}
	})
}

func TestParseStreamTree(t *testing.T) {
	tree, err := parseStreamTree([]byte(`{"streams":[{"id":"a","parentId":null,"children":[{"id":"b","children":[{"id":"c","parentId":"b"}]}]},{"id":"x","parentId":"hidden"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "", "b": "a", "c": "b", "x": "hidden"}
	if len(tree) != len(want) {
		t.Fatalf("tree %v; want %v", tree, want)
	}
	for k, v := range want {
		if tree[k] != v {
			t.Fatalf("tree %v; want %v", tree, want)
		}
	}
	if _, err := parseStreamTree([]byte(`{"error":{"id":"forbidden"}}`)); err == nil {
		t.Fatal("an answer without streams was read as an empty tree")
	}
}
