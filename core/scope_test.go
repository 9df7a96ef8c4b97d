package core

import (
	"reflect"
	"testing"

	json "github.com/goccy/go-json"
)

func testScopes() *Scopes {
	return &Scopes{List: []Scope{
		{Key: "access", Kind: KindAccesses},
		{Key: "diary", Kind: KindEvents, Streams: []string{"diary"}, Within: []string{"diary", "diary-work"}},
		{Key: "notes", Kind: KindEvents, Types: []string{"note/txt", "picture/*"}},
		{Key: "tree", Kind: KindStreams, Streams: []string{"diary"}, Within: []string{"diary", "diary-work"}},
	}}
}

func TestScopesMatch(t *testing.T) {
	s := testScopes()
	ev := []string{MsgEventsChanged}
	f := func(msgs []string, touches []Touch, want ...string) {
		t.Helper()
		got := s.Match(nil, msgs, touches)
		if len(got) == 0 && len(want) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Match(%v, %+v) = %v; want %v", msgs, touches, got, want)
		}
	}
	event := func(typ string, streams ...string) Touch { return Touch{Kind: TouchEvent, Streams: streams, Type: typ} }
	f(ev, []Touch{event("note/txt", "diary")}, "diary", "notes")
	f(ev, []Touch{event("mass/kg", "diary-work")}, "diary") // a child stream of the scope's
	f(ev, []Touch{event("mass/kg", "health")})              // matches nothing
	f(ev, []Touch{event("picture/attached", "health")}, "notes")
	f(ev, []Touch{event("pictures/x", "health")}) // a class is matched whole
	f(ev, []Touch{event("mass/kg", "health", "diary")}, "diary")
	f(ev, []Touch{event("mass/kg", "health"), event("note/txt", "x")}, "notes")
	f(ev, []Touch{{Kind: TouchEvent}}, "diary", "notes") // unknown event: every events scope
	f(ev, nil, "diary", "notes")                         // nothing known
	f(ev, []Touch{{Kind: TouchStream, Streams: []string{"x"}}}, "diary", "notes")
	f([]string{MsgStreamsChanged}, []Touch{{Kind: TouchStream, Streams: []string{"new", "diary-work"}}}, "tree")
	f([]string{MsgStreamsChanged}, []Touch{{Kind: TouchStream, Streams: []string{"health"}}})
	f([]string{MsgStreamsChanged, MsgEventsChanged}, []Touch{{Kind: TouchStream}, event("", "diary")}, "diary", "notes", "tree")
	f([]string{MsgAccessesChanged}, nil, "access")
	f([]string{MsgAccountChanged}, nil)
}

func TestScopesLearn(t *testing.T) {
	s := testScopes()
	got, changed := s.Learn("diary-home", "diary")
	if !changed || !reflect.DeepEqual(got.List[1].Within, []string{"diary", "diary-home", "diary-work"}) ||
		!reflect.DeepEqual(got.List[3].Within, []string{"diary", "diary-home", "diary-work"}) {
		t.Fatalf("Learn: %+v, %v", got, changed)
	}
	if !reflect.DeepEqual(s.List[1].Within, []string{"diary", "diary-work"}) {
		t.Fatal("Learn changed the scopes it was given: copies of a webhook share them")
	}
	if m := got.Match(nil, []string{MsgEventsChanged}, []Touch{{Kind: TouchEvent, Streams: []string{"diary-home"}, Type: "a/b"}}); !reflect.DeepEqual(m, []string{"diary"}) {
		t.Fatalf("a learned stream does not match: %v", m)
	}
	for _, c := range [][2]string{{"x", "health"}, {"diary-work", "diary"}, {"x", ""}} {
		if again, changed := got.Learn(c[0], c[1]); changed || again != got {
			t.Fatalf("Learn(%q, %q) changed scopes it should leave", c[0], c[1])
		}
	}
}

func TestScopesJSON(t *testing.T) {
	b, err := json.Marshal(struct {
		S *Scopes `json:"scopes,omitempty"`
		N *Scopes `json:"none,omitempty"`
	}{S: testScopes()})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"scopes":{"access":{"kind":"accesses","query":{}},"diary":{"kind":"events","query":{"streams":["diary"]}},` +
		`"notes":{"kind":"events","query":{"types":["note/txt","picture/*"]}},"tree":{"kind":"streams","query":{"streams":["diary"]}}}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestValidType(t *testing.T) {
	for _, ok := range []string{"note/txt", "mass/kg", "picture/*", "count/steps-2"} {
		if !ValidType(ok) {
			t.Errorf("ValidType(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "note", "/txt", "note/", "Note/txt", "note/txt/x", "*/txt", "note/t*", "a b/c"} {
		if ValidType(bad) {
			t.Errorf("ValidType(%q) = true", bad)
		}
	}
}
