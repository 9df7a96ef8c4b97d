package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hookgate/hookgate/core"
)

// Rule maps requests to a message. A rule whose Message is empty and whose
// Batch is false marks matching requests as not changing anything, which
// lets a specific path opt out of a broader rule.
type Rule struct {
	// Methods are HTTP methods, upper case: GET, HEAD, POST, PUT, DELETE,
	// PATCH, OPTIONS.
	Methods []string `json:"methods"`
	// Path is relative to the user's root and made of '/'-separated
	// segments: a literal, "*" (exactly one segment) or, as the last
	// segment only, "**" (zero or more segments). "/" is the root itself.
	// Where several rules match, literal segments win over "*", and "*"
	// over "**".
	Path string `json:"path"`
	// Message is the notification message a matching request causes.
	Message string `json:"message,omitempty"`
	// Also lists more messages it causes, with Message.
	Also []string `json:"also,omitempty"`
	// Batch marks a Pryv batch call: the messages come from the methods
	// listed in the body, per Config.BatchMethods.
	Batch bool `json:"batch,omitempty"`
}

// Config is a rule table before compilation.
type Config struct {
	Rules []Rule `json:"rules"`
	// BatchMethods maps the method ids of batch calls to messages; ids not
	// listed change nothing.
	BatchMethods map[string]string `json:"batchMethods,omitempty"`
	// BatchAlso lists more messages of a method of BatchMethods.
	BatchAlso map[string][]string `json:"batchAlso,omitempty"`
	// FormOverride honours Pryv's form-encoded overrides: a POST with
	// Content-Type application/x-www-form-urlencoded whose `_method` field
	// names the method to use and whose `_json` field holds the body.
	FormOverride bool `json:"formOverride,omitempty"`
}

// Action is what a request does, as far as notifications go.
type Action struct {
	// Messages the request causes when the upstream answers 2xx.
	Messages core.MessageSet
	// Batch means Messages is unknown until the batch body and its results
	// are read; see Table.BatchCalls and Table.BatchResults.
	Batch bool
}

// Changes reports whether a request with this action may change data.
func (a Action) Changes() bool { return a.Messages != 0 || a.Batch }

// Table is a compiled rule table.
type Table struct {
	voc          core.Vocabulary
	root         *node
	batch        map[string]core.MessageSet
	formOverride bool
}

type method uint8

const (
	mGET method = iota
	mHEAD
	mPOST
	mPUT
	mDELETE
	mPATCH
	mOPTIONS
	numMethods
)

func parseMethod(m []byte) (method, bool) {
	switch string(m) {
	case "GET":
		return mGET, true
	case "HEAD":
		return mHEAD, true
	case "POST":
		return mPOST, true
	case "PUT":
		return mPUT, true
	case "DELETE":
		return mDELETE, true
	case "PATCH":
		return mPATCH, true
	case "OPTIONS":
		return mOPTIONS, true
	}
	return 0, false
}

type entry struct {
	set bool
	a   Action
}

type node struct {
	lit  map[string]*node
	star *node
	rest *[numMethods]entry // "**": this point and everything below
	term *[numMethods]entry // the path ends here
}

// Compile checks c and builds its table.
func Compile(c Config) (*Table, error) {
	t := &Table{root: &node{}, batch: map[string]core.MessageSet{}, formOverride: c.FormOverride}
	for i, r := range c.Rules {
		if err := t.add(r); err != nil {
			return nil, fmt.Errorf("rule %d (%s %s): %w", i+1, strings.Join(r.Methods, ","), r.Path, err)
		}
	}
	for id, msg := range c.BatchMethods {
		if id == "" || msg == "" {
			return nil, fmt.Errorf("batch method %q: empty method id or message", id)
		}
		s, err := t.voc.Add(msg)
		if err != nil {
			return nil, fmt.Errorf("batch method %q: %w", id, err)
		}
		for _, m := range c.BatchAlso[id] {
			more, err := t.voc.Add(m)
			if err != nil {
				return nil, fmt.Errorf("batch method %q: %w", id, err)
			}
			s |= more
		}
		t.batch[id] = s
	}
	for id := range c.BatchAlso {
		if _, ok := c.BatchMethods[id]; !ok {
			return nil, fmt.Errorf("batchAlso: method %q is not in batchMethods", id)
		}
	}
	return t, nil
}

func (t *Table) add(r Rule) error {
	if len(r.Methods) == 0 {
		return errors.New("no methods")
	}
	if r.Batch && r.Message != "" {
		return errors.New("a batch rule takes its messages from the batch body; drop message")
	}
	if !strings.HasPrefix(r.Path, "/") {
		return errors.New("path must start with /")
	}
	var a Action
	a.Batch = r.Batch
	if r.Message != "" {
		s, err := t.voc.Add(r.Message)
		if err != nil {
			return err
		}
		a.Messages = s
	}
	if len(r.Also) > 0 && r.Message == "" {
		return errors.New("also without message")
	}
	for _, m := range r.Also {
		s, err := t.voc.Add(m)
		if err != nil {
			return err
		}
		a.Messages |= s
	}
	n := t.root
	segs := splitPattern(r.Path)
	var slot **[numMethods]entry
	for i, seg := range segs {
		switch {
		case seg == "**":
			if i != len(segs)-1 {
				return errors.New(`"**" must be the last segment`)
			}
			slot = &n.rest
		case seg == "*":
			if n.star == nil {
				n.star = &node{}
			}
			n = n.star
		case strings.Contains(seg, "*"):
			return fmt.Errorf("segment %q: wildcards must stand alone", seg)
		default:
			if n.lit == nil {
				n.lit = map[string]*node{}
			}
			c := n.lit[seg]
			if c == nil {
				c = &node{}
				n.lit[seg] = c
			}
			n = c
		}
	}
	if slot == nil {
		slot = &n.term
	}
	if *slot == nil {
		*slot = new([numMethods]entry)
	}
	for _, ms := range r.Methods {
		m, ok := parseMethod([]byte(ms))
		if !ok {
			return fmt.Errorf("unknown method %q", ms)
		}
		if (*slot)[m].set {
			return fmt.Errorf("method %s repeats an earlier rule for the same path", ms)
		}
		(*slot)[m] = entry{set: true, a: a}
	}
	return nil
}

func splitPattern(p string) []string {
	var segs []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs
}

// Vocabulary returns the messages the table can produce.
func (t *Table) Vocabulary() *core.Vocabulary { return &t.voc }

// FormOverride reports whether form-encoded method overrides apply.
func (t *Table) FormOverride() bool { return t.formOverride }

// Match classifies a request by method and path, the path being relative to
// the user's root ("/events/abc"). Empty segments are ignored. It does not
// allocate.
func (t *Table) Match(meth, path []byte) Action {
	m, ok := parseMethod(meth)
	if !ok {
		return Action{}
	}
	a, _ := t.root.match(path, m)
	return a
}

func (n *node) match(path []byte, m method) (Action, bool) {
	seg, rest := nextSegment(path)
	if seg == nil {
		if n.term != nil && n.term[m].set {
			return n.term[m].a, true
		}
		if n.rest != nil && n.rest[m].set {
			return n.rest[m].a, true
		}
		return Action{}, false
	}
	if c := n.lit[string(seg)]; c != nil {
		if a, ok := c.match(rest, m); ok {
			return a, true
		}
	}
	if n.star != nil {
		if a, ok := n.star.match(rest, m); ok {
			return a, true
		}
	}
	if n.rest != nil && n.rest[m].set {
		return n.rest[m].a, true
	}
	return Action{}, false
}

// nextSegment returns the first non-empty segment of path and what follows
// it, or a nil segment when there is none.
func nextSegment(path []byte) (seg, rest []byte) {
	for len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	if len(path) == 0 {
		return nil, nil
	}
	for i, c := range path {
		if c == '/' {
			return path[:i], path[i:]
		}
	}
	return path, nil
}
