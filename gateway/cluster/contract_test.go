package cluster

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

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
// cluster.
func TestPendingContract(t *testing.T) {
	nodes := natstest.Start(t, 3)
	statetest.RunPending(t, func(t *testing.T) (state.Pending, func() state.Pending) {
		open := opener(t, nodes)
		c := open(t, true)
		return c.Pending(), func() state.Pending {
			c.Close()
			c = open(t, false)
			return c.Pending()
		}
	})
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
