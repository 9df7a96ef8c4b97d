package bench

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/queue"
)

// BenchmarkMarkerSync: one change marker made durable at a time, as an
// append at a low rate is: through the Badger queue (write, then a sync
// of its memory-mapped write-ahead log), next to the floor of the same
// machine, a plain file append and fdatasync of the same bytes.
// cpu-µs/op is the process's CPU per marker, most of it the kernel's.
func BenchmarkMarkerSync(b *testing.B) {
	marker := core.AppendMarkerNames(nil, 1795436682278000000, "alice", []string{core.MsgEventsChanged})
	b.Run("fdatasync", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cpu := cpuTime(b)
		b.ResetTimer()
		for range b.N {
			if _, err := f.Write(marker); err != nil {
				b.Fatal(err)
			}
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
	b.Run("badger-queue", func(b *testing.B) {
		_, q := openBadger(b, queue.Options{})
		cpu := cpuTime(b)
		b.ResetTimer()
		for range b.N {
			if _, err := q.Append(marker); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
}
