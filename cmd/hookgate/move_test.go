package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"github.com/hookgate/hookgate/gateway/cluster"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookgate/hookgate/bench/receiver"
	"github.com/hookgate/hookgate/bench/upstream"
	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/internal/natstest"
)

// moveState runs hookgate export or import with args, stdin in, and
// returns what it wrote to stdout.
func moveState(t *testing.T, cmd string, in []byte, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c := exec.CommandContext(ctx, binary(t), append([]string{cmd}, args...)...)
	c.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("hookgate %s: %v\n%s", cmd, err, errb.String())
	}
	return out.Bytes()
}

// TestMoveBetweenShapes: the state of a single instance on Badger moves
// to a JetStream cluster with hookgate export and import, and back to a
// new Badger database. The webhooks keep their ids and settings; a
// pending set waiting for a receiver that is down is delivered by the
// cluster once the receiver is up; no signing secret is in the stream
// in clear.
func TestMoveBetweenShapes(t *testing.T) {
	up := startUpstream(t, upstream.Options{})
	recvs := startReceivers(t, 1)
	downAddr := freeAddr(t) // a receiver that is down for now
	key := filepath.Join(t.TempDir(), "secrets.key")
	dirA := t.TempDir()
	a := startGateway(t, "-upstream", up, "-data-dir", dirA, "-secrets-key-file", key, "-allow-cidrs", "127.0.0.0/8",
		"-min-interval", "1s", "-log-level", "warn")
	createWebhook(t, a.listen, fmt.Sprintf("http://%s/up", recvs[0].Addr()))
	st, body := call(a.listen, "POST", "/alice/webhooks", `{"url":"http://`+downAddr+`/down","signed":true}`)
	if st != 201 {
		t.Fatalf("creating a signed webhook: %d %s", st, body)
	}
	secret := between(body, `"signingSecret":"`, `"`)
	ids := webhookIDs(t, a.listen)
	if st, body := postEvent(a.listen); st != 201 {
		t.Fatalf("change: %d %s", st, body)
	}
	if !eventually(patience, func() bool { return recvs[0].Count() > 0 }) {
		t.Fatal("the webhook that is up got no notification")
	}
	waitQueueEmpty(t, a) // dispatched: the other's set is pending, on disk
	if exit, _ := a.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Fatalf("exit %d", exit)
	}

	stream := moveState(t, "export", nil, "-data-dir", dirA, "-secrets-key-file", key)
	if n := strings.Count(string(stream), `{"webhook":`); n != 2 {
		t.Fatalf("the export has %d webhooks; want 2:\n%s", n, stream)
	}
	if !strings.Contains(string(stream), `{"pending":{"id":"`+ids[1]) {
		t.Fatalf("the export has no pending set for the webhook that is down:\n%s", stream)
	}
	if secret == "" || bytes.Contains(stream, []byte(secret)) || bytes.Contains(stream, []byte(strings.TrimPrefix(secret, "whsec_"))) {
		t.Fatalf("the signing secret %q is in the stream in clear, or was not returned", secret)
	}

	nodes := natstest.Start(t, 3)
	name := "mv" + core.NewID()[:8]
	moveState(t, "import", stream, "-nats", nodes.URLs(), "-nats-name", name, "-secrets-key-file", key, "-data-dir", t.TempDir())
	b := startClusterGateway(t, nodes, name, key, up)
	if got := webhookIDs(t, b.listen); !slices.Equal(got, ids) {
		t.Fatalf("the cluster lists %v; want %v", got, ids)
	}
	r := receiver.New(receiver.Options{Secret: secret}) // verifies the signature: the secret moved
	_, stop, err := r.Start(downAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if !eventually(patience, func() bool {
		for _, n := range r.Notifications() {
			if slices.Contains(messagesOf(n), core.MsgEventsChanged) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the pending set did not reach the receiver once up (%d notifications)", r.Count())
	}
	if exit, _ := b.stop(t, syscall.SIGTERM, patience); exit != 0 {
		t.Fatalf("exit %d", exit)
	}

	// A change left in the stream, no instance running: it moves too.
	conn, err := cluster.Connect(context.Background(), cluster.Options{URLs: nodes.URLs(), Name: name, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, err := conn.OpenMarkers(context.Background(), cluster.MarkersOptions{Partitions: 4, AppendOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Append(core.AppendMarkerNames(nil, time.Now().UnixNano(), "alice", []string{core.MsgStreamsChanged})); err != nil {
		t.Fatal(err)
	}
	m.Close()
	conn.Close()

	back := moveState(t, "export", nil, "-nats", nodes.URLs(), "-nats-name", name, "-secrets-key-file", key, "-data-dir", t.TempDir(), "-nats-partitions", "4")
	if n := strings.Count(string(back), `{"marker":`); n != 1 {
		t.Fatalf("the cluster's export has %d markers; want the one left in the stream:\n%s", n, back)
	}
	dirC := t.TempDir()
	moveState(t, "import", back, "-data-dir", dirC, "-secrets-key-file", key)
	c := startGateway(t, "-upstream", up, "-data-dir", dirC, "-secrets-key-file", key, "-allow-cidrs", "127.0.0.0/8", "-log-level", "warn")
	if got := webhookIDs(t, c.listen); !slices.Equal(got, ids) {
		t.Fatalf("back on Badger, hookgate lists %v; want %v", got, ids)
	}
	if !eventually(patience, func() bool {
		for _, n := range r.Notifications() {
			if slices.Contains(messagesOf(n), core.MsgStreamsChanged) {
				return true
			}
		}
		return false
	}) {
		t.Fatal("the change left in the cluster's stream was not notified once moved back to Badger")
	}

	// Another key cannot read the stream, and says why.
	other := filepath.Join(t.TempDir(), "other.key")
	cmd := exec.Command(binary(t), "import", "-data-dir", t.TempDir(), "-secrets-key-file", other)
	cmd.Stdin = bytes.NewReader(stream)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "-secrets-key-file") {
		t.Fatalf("an import with another key: %v\n%s", err, out)
	}
}

// between returns what follows start in s, up to end.
func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}

// FuzzMoveLine: a line of an export stream is a webhook, a pending set
// or a marker, or an error; never a panic, and what it gives is what an
// export of it would write again.
func FuzzMoveLine(f *testing.F) {
	sealer, err := webhooks.NewSealer(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		f.Fatal(err)
	}
	w := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "app", URL: "http://127.0.0.1/x", State: core.StateActive, Secret: core.NewSigningSecret(), Signed: true}
	rec := base64.StdEncoding.EncodeToString(webhooks.EncodeRecord(w, sealer))
	marker := base64.StdEncoding.EncodeToString(core.AppendMarkerNames(nil, 1, "alice", []string{core.MsgEventsChanged}))
	for _, seed := range []string{`{"webhook":"` + rec + `"}`, `{"pending":{"id":"x","set":{"m":["eventsChanged"]}}}`,
		`{"marker":"` + marker + `"}`, `{}`, `{"webhook":"AAAA","marker":"AAAA"}`, `[`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		w, p, m, err := parseMoveLine(line, sealer)
		if err != nil {
			return
		}
		switch {
		case w != nil:
			again, err := webhooks.DecodeRecord(webhooks.EncodeRecord(w, sealer), sealer)
			if err != nil || again.ID != w.ID || again.Secret != w.Secret || again.URL != w.URL {
				t.Fatalf("a webhook read does not survive its export: %+v, %v", again, err)
			}
		case p != nil:
			if p.ID == "" {
				t.Fatal("a pending set without an id")
			}
		default:
			if _, err := core.DecodeMarker(m); err != nil {
				t.Fatalf("a marker read does not decode: %v", err)
			}
		}
	})
}
