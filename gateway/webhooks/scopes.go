package webhooks

import (
	"bytes"
	"slices"
	"sort"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/hookgate/hookgate/core"
)

// StreamTree returns the streams an access can read, trashed ones
// included, as a map of each stream id to its parent's id ("" at the
// top of what the access sees). It fails with the error to answer.
type StreamTree func() (parents map[string]string, err *Error)

// maxWithin bounds the prepared streams of one webhook's scopes, in
// bytes of ids: far below the record's limit.
const maxWithin = 256 << 10

// queryFields are the fields of a scope's query hookgate matches, per
// kind; the other fields of Pryv's events.get query are refused.
var queryFields = map[string][]string{
	core.KindEvents:   {"streams", "types"},
	core.KindStreams:  {"streams"},
	core.KindAccesses: {},
}

func scopeError(key, format string, args ...any) *Error {
	return errorf(400, "invalid-request-structure", "scope %q: "+format, append([]any{key}, args...)...)
}

// parseScopes reads a scopes map (PRYV-WEBHOOKS.md §5.9) and prepares it
// for acc: every stream it names must be one acc can read, and stands
// for itself and every stream below it. null and {} mean no scopes.
func parseScopes(raw json.RawMessage, acc Access) (*core.Scopes, *Error) {
	if t := bytes.TrimSpace(raw); bytes.Equal(t, []byte("null")) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errorf(400, "invalid-request-structure", "scopes must be an object: {key: {kind, query}}")
	}
	if len(m) == 0 {
		return nil, nil
	}
	if len(m) > core.MaxScopes {
		return nil, errorf(400, "invalid-request-structure", "scopes has %d keys; hookgate allows %d", len(m), core.MaxScopes)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := &core.Scopes{List: make([]core.Scope, 0, len(keys))}
	for _, k := range keys {
		sc, perr := parseScope(k, m[k], acc)
		if perr != nil {
			return nil, perr
		}
		s.List = append(s.List, sc)
	}
	if perr := prepare(s, acc); perr != nil {
		return nil, perr
	}
	return s, nil
}

func parseScope(key string, raw json.RawMessage, acc Access) (core.Scope, *Error) {
	sc := core.Scope{Key: key, Kind: core.KindEvents}
	if key == "" || len(key) > core.MaxScopeKeyLen || !printable(key) {
		return sc, errorf(400, "invalid-request-structure", "scope keys are 1 to %d printable characters; %q is not", core.MaxScopeKeyLen, key)
	}
	var v map[string]json.RawMessage
	if err := json.Unmarshal(raw, &v); err != nil || v == nil {
		return sc, scopeError(key, "must be an object: {kind, query}")
	}
	for f := range v {
		if f != "kind" && f != "query" {
			return sc, scopeError(key, "unknown field %q; a scope has kind and query", f)
		}
	}
	if k, ok := v["kind"]; ok {
		if json.Unmarshal(k, &sc.Kind) != nil {
			return sc, scopeError(key, "kind must be a string")
		}
	}
	allowed, ok := queryFields[sc.Kind]
	if !ok {
		return sc, scopeError(key, "kind %q is not yet supported", sc.Kind)
	}
	if sc.Kind == core.KindAccesses && acc.Type != core.AccessPersonal {
		return sc, errorf(403, "forbidden", "scope %q: kind \"accesses\" needs a personal access", key)
	}
	q, ok := v["query"]
	if !ok || bytes.Equal(bytes.TrimSpace(q), []byte("null")) {
		return sc, nil
	}
	var query map[string]json.RawMessage
	if err := json.Unmarshal(q, &query); err != nil || query == nil {
		return sc, scopeError(key, "query must be an object")
	}
	for f, val := range query {
		if !slices.Contains(allowed, f) {
			return sc, scopeError(key, "query field %q is not supported for kind %q (hookgate matches %s)", f, sc.Kind, supported(allowed))
		}
		var list []string
		if err := json.Unmarshal(val, &list); err != nil {
			return sc, scopeError(key, "query.%s must be an array of strings", f)
		}
		if len(list) > core.MaxScopeItems {
			return sc, scopeError(key, "query.%s has %d items; hookgate allows %d", f, len(list), core.MaxScopeItems)
		}
		for _, x := range list {
			switch {
			case f == "types" && !core.ValidType(x):
				return sc, scopeError(key, "%q is not an event type (class/format, or class/*)", x)
			case f == "streams" && (x == "" || len(x) > core.MaxTouchStreamID):
				return sc, scopeError(key, "stream ids are 1 to %d bytes", core.MaxTouchStreamID)
			}
		}
		slices.Sort(list)
		list = slices.Compact(list)
		if f == "streams" {
			sc.Streams = list
		} else {
			sc.Types = list
		}
	}
	return sc, nil
}

func supported(fields []string) string {
	if len(fields) == 0 {
		return "none"
	}
	return strings.Join(fields, " and ")
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// prepare checks that acc can read every stream the scopes name, and
// sets each scope's Within to those streams and all below them.
func prepare(s *core.Scopes, acc Access) *Error {
	need := false
	for _, sc := range s.List {
		need = need || len(sc.Streams) > 0
	}
	if !need {
		return nil
	}
	if acc.Streams == nil {
		return errorf(400, "invalid-request-structure", "scopes with streams cannot be checked here")
	}
	parents, perr := acc.Streams()
	if perr != nil {
		return perr
	}
	children := map[string][]string{}
	for id, p := range parents {
		if p != "" {
			children[p] = append(children[p], id)
		}
	}
	size := 0
	for i := range s.List {
		sc := &s.List[i]
		var unknown []string
		for _, id := range sc.Streams {
			if _, ok := parents[id]; !ok {
				unknown = append(unknown, id)
			}
		}
		if len(unknown) > 0 {
			e := errorf(400, "unknown-referenced-resource", "scope %q: unknown stream(s) %s, or not readable by this access", sc.Key, strings.Join(unknown, ", "))
			e.Data = map[string][]string{"streamIds": unknown}
			return e
		}
		seen := map[string]bool{}
		queue := slices.Clone(sc.Streams)
		for len(queue) > 0 {
			id := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			if seen[id] {
				continue
			}
			seen[id] = true
			sc.Within = append(sc.Within, id)
			size += len(id)
			queue = append(queue, children[id]...)
		}
		if size > maxWithin {
			return scopeError(sc.Key, "covers more streams than hookgate keeps per webhook")
		}
		slices.Sort(sc.Within)
	}
	return nil
}
