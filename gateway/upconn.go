package gateway

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// An upstream such as Node closes a keep-alive connection once it has
// been idle for its keepAliveTimeout (5 s by default), and a client may
// send on it in the same instant. The request then fails before any byte
// of its answer arrived, and the upstream never processed it: it closed
// the connection instead of reading it. Such a request is sent again
// once, on a new connection, whatever its method (a POST included).
// Once a byte of the answer has come, nothing is sent again.
//
// fasthttp's client tells neither whether the connection was reused nor
// whether the answer had begun, so every upstream connection is wrapped
// (staleConn): it counts the bytes it read, and remembers how many had
// been read when the current request was written. A write, or a read
// with no byte of the answer yet, that fails (but not by a timeout) on a
// connection that had answered before marks the connection's local
// address. The proxy, which gets only the error, asks with the local
// address fasthttp records in the response.

// staleConns holds the local addresses of upstream connections found
// closed under a request, until the request's caller takes them.
type staleConns struct {
	mu sync.Mutex
	m  map[string]struct{}
}

func (s *staleConns) mark(key string) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]struct{}{}
	}
	s.m[key] = struct{}{}
	s.mu.Unlock()
}

// take reports whether the connection of local address addr was found
// closed under its request, and forgets it.
func (s *staleConns) take(addr net.Addr) bool {
	if addr == nil {
		return false
	}
	key := addr.String()
	s.mu.Lock()
	_, ok := s.m[key]
	delete(s.m, key)
	s.mu.Unlock()
	return ok
}

// forget drops what a closed connection of the same local address left:
// called for every new connection.
func (s *staleConns) forget(key string) {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

// dial connects to addr and wraps the connection.
func (s *staleConns) dial(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := fasthttp.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	key := c.LocalAddr().String()
	s.forget(key)
	return &staleConn{Conn: c, stale: s, key: key}, nil
}

// staleConn is an upstream connection that tells when it was found
// closed under a request before any byte of the answer.
type staleConn struct {
	net.Conn
	stale *staleConns
	key   string
	// read counts the bytes read; readAtWrite is read when the current
	// request was last written to. fasthttp uses a connection from one
	// goroutine at a time; they are atomic for its idle cleaner.
	read, readAtWrite atomic.Int64
}

func (c *staleConn) Write(b []byte) (int, error) {
	at := c.read.Load()
	c.readAtWrite.Store(at)
	n, err := c.Conn.Write(b)
	if err != nil && at > 0 && !isTimeout(err) {
		c.stale.mark(c.key)
	}
	return n, err
}

func (c *staleConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.read.Add(int64(n))
		return n, err
	}
	if err != nil && !isTimeout(err) {
		if at := c.readAtWrite.Load(); at > 0 && c.read.Load() == at {
			c.stale.mark(c.key)
		}
	}
	return n, err
}
