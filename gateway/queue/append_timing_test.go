package queue

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// BenchmarkAppendLatency: how long each Append of an async queue takes,
// from 16 goroutines per CPU, with a sync every 20 ms, so that a run of a
// second or two holds dozens of them: p50, p99 and the slowest, in µs. A
// sync that held up the commits showed as a p99 and a maximum of tens of
// milliseconds.
func BenchmarkAppendLatency(b *testing.B) {
	rec := []byte("\x01\x80\x80\x80\x80\x80\x80\x80\x80\x01\x05alice\x01\x0deventsChanged")
	db := openBadgerDB(b, b.TempDir())
	defer db.Close()
	q, err := OpenBadger(db, Options{Async: true, SyncInterval: 20 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			if _, err := q.Append(rec); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		all = append(all, mine...)
		mu.Unlock()
	})
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	at := func(p float64) float64 { return float64(all[min(int(p*float64(len(all))), len(all)-1)].Microseconds()) }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(float64(all[len(all)-1].Microseconds()), "max-µs")
}
