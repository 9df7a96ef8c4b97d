// Package delivery sends notifications to webhook receivers. For now it
// holds the outbound HTTP client (pooled fasthttp connections, a request
// timeout, no redirects followed, and a dial-time guard that refuses
// non-global addresses unless an allow-list names them), shared by
// webhooks.test and, next, by the dispatcher that coalesces changes per
// webhook and delivers them on a worker pool (SPEC §3).
//
// It depends on core; nothing in gateway depends on it (the gateway takes
// the client through the webhooks.Tester interface).
//
// A Client is safe for concurrent use.
package delivery
