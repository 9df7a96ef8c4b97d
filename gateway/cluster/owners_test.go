package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/internal/natstest"
	"github.com/hookgate/hookgate/state"
)

// ownedBy waits until the partitions of the instances in ms are shared
// among them, each owned once, and returns them.
//
// Real time: ownership moves on JetStream's timers (the pin's time to
// live, the anchor's redelivery); bounded by a minute.
func ownedBy(t *testing.T, n int, ms ...*Markers) [][]int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var all []int
		out := make([][]int, len(ms))
		for i, m := range ms {
			out[i] = m.Owned()
			all = append(all, out[i]...)
		}
		slices.Sort(all)
		if len(all) == n && len(slices.Compact(all)) == n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions owned: %v; want each of %d once", out, n)
		}
		select {
		case <-ms[0].Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readAll reads what m has to deliver, until it holds want records.
//
// Real time: markers come as JetStream delivers them; bounded by a
// minute.
func readAll(t *testing.T, m *Markers, want int) []state.Record {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		recs, err := m.Read(nil, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) >= want {
			return recs
		}
		select {
		case <-m.Updated():
		case <-deadline:
			t.Fatalf("%d markers to read; want %d", len(recs), want)
		}
	}
}

// TestPartitionOwnership: two instances share the partitions (here a,
// started first, holds them all), each reads only the markers of the
// users of its own partitions, and when one dies
// without a word (its connection cut, no unpinning), the other takes
// its partitions and every marker it had not acknowledged.
func TestPartitionOwnership(t *testing.T) {
	nodes := natstest.Start(t, 3)
	const parts = 4
	name := uniqueName()
	ca, cb := connect(t, nodes, name, nil), connect(t, nodes, name, nil)
	o := MarkersOptions{Partitions: parts, Failover: 2 * time.Second}
	a := openMarkers(t, ca, o)
	ownedBy(t, parts, a)
	b := openMarkers(t, cb, o)

	users := make([]string, 40)
	for i := range users {
		users[i] = fmt.Sprintf("user%02d", i)
	}
	for i, u := range users {
		if _, err := a.Append(core.AppendMarkerNames(nil, int64(i), u, []string{core.MsgEventsChanged})); err != nil {
			t.Fatal(err)
		}
	}
	owned := ownedBy(t, parts, a, b)
	got := readAll(t, a, len(users))
	for _, r := range got {
		u, _ := core.MarkerUser(r.Data)
		if !a.Owns(string(u)) {
			t.Fatalf("a reads a marker of %s, whose partition it does not own (%v)", u, owned)
		}
	}
	if recs, _ := b.Read(nil, 0, 100); len(recs) != 0 {
		t.Fatalf("b reads %d markers of a's partitions", len(recs))
	}

	// a dies: b gets every partition, and the markers a did not acknowledge.
	died := time.Now()
	ca.nc.Close() // no unpin, no hand-back: as kill -9
	ownedBy(t, parts, b)
	took := time.Since(died)
	t.Logf("failover of %d partitions took %v (bound %v)", parts, took.Round(time.Millisecond), o.Failover)
	recs := readAll(t, b, len(users))
	seen := map[string]bool{}
	for _, r := range recs {
		u, _ := core.MarkerUser(r.Data)
		seen[string(u)] = true
	}
	if len(seen) != len(users) {
		t.Fatalf("b reads the markers of %d users after a died; want %d", len(seen), len(users))
	}
	if err := b.Ack(recs[len(recs)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if recs, _ := b.Read(nil, 0, 100); len(recs) != 0 {
		t.Fatalf("after the acknowledgement b still reads %d markers", len(recs))
	}
}
