package core

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

func TestVocabulary(t *testing.T) {
	var v Vocabulary
	ev, _ := v.Add(MsgEventsChanged)
	st, _ := v.Add(MsgStreamsChanged)
	again, _ := v.Add(MsgEventsChanged)
	if again != ev {
		t.Fatalf("Add twice gave %b; want %b", again, ev)
	}
	if got := v.Names(nil, ev|st); !reflect.DeepEqual(got, []string{MsgEventsChanged, MsgStreamsChanged}) {
		t.Fatalf("Names = %v", got)
	}
	if v.All() != ev|st {
		t.Fatalf("All = %b; want %b", v.All(), ev|st)
	}
	for i := 2; i < MaxMessages; i++ {
		if _, err := v.Add(string(rune('A' + i))); err != nil {
			t.Fatalf("Add #%d: %v", i, err)
		}
	}
	if _, err := v.Add("one-too-many"); err != ErrVocabularyFull {
		t.Fatalf("Add past MaxMessages: err = %v; want ErrVocabularyFull", err)
	}
	if v.All() != ^MessageSet(0) {
		t.Fatalf("All of a full vocabulary = %b", v.All())
	}
}

func TestMarkerRoundTrip(t *testing.T) {
	var v Vocabulary
	ev, _ := v.Add(MsgEventsChanged)
	ac, _ := v.Add(MsgAccessesChanged)
	rec := AppendMarker(nil, 1700000000123456789, []byte("alice"), &v, ev|ac)
	m, err := DecodeMarker(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := Marker{User: "alice", Messages: []string{MsgEventsChanged, MsgAccessesChanged}, Time: 1700000000123456789}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v; want %+v", m, want)
	}
	if got := AppendMarkerNames(nil, want.Time, want.User, want.Messages); string(got) != string(rec) {
		t.Fatalf("AppendMarkerNames differs from AppendMarker")
	}
	for i := range rec {
		if _, err := DecodeMarker(rec[:i]); err == nil {
			t.Fatalf("DecodeMarker accepted a record cut at %d", i)
		}
	}
	if _, err := DecodeMarker(append(rec, 0)); err == nil {
		t.Fatal("DecodeMarker accepted trailing bytes")
	}
	v2 := AppendDeletedAccesses(append([]byte(nil), rec...), []string{"acc1", "acc2"})
	m, err = DecodeMarker(v2)
	if err != nil || !reflect.DeepEqual(m.DeletedAccesses, []string{"acc1", "acc2"}) || m.User != "alice" {
		t.Fatalf("with deleted accesses: %+v, %v", m, err)
	}
	for i := range v2 {
		if _, err := DecodeMarker(v2[:i]); err == nil {
			t.Fatalf("DecodeMarker accepted a v2 record cut at %d", i)
		}
	}
}

func TestMarkerTouches(t *testing.T) {
	var v Vocabulary
	ev, _ := v.Add(MsgEventsChanged)
	st, _ := v.Add(MsgStreamsChanged)
	touches := []Touch{
		{Kind: TouchEvent, Streams: []string{"diary", "work"}, Type: "note/txt"},
		{Kind: TouchEvent}, // unknown: a deletion
		{Kind: TouchStream, Streams: []string{"child", "diary"}},
	}
	for _, deleted := range [][]string{nil, {"acc1"}} {
		rec := AppendExtras(AppendMarker(nil, 42, []byte("alice"), &v, ev|st), deleted, touches)
		m, err := DecodeMarker(rec)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m.Touches, touches) || !reflect.DeepEqual(m.DeletedAccesses, deleted) || len(m.Messages) != 2 {
			t.Fatalf("decoded %+v", m)
		}
		for i := range rec {
			if _, err := DecodeMarker(rec[:i]); err == nil {
				t.Fatalf("DecodeMarker accepted a v3 record cut at %d", i)
			}
		}
	}
	many := make([]Touch, MaxTouches+1)
	for i := range many {
		many[i] = Touch{Kind: TouchEvent, Streams: []string{"s"}}
	}
	m, err := DecodeMarker(AppendExtras(AppendMarker(nil, 1, []byte("alice"), &v, ev), nil, many))
	if err != nil || m.Touches != nil {
		t.Fatalf("past MaxTouches a marker must carry none (every scope matches): %+v, %v", m.Touches, err)
	}
}

func TestValidUsername(t *testing.T) {
	f := func(u string, want bool) {
		t.Helper()
		if got := ValidUsername([]byte(u)); got != want {
			t.Errorf("ValidUsername(%q) = %v; want %v", u, got, want)
		}
	}
	f("alice", true)
	f("al-ce", true)
	f("a1234", true)
	f("abcd", false)
	f("-alice", false)
	f("alice-", false)
	f("Alice", false)
	f("al_ce", false)
	f("al.ce", false)
	f(string(make([]byte, 61)), false)
	long := make([]byte, 60)
	for i := range long {
		long[i] = 'a'
	}
	f(string(long), true)
	if !ReservedRoot([]byte("socket.io")) || ReservedRoot([]byte("alice")) {
		t.Fatal("ReservedRoot is wrong")
	}
}

func TestAppendJSONString(t *testing.T) {
	f := func(s string) {
		t.Helper()
		got := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("AppendJSONString(%q) = %s: not JSON: %v", s, got, err)
		}
		want := s
		if !utf8.ValidString(s) {
			want = string([]rune(s)) // invalid bytes become U+FFFD
		}
		if back != want {
			t.Fatalf("round trip of %q gave %q", s, back)
		}
	}
	f("")
	f("plain")
	f("quote \" backslash \\ newline \n tab \t nul \x00 <b>&")
	f("héllo ☃ \u2028")
	f("bad \xff utf8")
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("hello")
	f.Add("\x00\"\\\u2029\xc3")
	f.Fuzz(func(t *testing.T, s string) {
		var back string
		if err := json.Unmarshal(AppendJSONString(nil, s), &back); err != nil {
			t.Fatalf("not JSON for %q: %v", s, err)
		}
	})
}

func TestMetaAndError(t *testing.T) {
	m := Meta{APIVersion: "1.9.3", Serial: "2024"}
	b := m.AppendError(nil, 1700000000123456789, "api-unavailable", `upstream "x" down`)
	var got struct {
		Error struct{ ID, Message string }
		Meta  struct {
			APIVersion string  `json:"apiVersion"`
			ServerTime float64 `json:"serverTime"`
			Serial     string
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.Error.ID != "api-unavailable" || got.Error.Message != `upstream "x" down` ||
		got.Meta.APIVersion != "1.9.3" || got.Meta.Serial != "2024" || got.Meta.ServerTime != 1700000000.123 {
		t.Fatalf("got %+v from %s", got, b)
	}
}

// FuzzDecodeMarker: no record crashes the decoder, and whatever it accepts
// encodes back to the same bytes.
func FuzzDecodeMarker(f *testing.F) {
	var v Vocabulary
	ev, _ := v.Add(MsgEventsChanged)
	f.Add(AppendMarker(nil, 1700000000123456789, []byte("alice"), &v, ev))
	f.Add([]byte{1, 0, 5, 'a', 'l', 'i', 'c', 'e', 0})
	f.Add([]byte{})
	f.Add(AppendExtras(AppendMarker(nil, 1, []byte("alice"), &v, ev), []string{"acc"},
		[]Touch{{Kind: TouchEvent, Streams: []string{"diary", "work"}, Type: "note/txt"}, {Kind: TouchStream}}))
	f.Fuzz(func(t *testing.T, rec []byte) {
		m, err := DecodeMarker(rec)
		if err != nil {
			return
		}
		if got := AppendExtras(AppendMarkerNames(nil, m.Time, m.User, m.Messages), m.DeletedAccesses, m.Touches); string(got) != string(rec) {
			t.Fatalf("decode/encode of %x gave %x", rec, got)
		}
	})
}

func TestMarkerUser(t *testing.T) {
	rec := AppendMarkerNames(nil, 1234, "alice", []string{MsgEventsChanged})
	if u, ok := MarkerUser(rec); !ok || string(u) != "alice" {
		t.Fatalf("MarkerUser = %q, %v", u, ok)
	}
	for i := range len(rec) - len(MsgEventsChanged) - 2 { // every cut before the user's end
		if u, ok := MarkerUser(rec[:i]); ok {
			t.Fatalf("MarkerUser of %d bytes = %q; want refused", i, u)
		}
	}
}
