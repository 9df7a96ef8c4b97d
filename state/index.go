package state

import (
	"cmp"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"unsafe"

	"github.com/hookgate/hookgate/core"
)

// Index is the in-memory view of a registry's webhooks: by id, by user
// in creation order, and the runs recorded since the last flush. Its
// records hold no run history. Registries build on it; it is not safe
// for concurrent use, and the records it holds are its own (it copies in
// and out).
//
// A record is kept packed (Packed): its strings in one allocation, its
// numbers beside them, so that a million resident webhooks cost the
// garbage collector one pointer each, not ten, and some 220 bytes.
type Index struct {
	byID   map[string]*Packed
	byUser map[string][]*Packed  // creation order
	fresh  map[string]*freshRuns // recorded since the last TakeDirty
	active int
	scoped map[string]int // per user, how many of its webhooks have scopes

	scratch core.Webhook // RecordRun's unpacked record, not allocated per run
}

// Packed is a resident webhook record: its strings back to back in s,
// and its numbers.
type Packed struct {
	s    string    // id, user, accessId, url, createdBy, modifiedBy, secret, state
	ends [7]uint32 // where each string but the last ends in s

	minIntervalMs     int64
	created, modified float64
	lastRunAt         float64 // lastRun's timestamp and status; its other
	lastRunStatus     int32   // fields are runs[0]'s (see LastOfRuns)
	maxRetries        int32
	currentRetries    int32
	runCount          int32
	failCount         int32
	state             uint8 // stateActive, stateInactive, or 0: the last string of s
	signed            bool
	extra             *packedExtra // what few records have; nil for most
}

// packedExtra holds the fields a record has only now and then: scopes,
// and a rotated secret's grace.
type packedExtra struct {
	scopes         *core.Scopes // shared, never changed
	previousSecret string
	previousUntil  float64
}

const (
	stateActive = 1 + iota
	stateInactive
)

// Pack returns w packed, without its runs.
func Pack(w *core.Webhook) *Packed {
	p := new(Packed)
	p.fill(w, nil)
	return p
}

// Packer packs many records at once, as a load does: records come from
// slabs, and their strings from shared blocks, so that a million
// webhooks are a few thousand objects for the garbage collector to mark
// rather than two million. A record removed later keeps its slab and
// block until every record in them is gone: the memory held stays at
// most that of the records loaded. A Packer is not safe for concurrent
// use: one per goroutine.
type Packer struct {
	slab []Packed
	text []byte // the unused end of the current block

	added [][]loaded // by Add, in chunks of packSlab
}

const (
	packSlab  = 1024      // records per slab
	packBlock = 256 << 10 // bytes per block of strings
)

// Pack returns w packed, without its runs.
func (k *Packer) Pack(w *core.Webhook) *Packed {
	if len(k.slab) == 0 {
		k.slab = make([]Packed, packSlab)
	}
	p := &k.slab[0]
	k.slab = k.slab[1:]
	p.fill(w, k)
	return p
}

// bytes returns n bytes for one record's strings: from the current
// block, or a new one; allocated alone for a nil Packer or a long record.
// The caller writes them once, before making its string of them, and
// never again.
func (k *Packer) bytes(n int) []byte {
	if k == nil || n > packBlock/16 {
		return make([]byte, n)
	}
	if len(k.text) < n {
		k.text = make([]byte, packBlock)
	}
	b := k.text[:n:n]
	k.text = k.text[n:]
	return b
}

// fill packs w into p, its strings in bytes from k, or allocated alone
// when k is nil.
func (p *Packed) fill(w *core.Webhook, k *Packer) {
	*p = Packed{minIntervalMs: w.MinIntervalMs, created: w.Created, modified: w.Modified, signed: w.Signed}
	if w.Scopes != nil || w.PreviousSecret != "" {
		p.extra = &packedExtra{scopes: w.Scopes, previousSecret: w.PreviousSecret, previousUntil: w.PreviousUntil}
	}
	p.setCounters(CountersOf(w))
	p.maxRetries = clamp32(w.MaxRetries)
	strs := [...]string{w.ID, w.User, w.AccessID, w.URL, w.CreatedBy, w.ModifiedBy, w.Secret, ""}
	if p.state == 0 {
		strs[7] = w.State
	}
	n := 0
	for _, x := range strs {
		n += len(x)
	}
	if n == 0 {
		return
	}
	b := k.bytes(n)
	at := 0
	for i, x := range strs {
		at += copy(b[at:], x)
		if i < len(p.ends) {
			p.ends[i] = uint32(at)
		}
	}
	// b is written above and never again (Packer.bytes hands each byte
	// out once): the string may share it.
	p.s = unsafe.String(&b[0], n)
}

func clamp32(n int) int32 {
	return int32(max(min(n, math.MaxInt32), math.MinInt32))
}

func (p *Packed) str(i int) string {
	from := uint32(0)
	if i > 0 {
		from = p.ends[i-1]
	}
	if i == len(p.ends) {
		return p.s[from:]
	}
	return p.s[from:p.ends[i]]
}

// ID returns the record's id.
func (p *Packed) ID() string { return p.str(0) }

func (p *Packed) user() string     { return p.str(1) }
func (p *Packed) accessID() string { return p.str(2) }
func (p *Packed) url() string      { return p.str(3) }

func (p *Packed) stateString() string {
	switch p.state {
	case stateActive:
		return core.StateActive
	case stateInactive:
		return core.StateInactive
	}
	return p.str(7)
}

func (p *Packed) active() bool { return p.state == stateActive }

// Unpack writes the record into w, whose strings then share the
// record's; Runs is left nil.
func (p *Packed) Unpack(w *core.Webhook) {
	*w = core.Webhook{ID: p.str(0), User: p.str(1), AccessID: p.str(2), URL: p.str(3), CreatedBy: p.str(4), ModifiedBy: p.str(5), Secret: p.str(6),
		MinIntervalMs: p.minIntervalMs, MaxRetries: int(p.maxRetries), CurrentRetries: int(p.currentRetries), State: p.stateString(),
		RunCount: int(p.runCount), FailCount: int(p.failCount), LastRun: p.lastRun(), Created: p.created, Modified: p.modified, Signed: p.signed}
	if x := p.extra; x != nil {
		w.Scopes, w.PreviousSecret, w.PreviousUntil = x.scopes, x.previousSecret, x.previousUntil
	}
}

// webhook returns a new copy of the record, with an empty history.
func (p *Packed) webhook() *core.Webhook {
	w := new(core.Webhook)
	p.Unpack(w)
	w.Runs = []core.Run{}
	return w
}

// setCounters sets the fields delivery changes. A state other than
// active or inactive changes only through Replace.
func (p *Packed) setCounters(c Counters) {
	p.runCount, p.failCount, p.currentRetries = clamp32(c.RunCount), clamp32(c.FailCount), clamp32(c.CurrentRetries)
	p.lastRunStatus, p.lastRunAt = clamp32(c.LastRun.Status), c.LastRun.Timestamp
	switch c.State {
	case core.StateActive:
		p.state = stateActive
	case core.StateInactive:
		p.state = stateInactive
	default:
		p.state = 0
	}
}

func (p *Packed) counters() Counters {
	return Counters{RunCount: int(p.runCount), FailCount: int(p.failCount), CurrentRetries: int(p.currentRetries), LastRun: p.lastRun(), State: p.stateString(),
		Basis: p.modified}
}

func (p *Packed) scopes() *core.Scopes {
	if p.extra == nil {
		return nil
	}
	return p.extra.scopes
}

func (p *Packed) lastRun() core.Run {
	return core.Run{Status: int(p.lastRunStatus), Timestamp: p.lastRunAt}
}

// LastOfRuns sets w.LastRun to w.Runs[0] when they are the same run: a
// resident record keeps only the status and time of its last run, and
// its history the rest (duration, error, answer).
func LastOfRuns(w *core.Webhook) {
	if len(w.Runs) > 0 && w.Runs[0].Timestamp == w.LastRun.Timestamp && w.Runs[0].Status == w.LastRun.Status {
		w.LastRun = w.Runs[0]
	}
}

// NewIndex returns an index of ws, in O(n log n) whatever their order.
func NewIndex(ws []*core.Webhook) *Index {
	k := new(Packer)
	for _, w := range ws {
		k.Add(w)
	}
	return NewLoadedIndex(k)
}

// loaded is a record added to a Packer, with what NewLoadedIndex groups
// it by, taken while the record was at hand: a million records read
// again in another order are a million cache misses or two each.
type loaded struct {
	h       uint64 // userHash of the user
	created float64
	user    string // the record's own
	p       *Packed
}

// userSeed seeds userHash for the life of the process.
var userSeed = maphash.MakeSeed()

func userHash(user string) uint64 { return maphash.String(userSeed, user) }

// Add packs w as Pack does, and keeps it for NewLoadedIndex.
func (k *Packer) Add(w *core.Webhook) {
	if len(k.added) == 0 || len(k.added[len(k.added)-1]) == packSlab {
		k.added = append(k.added, make([]loaded, 0, packSlab)) // no copy as it grows
	}
	p := k.Pack(w)
	u := p.user()
	last := &k.added[len(k.added)-1]
	*last = append(*last, loaded{h: userHash(u), created: p.created, user: u, p: p})
}

// NewLoadedIndex returns an index of the records added to ks, taken as
// they are, and takes them from the Packers.
func NewLoadedIndex(ks ...*Packer) *Index {
	var parts [][]loaded
	n := 0
	for _, k := range ks {
		for _, part := range k.added {
			n += len(part)
		}
		parts = append(parts, k.added...)
		k.added = nil
	}
	x := &Index{byID: make(map[string]*Packed, n), fresh: map[string]*freshRuns{}}
	// The two maps are built side by side: each insert into a map is
	// mostly a cache miss, and a million of them take a few tenths of a
	// second. byID goes through the records in the order they were
	// added, that of their slabs and blocks.
	ids := make(chan struct{})
	go func() {
		defer close(ids)
		for _, part := range parts {
			for _, l := range part {
				x.byID[l.p.ID()] = l.p
				if l.p.active() {
					x.active++
				}
				if l.p.scopes() != nil {
					x.countScoped(l.user, 1)
				}
			}
		}
	}()
	x.byUser = groupByUser(parts, n)
	<-ids
	return x
}

// sortKeys returns the n records of parts sorted by user hash, then
// creation, then id, and leaves parts as they are: a radix sort on the
// top 22 bits of the hash, 11 bits at a time, then each run of equal
// top bits (mostly one user's few webhooks) by comparison.
func sortKeys(parts [][]loaded, n int) []loaded {
	const low, high = 64 - 2*radixBits, 64 - radixBits
	var at [1 << radixBits]int
	count := func(shift int, l loaded) { at[l.h>>shift&radixMask]++ }
	starts := func() {
		n := 0
		for i, c := range at {
			at[i], n = n, n+c
		}
	}
	mid := make([]loaded, n)
	for _, part := range parts {
		for _, l := range part {
			count(low, l)
		}
	}
	starts()
	for _, part := range parts {
		for _, l := range part {
			b := l.h >> low & radixMask
			mid[at[b]] = l
			at[b]++
		}
	}
	at = [1 << radixBits]int{}
	for _, l := range mid {
		count(high, l)
	}
	starts()
	out := make([]loaded, n)
	for _, l := range mid {
		b := l.h >> high & radixMask
		out[at[b]] = l
		at[b]++
	}
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[j].h>>low == out[i].h>>low {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(out[i:j], func(a, b loaded) int {
				if c := cmp.Compare(a.h, b.h); c != 0 {
					return c
				}
				if c := cmp.Compare(a.created, b.created); c != 0 {
					return c
				}
				return strings.Compare(a.p.ID(), b.p.ID())
			})
		}
		i = j
	}
	return out
}

const (
	radixBits = 11
	radixMask = 1<<radixBits - 1
)

// groupByUser returns the n records of parts by user, each user's in
// creation order, and leaves parts as they are. It sorts them by a hash
// of their user, so that the map
// gets one insert per user rather than one per webhook, and every
// user's list is a part of one array (full: an append to it copies it
// first).
func groupByUser(parts [][]loaded, n int) map[string][]*Packed {
	ls := sortKeys(parts, n)
	all := make([]*Packed, len(ls))
	for i, l := range ls {
		all[i] = l.p
	}
	out := make(map[string][]*Packed, len(ls)/4)
	for i := 0; i < len(ls); {
		j := i + 1
		for j < len(ls) && ls[j].h == ls[i].h {
			j++
		}
		run := all[i:j:j]
		u := ls[i].user
		same := true
		for _, l := range ls[i+1 : j] {
			if l.user != u {
				same = false
				break
			}
		}
		if same {
			out[u] = run
		} else { // users whose hashes collide: each its own list, in order
			for _, p := range run {
				out[p.user()] = append(out[p.user()], p)
			}
			for _, p := range run {
				out[p.user()] = slices.Clip(out[p.user()])
			}
		}
		i = j
	}
	return out
}

// NewRuns are runs of one webhook not yet flushed, oldest first: Runs[i]
// is the webhook's run number First+i (its first run is number 1). Of
// more than RunsKept, only the newest are kept.
type NewRuns struct {
	First int
	Runs  []core.Run
}

// Counters are the fields of a record that delivery changes.
type Counters struct {
	RunCount, FailCount, CurrentRetries int
	LastRun                             core.Run
	State                               string
	// Basis is the modification time of the record the state and
	// retries were decided on (0: not known). Where the API wrote the
	// record since, elsewhere, the record's state and retries win
	// (Rebase).
	Basis float64
}

// CountersOf returns w's counters.
func CountersOf(w *core.Webhook) Counters {
	return Counters{RunCount: w.RunCount, FailCount: w.FailCount, CurrentRetries: w.CurrentRetries, LastRun: w.LastRun, State: w.State,
		Basis: w.Modified}
}

// Rebase keeps w's state and retries in c when c was decided on an
// older record than w (Basis before w.Modified): the API changed the
// webhook meanwhile, and an engine that did not know it must not undo
// it. Its run counts stand.
func (c *Counters) Rebase(w *core.Webhook) {
	if c.Basis != 0 && c.Basis < w.Modified {
		c.State, c.CurrentRetries = w.State, w.CurrentRetries
	}
}

// Apply sets w's counters to c.
func (c Counters) Apply(w *core.Webhook) {
	w.RunCount, w.FailCount, w.CurrentRetries, w.LastRun, w.State = c.RunCount, c.FailCount, c.CurrentRetries, c.LastRun, c.State
}

// Dirty is a webhook changed by RecordRun since the last flush: its
// counters, and its new runs.
type Dirty struct {
	ID string
	Counters
	NewRuns
}

// CheckCreate returns the error Registry.Create must give for w, or nil.
func (x *Index) CheckCreate(w *core.Webhook, maxPerAccess int) error {
	n := 0
	for _, o := range x.byUser[w.User] {
		if o.accessID() != w.AccessID {
			continue
		}
		if o.url() == w.URL {
			return ErrDuplicateURL
		}
		n++
	}
	if maxPerAccess > 0 && n >= maxPerAccess {
		return ErrCapReached
	}
	return nil
}

// Has reports whether id is indexed.
func (x *Index) Has(id string) bool { return x.byID[id] != nil }

// Add indexes a copy of w, in creation order among its user's.
func (x *Index) Add(w *core.Webhook) {
	p := Pack(w)
	x.byID[p.ID()] = p
	list := x.byUser[w.User]
	i := len(list)
	for i > 0 && byCreation(list[i-1], p) > 0 { // new webhooks come last: no step
		i--
	}
	x.byUser[p.user()] = slices.Insert(list, i, p)
	x.count(p, 1)
}

func (x *Index) count(p *Packed, d int) {
	if p.active() {
		x.active += d
	}
	if p.scopes() != nil {
		x.countScoped(p.user(), d)
	}
}

func (x *Index) countScoped(user string, d int) {
	if x.scoped == nil {
		x.scoped = map[string]int{}
	}
	if n, ok := x.scoped[user]; !ok && d > 0 {
		x.scoped[strings.Clone(user)] = d // not a part of a record that may go
	} else if n+d > 0 {
		x.scoped[user] = n + d
	} else {
		delete(x.scoped, user)
	}
}

// Scoped reports whether any webhook of user has scopes, active or not;
// for user "", whether any webhook at all has.
func (x *Index) Scoped(user string) bool {
	if user == "" {
		return len(x.scoped) > 0
	}
	return x.scoped[user] > 0
}

func byCreation(a, b *Packed) int {
	if c := cmp.Compare(a.created, b.created); c != 0 {
		return c
	}
	return strings.Compare(a.ID(), b.ID())
}

// Owned returns a copy of user's webhook id (without runs).
func (x *Index) Owned(user, id string) (*core.Webhook, bool) {
	p := x.byID[id]
	if p == nil || p.user() != user {
		return nil, false
	}
	return p.webhook(), true
}

// Replace stores w over the record of its id, which must exist. Runs
// recorded and not yet flushed stay to be flushed.
func (x *Index) Replace(w *core.Webhook) {
	old := x.byID[w.ID]
	x.count(old, -1)
	*old = *Pack(w) // the lists hold old: it stays where it is
	x.count(old, 1)
	x.byID[old.ID()] = old // keyed by its own copy of the id, not the old one's
}

// Remove forgets id and returns its last record, or nil.
func (x *Index) Remove(id string) *core.Webhook {
	p := x.byID[id]
	if p == nil {
		return nil
	}
	delete(x.byID, id)
	u := p.user()
	list := x.byUser[u]
	if i := slices.Index(list, p); i >= 0 {
		list = append(list[:i:i], list[i+1:]...)
	}
	// The key is a part of one record: it is keyed again by a record that
	// stays, so that the map does not keep the memory of one gone.
	delete(x.byUser, u)
	if len(list) > 0 {
		x.byUser[list[0].user()] = list
	}
	delete(x.fresh, id)
	x.count(p, -1)
	return p.webhook()
}

// List returns copies of user's webhooks in creation order; with
// accessID set, only that access's.
func (x *Index) List(user, accessID string) []*core.Webhook {
	out := []*core.Webhook{}
	for _, p := range x.byUser[user] {
		if accessID == "" || p.accessID() == accessID {
			out = append(out, p.webhook())
		}
	}
	return out
}

// ByID returns a copy of webhook id, or nil.
func (x *Index) ByID(id string) *core.Webhook {
	if p := x.byID[id]; p != nil {
		return p.webhook()
	}
	return nil
}

// Target returns what a notification to webhook id needs.
func (x *Index) Target(id string) (Target, bool) {
	p := x.byID[id]
	if p == nil {
		return Target{}, false
	}
	t := Target{URL: p.url(), Secret: p.str(6), Signed: p.signed, Active: p.active()}
	if x := p.extra; x != nil {
		t.PreviousSecret, t.PreviousUntil = x.previousSecret, x.previousUntil
	}
	return t, true
}

// Active returns copies of user's active webhooks.
func (x *Index) Active(user string) []*core.Webhook {
	var out []*core.Webhook
	for _, p := range x.byUser[user] {
		if p.active() {
			out = append(out, p.webhook())
		}
	}
	return out
}

// EachActive calls f with every active record, unpacked into one
// webhook that f must not keep.
func (x *Index) EachActive(f func(w *core.Webhook)) {
	var w core.Webhook
	for _, p := range x.byID {
		if p.active() {
			p.Unpack(&w)
			f(&w)
		}
	}
}

// Each calls f with every record, unpacked into one webhook that f must
// not keep, until f returns false.
func (x *Index) Each(f func(w *core.Webhook) bool) {
	var w core.Webhook
	for _, p := range x.byID {
		p.Unpack(&w)
		if !f(&w) {
			return
		}
	}
}

// Counts returns how many webhooks are active and inactive.
func (x *Index) Counts() (active, inactive int) {
	return x.active, len(x.byID) - x.active
}

// RecordRun counts run on webhook id, keeps it for the next TakeDirty,
// applies fn (when not nil) to the record's counters, and returns the
// run's number; false for an unknown id. fn's changes to other fields
// are not kept.
func (x *Index) RecordRun(id string, run core.Run, fn func(w *core.Webhook)) (int, bool) {
	p := x.byID[id]
	if p == nil {
		return 0, false
	}
	x.count(p, -1)
	w := &x.scratch
	p.Unpack(w)
	w.CountRun(run)
	if fn != nil {
		fn(w)
	}
	p.setCounters(CountersOf(w))
	if p.stateString() != w.State {
		p.state = stateInactive // a state the record cannot hold: not active
	}
	x.count(p, 1)
	f := x.fresh[id]
	if f == nil {
		f = &freshRuns{NewRuns: NewRuns{First: int(p.runCount)}, p: p}
		x.fresh[id] = f
	}
	f.Runs = append(f.Runs, run)
	if len(f.Runs) > RunsKept { // older ones would be dropped anyway
		n := len(f.Runs) - RunsKept
		f.First += n
		f.Runs = append(f.Runs[:0], f.Runs[n:]...)
	}
	return int(p.runCount), true
}

// Fresh returns id's runs recorded since the last TakeDirty, or nil;
// the caller must not change them.
func (x *Index) Fresh(id string) *NewRuns {
	if f := x.fresh[id]; f != nil {
		return &f.NewRuns
	}
	return nil
}

// freshRuns are the runs of record p since the last TakeDirty. Remove
// forgets them, so p is always indexed.
type freshRuns struct {
	NewRuns
	p *Packed
}

// TakeDirty returns the webhooks changed by RecordRun since the last
// call, with their counters, and forgets them.
func (x *Index) TakeDirty() []Dirty {
	if len(x.fresh) == 0 {
		return nil
	}
	out := make([]Dirty, 0, len(x.fresh))
	for _, f := range x.fresh {
		out = append(out, Dirty{ID: f.p.ID(), Counters: f.p.counters(), NewRuns: f.NewRuns})
	}
	// A new map rather than clear, one that held a boot storm's million
	// entries would keep their room; made for as many as this time, so
	// that it does not grow step by step while deliveries run.
	x.fresh = make(map[string]*freshRuns, len(out))
	return out
}

// PutBack returns ds, taken by TakeDirty and not written, to be taken
// again, before any run recorded since (those still indexed).
func (x *Index) PutBack(ds []Dirty) {
	for _, d := range ds {
		p := x.byID[d.ID]
		if p == nil {
			continue
		}
		if f := x.fresh[d.ID]; f != nil {
			d.Runs = append(slices.Clip(d.Runs), f.Runs...)
		}
		d.Runs = slices.Clone(d.Runs)
		if n := len(d.Runs) - RunsKept; n > 0 {
			d.First += n
			d.Runs = d.Runs[n:]
		}
		x.fresh[d.ID] = &freshRuns{NewRuns: NewRuns{First: d.First, Runs: d.Runs}, p: p}
	}
}

// Numbered is a stored run and its number.
type Numbered struct {
	N   int
	Run core.Run
}

// MergeRuns returns a webhook's history, newest first: its runs
// numbered upTo (its runCount) and down, at most RunsKept, from the
// runs not yet flushed (fresh) and those stored; a number found in
// neither is skipped.
func MergeRuns(upTo int, stored []Numbered, fresh ...*NewRuns) []core.Run {
	out := make([]core.Run, 0, max(min(upTo, RunsKept), 0))
	for n := upTo; n >= 1 && n > upTo-RunsKept; n-- {
		if r, ok := runNumbered(n, stored, fresh); ok {
			out = append(out, r)
		}
	}
	return out
}

func runNumbered(n int, stored []Numbered, fresh []*NewRuns) (core.Run, bool) {
	for _, f := range fresh {
		if f != nil && n >= f.First && n < f.First+len(f.Runs) {
			return f.Runs[n-f.First], true
		}
	}
	for _, s := range stored {
		if s.N == n {
			return s.Run, true
		}
	}
	return core.Run{}, false
}

// Clone returns a copy of r, or nil for nil.
func (r *NewRuns) Clone() *NewRuns {
	if r == nil {
		return nil
	}
	c := *r
	c.Runs = slices.Clone(r.Runs)
	return &c
}
