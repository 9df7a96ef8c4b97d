package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bench/upstream"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/cluster"
	"github.com/hookgate/hookgate/internal/natstest"
)

// startClusterGateway starts an instance of hookgate in cluster mode on
// nodes, under name, with the shared key file.
func startClusterGateway(t *testing.T, nodes *natstest.Cluster, name, key, up string, more ...string) *gatewayProc {
	t.Helper()
	return startGateway(t, append([]string{"-upstream", up, "-data-dir", t.TempDir(), "-nats", nodes.URLs(), "-nats-name", name,
		"-secrets-key-file", key, "-nats-partitions", "4", "-failover", "5s",
		"-allow-cidrs", "127.0.0.0/8", "-min-interval", "1s", "-log-level", "info"}, more...)...)
}

// webhookIDs lists alice's webhooks through addr.
func webhookIDs(t *testing.T, addr string) []string {
	t.Helper()
	st, body := call(addr, "GET", "/alice/webhooks", "")
	if st != 200 {
		t.Fatalf("listing webhooks: %d %s", st, body)
	}
	var out struct{ Webhooks []struct{ ID string } }
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range out.Webhooks {
		ids = append(ids, w.ID)
	}
	return ids
}

// TestClusterFailover runs two hookgate processes on a three-node
// JetStream cluster in the test process. Webhooks created through one are
// listed at once by the other; changes made through either are notified;
// when the instance that delivers is killed with SIGKILL while changes
// stream through the other, every change acknowledged is still notified
// to every webhook, by the survivor. A NATS node stopped loses nothing;
// without a quorum, readiness fails and changes are answered, not hung.
func TestClusterFailover(t *testing.T) {
	nodes := natstest.Start(t, 3)
	up := startUpstream(t, upstream.Options{})
	const hooks = 3
	recvs := startReceivers(t, hooks)
	name := "hg" + core.NewID()[:8]
	key := filepath.Join(t.TempDir(), "secrets.key")
	a := startClusterGateway(t, nodes, name, key, up)
	b := startClusterGateway(t, nodes, name, key, up)

	var ids []string
	for i, r := range recvs {
		createWebhook(t, a.listen, fmt.Sprintf("http://%s/hook%d", r.Addr(), i))
		if got := webhookIDs(t, b.listen); len(got) != i+1 {
			t.Fatalf("right after its creation through a, b lists %d webhooks; want %d", len(got), i+1)
		}
	}
	ids = webhookIDs(t, a.listen)

	// A change through each instance reaches every webhook.
	for _, g := range []*gatewayProc{a, b} {
		at := time.Now()
		if st, body := postEvent(g.listen); st != 201 {
			t.Fatalf("change: %d %s", st, body)
		}
		for i, r := range recvs {
			if !eventually(patience, func() bool { return notifiedAfter(r, at) }) {
				t.Fatalf("webhook %d got no notification of a change through %s", i, g.listen)
			}
		}
	}

	// Kill the instance that delivers alice's webhooks while changes
	// stream through the other.
	series := fmt.Sprintf(`hookgate_cluster_partition_owned{partition="%d"}`, cluster.PartitionOf("alice", 4))
	owner, other := a, b
	if b.metric(t, series) == 1 {
		owner, other = b, a
	} else if a.metric(t, series) != 1 {
		t.Fatalf("neither instance owns alice's partition")
	}
	changes := startChanges(other.listen, 4, false)
	changes.waitAcked(t, 20)
	killed := time.Now()
	owner.kill(t)
	b = other
	changes.waitAcked(t, changes.count()+20)
	n, last := changes.stop()
	for i, r := range recvs {
		if !eventually(patience, func() bool { return notifiedAfter(r, last) }) {
			t.Fatalf("webhook %d got no notification after the last of %d changes acknowledged through the survivor", i, n)
		}
	}
	if !eventually(patience, func() bool { return b.metric(t, "hookgate_cluster_partitions_owned") == 4 }) {
		t.Fatalf("after the other's death the survivor owns %v partitions; want 4", b.metric(t, "hookgate_cluster_partitions_owned"))
	}
	t.Logf("%d changes acknowledged through the survivor while the owner was killed; every webhook notified after the last, %v after the kill", n, time.Since(killed).Round(time.Millisecond))

	// One NATS node down: nothing lost, b still answers and notifies.
	nodes.StopNode(0)
	at := time.Now()
	if st, body := postEvent(b.listen); st != 201 {
		t.Fatalf("change with a node down: %d %s", st, body)
	}
	for i, r := range recvs {
		if !eventually(patience, func() bool { return notifiedAfter(r, at) }) {
			t.Fatalf("webhook %d got no notification with one NATS node down", i)
		}
	}
	if got := webhookIDs(t, b.listen); len(got) != len(ids) {
		t.Fatalf("with a node down b lists %d webhooks; want %d", len(got), len(ids))
	}

	// No quorum: readiness fails, a change is answered and counted lost.
	nodes.StopNode(1)
	if !eventually(patience, func() bool { st, body := b.ready(t); return st == 503 && strings.Contains(body, "state: failing") }) {
		st, body := b.ready(t)
		t.Fatalf("without a quorum /readyz answers %d %q; want 503 and the state failing", st, body)
	}
	start := time.Now()
	if st, body := postEvent(b.listen); st != 201 {
		t.Fatalf("change without a quorum: %d %s; want the upstream's answer", st, body)
	}
	// The first waits at most the failover time (5 s here), what an
	// election or a move to another server takes; once the failure has
	// lasted that long, a change is answered at once.
	if took := time.Since(start); took > 7*time.Second {
		t.Errorf("a change without a quorum took %v to answer; want the failover time, 5 s, at most", took)
	}
	start = time.Now()
	if st, body := postEvent(b.listen); st != 201 {
		t.Fatalf("second change without a quorum: %d %s; want the upstream's answer", st, body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a change, the quorum lost for longer than the failover time, took %v to answer; want no wait", took)
	}
	if lost := b.metric(t, "hookgate_cluster_markers_unpublished_total"); lost < 2 {
		t.Fatalf("changes without a quorum are not counted lost (%v; want 2)", lost)
	}
	if st, body := call(b.listen, "POST", "/alice/webhooks", `{"url":"http://127.0.0.1:1/no-quorum"}`); st != 503 || !strings.Contains(body, "api-unavailable") {
		t.Fatalf("a webhook created without a quorum: %d %s; want 503 api-unavailable", st, body)
	}

	// The quorum back: the state answers, the next change that is
	// recorded makes hookgate ready again, and changes are notified. (A
	// change whose partition the engine had not taken up again, its
	// pending sets not loading yet, was once acknowledged unnotified.)
	nodes.StartNode(1)
	if !eventually(patience, func() bool { _, body := b.ready(t); return strings.Contains(body, "state: ok") }) {
		st, body := b.ready(t)
		t.Fatalf("with the quorum back /readyz answers %d %q", st, body)
	}
	if !eventually(patience, func() bool {
		postEvent(b.listen)
		st, _ := b.ready(t)
		return st == 200
	}) {
		st, body := b.ready(t)
		t.Fatalf("with the quorum back, after changes, /readyz answers %d %q", st, body)
	}
	// A change recorded now is notified to every webhook.
	at = time.Now()
	if st, body := postEvent(b.listen); st != 201 {
		t.Fatalf("change with the quorum back: %d %s", st, body)
	}
	for i, r := range recvs {
		if !eventually(patience, func() bool { return notifiedAfter(r, at) }) {
			t.Fatalf("webhook %d got no notification of a change made with the quorum back (lost: %v)", i,
				b.metric(t, "hookgate_cluster_markers_unpublished_total"))
		}
	}

	// Every NATS node gone: hookgate still stops promptly, well within
	// its shutdown timeout (15 s), rather than wait on each write.
	nodes.StopNode(1)
	nodes.StopNode(2)
	if !eventually(patience, func() bool { st, body := b.ready(t); return st == 503 && strings.Contains(body, "state: failing") }) {
		t.Fatal("with every NATS node gone, /readyz does not say so")
	}
	postEvent(b.listen) // something to flush
	if exit, took := b.stop(t, syscall.SIGTERM, patience); exit != 0 || took > 7*time.Second {
		t.Fatalf("with NATS gone, SIGTERM: exit %d after %v; want 0, within half the shutdown timeout\n%s", exit, took, b.stderr())
	} else {
		t.Logf("with NATS gone, hookgate stopped in %v", took.Round(time.Millisecond))
	}
}
