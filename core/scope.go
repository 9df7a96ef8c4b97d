package core

import (
	"slices"
	"strings"
)

// Scope kinds (Pryv v2, PRYV-WEBHOOKS.md §5.9).
const (
	KindEvents   = "events"
	KindStreams  = "streams"
	KindAccesses = "accesses"
)

// Limits of a scopes map, beyond which create and update refuse it.
const (
	MaxScopes      = 16
	MaxScopeKeyLen = 64
	MaxScopeItems  = 64 // streams or types of one query
)

// Scope is one entry of a webhook's scopes map: the webhook hears of the
// changes of Kind that match Streams and Types, and its notification
// names Key.
type Scope struct {
	Key  string
	Kind string
	// Streams and Types are the query as given; empty matches any.
	Streams []string
	Types   []string
	// Within is the prepared form of Streams, never shown: those streams
	// and every stream below them, as the creating access saw the tree,
	// and those learned since (Scopes.Learn). Sorted.
	Within []string
}

// Scopes is a webhook's scopes map, sorted by key. It is never changed
// once made: copies of a webhook share it.
type Scopes struct {
	List []Scope
}

// Touch is what one change touched, as far as scopes care: the streams
// and type of an event, or a stream and its parent. No streams means the
// change's target is unknown (a deletion, an answer that could not be
// read): it matches every scope of its kind.
type Touch struct {
	Kind    byte // TouchEvent or TouchStream
	Streams []string
	Type    string // of an event; "" matches any type
}

// Touch kinds.
const (
	TouchEvent  = 1
	TouchStream = 2
)

// Limits of the touches a marker carries: past them it carries none,
// which matches every scope of the changed kinds.
const (
	MaxTouches       = 64
	MaxTouchStreams  = 32
	MaxTouchTypeLen  = 255
	MaxTouchStreamID = 255
)

// Match appends to dst the keys of the scopes a change matches, in key
// order. msgs are the change's messages; touches what it touched, nil
// when unknown, which matches every scope whose kind changed.
func (s *Scopes) Match(dst []string, msgs []string, touches []Touch) []string {
	for i := range s.List {
		sc := &s.List[i]
		switch sc.Kind {
		case KindEvents:
			if slices.Contains(msgs, MsgEventsChanged) && sc.matches(TouchEvent, touches) {
				dst = append(dst, sc.Key)
			}
		case KindStreams:
			if slices.Contains(msgs, MsgStreamsChanged) && sc.matches(TouchStream, touches) {
				dst = append(dst, sc.Key)
			}
		case KindAccesses:
			if slices.Contains(msgs, MsgAccessesChanged) {
				dst = append(dst, sc.Key)
			}
		}
	}
	return dst
}

// matches reports whether touches of kind match sc; a change with no
// touch of kind (nothing known) matches.
func (sc *Scope) matches(kind byte, touches []Touch) bool {
	seen := false
	for i := range touches {
		t := &touches[i]
		if t.Kind != kind {
			continue
		}
		seen = true
		if len(t.Streams) == 0 {
			return true
		}
		if sc.streamMatch(t.Streams) && sc.typeMatch(t.Type) {
			return true
		}
	}
	return !seen
}

func (sc *Scope) streamMatch(streams []string) bool {
	if len(sc.Streams) == 0 {
		return true
	}
	for _, s := range streams {
		if _, ok := slices.BinarySearch(sc.Within, s); ok {
			return true
		}
	}
	return false
}

func (sc *Scope) typeMatch(t string) bool {
	if len(sc.Types) == 0 || t == "" {
		return true
	}
	for _, want := range sc.Types {
		if want == t {
			return true
		}
		if class, ok := strings.CutSuffix(want, "/*"); ok && len(t) > len(class) && t[len(class)] == '/' && t[:len(class)] == class {
			return true
		}
	}
	return false
}

// Learn returns the scopes with stream id added below every scope that
// holds parent, and whether that changed anything: a stream created or
// moved below a scope's stream is in the scope from then on. s is left
// as it is.
func (s *Scopes) Learn(id, parent string) (*Scopes, bool) {
	if parent == "" || id == "" {
		return s, false
	}
	var out *Scopes
	for i := range s.List {
		sc := &s.List[i]
		if len(sc.Streams) == 0 {
			continue
		}
		if _, ok := slices.BinarySearch(sc.Within, parent); !ok {
			continue
		}
		at, ok := slices.BinarySearch(sc.Within, id)
		if ok {
			continue
		}
		if out == nil {
			out = &Scopes{List: slices.Clone(s.List)}
		}
		out.List[i].Within = slices.Insert(slices.Clone(sc.Within), at, id)
	}
	if out == nil {
		return s, false
	}
	return out, true
}

// AppendJSON appends the public form of the scopes, Pryv's map
// {key: {kind, query: {streams, types}}}, in key order; the prepared
// form stays out.
func (s *Scopes) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	for i := range s.List {
		sc := &s.List[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, sc.Key)
		b = append(b, `:{"kind":`...)
		b = AppendJSONString(b, sc.Kind)
		b = append(b, `,"query":{`...)
		sep := false
		for _, f := range [...]struct {
			name string
			v    []string
		}{{"streams", sc.Streams}, {"types", sc.Types}} {
			if len(f.v) == 0 {
				continue
			}
			if sep {
				b = append(b, ',')
			}
			sep = true
			b = AppendJSONString(b, f.name)
			b = append(b, ':', '[')
			for j, v := range f.v {
				if j > 0 {
					b = append(b, ',')
				}
				b = AppendJSONString(b, v)
			}
			b = append(b, ']')
		}
		b = append(b, "}}"...)
	}
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler with AppendJSON.
func (s *Scopes) MarshalJSON() ([]byte, error) { return s.AppendJSON(nil), nil }

// ValidType reports whether t is a Pryv event type, class/format, or a
// class pattern, class/*: lower-case letters, digits and '-' on each
// side.
func ValidType(t string) bool {
	class, format, ok := strings.Cut(t, "/")
	if !ok || !typePart(class) {
		return false
	}
	return format == "*" || typePart(format)
}

func typePart(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
