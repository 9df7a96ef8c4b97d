// Package queue is the durable change queue between the gateway, which
// appends a change marker before it answers the client, and the
// dispatcher, which reads markers in order and acknowledges them once the
// pending notifications they produced are durable.
//
// Two implementations share one contract (contract_test.go): Badger, on
// disk, with group commit (one sync for every append that arrived while the
// previous sync ran), and Memory, for tests and benchmarks.
//
// Both are safe for concurrent use. Append may be called from many
// goroutines; Read and Ack are meant for one consumer. Neither queue grows
// memory without bound: appends waiting for the disk and unacknowledged
// records are capped, and past a cap Append fails at once with ErrFull.
// The Badger queue owns one goroutine, the committer, stopped by Close.
// Close does not close the database.
package queue
