package store

import (
	"errors"
	"testing"
	"testing/synctest"
)

// blockingSync is a sync that runs only when the test lets it, and
// records how many ran.
type blockingSync struct {
	begun   chan int
	release chan error
	n       int
}

func (b *blockingSync) sync() error {
	b.n++
	b.begun <- b.n
	return <-b.release
}

// TestGroupSync: writers that come while a sync runs share the next one,
// and none returns before a sync begun after its call has ended.
func TestGroupSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &blockingSync{begun: make(chan int), release: make(chan error)}
		g := NewGroupSync(b.sync)
		done := make(chan error, 10)
		go func() { done <- g.Wait() }()
		if n := <-b.begun; n != 1 {
			t.Fatalf("sync %d began; want 1", n)
		}
		// Five writers come while the first sync runs: it may miss their
		// writes, so they wait for another.
		for range 5 {
			go func() { done <- g.Wait() }()
		}
		synctest.Wait()
		b.release <- nil
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := <-b.begun; n != 2 {
			t.Fatalf("sync %d began; want 2", n)
		}
		synctest.Wait()
		if len(done) != 0 {
			t.Fatalf("%d writers returned before the sync begun after their call ended", len(done))
		}
		b.release <- nil
		for range 5 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if got := g.Syncs(); got != 2 {
			t.Fatalf("%d syncs for 6 writers, 5 of them together; want 2", got)
		}

		// A failed sync fails the writer it served; the one that came
		// while it ran gets a sync of its own, which succeeds.
		go func() { done <- g.Wait() }()
		go func() { done <- g.Wait() }()
		if n := <-b.begun; n != 3 {
			t.Fatalf("sync %d began; want 3", n)
		}
		synctest.Wait()
		failure := errors.New("disk gone")
		b.release <- failure
		if err := <-done; !errors.Is(err, failure) {
			t.Fatalf("the writer of a failed sync got %v", err)
		}
		if n := <-b.begun; n != 4 {
			t.Fatalf("sync %d began; want 4", n)
		}
		b.release <- nil
		if err := <-done; err != nil {
			t.Fatalf("a writer served by a good sync got %v", err)
		}
	})
}
