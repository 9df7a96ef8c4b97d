package rules

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/core"
)

func mustCompile(t testing.TB, c Config) *Table {
	t.Helper()
	tb, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func names(tb *Table, s core.MessageSet) []string { return tb.Vocabulary().Names(nil, s) }

func TestPryvTable(t *testing.T) {
	tb := mustCompile(t, Pryv(false))
	f := func(method, path string, want ...string) {
		t.Helper()
		a := tb.Match([]byte(method), []byte(path))
		if a.Batch {
			t.Errorf("%s %s: batch; want %v", method, path, want)
			return
		}
		if got := names(tb, a.Messages); !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
			t.Errorf("%s %s = %v; want %v", method, path, got, want)
		}
	}
	// events, including attachments and deletions
	f("POST", "/events", core.MsgEventsChanged)
	f("POST", "/events/", core.MsgEventsChanged)
	f("PUT", "/events/ck123", core.MsgEventsChanged)
	f("POST", "/events/ck123", core.MsgEventsChanged) // multipart: add attachments
	f("DELETE", "/events/ck123", core.MsgEventsChanged)
	f("DELETE", "/events/ck123/file456", core.MsgEventsChanged)
	f("GET", "/events")
	f("GET", "/events/ck123")
	f("GET", "/events/ck123/file456/name.jpg")
	f("HEAD", "/events")
	f("OPTIONS", "/events")
	f("POST", "/events/ck123/series") // HF series: no notification
	// streams
	f("POST", "/streams", core.MsgStreamsChanged)
	f("PUT", "/streams/diary", core.MsgStreamsChanged)
	f("DELETE", "/streams/diary", core.MsgEventsChanged, core.MsgStreamsChanged) // its events may go too
	f("DELETE", "/streams/diary/x", core.MsgStreamsChanged)
	f("GET", "/streams")
	// accesses
	f("POST", "/accesses", core.MsgAccessesChanged)
	f("PUT", "/accesses/a1", core.MsgAccessesChanged)
	f("DELETE", "/accesses/a1", core.MsgAccessesChanged)
	f("POST", "/accesses/check-app")
	f("GET", "/accesses")
	// account changes are off by default
	f("PUT", "/account")
	f("POST", "/account/change-password")
	// not data
	f("GET", "/access-info")
	f("GET", "/")
	f("POST", "/auth/login")
	f("PUT", "/profile/private")
	f("POST", "/webhooks")
	f("POST", "/eventsx")
	f("BREW", "/events")
	// double slashes and trailing slashes are ignored
	f("POST", "//events//ck123/", core.MsgEventsChanged)

	for _, p := range []string{"/", "", "//"} {
		if a := tb.Match([]byte("POST"), []byte(p)); !a.Batch {
			t.Errorf("POST %q is not a batch call", p)
		}
	}
	if a := tb.Match([]byte("GET"), []byte("/")); a.Changes() {
		t.Error("GET / changes data")
	}

	acc := mustCompile(t, Pryv(true))
	for _, c := range [][2]string{{"PUT", "/account"}, {"POST", "/account/change-password"}, {"POST", "/account/reset-password"}} {
		if got := names(acc, acc.Match([]byte(c[0]), []byte(c[1])).Messages); !reflect.DeepEqual(got, []string{core.MsgAccountChanged}) {
			t.Errorf("with account changes, %s %s = %v", c[0], c[1], got)
		}
	}
}

func TestSpecificity(t *testing.T) {
	tb := mustCompile(t, Config{Rules: []Rule{
		{Methods: []string{"POST"}, Path: "/a/**", Message: "rest"},
		{Methods: []string{"POST"}, Path: "/a/*", Message: "star"},
		{Methods: []string{"POST"}, Path: "/a/lit", Message: "lit"},
		{Methods: []string{"POST"}, Path: "/a/*/deep", Message: "stardeep"},
	}})
	f := func(path, want string) {
		t.Helper()
		got := names(tb, tb.Match([]byte("POST"), []byte(path)).Messages)
		if want == "" && len(got) == 0 {
			return
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("POST %s = %v; want %s", path, got, want)
		}
	}
	f("/a", "rest")
	f("/a/lit", "lit")
	f("/a/other", "star")
	f("/a/lit/deep", "stardeep") // literal branch fails below, star branch matches
	f("/a/x/y/z", "rest")
	f("/b", "")
}

func TestCompileErrors(t *testing.T) {
	f := func(r Rule, wantErr string) {
		t.Helper()
		_, err := Compile(Config{Rules: []Rule{r}})
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Compile(%+v) error = %v; want it to mention %q", r, err, wantErr)
		}
	}
	f(Rule{Path: "/x", Message: "m"}, "no methods")
	f(Rule{Methods: []string{"POST"}, Path: "x", Message: "m"}, "start with /")
	f(Rule{Methods: []string{"BREW"}, Path: "/x", Message: "m"}, "unknown method")
	f(Rule{Methods: []string{"POST"}, Path: "/**/x", Message: "m"}, "last segment")
	f(Rule{Methods: []string{"POST"}, Path: "/x*", Message: "m"}, "stand alone")
	f(Rule{Methods: []string{"POST"}, Path: "/", Message: "m", Batch: true}, "drop message")
	f(Rule{Methods: []string{"POST"}, Path: "/x", Also: []string{"m"}}, "also without message")
	if _, err := Compile(Config{BatchMethods: map[string]string{"a.b": "m"}, BatchAlso: map[string][]string{"c.d": {"n"}}}); err == nil ||
		!strings.Contains(err.Error(), "not in batchMethods") {
		t.Errorf("batchAlso of an unknown method: err = %v", err)
	}
	if _, err := Compile(Config{Rules: []Rule{
		{Methods: []string{"POST"}, Path: "/x", Message: "a"},
		{Methods: []string{"POST"}, Path: "/x/", Message: "b"},
	}}); err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Errorf("duplicate rule: err = %v", err)
	}
}

func TestBatch(t *testing.T) {
	tb := mustCompile(t, Pryv(false))
	body := []byte(`[
		{"method": "events.create", "params": {"streamIds": ["diary"], "type": "note/txt", "content": "hi"}},
		{"method": "events.get", "params": {}},
		{"method": "streams.update", "params": {"id": "diary", "update": {"name": "D"}}},
		{"method": "accesses.delete", "params": {"id": "a1"}},
		{"method": "webhooks.create", "params": {"url": "https://x"}}
	]`)
	calls, ok := tb.BatchCalls(body)
	if !ok || len(calls) != 5 {
		t.Fatalf("BatchCalls = %v, %v", calls, ok)
	}
	f := func(answer string, want ...string) {
		t.Helper()
		got := names(tb, BatchResults(calls, []byte(answer)))
		if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
			t.Errorf("answer %s: got %v; want %v", answer, got, want)
		}
	}
	// All succeed.
	f(`{"results":[{"event":{}},{"events":[]},{"stream":{}},{"accessDeletion":{}},{"webhook":{}}],"meta":{}}`,
		core.MsgEventsChanged, core.MsgStreamsChanged, core.MsgAccessesChanged)
	// The stream update failed: its slot holds an error.
	f(`{"results":[{"event":{}},{"events":[]},{"error":{"id":"unknown-resource"}},{"accessDeletion":{}},{}]}`,
		core.MsgEventsChanged, core.MsgAccessesChanged)
	// Everything failed.
	f(`{"results":[{"error":{"id":"x"}},{"error":{}},{"error":{"id":"y"}},{"error":{"id":"z"}},{"error":{}}]}`)
	// "error": null is no error.
	f(`{"results":[{"error":null},{},{"error":{"id":"y"}},{"error":{"id":"z"}},{}]}`, core.MsgEventsChanged)
	// An answer that cannot be read, or is short, never hides a change.
	f(`not json`, core.MsgEventsChanged, core.MsgStreamsChanged, core.MsgAccessesChanged)
	f(`{"results":[{"error":{"id":"x"}}]}`, core.MsgStreamsChanged, core.MsgAccessesChanged)

	// streams.delete may delete or move the stream's events: both.
	del, delOK := tb.BatchCalls([]byte(`[{"method": "streams.delete", "params": {"id": "diary", "mergeEventsWithParent": true}}]`))
	if got := names(tb, BatchResults(del, []byte(`{"results":[{"streamDeletion":{"id":"diary"}}]}`))); !delOK ||
		!reflect.DeepEqual(got, []string{core.MsgEventsChanged, core.MsgStreamsChanged}) {
		t.Errorf("streams.delete in a batch: %v", got)
	}

	for _, bad := range []string{``, `{}`, `[1,2]`, `{"method":"events.create"}`, `[{"method": 3}]`} {
		if _, ok := tb.BatchCalls([]byte(bad)); ok {
			t.Errorf("BatchCalls(%q) ok; want not ok", bad)
		}
	}
	// Only reads: nothing to look up in the answer.
	calls, _ = tb.BatchCalls([]byte(`[{"method":"events.get","params":{}}]`))
	if s := BatchResults(calls, []byte(`garbage`)); s != 0 {
		t.Errorf("read-only batch gave %v", names(tb, s))
	}
}

func TestFormOverride(t *testing.T) {
	m, j := FormOverride([]byte("_method=delete&_auth=tok&_json=%5B%7B%22method%22%3A%22events.create%22%7D%5D"))
	if m != "DELETE" || string(j) != `[{"method":"events.create"}]` {
		t.Fatalf("got %q %q", m, j)
	}
	if m, j := FormOverride([]byte("a=b")); m != "" || j != nil {
		t.Fatalf("plain form: got %q %q", m, j)
	}
	if m, _ := FormOverride([]byte("%zz")); m != "" {
		t.Fatalf("bad form: got %q", m)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "rules.json")
	os.WriteFile(good, []byte(`{"rules":[{"methods":["POST","PATCH"],"path":"/orders/**","message":"ordersChanged"},
		{"methods":["POST"],"path":"/","batch":true}],"batchMethods":{"orders.create":"ordersChanged"}}`), 0o600)
	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	tb := mustCompile(t, c)
	if got := names(tb, tb.Match([]byte("PATCH"), []byte("/orders/7")).Messages); !reflect.DeepEqual(got, []string{"ordersChanged"}) {
		t.Fatalf("PATCH /orders/7 = %v", got)
	}
	if tb.FormOverride() {
		t.Fatal("form override on by default in a loaded table")
	}
	calls, _ := tb.BatchCalls([]byte(`[{"method":"orders.create"}]`))
	if got := names(tb, BatchResults(calls, []byte(`{"results":[{}]}`))); !reflect.DeepEqual(got, []string{"ordersChanged"}) {
		t.Fatalf("batch = %v", got)
	}

	typo := filepath.Join(dir, "typo.json")
	os.WriteFile(typo, []byte(`{"rules":[{"method":["POST"],"path":"/x","message":"m"}]}`), 0o600)
	if _, err := Load(typo); err == nil {
		t.Fatal("Load accepted an unknown field")
	}
	empty := filepath.Join(dir, "empty.json")
	os.WriteFile(empty, []byte(`{}`), 0o600)
	if _, err := Load(empty); err == nil {
		t.Fatal("Load accepted a table with no rules")
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("Load accepted a missing file")
	}
}
