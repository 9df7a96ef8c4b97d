package webhooks

import (
	"bytes"
	"fmt"
	"net/url"
	"sort"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/hookgate/hookgate/core"
)

// paramError is one entry of invalid-parameters-format's data, in the
// shape Pryv's schema validator gives.
type paramError struct {
	Code    string   `json:"code"`
	Params  []string `json:"params"`
	Message string   `json:"message"`
	Path    string   `json:"path"`
}

func invalidParams(errs ...paramError) *Error {
	return &Error{Status: 400, ID: "invalid-parameters-format", Message: "The parameters' format is invalid.", Data: errs}
}

// parseObject decodes params as a JSON object of raw fields.
func parseObject(params []byte) (map[string]json.RawMessage, *Error) {
	trimmed := bytes.TrimSpace(params)
	if len(trimmed) == 0 {
		trimmed = []byte("{}")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil || m == nil {
		if json.Valid(trimmed) {
			return nil, invalidParams(paramError{"INVALID_TYPE", []string{"object"}, "Expected type object", "#/"})
		}
		return nil, &Error{Status: 400, ID: "invalid-request-structure", Message: "The request body is not valid JSON."}
	}
	return m, nil
}

type createParams struct {
	url           string
	minIntervalMs *int64
	maxRetries    *int
	state         string
	signed        bool
	scopes        json.RawMessage // parsed by create, which knows the access
}

// createFields are the fields a client may send on create.
var createFields = map[string]bool{"url": true, "minIntervalMs": true, "maxRetries": true, "state": true, "signed": true, "scopes": true}

func (a *API) parseCreate(params []byte) (createParams, *Error) {
	var c createParams
	m, perr := parseObject(params)
	if perr != nil {
		return c, perr
	}
	var errs []paramError
	var unknown []string
	for k := range m {
		if !createFields[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		errs = append(errs, paramError{"OBJECT_ADDITIONAL_PROPERTIES", unknown,
			"Additional properties not allowed: " + strings.Join(unknown, ","), "#/"})
	}
	raw, ok := m["url"]
	switch {
	case !ok:
		errs = append(errs, paramError{"OBJECT_MISSING_REQUIRED_PROPERTY", []string{"url"}, "Missing required property: url", "#/"})
	case json.Unmarshal(raw, &c.url) != nil:
		errs = append(errs, paramError{"INVALID_TYPE", []string{"string"}, "Expected type string", "#/url"})
	default:
		if msg := checkURL(c.url); msg != "" {
			errs = append(errs, paramError{"INVALID_FORMAT", []string{"url"}, msg, "#/url"})
		} else if msg := a.unreachable(c.url); msg != "" {
			errs = append(errs, paramError{"INVALID_FORMAT", []string{"url"}, msg, "#/url"})
		}
	}
	if raw, ok := m["minIntervalMs"]; ok {
		var v int64
		if err := json.Unmarshal(raw, &v); err != nil {
			errs = append(errs, paramError{"INVALID_TYPE", []string{"integer"}, "Expected type integer", "#/minIntervalMs"})
		} else if v < a.opts.MinIntervalFloorMs {
			errs = append(errs, paramError{"MINIMUM", []string{fmt.Sprint(a.opts.MinIntervalFloorMs)},
				fmt.Sprintf("Value %d is less than the minimum %d this platform allows", v, a.opts.MinIntervalFloorMs), "#/minIntervalMs"})
		} else {
			c.minIntervalMs = &v
		}
	}
	if raw, ok := m["maxRetries"]; ok {
		var v int
		if err := json.Unmarshal(raw, &v); err != nil {
			errs = append(errs, paramError{"INVALID_TYPE", []string{"integer"}, "Expected type integer", "#/maxRetries"})
		} else if v < 0 || v > a.opts.MaxRetriesCeiling {
			errs = append(errs, paramError{"MAXIMUM", []string{fmt.Sprint(a.opts.MaxRetriesCeiling)},
				fmt.Sprintf("Value %d is outside 0 to %d, the range this platform allows", v, a.opts.MaxRetriesCeiling), "#/maxRetries"})
		} else {
			c.maxRetries = &v
		}
	}
	if raw, ok := m["state"]; ok {
		if e := checkState(raw, &c.state); e != nil {
			errs = append(errs, *e)
		}
	}
	c.scopes = m["scopes"]
	if raw, ok := m["signed"]; ok {
		if err := json.Unmarshal(raw, &c.signed); err != nil {
			errs = append(errs, paramError{"INVALID_TYPE", []string{"boolean"}, "Expected type boolean", "#/signed"})
		}
	}
	if len(errs) > 0 {
		return c, invalidParams(errs...)
	}
	return c, nil
}

func checkState(raw json.RawMessage, dst *string) *paramError {
	if err := json.Unmarshal(raw, dst); err != nil || (*dst != core.StateActive && *dst != core.StateInactive) {
		return &paramError{"ENUM_MISMATCH", []string{core.StateActive, core.StateInactive},
			`state must be "active" or "inactive"`, "#/state"}
	}
	return nil
}

// unreachable returns why notifications cannot go to u's host (u is a
// valid URL), or "".
func (a *API) unreachable(u string) string {
	if a.opts.Reachable == nil {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return a.opts.Reachable(p.Hostname())
}

// checkURL returns why u is not an absolute http(s) URL, or "".
func checkURL(u string) string {
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return "url is not a valid URL"
	case p.Scheme != "http" && p.Scheme != "https":
		return "url must be an absolute http or https URL"
	case p.Host == "" || p.Hostname() == "":
		return "url must name a host"
	case p.User != nil:
		return "url must not carry user credentials; put secrets in the path or query"
	case len(u) > 2048:
		return "url is longer than 2048 characters"
	}
	return ""
}

// idParam reads {"id": "..."}.
func idParam(params []byte) (string, *Error) {
	m, perr := parseObject(params)
	if perr != nil {
		return "", perr
	}
	var id string
	if raw, ok := m["id"]; !ok || json.Unmarshal(raw, &id) != nil || id == "" {
		return "", invalidParams(paramError{"OBJECT_MISSING_REQUIRED_PROPERTY", []string{"id"}, "Missing required property: id", "#/"})
	}
	return id, nil
}

// parseUpdate reads {"id": "...", "update": {"state": ..., "scopes": ...}}:
// any other field of update is a 403, as in Pryv (v2). scopes is the raw
// map when the update has one.
func parseUpdate(params []byte) (id, state string, scopes json.RawMessage, _ *Error) {
	m, perr := parseObject(params)
	if perr != nil {
		return "", "", nil, perr
	}
	if raw, ok := m["id"]; !ok || json.Unmarshal(raw, &id) != nil || id == "" {
		return "", "", nil, invalidParams(paramError{"OBJECT_MISSING_REQUIRED_PROPERTY", []string{"id"}, "Missing required property: id", "#/"})
	}
	raw, ok := m["update"]
	if !ok {
		return "", "", nil, invalidParams(paramError{"OBJECT_MISSING_REQUIRED_PROPERTY", []string{"update"}, "Missing required property: update", "#/"})
	}
	upd, perr := parseObject(raw)
	if perr != nil {
		return "", "", nil, perr
	}
	var protected []string
	for k := range upd {
		if k != "state" && k != "scopes" {
			protected = append(protected, k)
		}
	}
	if len(protected) > 0 {
		sort.Strings(protected)
		return "", "", nil, errorf(403, "forbidden", "Forbidden update was attempted on the following protected field(s): [%s].", strings.Join(protected, ","))
	}
	if raw, ok := upd["state"]; ok {
		if e := checkState(raw, &state); e != nil {
			return "", "", nil, invalidParams(*e)
		}
	}
	return id, state, upd["scopes"], nil
}
