package store

import (
	"errors"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func TestSpace(t *testing.T) {
	dir := t.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := st.Bavail * uint64(st.Bsize)
	var nilSpace *Space
	if err := nilSpace.Check(); err != nil {
		t.Fatalf("a nil Space refused: %v", err)
	}
	if err := NewSpace(dir, 0).Check(); err != nil {
		t.Fatalf("reserve 0 refused: %v", err)
	}
	if err := NewSpace(dir, 1).Check(); err != nil {
		t.Fatalf("reserve 1 byte refused: %v", err)
	}
	s := NewSpace(dir, free*4+1<<40) // more than the disk has
	for range 3 {                    // refused on every call, not only the first
		if err := s.Check(); !errors.Is(err, ErrNoSpace) {
			t.Fatalf("a reserve larger than the disk: %v", err)
		}
	}
	if s.Free() == 0 {
		t.Fatal("Free is 0 after a look at the disk")
	}
}

// TestSpaceLooksEvery100ms, on synctest's fake clock: while there is room,
// Check trusts its last look for exactly 100 ms; while there is not, it
// looks on every call, so room that comes back is seen at once. The disk
// filling up is played by raising the reserve above what is free.
func TestSpaceLooksEvery100ms(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		s := NewSpace(dir, 1)
		if err := s.Check(); err != nil {
			t.Fatalf("reserve 1 byte refused: %v", err)
		}
		s.reserve = 1 << 62 // the disk "fills up" right after the look
		if err := s.Check(); err != nil {
			t.Fatalf("Check looked at the disk again at once: %v", err)
		}
		time.Sleep(100*time.Millisecond - time.Nanosecond)
		if err := s.Check(); err != nil {
			t.Fatalf("Check looked at the disk again 1 ns before 100 ms: %v", err)
		}
		time.Sleep(time.Nanosecond)
		for i := range 3 {
			if err := s.Check(); !errors.Is(err, ErrNoSpace) {
				t.Fatalf("call %d at 100 ms, disk full: %v; want ErrNoSpace", i, err)
			}
		}
		s.reserve = 1 // room comes back
		if err := s.Check(); err != nil {
			t.Fatalf("room that came back was not seen at once: %v", err)
		}
	})
}
