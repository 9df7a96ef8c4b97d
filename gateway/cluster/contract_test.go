package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/natstest"
	"github.com/hookgate/hookgate/state"
	"github.com/hookgate/hookgate/state/statetest"
)

// names gives every subtest buckets of its own on a shared cluster.
var names atomic.Int64

// opener returns a function that connects to nodes under a new name
// each time it is called with fresh set, and again under the last name
// otherwise, closing the connection with the test.
func opener(t *testing.T, nodes *natstest.Cluster) (open func(t *testing.T, fresh bool) *Conn) {
	var name string
	return func(t *testing.T, fresh bool) *Conn {
		t.Helper()
		if fresh || name == "" {
			name = fmt.Sprintf("t%d", names.Add(1))
		}
		c, err := Connect(context.Background(), Options{URLs: nodes.URLs(), Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
}

// TestRegistryContract runs the state.Registry contract on a three-node
// JetStream cluster, the buckets replicated three times.
func TestRegistryContract(t *testing.T) {
	nodes := natstest.Start(t, 3)
	statetest.RunRegistry(t, func(t *testing.T) (state.Registry, func() state.Registry) {
		open := opener(t, nodes)
		c := open(t, true)
		if c.Replicas() != 3 {
			t.Fatalf("replicas %d; want 3 in a cluster of 3", c.Replicas())
		}
		r := openRegistry(t, c)
		return r, func() state.Registry {
			r.Close()
			c.Close()
			c = open(t, false)
			r = openRegistry(t, c)
			return r
		}
	})
}

func openRegistry(t *testing.T, c *Conn) *Registry {
	t.Helper()
	r, err := c.OpenRegistry(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestPendingContract runs the state.Pending contract on a three-node
// cluster, with the engine's paced writes and import's bulk ones.
func TestPendingContract(t *testing.T) {
	nodes := natstest.Start(t, 3)
	for _, mode := range []struct {
		name string
		of   func(*Conn) *Pending
	}{
		{"paced", (*Conn).Pending},
		{"bulk", func(c *Conn) *Pending { return c.Pending().Bulk() }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			statetest.RunPending(t, func(t *testing.T) (state.Pending, func() state.Pending) {
				open := opener(t, nodes)
				c := open(t, true)
				return mode.of(c), func() state.Pending {
					c.Close()
					c = open(t, false)
					return mode.of(c)
				}
			})
		})
	}
}

// TestLogContract runs the state.Log contract on the marker log of a
// three-node cluster, on the wall clock: its messages come from servers
// outside any synctest bubble.
func TestLogContract(t *testing.T) {
	nodes := natstest.Start(t, 3)
	statetest.RunLog(t, func(t *testing.T) (state.Log, func([]byte) (uint64, error), func() state.Log) {
		open := opener(t, nodes)
		c := open(t, true)
		m := openMarkers(t, c, MarkersOptions{Partitions: 1})
		return m, func(b []byte) (uint64, error) { return m.AppendTo(0, b) }, func() state.Log {
			m.Close()
			c.Close()
			c = open(t, false)
			m = openMarkers(t, c, MarkersOptions{Partitions: 1})
			return m
		}
	}, statetest.LogOptions{RealTime: true})
}

func openMarkers(t *testing.T, c *Conn, o MarkersOptions) *Markers {
	t.Helper()
	m, err := c.OpenMarkers(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// TestAckOrder runs the acknowledgement rule of package state across a
// real crash: the child process appends to the marker log, writes the
// pending set, and kills itself before or just after acknowledging.
// The cluster lives in this process; the child finds it through the
// environment, and each step uses buckets of its own (named after its
// directory).
//
// Real time: a partition is given as JetStream's pins and redeliveries
// come; each wait is bounded by a minute.
func TestAckOrder(t *testing.T) {
	const env = "HOOKGATE_CLUSTER_TEST_URLS"
	urls := os.Getenv(env)
	if urls == "" {
		nodes := natstest.Start(t, 3)
		urls = nodes.URLs()
		t.Setenv(env, urls)
	}
	statetest.RunAckOrder(t, "TestAckOrder", func(t *testing.T, dir string) (state.Log, func([]byte) (uint64, error), state.Pending, func()) {
		c, err := Connect(context.Background(), Options{URLs: urls, Name: "ack-" + filepath.Base(filepath.Dir(dir)) + filepath.Base(dir)})
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.OpenMarkers(context.Background(), MarkersOptions{Partitions: 1, Failover: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		// The log gives its records once it owns the partition.
		deadline := time.After(time.Minute)
		for len(m.Owned()) == 0 {
			select {
			case <-m.Changed():
			case <-deadline:
				t.Fatal("the marker log's partition was not given within a minute")
			}
		}
		return &readingLog{m}, func(b []byte) (uint64, error) { return m.AppendTo(0, b) }, c.Pending(), func() { m.Close(); c.Close() }
	})
}

// readingLog adapts the marker log to the crash test of the
// acknowledgement rule, which appends and acknowledges without reading,
// and reads once after the crash: it reads as the engine does, before it
// acknowledges, and after a crash it waits until the log holds what the
// stream has left for it (JetStream gives a dead reader's markers to the
// next after their AckWait).
type readingLog struct{ *Markers }

// Read waits, a minute at most, until the markers the log holds are all
// the stream has, then reads.
//
// Real time: markers come as JetStream delivers them.
func (l *readingLog) Read(dst []state.Record, from uint64, max int) ([]state.Record, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		recs, err := l.Markers.Read(nil, from, 1<<20)
		if err != nil {
			return dst, err
		}
		if uint64(len(recs)) >= l.Markers.Len() || time.Now().After(deadline) {
			return l.Markers.Read(dst, from, max)
		}
		select {
		case <-l.Updated():
		case <-time.After(50 * time.Millisecond): // the stream's count may fall: an acknowledgement applied
		}
	}
}

// Ack reads until upTo is given, then acknowledges.
func (l *readingLog) Ack(upTo uint64) error {
	deadline := time.Now().Add(time.Minute)
	for {
		recs, err := l.Markers.Read(nil, upTo, 1)
		if err != nil {
			return err
		}
		if len(recs) > 0 || time.Now().After(deadline) {
			return l.Markers.Ack(upTo)
		}
		<-l.Updated()
	}
}
