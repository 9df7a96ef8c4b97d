// Package state is the seam between the gateway, which takes changes and
// webhooks in, and delivery, which turns them into notifications: the
// state the two share, as three small interfaces with their contracts,
// and an in-memory implementation of each.
//
//   - Log: the change markers, read and acknowledged by delivery.
//   - Registry: the webhooks, written by the API, read by delivery, with
//     a change feed and the run records delivery keeps on them.
//   - Pending: each webhook's undelivered messages.
//
// The Badger implementations live with the gateway (gateway/queue,
// gateway/webhooks, gateway/store); cmd/hookgate wires one side to the
// other, and delivery imports no gateway package. Every implementation
// passes the contract suite in state/statetest.
//
// The rule that holds them together is the acknowledgement's: delivery
// acknowledges a marker only after the pending sets it produced are
// written, and an implementation of Pending and Log must make that
// write at least as durable as the acknowledgement that follows it
// (see Pending.Write). A crash therefore loses no change: either the
// marker is read again, or its messages are pending.
package state

import (
	"errors"

	"github.com/hookgate/hookgate/core"
)

// Record is one entry of the marker log.
type Record struct {
	// Seq is the record's position: 1 for the first record ever, then
	// increasing by one, never reused.
	Seq uint64
	// Data is the record as appended.
	Data []byte
}

// Log is the consuming side of the marker log.
type Log interface {
	// Read appends to dst up to max records with Seq >= from, in order,
	// skipping acknowledged ones. A log whose records can arrive out of
	// order (a cluster's partitions) also gives, below from, those it has
	// not given before, and acknowledges only records it gave.
	Read(dst []Record, from uint64, max int) ([]Record, error)
	// Ack acknowledges every record with Seq <= upTo: they are not read
	// again, except after a crash that lost the acknowledgement itself
	// (at-least-once). Acknowledging what is already acknowledged does
	// nothing.
	Ack(upTo uint64) error
	// Updated returns a channel that receives a value after appends
	// commit. Values may be coalesced.
	Updated() <-chan struct{}
}

// Change tells delivery what the API did to a webhook.
type Change struct {
	Webhook *core.Webhook // a copy, as stored
	Deleted bool
}

// Errors of a Registry.
var (
	// ErrDuplicateURL: the access already has a webhook with this URL.
	ErrDuplicateURL = errors.New("webhooks: url already used by this access")
	// ErrCapReached: the access already has the maximum of webhooks.
	ErrCapReached = errors.New("webhooks: too many webhooks for this access")
	// ErrNotFound: no such webhook (or not this user's).
	ErrNotFound = errors.New("webhooks: unknown webhook")
	// ErrUnavailable: the store does not answer (a cluster without a
	// quorum); the write may be tried again later.
	ErrUnavailable = errors.New("webhooks: the shared state does not answer")
)

// Registry keeps the webhooks. It is safe for concurrent use; every
// webhook it returns is a copy the caller owns.
//
// The API's writes (Create, Update, Delete, Import) are durable when
// they return, and are then heard, in the order they happened, by the
// function given to OnChange. Run records (RecordRun) are kept in memory
// and made durable by Flush, in batches: a crash loses at most the runs
// since the last Flush, never an API write (an API write that follows a
// RecordRun of the same webhook wins over it, even if a Flush of the
// older copy is under way).
//
// A webhook's run history (Runs) need not be resident: Get and List
// fill it, newest first, at most RunsKept runs; the delivery engine's
// reads (ByID, Active, EachActive, Target) leave it nil, and cost no
// disk read.
type Registry interface {
	// Create stores w, refusing a URL the same access already uses
	// (ErrDuplicateURL) and more than maxPerAccess webhooks per access
	// (ErrCapReached; 0: no cap). w.Runs is not stored.
	Create(w *core.Webhook, maxPerAccess int) error
	// Update applies fn to user's webhook id and stores the result; fn's
	// error aborts the update and is returned. ErrNotFound for an
	// unknown id or another user's. fn's changes to Runs are ignored.
	Update(user, id string, fn func(w *core.Webhook) error) (*core.Webhook, error)
	// Delete removes user's webhook id and its run history (ErrNotFound
	// as for Update).
	Delete(user, id string) error
	// Import stores new webhooks as they are, without URL or cap checks,
	// for tools that load many at once; it refuses an id already used.
	// OnChange does not hear of them. Their Runs are not stored.
	Import(ws []*core.Webhook) error

	// Get returns user's webhook id, with its run history.
	Get(user, id string) (*core.Webhook, bool)
	// List returns user's webhooks in creation order, with their run
	// histories; with accessID set, only that access's.
	List(user, accessID string) []*core.Webhook
	// ByID returns webhook id, whatever its user, or nil.
	ByID(id string) *core.Webhook
	// Target returns what a notification to webhook id needs, without
	// copying the record; false for an unknown id.
	Target(id string) (Target, bool)
	// Active returns user's active webhooks, in creation order.
	Active(user string) []*core.Webhook
	// EachActive calls f for every active webhook, in no set order, with
	// the registry's own record: f must not keep it, change it or call
	// the registry. Writers wait until it returns.
	EachActive(f func(w *core.Webhook))
	// Each calls f for every webhook, active or not, in no set order,
	// until f returns false, with the registry's own record (no runs): f
	// must not keep it, change it or call the registry.
	Each(f func(w *core.Webhook) bool)
	// Counts returns how many webhooks are active and inactive.
	Counts() (active, inactive int)
	// Scoped reports whether any webhook of user has scopes, or for
	// user "" whether any webhook has: only then does the gateway read
	// what a change touched.
	Scoped(user string) bool
	// OnChange registers the one function that hears of the API's
	// writes. It is called outside the registry's locks and must not
	// call back into its writers synchronously. Set it once, before use.
	OnChange(f func(Change))

	// RecordRun records a delivery attempt of webhook id in memory: run
	// joins its history and is counted (core.Webhook.CountRun), then fn,
	// if not nil, changes the record (currentRetries, a deactivation).
	// The next Flush makes it durable. It reports false for an unknown
	// id.
	RecordRun(id string, run core.Run, fn func(w *core.Webhook)) bool
	// Flush makes every RecordRun so far durable, in as many writes as
	// the store's limits need. On an error, what was not written stays
	// for the next Flush.
	Flush() error
}

// RunsKept is how many runs a webhook's history keeps, newest first, as
// Pryv.io's default runsSize.
const RunsKept = 50

// Target is what a notification needs of its webhook.
type Target struct {
	URL    string
	Secret string // the signing secret, when Signed
	Signed bool
	Active bool
	// PreviousSecret signs too until PreviousUntil (Unix seconds), after
	// a rotation.
	PreviousSecret string
	PreviousUntil  float64
}

// PendingSet is a webhook's undelivered state.
type PendingSet struct {
	// Messages waiting, in order of first arrival.
	Messages []string `json:"m"`
	// Retire: its access was deleted; deactivate after the next
	// delivery.
	Retire bool `json:"retire,omitempty"`
}

// PendingWrite is one webhook's pending set to store; a nil Set deletes
// it.
type PendingWrite struct {
	ID  string
	Set *PendingSet
}

// Pending keeps each webhook's pending set. Only delivery's loop uses it:
// an implementation need not be safe for concurrent use.
type Pending interface {
	// Load calls f for every stored set.
	Load(f func(id string, set PendingSet) error) error
	// Write stores the sets in order, in as many parts as the store's
	// limits need, and returns how many, from the first, are written; on
	// an error the caller writes ws[n:] again later.
	//
	// A Write that returned is at least as durable as any Log.Ack made
	// after it: after a crash that kept the acknowledgement, the sets
	// are found too. It need not be durable on its own: Sync makes it
	// so.
	Write(ws []PendingWrite) (n int, err error)
	// Sync makes every Write so far durable on its own.
	Sync() error
}
