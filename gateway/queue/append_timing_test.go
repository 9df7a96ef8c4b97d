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

// BenchmarkAppendLatency: how long each Append takes, from 16
// goroutines per CPU, with fsynced markers (durability=sync, the
// baseline) and with an async queue syncing every second as hookgate
// does: p50, p99, p99.9 and the slowest, in µs. For the async queue it
// also counts the periodic syncs, gives the longest (sync-max-µs) and
// the slowest Append made while one was under way (during-sync-max-µs):
// when the committer ran the sync itself, that Append waited for all of
// it. Run it for several seconds (-benchtime 5s) to hold several syncs.
func BenchmarkAppendLatency(b *testing.B) {
	rec := []byte("\x01\x80\x80\x80\x80\x80\x80\x80\x80\x01\x05alice\x01\x0deventsChanged")
	for _, async := range []bool{false, true} {
		name := "durability=sync"
		if async {
			name = "durability=async"
		}
		b.Run(name, func(b *testing.B) {
			db := openBadgerDB(b, b.TempDir())
			defer db.Close()
			var mu sync.Mutex
			var syncs [][2]time.Time // start and end of each periodic sync
			logSync := logSyncer(db)
			q, err := openBadger(db, Options{Async: async}, func() error {
				start := time.Now()
				err := logSync()
				mu.Lock()
				syncs = append(syncs, [2]time.Time{start, time.Now()})
				mu.Unlock()
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			type sample struct {
				start time.Time
				took  time.Duration
			}
			var all []sample
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				var mine []sample
				for pb.Next() {
					start := time.Now()
					if _, err := q.Append(rec); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, sample{start, time.Since(start)})
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			})
			mu.Lock()
			defer mu.Unlock()
			if len(all) == 0 {
				return
			}
			took := make([]time.Duration, len(all))
			for i, s := range all {
				took[i] = s.took
			}
			slices.Sort(took)
			µs := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			at := func(p float64) float64 { return µs(took[min(int(p*float64(len(took))), len(took)-1)]) }
			b.ReportMetric(at(0.50), "p50-µs")
			b.ReportMetric(at(0.99), "p99-µs")
			b.ReportMetric(at(0.999), "p99.9-µs")
			b.ReportMetric(µs(took[len(took)-1]), "max-µs")
			if !async {
				return
			}
			// syncs are in order and one at a time: the one an Append
			// overlaps, if any, is the first that ends after it starts.
			var longest, during time.Duration
			for _, s := range syncs {
				longest = max(longest, s[1].Sub(s[0]))
			}
			for _, a := range all {
				i, _ := slices.BinarySearchFunc(syncs, a.start, func(s [2]time.Time, t time.Time) int { return s[1].Compare(t) })
				if i < len(syncs) && syncs[i][0].Before(a.start.Add(a.took)) {
					during = max(during, a.took)
				}
			}
			b.ReportMetric(float64(len(syncs)), "syncs")
			b.ReportMetric(µs(longest), "sync-max-µs")
			b.ReportMetric(µs(during), "during-sync-max-µs")
		})
	}
}
