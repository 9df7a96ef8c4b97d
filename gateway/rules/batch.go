package rules

import (
	"bytes"
	"net/url"

	json "github.com/goccy/go-json"

	"github.com/hookgate/hookgate/core"
)

type batchCall struct {
	Method string `json:"method"`
}

type batchAnswer struct {
	Results []struct {
		Error json.RawMessage `json:"error"`
	} `json:"results"`
}

// BatchCalls reads the body of a batch call and returns, per call in order,
// the messages that call causes if it succeeds. ok is false when the body
// is not a JSON array of objects; the caller must then assume any message
// of the vocabulary.
func (t *Table) BatchCalls(body []byte) (calls []core.MessageSet, ok bool) {
	var list []batchCall
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, false
	}
	calls = make([]core.MessageSet, len(list))
	for i, c := range list {
		calls[i] = t.batch[c.Method]
	}
	return calls, true
}

// BatchResults returns the union of the messages of calls whose slot in
// the batch answer holds no error. A call without a readable slot counts,
// so an answer that cannot be read never hides a change.
func BatchResults(calls []core.MessageSet, answer []byte) core.MessageSet {
	var all core.MessageSet
	for _, c := range calls {
		all |= c
	}
	if all == 0 {
		return 0
	}
	var a batchAnswer
	if err := json.Unmarshal(answer, &a); err != nil {
		return all
	}
	var s core.MessageSet
	for i, c := range calls {
		if i < len(a.Results) {
			e := bytes.TrimSpace(a.Results[i].Error)
			if len(e) != 0 && !bytes.Equal(e, []byte("null")) {
				continue
			}
		}
		s |= c
	}
	return s
}

// FormOverride reads a form-encoded body for Pryv's override fields: method
// is `_method` upper-cased (empty when absent), jsonBody is `_json`.
func FormOverride(body []byte) (method string, jsonBody []byte) {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return "", nil
	}
	if j, ok := v["_json"]; ok && len(j) > 0 {
		jsonBody = []byte(j[0])
	}
	return asciiUpper(v.Get("_method")), jsonBody
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// touched is what hookgate reads of one call's answer for scoped
// webhooks: the event or the stream the call wrote.
type touched struct {
	Event *struct {
		StreamIDs []string `json:"streamIds"`
		StreamID  string   `json:"streamId"` // Pryv 1.x
		Type      string   `json:"type"`
	} `json:"event"`
	Stream *struct {
		ID       string  `json:"id"`
		ParentID *string `json:"parentId"`
	} `json:"stream"`
	Error json.RawMessage `json:"error"`
}

// CallTouches returns what a call that caused set touched, read from its
// answer: the event's streams and type, the stream and its parent. What
// the answer does not tell (a deletion's, or an answer that cannot be
// read) is an unknown touch, which matches every scope of its kind.
func (t *Table) CallTouches(set core.MessageSet, answer []byte) []core.Touch {
	var c touched
	if json.Unmarshal(answer, &c) != nil {
		c = touched{}
	}
	return t.appendTouches(nil, set, &c)
}

// BatchTouches is CallTouches for a batch answer: the touches of every
// call whose slot holds no error. nil when the answer cannot be read.
func (t *Table) BatchTouches(calls []core.MessageSet, answer []byte) []core.Touch {
	var a struct {
		Results []touched `json:"results"`
	}
	if json.Unmarshal(answer, &a) != nil {
		return nil
	}
	var out []core.Touch
	for i, set := range calls {
		if set == 0 {
			continue
		}
		c := &touched{}
		if i < len(a.Results) {
			c = &a.Results[i]
			if e := bytes.TrimSpace(c.Error); len(e) != 0 && !bytes.Equal(e, []byte("null")) {
				continue
			}
		}
		out = t.appendTouches(out, set, c)
		if len(out) > core.MaxTouches {
			return nil // a marker carries none past this: every scope matches
		}
	}
	return out
}

func (t *Table) appendTouches(dst []core.Touch, set core.MessageSet, c *touched) []core.Touch {
	if ev, ok := t.voc.Lookup(core.MsgEventsChanged); ok && set&ev != 0 {
		tc := core.Touch{Kind: core.TouchEvent}
		switch {
		case c.Event != nil:
			tc.Streams = c.Event.StreamIDs
			if len(tc.Streams) == 0 && c.Event.StreamID != "" {
				tc.Streams = []string{c.Event.StreamID}
			}
			if len(c.Event.Type) <= core.MaxTouchTypeLen {
				tc.Type = c.Event.Type
			}
		case c.Stream != nil && c.Stream.ID != "":
			// A stream deletion's events: those of the stream, any type.
			tc.Streams = []string{c.Stream.ID}
		}
		dst = append(dst, checked(tc))
	}
	if st, ok := t.voc.Lookup(core.MsgStreamsChanged); ok && set&st != 0 {
		tc := core.Touch{Kind: core.TouchStream}
		if c.Stream != nil && c.Stream.ID != "" {
			tc.Streams = []string{c.Stream.ID}
			if c.Stream.ParentID != nil && *c.Stream.ParentID != "" {
				tc.Streams = append(tc.Streams, *c.Stream.ParentID)
			}
		}
		dst = append(dst, checked(tc))
	}
	return dst
}

// checked turns a touch a marker cannot carry into an unknown one.
func checked(tc core.Touch) core.Touch {
	if len(tc.Streams) == 0 || len(tc.Streams) > core.MaxTouchStreams {
		return core.Touch{Kind: tc.Kind}
	}
	for _, s := range tc.Streams {
		if s == "" || len(s) > core.MaxTouchStreamID {
			return core.Touch{Kind: tc.Kind}
		}
	}
	return tc
}

// Method returns the messages a call of method id causes when it
// succeeds, as in a batch call; 0 for a read or an unknown id.
func (t *Table) Method(id string) core.MessageSet { return t.batch[id] }
