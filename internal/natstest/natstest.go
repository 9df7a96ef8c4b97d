// Package natstest runs a real NATS JetStream cluster inside a test
// process: nats-server nodes on loopback, each with its own store
// directory, routed to one another, which a test can stop and start
// again on the same ports and storage.
package natstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of in-process nodes.
type Cluster struct {
	t     testing.TB
	opts  []*server.Options
	nodes []*server.Server // nil: stopped
}

// ready is how long a node may take to accept connections, and the
// cluster to elect its JetStream leader: a bound for a failing test, not
// a measured window.
const ready = 60 * time.Second

// Start starts a cluster of n nodes (n = 1: a single JetStream server)
// and waits until JetStream answers. The nodes stop with the test.
//
// Real time: it waits for the nodes' own readiness, bounded by a minute.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: make([]*server.Options, n), nodes: make([]*server.Server, n)}
	ports := freePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i]))
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       ports[i],
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			// Small enough for a test machine, as large as a test needs.
			JetStreamMaxMemory: 64 << 20,
			JetStreamMaxStore:  1 << 30,
		}
		if n > 1 {
			o.Cluster = server.ClusterOpts{Name: "hookgate-test", Host: "127.0.0.1", Port: ports[n+i]}
			o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		}
		c.opts[i] = o
	}
	for i := range n {
		c.StartNode(i)
	}
	t.Cleanup(c.Stop)
	c.WaitJetStream()
	return c
}

// freePorts returns n ports free on 127.0.0.1 a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	out := make([]int, n)
	var ls []net.Listener
	for i := range out {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// StartNode starts node i (again), on its ports and storage.
func (c *Cluster) StartNode(i int) {
	c.t.Helper()
	if c.nodes[i] != nil {
		return
	}
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		c.t.Fatalf("nats node %d: %v", i+1, err)
	}
	s.Start()
	if !s.ReadyForConnections(ready) {
		s.Shutdown()
		c.t.Fatalf("nats node %d did not start within %v", i+1, ready)
	}
	c.nodes[i] = s
}

// StopNode stops node i, as a crash of its machine would for the
// others: its connections drop and it answers nothing more.
func (c *Cluster) StopNode(i int) {
	if s := c.nodes[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.nodes[i] = nil
	}
}

// Stop stops every node.
func (c *Cluster) Stop() {
	for i := range c.nodes {
		c.StopNode(i)
	}
}

// URLs returns the client URLs of every node, comma-separated, running
// or not.
func (c *Cluster) URLs() string {
	var us []string
	for _, o := range c.opts {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(us, ",")
}

// URL returns node i's client URL.
func (c *Cluster) URL(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", c.opts[i].Port) }

// WaitJetStream waits until JetStream answers an account request
// through the running nodes, which needs a leader of its meta group.
//
// Real time: bounded by a minute, it polls the cluster's own answer.
func (c *Cluster) WaitJetStream() {
	c.t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1))
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(ready)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("JetStream did not answer within %v: %v", ready, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
