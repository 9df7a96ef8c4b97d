package gateway

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/rules"
	"github.com/hookgate/hookgate/gateway/wsframe"
)

var (
	sioPackets  = metrics.NewCounter(`hookgate_socketio_packets_total`)
	sioUnparsed = metrics.NewCounter(`hookgate_socketio_unparsed_total`)
	sioChanges  = metrics.NewCounter(`hookgate_socketio_changes_total`)
	wsFrames    = metrics.NewCounter(`hookgate_websocket_frames_total`)
)

// Socket.io packet types (socket.io protocol v4 and v5).
const (
	sioEvent       = '2'
	sioAck         = '3'
	sioBinaryEvent = '5'
	sioBinaryAck   = '6'
)

// sioPacket is the socket.io packet of an Engine.IO message packet.
type sioPacket struct {
	typ  byte
	nsp  string // "/" when the packet names none
	id   int64  // the acknowledgement id; -1 when none
	data []byte // the JSON array of the event or acknowledgement
}

// parseSIO reads msg as an Engine.IO message ('4') holding a socket.io
// packet: type, binary attachments count and '-' for binary packets,
// namespace and ',' if not "/", acknowledgement id, JSON data. ok is
// false for anything else (Engine.IO pings, malformed packets).
func parseSIO(msg []byte) (p sioPacket, ok bool) {
	if len(msg) < 2 || msg[0] != '4' {
		return p, false
	}
	p.typ, msg = msg[1], msg[2:]
	if p.typ < '0' || p.typ > '6' {
		return p, false
	}
	if p.typ == sioBinaryEvent || p.typ == sioBinaryAck {
		i := bytes.IndexByte(msg, '-')
		if i < 1 || !digits(msg[:i]) {
			return p, false
		}
		msg = msg[i+1:]
	}
	p.nsp = "/"
	if len(msg) > 0 && msg[0] == '/' {
		i := bytes.IndexByte(msg, ',')
		if i < 0 {
			p.nsp = string(msg)
			return p, p.typ != sioEvent && p.typ != sioAck && p.typ != sioBinaryEvent && p.typ != sioBinaryAck
		}
		p.nsp, msg = string(msg[:i]), msg[i+1:]
	}
	i := 0
	for i < len(msg) && msg[i] >= '0' && msg[i] <= '9' {
		i++
	}
	p.id = -1
	if i > 0 {
		id, err := strconv.ParseInt(string(msg[:i]), 10, 64)
		if err != nil {
			return p, false
		}
		p.id = id
	}
	p.data = msg[i:]
	return p, true
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// sioCall is a method call waiting for its acknowledgement.
type sioCall struct {
	set     core.MessageSet
	batch   []core.MessageSet // a callBatch's calls
	deleted string            // an accesses.delete's access id
}

type sioKey struct {
	nsp string
	id  int64
}

// maxSIOCalls bounds the calls one connection may leave waiting for an
// acknowledgement; past it the oldest are forgotten (a client that never
// reads its acknowledgements).
const maxSIOCalls = 10_000

// sioTracker follows the socket.io packets of one upgraded connection:
// it pairs each method call that may change data with its
// acknowledgement and, when that carries no error, records the change
// for the namespace's user, before the acknowledgement goes on to the
// client (the same durability as an HTTP answer). Reads, errors and
// packets it cannot read change nothing and pass as they are.
type sioTracker struct {
	g     *Gateway
	t     *rules.Table
	mu    sync.Mutex
	calls map[sioKey]sioCall
	order []sioKey // for the bound

	client, server wsframe.Reader
}

func (g *Gateway) newSIOTracker() *sioTracker {
	s := &sioTracker{g: g, t: g.table.Load(), calls: map[sioKey]sioCall{}}
	s.client = wsframe.Reader{Max: g.opts.MaxClassifyBody, OnText: s.fromClient}
	s.server = wsframe.Reader{Max: g.opts.MaxClassifyBody, OnText: s.fromServer}
	return s
}

// countedPacket is parseSIO, counting what it read: a socket.io packet,
// or an Engine.IO message that was none.
func countedPacket(msg []byte) (sioPacket, bool) {
	p, ok := parseSIO(msg)
	switch {
	case ok:
		sioPackets.Inc()
	case len(msg) > 0 && msg[0] == '4':
		sioUnparsed.Inc()
	}
	return p, ok
}

// fromClient reads a message the client sent: a call to remember.
func (s *sioTracker) fromClient(msg []byte) {
	p, ok := countedPacket(msg)
	if !ok || (p.typ != sioEvent && p.typ != sioBinaryEvent) || p.id < 0 {
		return
	}
	var args []json.RawMessage
	if json.Unmarshal(p.data, &args) != nil || len(args) == 0 {
		sioUnparsed.Inc()
		return
	}
	var method string
	if json.Unmarshal(args[0], &method) != nil {
		return
	}
	var c sioCall
	if method == "callBatch" && len(args) > 1 {
		calls, ok := s.t.BatchCalls(args[1])
		if !ok {
			c.set = s.t.Vocabulary().All() // unreadable: never miss a change
		} else {
			c.batch = calls
			c.set = unionOf(calls)
		}
	} else {
		c.set = s.t.Method(method)
	}
	if c.set == 0 {
		return // a read
	}
	if method == "accesses.delete" && len(args) > 1 {
		var params struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(args[1], &params)
		c.deleted = params.ID
	}
	k := sioKey{p.nsp, p.id}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.calls[k]; !ok {
		s.order = append(s.order, k)
	}
	s.calls[k] = c
	for len(s.order) > maxSIOCalls {
		delete(s.calls, s.order[0])
		s.order = s.order[1:]
	}
}

// fromServer reads a message the server sent: an acknowledgement of a
// call that may change data is recorded, when it carries no error.
func (s *sioTracker) fromServer(msg []byte) {
	p, ok := countedPacket(msg)
	if !ok || (p.typ != sioAck && p.typ != sioBinaryAck) || p.id < 0 {
		return
	}
	k := sioKey{p.nsp, p.id}
	s.mu.Lock()
	c, ok := s.calls[k]
	if ok {
		delete(s.calls, k) // its key stays in order until it comes first: harmless
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	user := []byte(p.nsp[1:])
	if !core.ValidUsername(user) || core.ReservedRoot(user) {
		return
	}
	var args []json.RawMessage
	if json.Unmarshal(p.data, &args) != nil {
		args = nil // unreadable: counted as a success, never a missed change
		sioUnparsed.Inc()
	}
	if len(args) > 0 {
		if e := bytes.TrimSpace(args[0]); len(e) > 0 && !bytes.Equal(e, []byte("null")) {
			return // acknowledged with an error: nothing changed
		}
	}
	var result []byte
	if len(args) > 1 {
		result = args[1]
	}
	set := c.set
	if c.batch != nil && result != nil {
		set = rules.BatchResults(c.batch, result)
	}
	if set == 0 {
		return
	}
	var touches []core.Touch
	if s.g.scoped(user) {
		if c.batch != nil {
			touches = s.t.BatchTouches(c.batch, result)
		} else {
			touches = s.t.CallTouches(set, result)
		}
		s.g.learnStreams(user, touches)
	}
	var deleted []string
	if c.deleted != "" {
		deleted = []string{c.deleted}
		s.g.access.forget(string(user), c.deleted)
	}
	sioChanges.Inc()
	s.g.markIn(s.t.Vocabulary(), user, set, deleted, touches)
}

// Over socket.io's long-polling transport, a session's packets travel in
// ordinary requests under one Engine.IO sid: the client's calls in the
// bodies of its POSTs, the server's acknowledgements in the answers to
// its GETs, packets separated by a record separator (Engine.IO v4).
// hookgate follows each session as it follows a WebSocket connection.

// pollIdle is how long a polling session's calls are remembered without
// a request: far past Engine.IO's ping interval and timeout (25 s + 20 s).
const pollIdle = 2 * time.Minute

// maxPolls bounds the polling sessions followed at once.
const maxPolls = 100_000

type pollSession struct {
	s    *sioTracker
	last atomic.Int64 // Unix nanoseconds of its latest request
}

// pollingSID returns the Engine.IO sid of a long-polling request of
// socket.io (/socket.io/?EIO=4&transport=polling&sid=...), or nil. It
// allocates nothing for other requests.
func pollingSID(ctx *fasthttp.RequestCtx) []byte {
	if !bytes.HasPrefix(ctx.Path(), []byte("/socket.io/")) {
		return nil
	}
	q := ctx.QueryArgs()
	if string(q.Peek("transport")) != "polling" {
		return nil
	}
	return q.Peek("sid")
}

// pollSession returns the session of sid, new if need be; nil past
// maxPolls.
func (g *Gateway) pollSession(sid []byte) *pollSession {
	now := time.Now().UnixNano()
	if v, ok := g.polls.Load(string(sid)); ok {
		p := v.(*pollSession)
		p.last.Store(now)
		return p
	}
	if g.pollCount.Load() >= maxPolls {
		g.sweepPolls(now)
		if g.pollCount.Load() >= maxPolls {
			return nil
		}
	}
	p := &pollSession{s: g.newSIOTracker()}
	p.last.Store(now)
	if v, loaded := g.polls.LoadOrStore(string(sid), p); loaded {
		return v.(*pollSession)
	}
	if g.pollCount.Add(1)%1024 == 0 {
		g.sweepPolls(now)
	}
	return p
}

// sweepPolls forgets the sessions idle for pollIdle.
func (g *Gateway) sweepPolls(now int64) {
	g.polls.Range(func(k, v any) bool {
		if now-v.(*pollSession).last.Load() > int64(pollIdle) {
			g.polls.Delete(k)
			g.pollCount.Add(-1)
		}
		return true
	})
}

// pollFromClient reads the packets of a polling POST's body.
func (g *Gateway) pollFromClient(ctx *fasthttp.RequestCtx, sid []byte) {
	if body, ok := g.readRequestBody(ctx); ok { // past -max-classify-body: passed on unread
		g.pollRead(sid, body, (*sioTracker).fromClient)
	}
}

// pollFromServer reads the packets of the answer to a polling GET,
// before the client has it.
func (g *Gateway) pollFromServer(ctx *fasthttp.RequestCtx, sid []byte) {
	if body, ok := g.readResponseBody(ctx); ok {
		g.pollRead(sid, body, (*sioTracker).fromServer)
	}
}

// pollRead gives each packet of a polling payload, separated by a record
// separator, to read for sid's session.
func (g *Gateway) pollRead(sid, payload []byte, read func(*sioTracker, []byte)) {
	p := g.pollSession(sid)
	if p == nil {
		return
	}
	for pkt := range bytes.SplitSeq(payload, []byte{0x1e}) {
		read(p.s, pkt)
	}
}
