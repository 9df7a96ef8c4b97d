package core

import (
	"reflect"
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

func TestRecordRun(t *testing.T) {
	w := &Webhook{}
	for i := 1; i <= 5; i++ {
		st := 200
		if i%2 == 0 {
			st = 500
		}
		w.RecordRun(Run{Status: st, Timestamp: float64(i)}, 3)
	}
	want := []Run{{200, 5}, {500, 4}, {200, 3}}
	if !reflect.DeepEqual(w.Runs, want) || w.LastRun != want[0] || w.RunCount != 5 || w.FailCount != 2 {
		t.Fatalf("after 5 runs: %+v", w)
	}
	w.RecordRun(Run{Status: 0, Timestamp: 6}, 3)
	if w.FailCount != 3 || len(w.Runs) != 3 || w.Runs[0].Status != 0 {
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
