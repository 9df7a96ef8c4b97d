package core

import (
	"strconv"
	"sync/atomic"
	"unicode/utf8"
)

// Meta is the constant part of the `meta` object Pryv puts on every answer.
// A Meta made by FollowMeta reports what its upstream says once Learn has
// been told it, and its copies share what is learned; a Meta written as a
// literal reports its fields as they are.
type Meta struct {
	// APIVersion is reported as meta.apiVersion. Set it to the upstream's
	// version so clients see one API.
	APIVersion string
	// Serial is reported as meta.serial.
	Serial string

	learned *atomic.Pointer[[2]string] // nil: fixed
	fixed   [2]bool                    // APIVersion, Serial set by the operator: never learned
}

// FollowMeta returns a Meta that reports apiVersion and serial until
// Learn tells it the upstream's. A field the operator set (fixVersion,
// fixSerial) keeps its value.
func FollowMeta(apiVersion, serial string, fixVersion, fixSerial bool) Meta {
	return Meta{APIVersion: apiVersion, Serial: serial, learned: new(atomic.Pointer[[2]string]), fixed: [2]bool{fixVersion, fixSerial}}
}

// Learn takes the upstream's apiVersion and serial, as read from one of
// its answers, for every copy of m; an empty value is not taken. It
// reports whether anything changed. A fixed Meta ignores it.
func (m Meta) Learn(apiVersion, serial string) bool {
	if m.learned == nil {
		return false
	}
	cur := m.Current()
	next := [2]string{cur.APIVersion, cur.Serial}
	if apiVersion != "" && !m.fixed[0] {
		next[0] = apiVersion
	}
	if serial != "" && !m.fixed[1] {
		next[1] = serial
	}
	if next == [2]string{cur.APIVersion, cur.Serial} {
		return false
	}
	m.learned.Store(&next)
	return true
}

// Current returns the values m reports now, as a fixed Meta.
func (m Meta) Current() Meta {
	if m.learned != nil {
		if l := m.learned.Load(); l != nil {
			return Meta{APIVersion: l[0], Serial: l[1]}
		}
	}
	return Meta{APIVersion: m.APIVersion, Serial: m.Serial}
}

// AppendMeta appends `{"apiVersion":..,"serverTime":..,"serial":..}` with
// serverTime in float Unix seconds.
func (m Meta) AppendMeta(dst []byte, unixNano int64) []byte {
	m = m.Current()
	dst = append(dst, `{"apiVersion":`...)
	dst = AppendJSONString(dst, m.APIVersion)
	dst = append(dst, `,"serverTime":`...)
	dst = AppendSeconds(dst, unixNano)
	dst = append(dst, `,"serial":`...)
	dst = AppendJSONString(dst, m.Serial)
	return append(dst, '}')
}

// AppendError appends a Pryv error body
// `{"error":{"id":..,"message":..},"meta":{..}}` to dst.
func (m Meta) AppendError(dst []byte, unixNano int64, id, message string) []byte {
	dst = append(dst, `{"error":{"id":`...)
	dst = AppendJSONString(dst, id)
	dst = append(dst, `,"message":`...)
	dst = AppendJSONString(dst, message)
	dst = append(dst, `},"meta":`...)
	dst = m.AppendMeta(dst, unixNano)
	return append(dst, '}')
}

// AppendSeconds appends unixNano as float seconds with millisecond
// precision, as Pryv writes times.
func AppendSeconds(dst []byte, unixNano int64) []byte {
	ms := unixNano / 1e6
	dst = strconv.AppendInt(dst, ms/1000, 10)
	frac := ms % 1000
	if frac < 0 {
		frac = -frac
	}
	dst = append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return dst
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal. Invalid UTF-8 is
// replaced by U+FFFD; <, > and & are escaped so the output is safe in HTML.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
