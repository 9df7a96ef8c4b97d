package bench

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// wsEchoServer is a WebSocket server on loopback that answers every
// message with the same one: a handshake, then frames read and written
// as RFC 6455 has them, with no library, so that what is measured is the
// path, not a framework.
func wsEchoServer(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); wsEcho(c) })
		}
	})
	return ln.Addr().String()
}

func wsEcho(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if _, err := fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:])); err != nil {
		return
	}
	bw := bufio.NewWriter(c)
	for {
		op, payload, err := readFrame(br)
		if err != nil || op == 0x8 {
			return
		}
		if writeFrame(bw, op, payload, nil) != nil || bw.Flush() != nil {
			return
		}
	}
}

// readFrame reads one whole frame and unmasks its payload.
func readFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		_, err = io.ReadFull(br, x[:])
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		_, err = io.ReadFull(br, x[:])
		n = binary.BigEndian.Uint64(x[:])
	}
	var key [4]byte
	if err == nil && h[1]&0x80 != 0 {
		_, err = io.ReadFull(br, key[:])
	}
	if err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		for i := range payload {
			payload[i] ^= key[i&3]
		}
	}
	return h[0] & 0x0f, payload, nil
}

// writeFrame writes one final frame, masked with key when it is not nil.
func writeFrame(w io.Writer, op byte, payload, key []byte) error {
	h := []byte{0x80 | op}
	m := byte(0)
	if key != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		h = append(h, m|byte(n))
	case n < 1<<16:
		h = binary.BigEndian.AppendUint16(append(h, m|126), uint16(n))
	default:
		h = binary.BigEndian.AppendUint64(append(h, m|127), uint64(n))
	}
	if key != nil {
		h = append(h, key...)
		masked := make([]byte, len(payload))
		for i, c := range payload {
			masked[i] = c ^ key[i&3]
		}
		payload = masked
	}
	_, err := w.Write(append(h, payload...))
	return err
}

// wsClient opens a WebSocket to addr.
func wsClient(b testing.TB, addr, path string) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: api.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		b.Fatalf("upgrade: %v %v", resp, err)
	}
	return c, br
}

// BenchmarkWebSocketEcho: one client's round trips of a socket.io-sized
// text message (an events.create call) to an echo server, directly and
// through hookgate, in one run: hookgate's added latency per message is
// the difference of the two ns/op; msgs/s is round trips a second.
func BenchmarkWebSocketEcho(b *testing.B) {
	up := wsEchoServer(b)
	gw := hookgate(b, up, nil)
	msg := []byte(`42/alice,17["events.create",{"streamIds":["diary"],"type":"note/txt","content":"` + strings.Repeat("x", 120) + `"}]`)
	key := []byte{1, 2, 3, 4}
	for _, c := range []struct{ name, addr string }{{"direct", up}, {"hookgate", gw}} {
		b.Run(c.name, func(b *testing.B) {
			conn, br := wsClient(b, c.addr, "/socket.io/?EIO=4&transport=websocket")
			b.SetBytes(int64(2 * len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := writeFrame(conn, 0x1, msg, key); err != nil {
					b.Fatal(err)
				}
				if _, got, err := readFrame(br); err != nil || len(got) != len(msg) {
					b.Fatalf("echo: %d bytes, %v", len(got), err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
