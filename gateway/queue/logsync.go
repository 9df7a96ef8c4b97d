package queue

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// logSyncer returns the sync an Async queue's syncer runs: on Linux,
// syncLogs on db's directories, elsewhere db.Sync.
//
// db.Sync msyncs the active memtable's write-ahead log while holding
// Badger's database lock for reading, and Badger's writer takes that
// lock for writing before every write: each commit made during the sync
// waited for all of it, tens of milliseconds once a second under load.
// syncLogs syncs the same files through descriptors of its own, without
// the lock: on Linux the log's memory mapping and the file share the
// page cache, and msync(MS_SYNC) is an fsync of the mapped range, so an
// fsync of the file makes the mapped writes durable just the same.
// Commits go on while it runs.
func logSyncer(db *badger.DB) func() error {
	o := db.Opts()
	switch {
	case o.InMemory:
		return func() error { return nil }
	case runtime.GOOS != "linux":
		return db.Sync
	}
	dirs := []string{o.Dir}
	if o.ValueDir != o.Dir {
		dirs = append(dirs, o.ValueDir)
	}
	return func() error { return syncLogs((*os.File).Sync, dirs...) }
}

// syncLogs calls fsync on every write-ahead log in dirs: the value logs
// (NNNNNN.vlog) first, since entries of the memtables' logs may point
// into them, then the memtables' logs (NNNNN.mem), each kind oldest
// first. Unlike db.Sync, it covers the logs of memtables that are full
// and wait to be written to a table; and, going from the oldest write to
// the newest, it never makes a write durable before an earlier one.
//
// A log deleted meanwhile (its memtable was written to a table) is
// skipped, and a log created meanwhile holds only writes made after the
// sync began. It returns every error met.
func syncLogs(fsync func(*os.File) error, dirs ...string) error {
	type log struct {
		path string
		kind int // 0 for a value log, 1 for a memtable's
		id   uint64
	}
	var logs []log
	var errs []error
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range ents {
			ext := filepath.Ext(e.Name())
			kind := slices.Index([]string{".vlog", ".mem"}, ext)
			if kind < 0 || !e.Type().IsRegular() {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), ext), 10, 64)
			if err != nil {
				continue // not one of Badger's
			}
			logs = append(logs, log{filepath.Join(dir, e.Name()), kind, id})
		}
	}
	slices.SortFunc(logs, func(a, b log) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.id, b.id))
	})
	for _, l := range logs {
		f, err := os.Open(l.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := fsync(f); err != nil {
			errs = append(errs, fmt.Errorf("cannot sync %s: %w", l.path, err))
		}
		f.Close()
	}
	return errors.Join(errs...)
}
