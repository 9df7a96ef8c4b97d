package queue

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend: one marker per op, from many goroutines, so group
// commit shows: ns/op falls as parallelism rises while syncs stay one at
// a time.
func BenchmarkAppend(b *testing.B) {
	rec := []byte("\x01\x80\x80\x80\x80\x80\x80\x80\x80\x01\x05alice\x01\x0deventsChanged")
	for _, async := range []bool{false, true} {
		for _, par := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("async=%v/goroutines=%dxGOMAXPROCS", async, par), func(b *testing.B) {
				db := openBadgerDB(b, b.TempDir())
				defer db.Close()
				var commits atomic.Int64
				q, err := OpenBadger(db, Options{Async: async, OnCommit: func(int, error) { commits.Add(1) }})
				if err != nil {
					b.Fatal(err)
				}
				defer q.Close()
				b.SetBytes(int64(len(rec)))
				b.ReportAllocs()
				b.SetParallelism(par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := q.Append(rec); err != nil {
							b.Fatal(err)
						}
					}
				})
				q.Close() // the last OnCommit has run
				b.ReportMetric(float64(b.N)/float64(max(commits.Load(), 1)), "records/commit")
			})
		}
	}
}
