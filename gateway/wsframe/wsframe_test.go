package wsframe

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

// frame encodes one frame, masked with key when key is not nil.
func frame(fin bool, op byte, payload []byte, key []byte) []byte {
	b := []byte{op}
	if fin {
		b[0] |= 0x80
	}
	m := byte(0)
	if key != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n < 1<<16:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if key == nil {
		return append(b, payload...)
	}
	b = append(b, key...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// stream is a sequence of frames and the text messages a Reader must
// report from it.
func stream(key []byte) ([]byte, [][]byte) {
	long := bytes.Repeat([]byte("x"), 70000) // a 64-bit length, past Max
	mid := bytes.Repeat([]byte("m"), 300)    // a 16-bit length
	var s []byte
	s = append(s, frame(true, OpText, []byte(`42/alice,7["events.create",{}]`), key)...)
	s = append(s, frame(true, OpBinary, []byte{1, 2, 3}, key)...)
	s = append(s, frame(false, OpText, []byte("par"), key)...)
	s = append(s, frame(true, OpPing, []byte("ping!"), key)...) // a control frame between fragments
	s = append(s, frame(false, OpContinuation, []byte("t o"), key)...)
	s = append(s, frame(true, OpContinuation, []byte("f three"), key)...)
	s = append(s, frame(true, OpText, long, key)...)
	s = append(s, frame(true, OpText, mid, key)...)
	s = append(s, frame(true, OpText, nil, key)...)
	s = append(s, frame(true, OpClose, []byte{0x0f, 0xa1}, key)...)
	return s, [][]byte{[]byte(`42/alice,7["events.create",{}]`), []byte("part of three"), mid, {}}
}

func read(s []byte, chunk func() int) (*Reader, [][]byte) {
	var got [][]byte
	r := &Reader{Max: 64 << 10, OnText: func(m []byte) { got = append(got, slices.Clone(m)) }}
	for len(s) > 0 {
		n := min(chunk(), len(s))
		r.Feed(s[:n])
		s = s[n:]
	}
	return r, got
}

// TestReader: text messages come out whole, fragments joined and
// unmasked, whatever the chunks the stream arrives in (byte by byte,
// at random, at once); binary and control frames and long messages are
// skipped.
func TestReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, key := range [][]byte{nil, {0x12, 0x34, 0x56, 0x78}} {
		s, want := stream(key)
		for name, chunk := range map[string]func() int{
			"bytes":  func() int { return 1 },
			"random": func() int { return 1 + rng.IntN(100) },
			"whole":  func() int { return len(s) },
		} {
			r, got := read(s, chunk)
			if r.Broken || r.Skipped != 1 || r.Frames != 10 || len(got) != len(want) {
				t.Fatalf("masked=%v %s: broken %v, skipped %d, frames %d, %d messages", key != nil, name, r.Broken, r.Skipped, r.Frames, len(got))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("masked=%v %s: message %d = %.40q; want %.40q", key != nil, name, i, got[i], want[i])
				}
			}
		}
	}
	for _, bad := range [][]byte{
		{0xc1, 0x00},       // a reserved bit: compression
		{0x83, 0x00},       // an unknown opcode
		{0x09, 0x00},       // a fragmented control frame
		{0x89, 0x7e, 1, 0}, // a control frame past 125 bytes
	} {
		if r, _ := read(bad, func() int { return 1 }); !r.Broken {
			t.Errorf("% x read as frames", bad)
		}
	}
}

// FuzzReader: no bytes crash the reader or make it report a message
// longer than Max; a valid stream split anywhere reads the same.
func FuzzReader(f *testing.F) {
	s, _ := stream([]byte{1, 2, 3, 4})
	f.Add(s, uint8(7))
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		n := int(step)%16 + 1
		r, got := read(b, func() int { return n })
		for _, m := range got {
			if len(m) > r.Max {
				t.Fatalf("a message of %d bytes past Max", len(m))
			}
		}
		_, whole := read(b, func() int { return len(b) + 1 })
		if !r.Broken && len(got) != len(whole) {
			t.Fatalf("split every %d bytes: %d messages; at once: %d", n, len(got), len(whole))
		}
	})
}
