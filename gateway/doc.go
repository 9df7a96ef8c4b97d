// Package gateway is hookgate's fasthttp front: it proxies every request to
// the upstream API over pooled connections, recognises the requests that
// change a user's data (package rules), and appends a change marker to the
// durable queue (package queue) before the client gets its answer.
//
// Request and response bodies are streamed: only batch calls and
// form-encoded overrides, whose bodies say what changed, are read whole,
// up to Options.MaxClassifyBody.
//
// Lifetime rule: nothing taken from a *fasthttp.RequestCtx (Path, Host,
// Peek results, body bytes) outlives the handler; the username is copied
// once into the marker, which the queue copies again into memory it owns.
//
// A Gateway is safe for concurrent use. It starts no goroutines of its own
// beyond those of its fasthttp.Server, which Serve and Shutdown own.
// It must not import delivery.
package gateway
