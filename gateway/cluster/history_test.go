package cluster

import (
	"context"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/gateway/webhooks"
	"github.com/hookgate/hookgate/internal/natstest"
	"github.com/hookgate/hookgate/state"
)

// TestRunsAreCountersHistory: a flush stores each webhook's counters and
// the runs it recorded as one entry; a webhook's run history is read back
// from those entries across flushes, the last state.RunsKept of them,
// merged with the runs bucket of an earlier version; a deletion purges
// it.
func TestRunsAreCountersHistory(t *testing.T) {
	nodes := natstest.Start(t, 1)
	name := uniqueName()
	ctx := context.Background()

	// A webhook whose first three runs an earlier version stored in its
	// runs bucket, beside a webhooks bucket that kept one revision.
	old := hook("alice", "app", "http://127.0.0.1/old")
	old.RunCount, old.LastRun = 3, core.Run{Status: 200, Timestamp: 3}
	nc, err := nats.Connect(nodes.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// An earlier version's webhooks bucket kept one revision.
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name + "-webhooks", History: 1}); err != nil {
		t.Fatal(err)
	}
	legacy, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name + "-runs"})
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 3; n++ {
		if _, err := legacy.Put(ctx, "r."+old.ID+"."+strconv.Itoa(n-1), webhooks.EncodeRun(n, core.Run{Status: 200, Timestamp: float64(n)})); err != nil {
			t.Fatal(err)
		}
	}

	a := openRegistry(t, connect(t, nodes, name, nil))
	if err := a.Import([]*core.Webhook{old}); err != nil {
		t.Fatal(err)
	}
	c := connect(t, nodes, name, nil)
	b := openRegistry(t, c)
	ws := []*core.Webhook{hook("alice", "app", "http://127.0.0.1/1"), hook("alice", "app", "http://127.0.0.1/2")}
	for _, w := range ws {
		if err := b.Create(w, 0); err != nil {
			t.Fatal(err)
		}
	}
	last := func() uint64 {
		info, err := c.hooks.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}

	if cfg := c.hooks.stream.CachedInfo().Config; cfg.MaxMsgsPerSubject != historyKept || !cfg.AllowAtomicPublish {
		t.Fatalf("the earlier webhooks bucket opened with %d revisions kept, atomic batches %v; want %d, true",
			cfg.MaxMsgsPerSubject, cfg.AllowAtomicPublish, historyKept)
	}
	count := func(key string) uint64 {
		t.Helper()
		subj := c.hooks.subj(key)
		info, err := c.hooks.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[subj]
	}

	ts := 100.0
	record := func(id string, n int) {
		for range n {
			ts++
			b.RecordRun(id, core.Run{Status: 200, Timestamp: ts}, nil)
		}
	}
	record(old.ID, 2)
	before := last()
	for round := range 6 {
		for _, w := range ws {
			record(w.ID, 10)
		}
		if err := b.Flush(); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			if got := last() - before; got != 3 {
				t.Fatalf("a flush of 3 webhooks' runs wrote %d entries; want 3", got)
			}
		}
	}

	// Read through the other instance: its copy comes from the watch and
	// the history from the bucket.
	for _, r := range []*Registry{a, b} {
		got, _ := r.Get("alice", old.ID)
		want := []float64{102, 101, 3, 2, 1}
		if got.RunCount != 5 || len(got.Runs) != len(want) {
			t.Fatalf("old webhook: runCount %d, %d runs; want 5, 5", got.RunCount, len(got.Runs))
		}
		for i, run := range got.Runs {
			if run.Timestamp != want[i] {
				t.Fatalf("old webhook's run %d at %v; want %v", i, run.Timestamp, want[i])
			}
		}
		got, _ = r.Get("alice", ws[1].ID)
		if got.RunCount != 60 || len(got.Runs) != state.RunsKept {
			t.Fatalf("runCount %d, %d runs; want 60, %d", got.RunCount, len(got.Runs), state.RunsKept)
		}
		for i, run := range got.Runs {
			// ws[1]'s runs are every other ten: round k's are at
			// 103+20k+10 .. 112+20k+10.
			round, k := (59-i)/10, (59-i)%10
			if want := float64(103 + 20*round + 10 + k); run.Timestamp != want {
				t.Fatalf("run %d at %v; want %v", i, run.Timestamp, want)
			}
		}
	}

	// Two entries with a run of the same number (a new owner that had
	// not yet heard of its predecessor's last flush): the later one's.
	again := state.Counters{RunCount: 60, State: core.StateActive, LastRun: core.Run{Status: 200, Timestamp: 999}}
	if _, err := c.hooks.kv.Put(ctx, "c."+ws[0].ID, webhooks.EncodeCountersRuns(again, 60, []core.Run{again.LastRun})); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Get("alice", ws[0].ID); len(got.Runs) != state.RunsKept || got.Runs[0].Timestamp != 999 || got.Runs[1].Timestamp != 103+20*5+8 {
		t.Fatalf("after a second run 60: %d runs, the first two at %v, %v; want %d, 999, %v",
			len(got.Runs), got.Runs[0].Timestamp, got.Runs[1].Timestamp, state.RunsKept, 103+20*5+8)
	}

	// A record keeps no history (an earlier signing secret goes with
	// it); its counters keep theirs.
	for range 3 {
		if _, err := a.Update("alice", ws[1].ID, func(w *core.Webhook) error { w.Secret = core.NewSigningSecret(); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if w, c := count("w."+ws[1].ID), count("c."+ws[1].ID); w != 1 || c < 10 {
		t.Fatalf("after 3 updates the record has %d revisions, the counters %d; want 1, 10 or more", w, c)
	}

	// A deletion keeps only the purge markers of the record and the
	// counters: the history is gone.
	if err := b.Delete("alice", ws[1].ID); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"w." + ws[1].ID, "c." + ws[1].ID} {
		if got := count(key); got != 1 {
			t.Fatalf("%s holds %d entries after the deletion; want 1", key, got)
		}
	}
	if _, ok := a.Get("alice", ws[1].ID); ok {
		t.Fatal("a still reads the webhook b deleted")
	}
}
