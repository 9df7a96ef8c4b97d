package state

import (
	"reflect"
	"testing"

	"github.com/hookgate/hookgate/core"
)

// TestPackRoundTrip: a packed record unpacks to what was packed, but
// its runs; RecordRun keeps a state the record cannot hold inactive.
func TestPackRoundTrip(t *testing.T) {
	for _, w := range []*core.Webhook{
		{ID: core.NewID(), User: "alice", AccessID: "a", URL: "https://x/é?", MinIntervalMs: 5000, MaxRetries: 5, CurrentRetries: 2,
			State: core.StateActive, RunCount: 9, FailCount: 3, LastRun: core.Run{Status: 503, Timestamp: 2.5}, Created: 1, CreatedBy: "a",
			Modified: 2, ModifiedBy: "p", Signed: true, Secret: "whsec_x", Runs: []core.Run{{Status: 200}}},
		{ID: "x", State: core.StateInactive},
		{ID: "y", State: "paused", URL: "u"},
	} {
		var got core.Webhook
		Pack(w).Unpack(&got)
		want := *w
		want.Runs = nil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
	x := NewIndex([]*core.Webhook{{ID: "y", User: "u", State: "paused"}})
	x.RecordRun("y", core.Run{Status: 200}, func(w *core.Webhook) { w.State = "other" })
	if w := x.ByID("y"); w.State != core.StateInactive || w.RunCount != 1 {
		t.Fatalf("after a run that set an unknown state: %+v", w)
	}
	x.RecordRun("y", core.Run{Status: 200}, nil)
	if a, i := x.Counts(); a != 0 || i != 1 {
		t.Fatalf("Counts = %d, %d", a, i)
	}
}
