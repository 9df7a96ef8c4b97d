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
}

const (
	markerVersion = 1
	// markerVersion2 adds the deleted access ids after the messages.
	markerVersion2 = 2
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

// DecodeMarker decodes a record written by AppendMarker. The returned
// marker does not reference rec.
func DecodeMarker(rec []byte) (Marker, error) {
	var m Marker
	if len(rec) < 1 || (rec[0] != markerVersion && rec[0] != markerVersion2) {
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
	if version == markerVersion2 {
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
	if len(rec) != 0 {
		return m, ErrBadMarker
	}
	return m, nil
}

func readShort(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, nil, false
	}
	n := int(b[0])
	return b[1 : 1+n], b[1+n:], true
}
