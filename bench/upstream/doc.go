// Package upstream is a small Pryv-like API, held in memory, for the
// quickstart, the tests and the benchmarks: events, streams and accesses
// CRUD, batch calls on the user's root, access-info, Pryv's token forms,
// error shape, meta and Pryv-Access-Id header, and a few seeded users and
// tokens. It is just enough of Pryv for hookgate to be exercised for real;
// it is not Pryv.
//
// A Server is safe for concurrent use; Start owns the goroutine serving it
// until the returned stop function is called.
package upstream
