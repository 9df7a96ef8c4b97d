// Package wsframe reads WebSocket frames (RFC 6455 §5) from a byte
// stream as it passes, in either direction, without holding it: it
// reports each complete text message up to a size, and skips the rest.
package wsframe

import "encoding/binary"

// Opcodes.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// Reader follows one direction of a WebSocket connection. Feed it the
// bytes in order; it calls OnText with each whole text message (its
// fragments joined, unmasked) of at most Max bytes. Binary messages,
// control frames and longer text messages are counted and skipped. It
// never fails: bytes that break the framing stop the reading for good
// (Broken), and the stream is passed on untouched by its caller anyway.
type Reader struct {
	// Max is the longest text message reported; longer ones are skipped.
	Max int
	// OnText is called with each text message; the slice is valid only
	// during the call.
	OnText func(msg []byte)

	// Frames counts the frames read; Skipped the text messages longer
	// than Max.
	Frames, Skipped int
	// Broken is set when the bytes stop making sense as frames.
	Broken bool

	head    [14]byte // the frame header being read
	headN   int
	left    uint64 // payload bytes of the current frame still to come
	mask    [4]byte
	masked  bool
	maskAt  int // the mask's position for the next payload byte
	op      byte
	fin     bool
	inText  bool // a text message is being assembled
	tooLong bool // ... and it passed Max: its bytes are dropped
	msg     []byte
	control bool // the current frame is a control frame: its payload is skipped
}

// Feed reads p, the next bytes of the stream.
func (r *Reader) Feed(p []byte) {
	for len(p) > 0 && !r.Broken {
		if r.left == 0 && !r.inFrame() {
			n := r.readHead(p)
			p = p[n:]
			continue
		}
		n := uint64(len(p))
		if n > r.left {
			n = r.left
		}
		r.payload(p[:n])
		p = p[n:]
		r.left -= n
		if r.left == 0 {
			r.endFrame()
		}
	}
}

// inFrame reports whether a frame's header has been read and its payload
// is not over (an empty payload ends at once).
func (r *Reader) inFrame() bool { return r.headN < 0 }

// readHead reads header bytes from p, and returns how many it took.
func (r *Reader) readHead(p []byte) int {
	took := 0
	for took < len(p) {
		r.head[r.headN] = p[took]
		r.headN++
		took++
		need := 2
		if r.headN >= 2 {
			switch l := r.head[1] & 0x7f; {
			case l == 126:
				need += 2
			case l == 127:
				need += 8
			}
			if r.head[1]&0x80 != 0 {
				need += 4
			}
		}
		if r.headN < need {
			continue
		}
		r.startFrame(need)
		return took
	}
	return took
}

// startFrame decodes the header of n bytes just read.
func (r *Reader) startFrame(n int) {
	h := r.head[:n]
	r.Frames++
	r.fin, r.op = h[0]&0x80 != 0, h[0]&0x0f
	if h[0]&0x70 != 0 { // reserved bits: an extension (compression) this reader does not know
		r.Broken = true
		return
	}
	r.masked = h[1]&0x80 != 0
	at := 2
	switch l := h[1] & 0x7f; l {
	case 126:
		r.left = uint64(binary.BigEndian.Uint16(h[2:]))
		at = 4
	case 127:
		r.left = binary.BigEndian.Uint64(h[2:])
		at = 10
	default:
		r.left = uint64(l)
	}
	if r.masked {
		copy(r.mask[:], h[at:at+4])
	}
	r.maskAt = 0
	r.control = r.op >= 0x8
	switch {
	case r.control:
		if !r.fin || r.left > 125 {
			r.Broken = true
			return
		}
	case r.op == OpText:
		if r.inText {
			r.Broken = true // a new message inside another
			return
		}
		r.inText, r.tooLong, r.msg = true, false, r.msg[:0]
	case r.op == OpContinuation:
		// continues the message under way, text or binary
	case r.op == OpBinary:
		r.inText = false
	default:
		r.Broken = true
		return
	}
	r.headN = -1 // in the payload
	if r.left == 0 {
		r.endFrame()
	}
}

func (r *Reader) payload(p []byte) {
	if r.control || !r.inText || r.tooLong {
		r.maskAt += len(p)
		return
	}
	if len(r.msg)+len(p) > r.Max {
		r.tooLong, r.msg = true, r.msg[:0]
		r.maskAt += len(p)
		return
	}
	start := len(r.msg)
	r.msg = append(r.msg, p...)
	if r.masked {
		for i := start; i < len(r.msg); i++ {
			r.msg[i] ^= r.mask[r.maskAt&3]
			r.maskAt++
		}
	}
}

func (r *Reader) endFrame() {
	r.headN = 0
	if r.control || !r.fin {
		return
	}
	if r.inText {
		r.inText = false
		if r.tooLong {
			r.Skipped++
			return
		}
		if r.OnText != nil {
			r.OnText(r.msg)
		}
	}
}
