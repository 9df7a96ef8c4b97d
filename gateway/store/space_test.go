package store

import (
	"errors"
	"syscall"
	"testing"
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
