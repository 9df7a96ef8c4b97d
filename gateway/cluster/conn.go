// Package cluster keeps hookgate's state in NATS JetStream, so that
// several instances share it: the webhooks, their run records and
// pending sets in key-value buckets, replicated by JetStream's Raft
// groups. It implements the interfaces of package state and passes their
// contract suite, as the Badger stores do.
//
// Layout, for the name N (default "hookgate"):
//
//   - bucket N-webhooks: "w.<id>" a webhook's record and "c.<id>" its
//     counters, in the binary forms of package webhooks (secrets sealed
//     with the shared key file), and "g.<user>.<access>", an access's
//     guard. Every instance watches this bucket and keeps all webhooks in
//     memory (state.Index). The owner's flush writes a webhook's counters
//     and the runs they count as one entry (webhooks.EncodeCountersRuns),
//     and the bucket keeps historyKept revisions of each key: a webhook's
//     run history is its counters' history, read on demand.
//   - bucket N-pending: "p.<id>", a webhook's undelivered messages.
//   - bucket N-runs, of earlier versions: "r.<id>.<slot>", a ring of
//     runs. Still read where it exists, never written; it can be deleted
//     once every webhook has had state.RunsKept runs since.
//
// The API's writes are atomic batches (ADR-50): a webhook's record and
// counters, and last its access's guard, published only if the guard is
// still at the revision this instance saw. Since the guard comes last,
// an instance whose copy has the guard at that revision has every record
// of the access written with it: the duplicate-URL and per-access checks
// hold across instances. An instance that saw an older guard loses the
// race, catches up with the bucket, and checks again.
package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/hookgate/hookgate/gateway/webhooks"
)

// Options configures the connection to JetStream.
type Options struct {
	// URLs are the servers' URLs, comma-separated.
	URLs string
	// Name prefixes every stream and bucket; default "hookgate". Two
	// deployments may share a JetStream account under different names.
	Name string
	// Replicas of every stream and bucket; 0: 3 in a cluster of three
	// servers or more, otherwise as many as the servers it knows of.
	Replicas int
	// Timeout bounds each request to JetStream; default 5 s.
	Timeout time.Duration
	// Grace is how long a failure may last before writes that a client
	// waits on (a change marker, a webhooks API write) fail at once
	// rather than wait for JetStream: what a reconnection to another
	// server or a leader's election takes, not a lost quorum. Default:
	// Timeout.
	Grace time.Duration
	// Sealer seals signing secrets (nil: stored as they are). Every
	// instance must have the same key.
	Sealer *webhooks.Sealer
	// NATS are more options of the connection: credentials, TLS, a name.
	NATS []nats.Option
	// KeyID names the key of Sealer (webhooks.KeyID): the first instance
	// stores it, and an instance with another key is refused, rather
	// than sealing secrets the others cannot open.
	KeyID string
}

// Conn is a connection to JetStream with hookgate's buckets.
type Conn struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	o       Options
	hooks   bucket
	runs    bucket // an earlier version's; kv nil where there is none
	pending bucket

	health  atomic.Pointer[error] // the last check's outcome; nil: healthy
	since   atomic.Int64          // when the beats last started to pass (Unix ns); 0: they fail
	down    atomic.Int64          // when a failure was first seen (Unix ns); 0: none since the last success
	pulling atomic.Bool           // the marker log pulls: the beats say so, and Instances counts this one
	beat    string                // this connection's subject in the health stream
	stop    chan struct{}
	stopped chan struct{}
}

// bucket is a key-value bucket and the stream under it.
type bucket struct {
	kv      jetstream.KeyValue
	stream  jetstream.Stream
	subject string // prefix of its keys' subjects: "$KV.<bucket>."
}

func (b *bucket) subj(key string) string { return b.subject + key }

// Connect connects to JetStream and creates the buckets that are
// missing, or updates them to opts.
func Connect(ctx context.Context, o Options) (*Conn, error) {
	if o.Name == "" {
		o.Name = "hookgate"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = o.Timeout
	}
	nopts := append([]nats.Option{nats.Name("hookgate"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false)}, o.NATS...)
	nc, err := nats.Connect(o.URLs, nopts...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS at %s: %w", o.URLs, err)
	}
	c := &Conn{nc: nc, o: o, stop: make(chan struct{}), stopped: make(chan struct{})}
	// A cluster that has just started may not have elected its streams'
	// leaders yet: try again until ctx ends.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err = c.setup(ctx)
		if err == nil {
			break
		}
		if !transient(err) {
			nc.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, err
		case <-time.After(wait):
		}
	}
	go c.watchHealth()
	return c, nil
}

// healthEvery is how often the connection checks that JetStream answers.
const healthEvery = time.Second

// pullingBeat is the body of the beats of an instance that pulls from
// the marker log; one that does not yet (loading its webhooks) beats
// with none.
var pullingBeat = []byte("pulling")

// watchHealth publishes, every healthEvery, to the health stream, which
// a quorum of its replicas must acknowledge: no acknowledgement, no
// quorum.
func (c *Conn) watchHealth() {
	defer close(c.stopped)
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), healthEvery)
		var data []byte
		if c.pulling.Load() {
			data = pullingBeat
		}
		_, err := c.js.Publish(ctx, c.beat, data)
		cancel()
		if err != nil {
			err = fmt.Errorf("JetStream does not answer: %w", err)
			c.health.Store(&err)
			c.since.Store(0)
			c.down.CompareAndSwap(0, time.Now().UnixNano())
		} else {
			c.health.Store(nil)
			c.since.CompareAndSwap(0, time.Now().UnixNano())
			if c.nc.IsConnected() {
				c.down.Store(0)
			}
		}
		select {
		case <-t.C:
		case <-c.stop:
			return
		}
	}
}

// Instances returns how many instances share the partitions: those
// that pull from the marker log and whose last health beat is within
// three beats of the newest (times of the servers, not of this machine). Until this instance's own beats
// have passed for that long (after a start, or a loss of the quorum),
// the count is not known: the newest beat may be an old one, and
// instances dead since may look alive.
func (c *Conn) Instances() (int, error) {
	if since := c.since.Load(); since == 0 || time.Since(time.Unix(0, since)) < 3*healthEvery {
		return 0, errors.New("the instances' beats are not current yet")
	}
	ctx, cancel := c.ctx()
	defer cancel()
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, c.js, c.o.Name+"-health", []string{c.o.Name + ".health.*"})
	if err != nil {
		return 0, err
	}
	var times []time.Time
	var pulls []bool
	for m, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return 0, err
		}
		times = append(times, m.Time)
		pulls = append(pulls, bytes.Equal(m.Data, pullingBeat))
	}
	if len(times) == 0 {
		return 0, nil
	}
	newest := slices.MaxFunc(times, time.Time.Compare)
	n := 0
	for i, t := range times {
		if pulls[i] && newest.Sub(t) < 3*healthEvery {
			n++
		}
	}
	return n, nil
}

// Healthy returns nil while JetStream answers, and why not otherwise.
func (c *Conn) Healthy() error {
	if !c.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if p := c.health.Load(); p != nil {
		return *p
	}
	return nil
}

// Failing returns Healthy's error once the failure has lasted
// Options.Grace, and nil before: a write a client waits on is tried,
// within its own bound, while the connection moves to another server or
// a leader is elected, and fails at once when the quorum is lost.
func (c *Conn) Failing() error {
	err := c.Healthy()
	if err == nil {
		if c.down.Load() != 0 {
			c.down.Store(0)
		}
		return nil
	}
	now := time.Now().UnixNano()
	if c.down.CompareAndSwap(0, now) {
		return nil
	}
	if time.Duration(now-c.down.Load()) < c.o.Grace {
		return nil
	}
	return err
}

func (c *Conn) setup(ctx context.Context) error {
	var err error
	if c.js, err = jetstream.New(c.nc, jetstream.WithDefaultTimeout(c.o.Timeout), jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(c.o.Timeout)); err != nil {
		return err
	}
	if c.o.Replicas <= 0 {
		c.o.Replicas = 1
		if c.nc.ConnectedClusterName() != "" {
			c.o.Replicas = min(3, len(c.nc.Servers()))
		}
	}
	for _, b := range []struct {
		b       *bucket
		name    string
		history uint8
		atomic  bool
	}{{&c.hooks, "webhooks", historyKept, true}, {&c.pending, "pending", 1, false}} {
		if *b.b, err = c.openBucket(ctx, c.o.Name+"-"+b.name, b.history, b.atomic); err != nil {
			return err
		}
	}
	if err := c.openRuns(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	if _, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: c.o.Name + "-health", Subjects: []string{c.o.Name + ".health.*"}, Storage: jetstream.FileStorage,
		Replicas: c.o.Replicas, MaxMsgsPerSubject: 1, MaxAge: time.Minute, AllowDirect: true,
	}); err != nil {
		return fmt.Errorf("cannot open the health stream: %w", err)
	}
	c.beat = c.o.Name + ".health." + nuid.Next()
	return c.checkKey(ctx)
}

// checkKey stores the key id in the webhooks bucket, or checks it
// against the one stored.
func (c *Conn) checkKey(ctx context.Context) error {
	if c.o.KeyID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	_, err := c.hooks.kv.Create(ctx, "key", []byte(c.o.KeyID))
	if !errors.Is(err, jetstream.ErrKeyExists) {
		if err != nil {
			return fmt.Errorf("cannot store the secrets key id: %w", err)
		}
		return nil
	}
	e, err := c.hooks.kv.Get(ctx, "key")
	if err != nil {
		return fmt.Errorf("cannot read the secrets key id: %w", err)
	}
	if string(e.Value()) != c.o.KeyID {
		return fmt.Errorf("the cluster's signing secrets are sealed with another key (id %s; this instance's is %s): every instance needs the same -secrets-key-file", e.Value(), c.o.KeyID)
	}
	return nil
}

// historyKept is how many revisions of a key the webhooks bucket keeps
// (JetStream's most): a webhook's counters written by the flushes that
// recorded its last state.RunsKept runs, and by up to 14 API writes
// meanwhile; more API writes than that leave fewer runs in the history.
const historyKept = jetstream.KeyValueMaxHistory

// openRuns opens the runs bucket of an earlier version, if there is one.
func (c *Conn) openRuns(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	name := c.o.Name + "-runs"
	kv, err := c.js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot open bucket %s: %w", name, err)
	}
	st, err := c.js.Stream(ctx, "KV_"+name)
	if err != nil {
		return fmt.Errorf("cannot open bucket %s: %w", name, err)
	}
	c.runs = bucket{kv: kv, stream: st, subject: "$KV." + name + "."}
	return nil
}

func (c *Conn) openBucket(ctx context.Context, name string, history uint8, atomic bool) (bucket, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	// An existing bucket is updated only where it differs, and in one
	// update: CreateOrUpdateKeyValue's would turn atomic batches off
	// until the next (the server then drops the batches under way of
	// the instances already running).
	st, err := c.js.Stream(ctx, "KV_"+name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err = c.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: name, History: history, Storage: jetstream.FileStorage, Replicas: c.o.Replicas,
		}); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return bucket{}, fmt.Errorf("cannot create bucket %s: %w", name, err)
		}
		st, err = c.js.Stream(ctx, "KV_"+name)
	}
	if err != nil {
		return bucket{}, fmt.Errorf("cannot open bucket %s: %w", name, err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxMsgsPerSubject != int64(history) || cfg.Replicas != c.o.Replicas || (atomic && !cfg.AllowAtomicPublish) {
		cfg.MaxMsgsPerSubject, cfg.Replicas = int64(history), c.o.Replicas
		cfg.AllowAtomicPublish = cfg.AllowAtomicPublish || atomic
		if st, err = c.js.UpdateStream(ctx, cfg); err != nil {
			return bucket{}, fmt.Errorf("cannot update bucket %s (atomic batches need JetStream 2.12 or later): %w", name, err)
		}
	}
	kv, err := c.js.KeyValue(ctx, name)
	if err != nil {
		return bucket{}, fmt.Errorf("cannot open bucket %s: %w", name, err)
	}
	return bucket{kv: kv, stream: st, subject: "$KV." + name + "."}, nil
}

// Close closes the connection.
func (c *Conn) Close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
		<-c.stopped
	}
	c.nc.Close()
}

// Replicas returns the replication of the buckets.
func (c *Conn) Replicas() int { return c.o.Replicas }

// ctx returns a context bounded by the request timeout.
func (c *Conn) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.o.Timeout)
}

// transient reports whether err may go by itself: JetStream did not
// answer in time, or not yet.
func transient(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}

// conflict reports whether err is JetStream refusing a write because a
// subject was not at the expected revision.
func conflict(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// enc encodes a user name or access id as a key token: base64url, which
// has only characters a key may hold and no dot.
func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// guardKey is the key of an access's guard.
func guardKey(user, access string) string { return "g." + enc(user) + "." + enc(access) }

// idOf returns the id of a "w.<id>" or "c.<id>" key.
func idOf(key string) string { return key[2:] }

// putMsg returns the message that sets key of b to v.
func putMsg(b *bucket, key string, v []byte) *nats.Msg {
	return &nats.Msg{Subject: b.subj(key), Data: v, Header: nats.Header{}}
}

// delMsg returns the message that deletes key of b.
func delMsg(b *bucket, key string) *nats.Msg {
	m := &nats.Msg{Subject: b.subj(key), Header: nats.Header{}}
	m.Header.Set("KV-Operation", "DEL")
	return m
}

// purgeMsg returns the message that deletes key of b and its history.
func purgeMsg(b *bucket, key string) *nats.Msg {
	m := &nats.Msg{Subject: b.subj(key), Header: nats.Header{}}
	m.Header.Set("KV-Operation", "PURGE")
	return rollup(m)
}

// rollup makes m, once stored, the only revision its subject keeps.
func rollup(m *nats.Msg) *nats.Msg {
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	return m
}

// expect makes m conditional on its subject's last revision being rev (0:
// the subject holds nothing).
func expect(m *nats.Msg, rev uint64) *nats.Msg {
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(rev))
	return m
}

// validKey reports whether an id can be a key token.
func validKey(id string) bool {
	return id != "" && !strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}
