package core

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// Marker is a durable record that a user's data changed: written to the
// change queue by the gateway before the client gets its answer, read by the
// dispatcher. It carries no data, only which kinds of data changed.
type Marker struct {
	// User is the username whose data changed.
	User string
	// Messages are the notification messages the change causes, without
	// duplicates.
	Messages []string
	// Time is when the gateway accepted the change, in Unix nanoseconds.
	Time int64
	// DeletedAccesses are the ids of accesses the change deleted: their
	// webhooks get this notification, then turn inactive.
	DeletedAccesses []string
	// Touches are what the change touched, for scoped webhooks; nil when
	// the gateway did not look (no scoped webhook of the user) or could
	// not tell.
	Touches []Touch
}

const (
	markerVersion = 1
	// markerVersion2 adds the deleted access ids after the messages.
	markerVersion2 = 2
	// markerVersion3 adds, after the messages, a byte of flags
	// (extraDeleted, extraTouches), then the deleted access ids and the
	// touches the flags announce.
	markerVersion3 = 3
)

const (
	extraDeleted = 1 << iota
	extraTouches
)

// Limits of a marker's fields; longer values are refused by AppendMarker's
// callers and by DecodeMarker.
const (
	MaxUserLen    = 255
	MaxMessageLen = 255
)

// ErrBadMarker is returned by DecodeMarker for a record that is not a marker
// this version can read.
var ErrBadMarker = errors.New("core: malformed change marker")

// AppendMarker appends the encoding of a marker for user with the messages
// of set in voc, accepted at unixNano, to dst and returns the extended slice.
// It does not allocate when dst has room. user must be at most MaxUserLen
// bytes; longer users are truncated, which never happens for valid Pryv
// usernames.
func AppendMarker(dst []byte, unixNano int64, user []byte, voc *Vocabulary, set MessageSet) []byte {
	dst = append(dst, markerVersion)
	dst = binary.AppendVarint(dst, unixNano)
	dst = appendShort(dst, user)
	n := set.Len()
	dst = append(dst, byte(n))
	for s := set; s != 0; {
		i := bits.TrailingZeros64(uint64(s))
		s &^= 1 << i
		if i < len(voc.names) {
			dst = appendShort(dst, []byte(voc.names[i]))
		} else {
			panic("BUG: message set holds a bit its vocabulary does not name")
		}
	}
	return dst
}

// AppendDeletedAccesses turns a marker just written by AppendMarker (the
// whole of rec) into one that also names deleted accesses.
func AppendDeletedAccesses(rec []byte, ids []string) []byte {
	if len(ids) == 0 {
		return rec
	}
	rec[0] = markerVersion2
	n := min(len(ids), 255)
	rec = append(rec, byte(n))
	for _, id := range ids[:n] {
		rec = appendShort(rec, []byte(id))
	}
	return rec
}

// AppendExtras turns a marker just written by AppendMarker (the whole of
// rec) into one that also names deleted accesses and carries touches.
// Past MaxTouches touches, it carries none, which matches every scope.
func AppendExtras(rec []byte, deleted []string, touches []Touch) []byte {
	if len(touches) > MaxTouches {
		touches = nil
	}
	if len(touches) == 0 {
		return AppendDeletedAccesses(rec, deleted)
	}
	rec[0] = markerVersion3
	flags := byte(extraTouches)
	if len(deleted) > 0 {
		flags |= extraDeleted
	}
	rec = append(rec, flags)
	if len(deleted) > 0 {
		n := min(len(deleted), 255)
		rec = append(rec, byte(n))
		for _, id := range deleted[:n] {
			rec = appendShort(rec, []byte(id))
		}
	}
	rec = append(rec, byte(len(touches)))
	for _, t := range touches {
		ss := t.Streams[:min(len(t.Streams), MaxTouchStreams)]
		rec = append(rec, t.Kind, byte(len(ss)))
		for _, id := range ss {
			rec = appendShort(rec, []byte(id))
		}
		rec = appendShort(rec, []byte(t.Type))
	}
	return rec
}

// AppendMarkerNames is AppendMarker for messages given by name.
func AppendMarkerNames(dst []byte, unixNano int64, user string, names []string) []byte {
	dst = append(dst, markerVersion)
	dst = binary.AppendVarint(dst, unixNano)
	dst = appendShort(dst, []byte(user))
	dst = append(dst, byte(len(names)))
	for _, n := range names {
		dst = appendShort(dst, []byte(n))
	}
	return dst
}

func appendShort(dst, s []byte) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	dst = append(dst, byte(len(s)))
	return append(dst, s...)
}

// MarkerUser returns the user of an encoded marker, a view of rec,
// without decoding the rest; false for a record that does not start as
// a marker does.
func MarkerUser(rec []byte) ([]byte, bool) {
	if len(rec) < 1 || rec[0] < markerVersion || rec[0] > markerVersion3 {
		return nil, false
	}
	_, n := binary.Varint(rec[1:])
	if n <= 0 {
		return nil, false
	}
	user, _, ok := readShort(rec[1+n:])
	return user, ok && len(user) > 0
}

// DecodeMarker decodes a record written by AppendMarker. The returned
// marker does not reference rec.
func DecodeMarker(rec []byte) (Marker, error) {
	var m Marker
	if len(rec) < 1 || rec[0] < markerVersion || rec[0] > markerVersion3 {
		return m, ErrBadMarker
	}
	version := rec[0]
	rec = rec[1:]
	t, n := binary.Varint(rec)
	if n <= 0 || n != len(binary.AppendVarint(make([]byte, 0, binary.MaxVarintLen64), t)) {
		return m, ErrBadMarker // truncated, or not the shortest encoding
	}
	m.Time = t
	rec = rec[n:]
	user, rec, ok := readShort(rec)
	if !ok || len(user) == 0 {
		return m, ErrBadMarker
	}
	m.User = string(user)
	if len(rec) < 1 {
		return m, ErrBadMarker
	}
	count := int(rec[0])
	rec = rec[1:]
	if count > MaxMessages {
		return m, ErrBadMarker
	}
	m.Messages = make([]string, 0, count)
	for range count {
		var name []byte
		name, rec, ok = readShort(rec)
		if !ok || len(name) == 0 {
			return m, ErrBadMarker
		}
		m.Messages = append(m.Messages, string(name))
	}
	var flags byte
	switch version {
	case markerVersion2:
		flags = extraDeleted
	case markerVersion3:
		// Without touches, a marker is written as version 1 or 2.
		if len(rec) < 1 || rec[0]&extraTouches == 0 || rec[0]&^(extraDeleted|extraTouches) != 0 {
			return m, ErrBadMarker
		}
		flags, rec = rec[0], rec[1:]
	}
	if flags&extraDeleted != 0 {
		if len(rec) < 1 || rec[0] == 0 {
			return m, ErrBadMarker
		}
		count := int(rec[0])
		rec = rec[1:]
		for range count {
			var id []byte
			id, rec, ok = readShort(rec)
			if !ok || len(id) == 0 {
				return m, ErrBadMarker
			}
			m.DeletedAccesses = append(m.DeletedAccesses, string(id))
		}
	}
	if flags&extraTouches != 0 {
		if rec, ok = decodeTouches(&m, rec); !ok {
			return m, ErrBadMarker
		}
	}
	if len(rec) != 0 {
		return m, ErrBadMarker
	}
	return m, nil
}

func decodeTouches(m *Marker, rec []byte) ([]byte, bool) {
	if len(rec) < 1 || rec[0] == 0 || rec[0] > MaxTouches {
		return nil, false
	}
	m.Touches = make([]Touch, rec[0])
	rec = rec[1:]
	for i := range m.Touches {
		if len(rec) < 2 || (rec[0] != TouchEvent && rec[0] != TouchStream) || rec[1] > MaxTouchStreams {
			return nil, false
		}
		t := &m.Touches[i]
		t.Kind = rec[0]
		n := int(rec[1])
		rec = rec[2:]
		if n > 0 {
			t.Streams = make([]string, n)
		}
		for j := range n {
			id, rest, ok := readShort(rec)
			if !ok || len(id) == 0 {
				return nil, false
			}
			t.Streams[j], rec = string(id), rest
		}
		typ, rest, ok := readShort(rec)
		if !ok {
			return nil, false
		}
		t.Type, rec = string(typ), rest
	}
	return rec, true
}

func readShort(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, nil, false
	}
	n := int(b[0])
	return b[1 : 1+n], b[1+n:], true
}
