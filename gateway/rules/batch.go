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
