package core

import (
	"testing"
)

func TestPermissionTable(t *testing.T) {
	f := func(op Op, typ, id, owner string, want Decision) {
		t.Helper()
		if got := Permission(op, typ, id, owner); got != want {
			t.Errorf("Permission(%d, %s, %s, owner %q) = %d; want %d", op, typ, id, owner, got, want)
		}
	}
	f(OpCreate, AccessPersonal, "p", "", Denied)
	f(OpCreate, AccessApp, "a", "", Allowed)
	f(OpCreate, AccessShared, "s", "", Allowed)
	f(OpCreate, "bogus", "x", "", Denied)
	f(OpList, AccessPersonal, "p", "", AllOfUser)
	f(OpList, AccessApp, "a", "", OwnOnly)
	f(OpList, AccessShared, "s", "", OwnOnly) // Pryv's list quirk is not kept
	for _, op := range []Op{OpGetOne, OpUpdate, OpDelete, OpTest} {
		f(op, AccessPersonal, "p", "a", Allowed)
		f(op, AccessApp, "a", "a", Allowed)
		f(op, AccessApp, "a", "s", Denied)
		f(op, AccessShared, "s", "s", Allowed)
		f(op, AccessShared, "s", "a", Denied)
	}
}

func TestCountRun(t *testing.T) {
	w := &Webhook{}
	for i := 1; i <= 5; i++ {
		st := 200
		if i%2 == 0 {
			st = 500
		}
		w.CountRun(Run{Status: st, Timestamp: float64(i)})
	}
	if w.LastRun != (Run{Status: 200, Timestamp: 5}) || w.RunCount != 5 || w.FailCount != 2 || w.Runs != nil {
		t.Fatalf("after 5 runs: %+v", w)
	}
	w.CountRun(Run{Status: 0, Timestamp: 6})
	if w.FailCount != 3 || w.LastRun.Status != 0 {
		t.Fatalf("status 0 is a failure: %+v", w)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if len(id) != 24 || id[0] < 'a' || id[0] > 'z' {
			t.Fatalf("id %q", id)
		}
		for _, c := range id {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
				t.Fatalf("id %q has %q", id, c)
			}
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
}
