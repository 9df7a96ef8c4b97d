package delivery

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookgate/hookgate/core"
)

// FuzzRetryAfter: any Retry-After a receiver sends gives a wait between
// 0 and MaxRetryAfter.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "-1", "99999999999999999999", "9223372036854775807",
		"Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "soon", "1.5"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := retryAfter([]byte(v), now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("Retry-After %q gave %s", v, d)
		}
	})
}

// FuzzReceiverResponse: whatever bytes a receiver answers with, Send
// returns with a status it can act on (0 with an error for an unreadable
// answer), and never panics or hangs.
//
// Real time: a real fasthttp client against a real socket. The only
// duration asserted is a generous bound (20 s for a 300 ms timeout): Send
// did not wait forever.
func FuzzReceiverResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 410 Gone\r\nContent-Length: 4\r\n\r\ngone",
		"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Wed, 21 Oct 2035 07:28:00 GMT\r\n\r\n",
		"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\nshort",
		"HTTP/1.0 200 OK\r\n\r\nbody until close",
		"HTTP/1.1 999 Odd\r\n\r\n",
		"garbage\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	answers := make(chan []byte, 1)
	done := make(chan struct{})
	served := make(chan struct{})
	f.Cleanup(func() { close(done); ln.Close(); <-served })
	go func() {
		defer close(served)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var answer []byte
			select {
			case answer = <-answers:
			case <-done:
				c.Close()
				return
			}
			// Read the request head, answer, and close.
			c.SetDeadline(time.Now().Add(2 * time.Second))
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadSlice('\n')
				if err != nil || len(bytes.TrimSpace(line)) == 0 {
					break
				}
			}
			c.Write(answer)
			c.Close()
		}
	}()
	cl := NewClient(ClientOptions{Timeout: 300 * time.Millisecond, Guard: Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	url := "http://" + ln.Addr().String() + "/hook"
	f.Fuzz(func(t *testing.T, answer []byte) {
		select { // a pooled connection may have left the last answer unused
		case <-answers:
		default:
		}
		answers <- answer
		start := time.Now()
		a, err := cl.Send(url, []byte(`{"messages":["eventsChanged"]}`), nil)
		st, ra := a.Status, a.RetryAfter
		if took := time.Since(start); took > 20*time.Second {
			t.Fatalf("Send took %s with a 300ms timeout", took)
		}
		if err == nil && (st < 100 || st > 599) {
			t.Fatalf("status %d without an error", st)
		}
		if err != nil && st != 0 {
			t.Fatalf("status %d with error %v", st, err)
		}
		if ra < 0 || ra > MaxRetryAfter {
			t.Fatalf("Retry-After wait %s", ra)
		}
		if len(a.Head) > core.MaxRunAnswer || !utf8.ValidString(a.Head) || (a.Head != "" && st >= 200 && st <= 299) {
			t.Fatalf("answer head %q for status %d", a.Head, st)
		}
		if c := ErrorClass(st, err); (c == "") != (err == nil && st >= 200 && st <= 299) || !slices.Contains(core.RunErrors[:], c) {
			t.Fatalf("class %q for status %d and error %v", c, st, err)
		}
	})
}
