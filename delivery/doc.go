// Package delivery will read change markers from the queue, coalesce them
// per webhook within each webhook's rate window, and deliver notifications
// on a worker pool with pooled fasthttp client connections, retries and
// deactivation (SPEC §3).
//
// It depends on core and on the queue's Read/Ack side; nothing in gateway
// depends on it.
package delivery
