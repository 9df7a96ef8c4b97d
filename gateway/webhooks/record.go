package webhooks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unsafe"

	json "github.com/goccy/go-json"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/state"
)

// A record is stored in a binary form, which loads several times faster
// than JSON and holds each webhook's strings in one allocation:
//
//	byte     recordV1
//	byte     flags: signed, createdBy = accessId, modifiedBy = createdBy
//	byte     state: 1 active, 2 inactive, 0 spelled out below
//	varint   minIntervalMs, maxRetries, currentRetries, runCount,
//	         failCount, lastRun.status
//	8 bytes  lastRun.timestamp, created, modified (float64 bits)
//	strings  id, user, accessId, url, [createdBy], [modifiedBy],
//	         secret (sealed when the store has a key), [state]
//	[scopes] uvarint count, then per scope: key, kind, and three lists
//	         of strings (streams, types, the prepared streams), each a
//	         uvarint count and its strings
//	[rotation] 8 bytes previousUntil (float64 bits), then the previous
//	         secret (sealed as the secret is)
//
// each string as a uvarint length and its bytes. Records written as JSON
// (stored, first byte '{') by earlier versions are read too, and written
// in the binary form the next time they change.
const recordV1 = 1

const (
	flagSigned = 1 << iota
	flagCreatedByAccess
	flagModifiedByCreator
	flagScoped
	flagRotating
)

// maxRecord bounds a record's length: far above any valid webhook (its
// URL is at most a few KiB), far below what could hurt.
const maxRecord = 1 << 20

// appendRecord appends w's binary record to b, with secret and previous
// in place of w.Secret and w.PreviousSecret.
func appendRecord(b []byte, w *core.Webhook, secret, previous string) []byte {
	var flags, st byte
	if w.Signed {
		flags |= flagSigned
	}
	if w.CreatedBy == w.AccessID {
		flags |= flagCreatedByAccess
	}
	if w.ModifiedBy == w.CreatedBy {
		flags |= flagModifiedByCreator
	}
	if w.Scopes != nil {
		flags |= flagScoped
	}
	if w.PreviousSecret != "" {
		flags |= flagRotating
	}
	switch w.State {
	case core.StateActive:
		st = 1
	case core.StateInactive:
		st = 2
	}
	b = append(b, recordV1, flags, st)
	b = binary.AppendVarint(b, w.MinIntervalMs)
	for _, n := range []int{w.MaxRetries, w.CurrentRetries, w.RunCount, w.FailCount, w.LastRun.Status} {
		b = binary.AppendVarint(b, int64(n))
	}
	for _, f := range []float64{w.LastRun.Timestamp, w.Created, w.Modified} {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(f))
	}
	strs := []string{w.ID, w.User, w.AccessID, w.URL}
	if flags&flagCreatedByAccess == 0 {
		strs = append(strs, w.CreatedBy)
	}
	if flags&flagModifiedByCreator == 0 {
		strs = append(strs, w.ModifiedBy)
	}
	strs = append(strs, secret)
	if st == 0 {
		strs = append(strs, w.State)
	}
	for _, s := range strs {
		b = appendString(b, s)
	}
	if w.Scopes != nil {
		b = binary.AppendUvarint(b, uint64(len(w.Scopes.List)))
		for _, sc := range w.Scopes.List {
			b = appendString(appendString(b, sc.Key), sc.Kind)
			for _, list := range [...][]string{sc.Streams, sc.Types, sc.Within} {
				b = binary.AppendUvarint(b, uint64(len(list)))
				for _, s := range list {
					b = appendString(b, s)
				}
			}
		}
	}
	if w.PreviousSecret != "" {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(w.PreviousUntil))
		b = appendString(b, previous)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errRecord = errors.New("truncated or malformed")

// recordReader reads a binary record; the first error sticks.
type recordReader struct {
	b   []byte
	s   string // b as one string: the record's strings are parts of it
	off int
	err error
}

func (r *recordReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.err = errRecord
		return 0
	}
	r.off += n
	return v
}

func (r *recordReader) int() int {
	v := r.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.err = errRecord
		return 0
	}
	return int(v)
}

// count is int for what cannot be negative: runCount, failCount,
// currentRetries.
func (r *recordReader) count() int {
	n := r.int()
	if n < 0 {
		r.err = errRecord
		return 0
	}
	return n
}

// scopes reads the scopes of a record. Their strings are copies: they
// outlive a borrowed record.
func (r *recordReader) scopes() *core.Scopes {
	n := r.length(core.MaxScopes)
	if r.err != nil || n == 0 {
		r.err = errRecord
		return nil
	}
	s := &core.Scopes{List: make([]core.Scope, n)}
	for i := range s.List {
		sc := &s.List[i]
		sc.Key, sc.Kind = strings.Clone(r.str()), strings.Clone(r.str())
		for _, list := range [...]*[]string{&sc.Streams, &sc.Types, &sc.Within} {
			m := r.length(maxRecord)
			if m > 0 && r.err == nil {
				*list = make([]string, m)
				for j := range *list {
					(*list)[j] = strings.Clone(r.str())
				}
			}
		}
	}
	if r.err != nil {
		return nil
	}
	return s
}

// length reads a count of at most limit.
func (r *recordReader) length(limit int) int {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 || n > uint64(limit) || n > uint64(len(r.b)-r.off) {
		r.err = errRecord
		return 0
	}
	r.off += k
	return int(n)
}

func (r *recordReader) float() float64 {
	if r.err != nil || len(r.b)-r.off < 8 {
		r.err = errRecord
		return 0
	}
	f := math.Float64frombits(binary.BigEndian.Uint64(r.b[r.off:]))
	r.off += 8
	return f
}

func (r *recordReader) str() string {
	from, to := r.span()
	return r.s[from:to]
}

// field reads a length and as many bytes.
func (r *recordReader) field() []byte {
	from, to := r.span()
	return r.b[from:to]
}

// span reads a length and skips as many bytes, and returns where they
// are.
func (r *recordReader) span() (from, to int) {
	if r.err != nil {
		return 0, 0
	}
	n, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 || n > uint64(len(r.b)-r.off-k) {
		r.err = errRecord
		return 0, 0
	}
	from = r.off + k
	r.off = from + int(n)
	return from, r.off
}

// decodeBinary decodes a binary record into w, and returns its secret and
// previous secret as stored. w's strings share one copy of v; with borrow set they are views
// of v itself, valid only while v is, for a caller that copies them
// before v goes (the load, which packs each record at once).
func decodeBinary(v []byte, w *core.Webhook, borrow bool) (secret, previous string, err error) {
	if len(v) < 3 || v[0] != recordV1 || len(v) > maxRecord {
		return "", "", errRecord
	}
	r := &recordReader{b: v, off: 3}
	if borrow {
		r.s = unsafe.String(unsafe.SliceData(v), len(v))
	} else {
		r.s = string(v)
	}
	flags, st := v[1], v[2]
	if flags&^(flagSigned|flagCreatedByAccess|flagModifiedByCreator|flagScoped|flagRotating) != 0 || st > 2 {
		return "", "", errRecord
	}
	w.Signed = flags&flagSigned != 0
	w.MinIntervalMs = r.varint()
	w.MaxRetries, w.CurrentRetries, w.RunCount, w.FailCount, w.LastRun.Status = r.int(), r.count(), r.count(), r.count(), r.int()
	w.LastRun.Timestamp, w.Created, w.Modified = r.float(), r.float(), r.float()
	w.ID, w.User, w.AccessID, w.URL = r.str(), r.str(), r.str(), r.str()
	w.CreatedBy = w.AccessID
	if flags&flagCreatedByAccess == 0 {
		w.CreatedBy = r.str()
	}
	w.ModifiedBy = w.CreatedBy
	if flags&flagModifiedByCreator == 0 {
		w.ModifiedBy = r.str()
	}
	secret = r.str()
	switch st {
	case 1:
		w.State = core.StateActive
	case 2:
		w.State = core.StateInactive
	default:
		w.State = r.str()
	}
	if flags&flagScoped != 0 {
		w.Scopes = r.scopes()
	}
	if flags&flagRotating != 0 {
		w.PreviousUntil = r.float()
		if previous = strings.Clone(r.str()); previous == "" && r.err == nil {
			r.err = errRecord // the flag says there is one
		}
	}
	if r.err == nil && r.off != len(v) {
		r.err = errRecord
	}
	return secret, previous, r.err
}

// decodeRecord decodes a stored record, binary or JSON, and opens its
// secret. Runs are set only for a JSON record that carries them.
func decodeRecord(v []byte, sealer *Sealer) (*core.Webhook, error) {
	return decodeInto(v, sealer, new(core.Webhook), false)
}

// decodeInto is decodeRecord into w for a binary record, with its
// strings views of v when borrow is set (see decodeBinary); a JSON
// record gets a webhook of its own.
func decodeInto(v []byte, sealer *Sealer, w *core.Webhook, borrow bool) (*core.Webhook, error) {
	var secret, previous string
	if len(v) > 0 && v[0] == '{' { // written by an earlier version
		var st stored
		if err := json.Unmarshal(v, &st); err != nil || st.Webhook == nil {
			return nil, fmt.Errorf("unreadable webhook record %.60q: %v", v, err)
		}
		w, secret = st.Webhook, st.Secret
		w.User = st.User
	} else {
		*w = core.Webhook{}
		var err error
		if secret, previous, err = decodeBinary(v, w, borrow); err != nil {
			return nil, fmt.Errorf("unreadable webhook record %.60q: %w", v, err)
		}
	}
	if w.ID == "" {
		return nil, fmt.Errorf("webhook record %.60q has no id", v)
	}
	if w.RunCount < 0 || w.FailCount < 0 || w.CurrentRetries < 0 {
		return nil, fmt.Errorf("webhook record %.60q has a negative count", v)
	}
	var err error
	if w.Secret, err = sealer.Open(w.ID, secret); err != nil {
		return nil, fmt.Errorf("webhook %s: %w", w.ID, err)
	}
	if previous != "" {
		if w.PreviousSecret, err = sealer.Open(w.ID, previous); err != nil {
			return nil, fmt.Errorf("webhook %s, previous secret: %w", w.ID, err)
		}
	}
	return w, nil
}

// Counters are stored apart from the record, under their own key, so
// that recording a run rewrites some 20 bytes and not the whole record:
//
//	byte     countersV1
//	byte     state, as in a record
//	varint   runCount, failCount, currentRetries, lastRun.status
//	8 bytes  lastRun.timestamp
//	[string] state
//
// Every write of a record writes its counters too, in the same
// transaction; where they are found, they override the record's.
//
// Version 2 adds, after the last run's time, the modification time of
// the record the state and retries were decided on
// (state.Counters.Basis); version 1 is still read, with none.
//
// Version 3 is version 2 followed by the runs that the write adds, so
// that a cluster stores a run and the counters it changed as one entry
// (appendCountersRuns):
//
//	uvarint  number of runs
//	per run: uvarint length, then the run's value (runValue)
const (
	countersV1 = 1
	countersV2 = 2
	countersV3 = 3
)

func appendCounters(b []byte, c state.Counters) []byte { return appendCountersV(b, c, countersV2) }

// appendCountersRuns appends c and runs, numbered from first, in version 3.
func appendCountersRuns(b []byte, c state.Counters, first int, runs []core.Run) []byte {
	b = appendCountersV(b, c, countersV3)
	b = binary.AppendUvarint(b, uint64(len(runs)))
	for i, run := range runs {
		v := runValue(first+i, run)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

func appendCountersV(b []byte, c state.Counters, version byte) []byte {
	var st byte
	switch c.State {
	case core.StateActive:
		st = 1
	case core.StateInactive:
		st = 2
	}
	b = append(b, version, st)
	for _, n := range []int{c.RunCount, c.FailCount, c.CurrentRetries, c.LastRun.Status} {
		b = binary.AppendVarint(b, int64(n))
	}
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.LastRun.Timestamp))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.Basis))
	if st == 0 {
		b = appendString(b, c.State)
	}
	return b
}

func decodeCounters(v []byte) (state.Counters, error) {
	c, _, err := decodeCountersV(v, false)
	return c, err
}

// decodeCountersRuns decodes counters of any version, and the runs of
// version 3.
func decodeCountersRuns(v []byte) (state.Counters, []state.Numbered, error) {
	return decodeCountersV(v, true)
}

// decodeCountersV decodes counters, and the runs of version 3 if runs
// is set; otherwise it checks only their lengths (every instance's watch
// reads every counters' entry, and needs no runs).
func decodeCountersV(v []byte, runs bool) (state.Counters, []state.Numbered, error) {
	var c state.Counters
	if len(v) < 2 || v[0] < countersV1 || v[0] > countersV3 || v[1] > 2 || len(v) > maxRecord {
		return c, nil, errRecord
	}
	r := &recordReader{b: v, off: 2}
	c.RunCount, c.FailCount, c.CurrentRetries, c.LastRun.Status = r.count(), r.count(), r.count(), r.int()
	c.LastRun.Timestamp = r.float()
	if v[0] >= countersV2 {
		c.Basis = r.float()
	}
	switch v[1] {
	case 1:
		c.State = core.StateActive
	case 2:
		c.State = core.StateInactive
	default:
		r.s = string(v[r.off:])
		r.b, r.off = v[r.off:], 0
		c.State = r.str()
	}
	var numbered []state.Numbered
	if v[0] == countersV3 && r.err == nil {
		n := r.length(len(r.b) - r.off) // each run takes a byte or more
		for range n {
			f := r.field()
			if r.err != nil {
				break
			}
			if runs {
				run, err := decodeRun(f)
				if err != nil {
					return c, nil, err
				}
				numbered = append(numbered, run)
			}
		}
	}
	if r.err == nil && r.off != len(r.b) {
		r.err = errRecord
	}
	if r.err != nil {
		return c, nil, r.err
	}
	return c, numbered, nil
}

// A run is stored under ringKey(id, n), in one of RunsKept keys that
// recording overwrites in turn, so that a run costs one write and no
// deletion. Its value is the run's number and the run:
//
//	8 bytes  n
//	4 bytes  status
//	8 bytes  timestamp (float64 bits)
//	4 bytes  duration in microseconds         } absent in runs stored
//	1 byte   error class (core.RunErrors)     } by earlier versions,
//	byte, bytes  the answer's first bytes     } 20 bytes long
func runValue(n int, r core.Run) []byte {
	answer := r.Answer[:min(len(r.Answer), core.MaxRunAnswer)]
	b := make([]byte, 0, 26+len(answer))
	b = binary.BigEndian.AppendUint64(b, uint64(n))
	b = binary.BigEndian.AppendUint32(b, uint32(int32(r.Status)))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.Timestamp))
	us := math.Round(r.DurationMs * 1000)
	b = binary.BigEndian.AppendUint32(b, uint32(max(0, min(us, math.MaxUint32))))
	b = append(b, byte(core.RunErrorIndex(r.Error)), byte(len(answer)))
	return append(b, answer...)
}

func decodeRun(v []byte) (state.Numbered, error) {
	if len(v) != 20 && (len(v) < 26 || len(v) != 26+int(v[25])) {
		return state.Numbered{}, fmt.Errorf("run record of %d bytes; want 20, or 26 and its answer", len(v))
	}
	n := binary.BigEndian.Uint64(v)
	if n == 0 || n > math.MaxInt32 {
		return state.Numbered{}, fmt.Errorf("run number %d", n)
	}
	r := core.Run{Status: int(int32(binary.BigEndian.Uint32(v[8:]))), Timestamp: math.Float64frombits(binary.BigEndian.Uint64(v[12:]))}
	if len(v) > 20 {
		if int(v[24]) >= len(core.RunErrors) || int(v[25]) > core.MaxRunAnswer {
			return state.Numbered{}, fmt.Errorf("run record with error class %d and an answer of %d bytes", v[24], v[25])
		}
		r.DurationMs = float64(binary.BigEndian.Uint32(v[20:])) / 1000
		r.Error = core.RunErrors[v[24]]
		r.Answer = string(v[26:])
	}
	return state.Numbered{N: int(n), Run: r}, nil
}
