package state

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"reflect"
	"slices"
	"strings"
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

// TestGroupByUser: lists by user in creation order, whatever the order
// given and however the users' hashes collide; each list full, so that
// an append never writes into another's.
func TestGroupByUser(t *testing.T) {
	var ps []*Packed
	for i := range 300 {
		ps = append(ps, Pack(&core.Webhook{ID: core.NewID(), User: fmt.Sprintf("u%d", i%7), Created: float64((i * 37) % 300)}))
	}
	for name, hash := range map[string]func(string) uint64{
		"maphash":  nil, // set below, with one seed
		"fnv-like": func(u string) uint64 { return uint64(len(u))*1000003 + uint64(u[len(u)-1]) },
		"collide":  func(string) uint64 { return 42 },
	} {
		if name == "maphash" {
			seed := maphash.MakeSeed()
			hash = func(u string) uint64 { return maphash.String(seed, u) }
		}
		ls := make([]loaded, len(ps))
		for i, p := range ps {
			ls[i] = loaded{h: hash(p.user()), created: p.created, user: p.user(), p: p}
		}
		got := groupByUser([][]loaded{ls[:100], ls[100:]}, len(ls))
		if len(got) != 7 {
			t.Fatalf("%s: %d users; want 7", name, len(got))
		}
		for u, list := range got {
			if len(list) < 42 || cap(list) != len(list) {
				t.Fatalf("%s: user %s has %d webhooks (cap %d)", name, u, len(list), cap(list))
			}
			for i, p := range list {
				if p.user() != u || (i > 0 && p.created <= list[i-1].created) {
					t.Fatalf("%s: user %s, entry %d: user %s, created %v", name, u, i, p.user(), p.created)
				}
			}
		}
	}
}

// TestMergeRunsBounds: no number below 1 is looked for, whatever the
// count says.
func TestMergeRunsBounds(t *testing.T) {
	if got := MergeRuns(-3, nil); len(got) != 0 {
		t.Fatalf("MergeRuns(-3) = %v", got)
	}
	fresh := &NewRuns{First: 1, Runs: []core.Run{{Status: 200, Timestamp: 1}, {Status: 500, Timestamp: 2}}}
	if got := MergeRuns(2, []Numbered{{N: 0, Run: core.Run{Status: 1}}}, fresh); len(got) != 2 || got[0].Timestamp != 2 {
		t.Fatalf("MergeRuns(2) = %v", got)
	}
}

// TestPackerRoundTrip: records packed by one Packer, from shared slabs
// and blocks, each unpack to what was packed once all are packed (no
// record's strings overwrite another's), across slab and block bounds,
// with strings too long for a block and records with no strings at all.
func TestPackerRoundTrip(t *testing.T) {
	var k Packer
	var ws []*core.Webhook
	var ps []*Packed
	for i := range 3*packSlab + 7 {
		w := &core.Webhook{ID: fmt.Sprintf("id%06d", i), User: fmt.Sprintf("u%d", i/4), AccessID: "a",
			URL: fmt.Sprintf("https://r%d.example/hook?n=%d", i%13, i), State: core.StateActive, MinIntervalMs: int64(i),
			RunCount: i, LastRun: core.Run{Status: 200, Timestamp: float64(i)}, Secret: "whsec_" + fmt.Sprint(i)}
		switch i % 500 {
		case 1:
			w.URL = "https://long.example/" + string(make([]byte, packBlock/8)) // past a block's sixteenth: alone
		case 2:
			w.State = "paused" // a state kept as a string
		case 3:
			*w = core.Webhook{State: core.StateInactive} // no string at all
		}
		ws = append(ws, w)
		ps = append(ps, k.Pack(w))
	}
	for i, p := range ps {
		var got core.Webhook
		p.Unpack(&got)
		if !reflect.DeepEqual(&got, ws[i]) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got, *ws[i])
		}
	}
}

// TestSortKeys: the radix sort orders keys as the comparison it stands
// for (hash, then creation, then id), with colliding hashes, equal
// creation times and hashes that differ in one byte only, and leaves
// the slice it was given as it was.
func TestSortKeys(t *testing.T) {
	var keys []loaded
	for i := range 5000 {
		h := uint64(i%700) * 0x9e3779b97f4a7c15
		if i%11 == 0 {
			h = uint64(i%7) << (8 * (i % 8)) // differ in one byte
		}
		keys = append(keys, loaded{h: h, created: float64(i % 3), p: &Packed{s: fmt.Sprintf("id%05d", (i*7919)%5000), ends: [7]uint32{7, 7, 7, 7, 7, 7, 7}}})
	}
	want := slices.Clone(keys)
	slices.SortFunc(want, func(a, b loaded) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		if c := cmp.Compare(a.created, b.created); c != 0 {
			return c
		}
		return strings.Compare(a.p.ID(), b.p.ID())
	})
	given := slices.Clone(keys)
	got := sortKeys([][]loaded{keys[:1234], keys[1234:4000], keys[4000:]}, len(keys))
	if !slices.Equal(keys, given) {
		t.Fatal("sortKeys changed the slice it was given, which the index reads meanwhile")
	}
	keys = got
	for i := range keys {
		if keys[i].h != want[i].h || keys[i].created != want[i].created || keys[i].p.ID() != want[i].p.ID() {
			t.Fatalf("key %d: %x %v %s; want %x %v %s", i, keys[i].h, keys[i].created, keys[i].p.ID(), want[i].h, want[i].created, want[i].p.ID())
		}
	}
}
