package queue

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestAsyncAppendDoesNotWaitForSync: while an Async queue's periodic
// sync is under way (held here until released), appends commit and
// return, and readers see them. Close waits for that sync, syncs once
// more after the last commit, and leaves no goroutine behind (the bubble
// would not end otherwise). A synced queue has no periodic sync.
func TestAsyncAppendDoesNotWaitForSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := openBadgerDB(t, t.TempDir())
		defer db.Close()
		var commits sync.Mutex
		committed := 0
		began := make(chan int, 10) // records committed when each sync began
		release := make(chan struct{})
		var releaseOnce sync.Once
		unblock := func() { releaseOnce.Do(func() { close(release) }) }
		q, err := openBadger(db, Options{
			Async:        true,
			SyncInterval: time.Second,
			OnCommit: func(n int, err error) {
				commits.Lock()
				committed += n
				commits.Unlock()
			},
		}, func() error {
			commits.Lock()
			n := committed
			commits.Unlock()
			began <- n
			if n == 1 { // the first periodic sync is a slow one
				<-release
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		defer unblock() // before Close, should the test stop early

		mustAppend(t, q, "a")
		time.Sleep(time.Second)
		if n := <-began; n != 1 {
			t.Fatalf("the first sync began with %d records committed; want 1", n)
		}
		appended := make(chan error, 1)
		go func() {
			_, err := q.Append([]byte("b"))
			appended <- err
		}()
		synctest.Wait()
		select {
		case err := <-appended:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("Append waits for the sync under way")
		}
		if got := readAll(t, q, 1); len(got) != 2 || string(got[1].Data) != "b" {
			t.Fatalf("read %v during the sync; want a and b", got)
		}
		time.Sleep(3 * time.Second) // ticks while the syncer is busy are dropped
		if len(began) != 0 {
			t.Fatalf("%d syncs began while one was under way", len(began))
		}
		unblock()
		synctest.Wait()
		for len(began) > 0 {
			if n := <-began; n != 2 {
				t.Fatalf("a periodic sync after the release began with %d records committed; want 2", n)
			}
		}
		mustAppend(t, q, "c")
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-began:
			if n != 3 {
				t.Fatalf("the sync at Close began with %d records committed; want 3", n)
			}
		default:
			t.Fatal("Close did not sync")
		}
		time.Sleep(10 * time.Second)
		if len(began) != 0 {
			t.Fatal("a sync after Close")
		}
	})
	t.Run("sync", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			db := openBadgerDB(t, t.TempDir())
			defer db.Close()
			q, err := openBadger(db, Options{SyncInterval: time.Second}, func() error {
				t.Error("a synced queue ran a periodic sync")
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			mustAppend(t, q, "a")
			time.Sleep(5 * time.Second)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// TestSyncLogs: the periodic sync calls fsync on every write-ahead log,
// value logs first, then memtables' logs, each kind oldest first, and on
// nothing else; it goes on past an error and returns it. On a real
// database it finds the active memtable's log, so that a change of
// Badger's file names would show here.
func TestSyncLogs(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"000002.vlog", "000001.vlog", "00010.mem", "00009.mem", "100000.mem",
		"MANIFEST", "KEYREGISTRY", "000001.sst", "x.mem", "DISCARD"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "00001.mem"), 0o700); err != nil {
		t.Fatal(err)
	}
	var synced []string
	failing := errors.New("disk on fire")
	err := syncLogs(func(f *os.File) error {
		synced = append(synced, filepath.Base(f.Name()))
		if filepath.Base(f.Name()) == "00009.mem" {
			return failing
		}
		return nil
	}, dir, filepath.Join(dir, "missing"))
	want := []string{"000001.vlog", "000002.vlog", "00009.mem", "00010.mem", "100000.mem"}
	if !slices.Equal(synced, want) {
		t.Errorf("synced %v; want %v", synced, want)
	}
	if !errors.Is(err, failing) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "00009.mem") {
		t.Errorf("error %v; want the fsync's, naming its file, and the missing directory's", err)
	}

	db := openBadgerDB(t, t.TempDir())
	defer db.Close()
	q, err := OpenBadger(db, Options{Async: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	mustAppend(t, q, "a")
	synced = nil
	if err := syncLogs(func(f *os.File) error {
		synced = append(synced, filepath.Base(f.Name()))
		return f.Sync()
	}, db.Opts().Dir); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(synced, func(name string) bool { return strings.HasSuffix(name, ".mem") }) {
		t.Errorf("synced %v in a live database; want its memtable's log", synced)
	}
	if err := logSyncer(db)(); err != nil {
		t.Fatal(err)
	}
}

// TestOnSync: each sync of the markers is timed for OnSync, the
// committer's in the default mode and the syncer's with Async.
func TestOnSync(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(map[bool]string{false: "sync", true: "async"}[async], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				db := openBadgerDB(t, t.TempDir())
				defer db.Close()
				var mu sync.Mutex
				var took []time.Duration
				q, err := openBadger(db, Options{Async: async, SyncInterval: time.Second, OnSync: func(d time.Duration) {
					mu.Lock()
					took = append(took, d)
					mu.Unlock()
				}}, func() error {
					time.Sleep(3 * time.Millisecond) // the disk, in the bubble's time
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				mustAppend(t, q, "a")
				defer q.Close()
				if async {
					time.Sleep(time.Second + 10*time.Millisecond) // the periodic sync, and its 3 ms
				} else {
					// The default mode syncs through the database itself,
					// not the syncer: one timed sync per commit.
					mustAppend(t, q, "b")
				}
				synctest.Wait()
				mu.Lock()
				n := len(took)
				var first time.Duration
				if n > 0 {
					first = took[0]
				}
				mu.Unlock()
				if n == 0 {
					t.Fatal("no sync timed")
				}
				if async && first != 3*time.Millisecond {
					t.Fatalf("the periodic sync took %v by OnSync; want the 3 ms it slept", first)
				}
				if !async && n != 2 {
					t.Fatalf("%d syncs timed for two commits; want 2", n)
				}
			})
		})
	}
}
