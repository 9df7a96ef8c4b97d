// Package webhooks implements the Pryv-compatible webhooks API (SPEC §2):
// the six methods, their validation and permission rules, and the store
// that keeps webhook records in the gateway's Badger database with an
// in-memory index by username.
//
// The package knows nothing of HTTP or of the upstream: the gateway
// authenticates the caller (access id and type) and calls API.Call with
// the method id and its params, for plain requests and batch calls alike.
// Sending the test notification goes through a Tester the caller injects,
// the outbound client the delivery engine shares.
//
// Store and API are safe for concurrent use.
package webhooks
