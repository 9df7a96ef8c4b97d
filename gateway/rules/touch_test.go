package rules

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/core"
)

func TestTouches(t *testing.T) {
	tb, err := Compile(Pryv(false))
	if err != nil {
		t.Fatal(err)
	}
	voc := tb.Vocabulary()
	ev, _ := voc.Lookup(core.MsgEventsChanged)
	st, _ := voc.Lookup(core.MsgStreamsChanged)
	acc, _ := voc.Lookup(core.MsgAccessesChanged)
	unknownEvent, unknownStream := core.Touch{Kind: core.TouchEvent}, core.Touch{Kind: core.TouchStream}
	f := func(set core.MessageSet, answer string, want ...core.Touch) {
		t.Helper()
		if got := tb.CallTouches(set, []byte(answer)); !reflect.DeepEqual(got, want) {
			t.Errorf("CallTouches(%s) = %+v; want %+v", answer, got, want)
		}
	}
	f(ev, `{"event":{"id":"e1","streamIds":["diary","work"],"type":"note/txt"},"meta":{}}`,
		core.Touch{Kind: core.TouchEvent, Streams: []string{"diary", "work"}, Type: "note/txt"})
	f(ev, `{"event":{"streamId":"diary","type":"mass/kg"}}`, core.Touch{Kind: core.TouchEvent, Streams: []string{"diary"}, Type: "mass/kg"})
	f(ev, `{"eventDeletion":{"id":"e1"}}`, unknownEvent)
	f(ev, `not json`, unknownEvent)
	f(ev, `{"event":{"streamIds":["`+strings.Repeat("x", 300)+`"],"type":"a/b"}}`, unknownEvent)
	f(st|ev, `{"stream":{"id":"child","parentId":"diary"}}`,
		core.Touch{Kind: core.TouchEvent, Streams: []string{"child"}}, core.Touch{Kind: core.TouchStream, Streams: []string{"child", "diary"}})
	f(st, `{"stream":{"id":"top","parentId":null}}`, core.Touch{Kind: core.TouchStream, Streams: []string{"top"}})
	f(st, `{"streamDeletion":{"id":"top"}}`, unknownStream)
	f(acc, `{"access":{}}`)

	calls := []core.MessageSet{ev, 0, ev, st}
	answer := `{"results":[{"event":{"streamIds":["a"],"type":"note/txt"}},{"events":[]},{"error":{"id":"forbidden"}},{"stream":{"id":"s","parentId":"a"}}]}`
	want := []core.Touch{{Kind: core.TouchEvent, Streams: []string{"a"}, Type: "note/txt"}, {Kind: core.TouchStream, Streams: []string{"s", "a"}}}
	if got := tb.BatchTouches(calls, []byte(answer)); !reflect.DeepEqual(got, want) {
		t.Errorf("BatchTouches = %+v; want %+v", got, want)
	}
	if got := tb.BatchTouches(calls, []byte(`{"results":`)); got != nil {
		t.Errorf("BatchTouches of an unreadable answer = %+v; want nil (every scope matches)", got)
	}
	many := make([]core.MessageSet, core.MaxTouches+1)
	for i := range many {
		many[i] = ev
	}
	if got := tb.BatchTouches(many, []byte(`{"results":[]}`)); got != nil {
		t.Errorf("BatchTouches past MaxTouches = %d touches; want nil", len(got))
	}
}

// FuzzTouches: no answer crashes the readers, and what they give a
// marker carries as it is.
func FuzzTouches(f *testing.F) {
	f.Add([]byte(`{"event":{"streamIds":["a","b"],"type":"note/txt"}}`))
	f.Add([]byte(`{"results":[{"stream":{"id":"s","parentId":"p"}},{"error":null,"event":{"streamId":"x"}}]}`))
	f.Add([]byte(`{"stream":{"id":"","parentId":""}}`))
	tb, err := Compile(Pryv(false))
	if err != nil {
		f.Fatal(err)
	}
	all := tb.Vocabulary().All()
	f.Fuzz(func(t *testing.T, answer []byte) {
		for _, touches := range [][]core.Touch{
			tb.CallTouches(all, answer),
			tb.BatchTouches([]core.MessageSet{all, all, 0}, answer),
		} {
			rec := core.AppendExtras(core.AppendMarkerNames(nil, 1, "alice", []string{core.MsgEventsChanged}), nil, touches)
			m, err := core.DecodeMarker(rec)
			if err != nil {
				t.Fatalf("touches %+v make a marker that does not decode: %v", touches, err)
			}
			if len(touches) > 0 && !reflect.DeepEqual(m.Touches, touches) {
				t.Fatalf("marker carried %+v; want %+v", m.Touches, touches)
			}
		}
	})
}
