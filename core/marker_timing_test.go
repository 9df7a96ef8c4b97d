package core

import (
	"fmt"
	"testing"
)

// BenchmarkAppendMarker: encoding the change marker a mutation writes,
// for one and for three messages.
func BenchmarkAppendMarker(b *testing.B) {
	var v Vocabulary
	ev, _ := v.Add(MsgEventsChanged)
	st, _ := v.Add(MsgStreamsChanged)
	ac, _ := v.Add(MsgAccessesChanged)
	user := []byte("alice-in-wonderland")
	for _, c := range []struct {
		name string
		set  MessageSet
	}{{"messages=1", ev}, {"messages=3", ev | st | ac}} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 128)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendMarker(buf[:0], 1795436682278000000, user, &v, c.set)
			}
			b.SetBytes(int64(len(buf)))
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 0, 128)
				for pb.Next() {
					buf = AppendMarker(buf[:0], 1795436682278000000, user, &v, c.set)
				}
			})
		})
	}
}

// BenchmarkDecodeMarker: what the dispatcher does with each record it
// reads, with 0 and 10 deleted accesses.
func BenchmarkDecodeMarker(b *testing.B) {
	for _, deleted := range []int{0, 10} {
		rec := AppendMarkerNames(nil, 1795436682278000000, "alice-in-wonderland",
			[]string{MsgEventsChanged, MsgStreamsChanged})
		if deleted > 0 {
			ids := make([]string, deleted)
			for i := range ids {
				ids[i] = fmt.Sprintf("ck%022d", i)
			}
			rec = AppendDeletedAccesses(rec, ids)
		}
		b.Run(fmt.Sprintf("deletedAccesses=%d", deleted), func(b *testing.B) {
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeMarker(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
