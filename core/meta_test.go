package core

import (
	"strings"
	"testing"
)

// TestFollowMeta: a Meta made by FollowMeta reports what it learns, in
// every copy; a field the operator fixed keeps its value; an empty value
// is not taken; a literal Meta learns nothing.
func TestFollowMeta(t *testing.T) {
	m := FollowMeta("1.9.3", "hookgate", false, false)
	cp := m
	if !m.Learn("2.0.0", "2026010101") {
		t.Fatal("Learn reported no change")
	}
	if got := cp.Current(); got.APIVersion != "2.0.0" || got.Serial != "2026010101" {
		t.Fatalf("a copy reports %+v; want what was learned", got)
	}
	if b := string(cp.AppendMeta(nil, 0)); !strings.Contains(b, `"apiVersion":"2.0.0"`) || !strings.Contains(b, `"serial":"2026010101"`) {
		t.Fatalf("AppendMeta: %s", b)
	}
	if m.Learn("", "") || m.Learn("2.0.0", "") {
		t.Fatal("Learn reported a change for nothing new")
	}
	if got := m.Current(); got.APIVersion != "2.0.0" || got.Serial != "2026010101" {
		t.Fatalf("after empty values: %+v", got)
	}

	fixed := FollowMeta("9.9", "ops", true, false)
	fixed.Learn("2.0.0", "2026010101")
	if got := fixed.Current(); got.APIVersion != "9.9" || got.Serial != "2026010101" {
		t.Fatalf("with apiVersion fixed: %+v", got)
	}
	lit := Meta{APIVersion: "1.9.3", Serial: "s"}
	if lit.Learn("2.0.0", "x") || lit.Current() != (Meta{APIVersion: "1.9.3", Serial: "s"}) {
		t.Fatalf("a literal Meta learned: %+v", lit.Current())
	}
}
