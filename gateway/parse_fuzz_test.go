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
