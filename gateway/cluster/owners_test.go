package cluster

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/core"
	"github.com/hookgate/hookgate/internal/natstest"
	"github.com/hookgate/hookgate/state"
)

// ownedBy waits until the partitions of the instances in ms are shared
// among them, each owned once, and returns them.
//
// Real time: ownership moves on JetStream's timers (the pin's time to
// live, the anchor's redelivery); bounded by a minute.
func ownedBy(t *testing.T, n int, ms ...*Markers) [][]int {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		var all []int
		out := make([][]int, len(ms))
		for i, m := range ms {
			out[i] = m.Owned()
			all = append(all, out[i]...)
		}
		slices.Sort(all)
		if len(all) == n && len(slices.Compact(all)) == n {
			return out
		}
		if !changed(deadline, ms...) {
			t.Fatalf("partitions owned: %v; want each of %d once", out, n)
		}
	}
}

// changed waits until any of ms gains or loses a partition, and reports
// false if deadline comes first.
func changed(deadline <-chan time.Time, ms ...*Markers) bool {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deadline)}}
	for _, m := range ms {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(m.Changed())})
	}
	i, _, _ := reflect.Select(cases)
	return i != 0
}

// settled reports whether every partition m owns was gained settle ago
// or more.
func settled(m *Markers) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pt := range m.parts {
		if pt.owned && m.now().Sub(pt.gained) < settle {
			return false
		}
	}
	return true
}

// readAll reads what m has to deliver, until it holds want records.
//
// Real time: markers come as JetStream delivers them; bounded by a
// minute.
func readAll(t *testing.T, m *Markers, want int) []state.Record {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		recs, err := m.Read(nil, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) >= want {
			return recs
		}
		select {
		case <-m.Updated():
		case <-deadline:
			t.Fatalf("%d markers to read; want %d", len(recs), want)
		}
	}
}

// TestPartitionOwnership: two instances share the partitions, each
// partition owned by one, and together they read every marker; and when one dies
// without a word (its connection cut, no unpinning), the other takes
// its partitions and every marker it had not acknowledged.
//
// Real time: markers and partitions move as JetStream delivers and pins;
// each wait is bounded by a minute.
func TestPartitionOwnership(t *testing.T) {
	nodes := natstest.Start(t, 3)
	const parts = 4
	name := uniqueName()
	ca, cb := connect(t, nodes, name, nil), connect(t, nodes, name, nil)
	o := MarkersOptions{Partitions: parts, Failover: 3 * time.Second}
	a := openMarkers(t, ca, o)
	ownedBy(t, parts, a)
	b := openMarkers(t, cb, o)

	users := make([]string, 40)
	for i := range users {
		users[i] = fmt.Sprintf("user%02d", i)
	}
	for i, u := range users {
		if _, err := a.Append(core.AppendMarkerNames(nil, int64(i), u, []string{core.MsgEventsChanged})); err != nil {
			t.Fatal(err)
		}
	}
	ownedBy(t, parts, a, b)
	// Each reads the markers of its partitions' users, and together they
	// read every user's.
	deadline := time.After(time.Minute)
	for {
		seen := map[string]bool{}
		for _, m := range []*Markers{a, b} {
			recs, err := m.Read(nil, 0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				u, _ := core.MarkerUser(r.Data)
				seen[string(u)] = true
			}
		}
		if len(seen) == len(users) {
			break
		}
		select {
		case <-a.Updated():
		case <-b.Updated():
		case <-deadline:
			t.Fatalf("a and b read the markers of %d users; want %d", len(seen), len(users))
		}
	}

	// a dies: b gets every partition, and the markers a did not
	// acknowledge. First b counts both and has held its own partitions
	// for settle, as after running a while.
	for n, err := cb.Instances(); n != 2 || !settled(b); n, err = cb.Instances() {
		select {
		case <-deadline:
			t.Fatalf("b counts %d instances (%v), its partitions settled: %v; want 2, true", n, err, settled(b))
		case <-time.After(100 * time.Millisecond):
		}
	}
	had, gained := len(b.Owned()), partitionsGained.Get()
	died := time.Now()
	ca.nc.Close() // no unpin, no hand-back: as kill -9
	ownedBy(t, parts, b)
	took := time.Since(died)
	if got := partitionsGained.Get() - gained; got != uint64(parts-had) {
		t.Fatalf("hookgate_cluster_partitions_gained_total grew by %d as b took a's partitions; want %d", got, parts-had)
	}
	t.Logf("failover of %d partitions took %v (bound %v)", parts, took.Round(time.Millisecond), o.Failover)
	// b keeps them: a's last beats, counted for three beats more, do not
	// make b give half of them up to the dead at its next balance.
	b.balance()
	if owned := b.Owned(); len(owned) != parts {
		t.Fatalf("balanced %v after a died, b owns %v; want all %d partitions", time.Since(died).Round(time.Millisecond), owned, parts)
	}
	recs := readAll(t, b, len(users))
	seen := map[string]bool{}
	for _, r := range recs {
		u, _ := core.MarkerUser(r.Data)
		seen[string(u)] = true
	}
	if len(seen) != len(users) {
		t.Fatalf("b reads the markers of %d users after a died; want %d", len(seen), len(users))
	}
	if err := b.Ack(recs[len(recs)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if recs, _ := b.Read(nil, 0, 100); len(recs) != 0 {
		t.Fatalf("after the acknowledgement b still reads %d markers", len(recs))
	}

	// A marker handed back (Unread) is not acknowledged, and is read again.
	if _, err := b.Append(core.AppendMarkerNames(nil, 1, users[0], []string{core.MsgEventsChanged})); err != nil {
		t.Fatal(err)
	}
	one := readAll(t, b, 1)
	b.Unread(one[0].Seq)
	if err := b.Ack(one[0].Seq + 1000); err != nil {
		t.Fatal(err)
	}
	if again, _ := b.Read(nil, one[0].Seq+1, 100); len(again) != 1 || again[0].Seq != one[0].Seq {
		t.Fatalf("a marker handed back and past the acknowledgement: read again %v; want it (%d)", again, one[0].Seq)
	}
}

// TestPartitionBalance: an instance that holds more than its share of
// the partitions (their number over the instances alive, rounded up)
// gives the rest up, and the others take them: 6 partitions over one,
// two, then three instances. An instance whose log is opened Later (it
// loads its webhooks) is not counted until it starts pulling.
//
// Real time: the census reads the instances' beats, one a second; the
// waits are bounded by a minute.
func TestPartitionBalance(t *testing.T) {
	nodes := natstest.Start(t, 3)
	const parts = 6
	name := uniqueName()
	o := MarkersOptions{Partitions: parts, Failover: 3 * time.Second}
	ca := connect(t, nodes, name, nil)
	a := openMarkers(t, ca, o)
	ownedBy(t, parts, a)
	cb := connect(t, nodes, name, nil)
	later := o
	later.Later = true
	b := openMarkers(t, cb, later)
	// b beats, not pulling: a counts itself alone.
	health, err := ca.js.Stream(context.Background(), name+"-health")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, errB := health.GetLastMsgForSubject(context.Background(), cb.beat)
		n, errA := ca.Instances()
		if errA == nil && errB == nil {
			if n != 1 {
				t.Fatalf("with b loading, a counts %d instances; want itself only", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no census within a minute: %v, %v", errA, errB)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	balanced(t, parts, a, b)
	c := openMarkers(t, connect(t, nodes, name, nil), o)
	balanced(t, parts, a, b, c)
}

// balanced waits until ms share the partitions evenly.
//
// Real time: partitions move on the instances' census and JetStream's
// pins; bounded by a minute.
func balanced(t *testing.T, n int, ms ...*Markers) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		owned := make([][]int, len(ms))
		total, even := 0, true
		for i, m := range ms {
			owned[i] = m.Owned()
			total += len(owned[i])
			even = even && len(owned[i]) == n/len(ms)
		}
		if total == n && even {
			t.Logf("%d instances own %v", len(ms), owned)
			return
		}
		if !changed(deadline, ms...) {
			t.Fatalf("%d instances own %v; want %d each", len(ms), owned, n/len(ms))
		}
	}
}

// TestMarkersSurviveClusterRestart: when every server stops at once and
// comes back, the markers not acknowledged come again, those
// acknowledged do not (they left the work-queue stream), and the
// instance owns its partitions again.
//
// Real time: servers restart and partitions are pinned again on
// JetStream's timers; each wait is bounded by a minute.
func TestMarkersSurviveClusterRestart(t *testing.T) {
	nodes := natstest.Start(t, 3)
	const parts = 2
	m := openMarkers(t, connect(t, nodes, uniqueName(), nil), MarkersOptions{Partitions: parts, Failover: 3 * time.Second})
	ownedBy(t, parts, m)
	for i := range 10 {
		if _, err := m.Append(core.AppendMarkerNames(nil, int64(i), fmt.Sprintf("user%d", i), []string{core.MsgEventsChanged})); err != nil {
			t.Fatal(err)
		}
	}
	recs := readAll(t, m, 10)
	if err := m.Ack(recs[4].Seq); err != nil {
		t.Fatal(err)
	}
	// The acknowledged markers have left the stream.
	deadline := time.Now().Add(time.Minute)
	for {
		var held uint64
		info, err := m.stream.Info(context.Background())
		if err == nil {
			held = info.State.Msgs
		}
		if held == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream holds %d messages a minute after the acknowledgement (%v); want 5", held, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 3 {
		nodes.StopNode(i)
	}
	for i := range 3 {
		nodes.StartNode(i)
	}
	nodes.WaitJetStream()
	ownedBy(t, parts, m)
	again := readAll(t, m, 5)
	var got, want []uint64
	for _, r := range again {
		got = append(got, r.Seq)
	}
	for _, r := range recs[5:] {
		want = append(want, r.Seq)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after every server restarted, the markers read are %v; want those not acknowledged, %v", got, want)
	}
}

// TestAppendAcrossAMove: the server an instance is connected to stops
// while changes stream through it. The publishes cut by the move to
// another server are made again (at least one is, or the test proves
// nothing), no change is counted lost, since two servers of three are a
// quorum, and every change's marker is read.
//
// Real time: the connection moves and leaders are elected on NATS's
// timers; the appenders run until a publish has been made again and
// the connection is back, at most a minute, and the read is bounded by
// a minute.
func TestAppendAcrossAMove(t *testing.T) {
	nodes := natstest.Start(t, 3)
	c := connect(t, nodes, uniqueName(), nil)
	const parts = 2
	m := openMarkers(t, c, MarkersOptions{Partitions: parts, Failover: 3 * time.Second})
	ownedBy(t, parts, m)
	at := -1
	for i := range 3 {
		if c.nc.ConnectedUrl() == nodes.URL(i) {
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("connected to %q, none of %s", c.nc.ConnectedUrl(), nodes.URLs())
	}
	lost, again := markersLost.Get(), markersRepublished.Get()
	var (
		mu    sync.Mutex
		users = map[string]bool{}
		errs  []error
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	flowing := make(chan struct{}) // closed at the 100th change recorded
	var once sync.Once
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u := fmt.Sprintf("user%d-%d", g, i)
				_, err := m.Append(core.AppendMarkerNames(nil, int64(i), u, []string{core.MsgEventsChanged}))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					users[u] = true
					if len(users) == 100 {
						once.Do(func() { close(flowing) })
					}
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-flowing:
	case <-time.After(time.Minute):
		close(stop)
		wg.Wait()
		t.Fatalf("%d changes recorded in a minute before the stop; want 100 (errors: %v)", len(users), errs[:min(len(errs), 3)])
	}
	nodes.StopNode(at)
	deadline := time.Now().Add(time.Minute)
	for (markersRepublished.Get() == again || !c.nc.IsConnected()) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, err := range errs[:min(len(errs), 5)] {
		t.Errorf("a change made as the connected server stopped: %v", err)
	}
	if n := markersLost.Get() - lost; n != 0 {
		t.Errorf("%d markers counted lost with two servers of three up", n)
	}
	if markersRepublished.Get() == again {
		t.Fatal("no publish was cut by the server's stop: nothing tested")
	}
	t.Logf("%d changes, %d publishes made again", len(users), markersRepublished.Get()-again)
	read := time.Now().Add(time.Minute)
	for {
		recs, err := m.Read(nil, 0, 1<<22)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, r := range recs {
			u, _ := core.MarkerUser(r.Data)
			seen[string(u)] = true
		}
		missing := 0
		for u := range users {
			if !seen[u] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(read) {
			t.Fatalf("%d of %d changes' markers not read a minute after the move", missing, len(users))
		}
		select {
		case <-m.Updated():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestAckPurges: an acknowledgement purges the partition's subject below
// the oldest marker its owner still holds, so the stream keeps, and the
// next owner reads, only what was not acknowledged; a marker handed back
// keeps the later ones of its partition too (they are read again).
//
// Real time: markers and the partition move as JetStream delivers and
// pins; each wait is bounded by a minute.
func TestAckPurges(t *testing.T) {
	nodes := natstest.Start(t, 3)
	name := uniqueName()
	o := MarkersOptions{Partitions: 1, Failover: 3 * time.Second}
	appendN := func(m *Markers, n int) {
		t.Helper()
		for i := range n {
			if _, err := m.Append(core.AppendMarkerNames(nil, int64(i), "alice", []string{core.MsgEventsChanged})); err != nil {
				t.Fatal(err)
			}
		}
	}
	seqs := func(recs []state.Record) []uint64 {
		var out []uint64
		for _, r := range recs {
			out = append(out, r.Seq)
		}
		return out
	}
	// next closes m, handing the partition over, and opens the next
	// owner, which reads want markers.
	next := func(m *Markers, want int) (*Markers, []state.Record) {
		t.Helper()
		m.Close()
		n := openMarkers(t, connect(t, nodes, name, nil), o)
		ownedBy(t, 1, n)
		recs := readAll(t, n, want)
		if len(recs) != want {
			t.Fatalf("the next owner reads %v; want %d markers", seqs(recs), want)
		}
		return n, recs
	}

	a := openMarkers(t, connect(t, nodes, name, nil), o)
	ownedBy(t, 1, a)
	appendN(a, 5)
	recs := readAll(t, a, 5)
	if err := a.Ack(recs[2].Seq); err != nil {
		t.Fatal(err)
	}
	if n := a.Len(); n != 2 {
		t.Fatalf("after acknowledging 3 of 5 the stream holds %d markers; want 2", n)
	}
	b, got := next(a, 2)
	if !slices.Equal(seqs(got), seqs(recs[3:])) {
		t.Fatalf("the next owner reads %v; want the unacknowledged %v", seqs(got), seqs(recs[3:]))
	}

	// Handed back: the first stays, and holds the later ones.
	appendN(b, 2)
	recs = readAll(t, b, 4)
	b.Unread(recs[0].Seq)
	if err := b.Ack(recs[3].Seq); err != nil {
		t.Fatal(err)
	}
	if again, _ := b.Read(nil, recs[3].Seq+1, 100); len(again) != 1 || again[0].Seq != recs[0].Seq {
		t.Fatalf("after the acknowledgement b reads %v; want the one handed back, %d", seqs(again), recs[0].Seq)
	}
	if n := b.Len(); n != 4 {
		t.Fatalf("with the first handed back the stream holds %d markers; want 4", n)
	}
	c, got := next(b, 4)
	if !slices.Equal(seqs(got), seqs(recs)) {
		t.Fatalf("the next owner reads %v; want %v", seqs(got), seqs(recs))
	}
	if err := c.Ack(got[3].Seq); err != nil {
		t.Fatal(err)
	}
	if n := c.Len(); n != 0 {
		t.Fatalf("after acknowledging every marker the stream holds %d; want 0", n)
	}
}

// TestMarkersOfAnEarlierVersion: a marker stream made by an earlier
// hookgate, a work queue, is refused with what to do, and still opens to
// append only, as hookgate export does, which reads every marker.
func TestMarkersOfAnEarlierVersion(t *testing.T) {
	nodes := natstest.Start(t, 3)
	name := uniqueName()
	c := connect(t, nodes, name, nil)
	_, err := c.js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name + "-markers",
		Subjects: []string{name + ".markers.*", name + ".anchor.*"}, Retention: jetstream.WorkQueuePolicy, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.js.Publish(context.Background(), name+".markers.0", core.AppendMarkerNames(nil, 1, "alice", []string{core.MsgEventsChanged})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenMarkers(context.Background(), MarkersOptions{Partitions: 1}); err == nil || !strings.Contains(err.Error(), "hookgate export") {
		t.Fatalf("opening a work-queue marker stream: %v; want an error that says to export", err)
	}
	m := openMarkers(t, c, MarkersOptions{Partitions: 1, AppendOnly: true})
	var users []string
	if err := m.Each(func(data []byte) error {
		u, _ := core.MarkerUser(data)
		users = append(users, string(u))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(users, []string{"alice"}) {
		t.Fatalf("export reads the markers of %v; want [alice]", users)
	}
}
