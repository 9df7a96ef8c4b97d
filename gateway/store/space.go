package store

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrNoSpace is returned, wrapped, by Space.Check when the disk holding
// the database has less free space than the reserve.
var ErrNoSpace = errors.New("disk space below the reserve")

// Space keeps writes off a disk that is nearly full. Badger writes its
// logs and tables through memory-mapped files, and a write to a mapped
// page the file system cannot back kills the process (SIGBUS) instead of
// failing; so hookgate stops writing while the free space is below a
// reserve, and the writers report the error instead. It is safe for
// concurrent use; a nil *Space allows everything.
type Space struct {
	dir     string
	reserve uint64
	every   time.Duration
	next    atomic.Int64  // Unix ns of the next look at the disk
	free    atomic.Uint64 // bytes free at the latest look
	low     atomic.Bool   // whether the latest look found less than the reserve
}

// NewSpace watches the file system holding dir and refuses writes when
// fewer than reserve bytes are free to unprivileged users. reserve 0
// disables the check.
func NewSpace(dir string, reserve uint64) *Space {
	return &Space{dir: dir, reserve: reserve, every: 100 * time.Millisecond}
}

// Check returns nil when at least the reserve is free, else an error
// wrapping ErrNoSpace. While there is room it looks at the disk at most
// every 100 ms; while there is not, on every call, so room that comes back
// is seen at once. A disk it cannot look at counts as having room.
func (s *Space) Check() error {
	if s == nil || s.reserve == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if now < s.next.Load() {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return nil
	}
	free := st.Bavail * uint64(st.Bsize)
	s.free.Store(free)
	if free < s.reserve {
		s.low.Store(true)
		return fmt.Errorf("%w: %d bytes free in %s, %d reserved", ErrNoSpace, free, s.dir, s.reserve)
	}
	s.low.Store(false)
	s.next.Store(now + int64(s.every))
	return nil
}

// Free returns the free bytes seen by the latest Check.
func (s *Space) Free() uint64 {
	if s == nil {
		return 0
	}
	return s.free.Load()
}
