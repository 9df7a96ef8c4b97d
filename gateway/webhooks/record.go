package webhooks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	json "github.com/goccy/go-json"

	"github.com/hookgate/hookgate/core"
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
//
// each string as a uvarint length and its bytes. Records written as JSON
// (stored, first byte '{') by earlier versions are read too, and written
// in the binary form the next time they change.
const recordV1 = 1

const (
	flagSigned = 1 << iota
	flagCreatedByAccess
	flagModifiedByCreator
)

// maxRecord bounds a record's length: far above any valid webhook (its
// URL is at most a few KiB), far below what could hurt.
const maxRecord = 1 << 20

// appendRecord appends w's binary record to b, with secret in place of
// w.Secret.
func appendRecord(b []byte, w *core.Webhook, secret string) []byte {
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
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
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
	if r.err != nil {
		return ""
	}
	n, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 || n > uint64(len(r.b)-r.off-k) {
		r.err = errRecord
		return ""
	}
	r.off += k
	s := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// decodeBinary decodes a binary record into w, and returns its secret as
// stored. w's strings share one copy of v.
func decodeBinary(v []byte, w *core.Webhook) (secret string, err error) {
	if len(v) < 3 || v[0] != recordV1 || len(v) > maxRecord {
		return "", errRecord
	}
	r := &recordReader{b: v, s: string(v), off: 3}
	flags, st := v[1], v[2]
	if flags&^(flagSigned|flagCreatedByAccess|flagModifiedByCreator) != 0 || st > 2 {
		return "", errRecord
	}
	w.Signed = flags&flagSigned != 0
	w.MinIntervalMs = r.varint()
	w.MaxRetries, w.CurrentRetries, w.RunCount, w.FailCount, w.LastRun.Status = r.int(), r.int(), r.int(), r.int(), r.int()
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
	if r.err == nil && r.off != len(v) {
		r.err = errRecord
	}
	return secret, r.err
}

// decodeRecord decodes a stored record, binary or JSON, and opens its
// secret. Runs are set only for a JSON record that carries them.
func decodeRecord(v []byte, sealer *Sealer) (*core.Webhook, error) {
	w := &core.Webhook{}
	var secret string
	if len(v) > 0 && v[0] == '{' {
		var st stored
		if err := json.Unmarshal(v, &st); err != nil || st.Webhook == nil {
			return nil, fmt.Errorf("unreadable webhook record %.60q: %v", v, err)
		}
		w, secret = st.Webhook, st.Secret
		w.User = st.User
		compact(w)
	} else {
		var err error
		if secret, err = decodeBinary(v, w); err != nil {
			return nil, fmt.Errorf("unreadable webhook record %.60q: %w", v, err)
		}
	}
	if w.ID == "" {
		return nil, fmt.Errorf("webhook record %.60q has no id", v)
	}
	var err error
	if w.Secret, err = sealer.Open(w.ID, secret); err != nil {
		return nil, fmt.Errorf("webhook %s: %w", w.ID, err)
	}
	return w, nil
}
