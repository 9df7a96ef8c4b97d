package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
)

// results is every row of one run, as kept in its results directory.
type results struct {
	Loads      []loadRow
	Deliveries []deliveryRow
	Burst      []burstRow
	Latency    []latencyRow
	Coalescing []coalesceRow
}

// The files of a results directory, one per kind of row.
const (
	loadsFile      = "loads.tsv"
	deliveriesFile = "deliveries.tsv"
	burstFile      = "burst.tsv"
	latencyFile    = "latency.tsv"
	coalescingFile = "coalescing.tsv"
)

// readResults reads the rows kept in dir.
func readResults(dir string) (results, error) {
	var r results
	var err1, err2, err3, err4, err5 error
	r.Loads, err1 = readTSVFile[loadRow](filepath.Join(dir, loadsFile))
	r.Deliveries, err2 = readTSVFile[deliveryRow](filepath.Join(dir, deliveriesFile))
	r.Burst, err3 = readTSVFile[burstRow](filepath.Join(dir, burstFile))
	r.Latency, err4 = readTSVFile[latencyRow](filepath.Join(dir, latencyFile))
	r.Coalescing, err5 = readTSVFile[coalesceRow](filepath.Join(dir, coalescingFile))
	return r, errors.Join(err1, err2, err3, err4, err5)
}

// median returns the median of xs, NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// spread returns (max - min) / median of xs in percent, 0 for fewer than
// two values.
func spread(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	m := median(xs)
	if m == 0 {
		return 0
	}
	return (slices.Max(xs) - slices.Min(xs)) / math.Abs(m) * 100
}

// col returns f of every row.
func col[T any](rows []T, f func(T) float64) []float64 {
	out := make([]float64, len(rows))
	for i, r := range rows {
		out[i] = f(r)
	}
	return out
}

// med returns the median of f over rows.
func med[T any](rows []T, f func(T) float64) float64 { return median(col(rows, f)) }

// The generator is the limit when it uses this share of its core, and
// the servers when they use this share of theirs.
const (
	generatorBound = 90.0
	serverBound    = 90.0
)

// limitOf says what held a run back. An open loop that sent its
// offered rate (97 % of it or more) was held by nothing: "rate".
// Otherwise "generator" when the generator used at least 90 % of its
// core, "server" when the servers of the run, or all processes on the
// server core, kept it at least 90 % busy, "both" when both held, and
// "concurrency" when neither did: a closed loop held back by its
// connections and the latency (an upstream that sleeps, a disk that
// syncs).
func limitOf(r loadRow) string {
	if r.Loop == "open" && r.Offered > 0 && r.Rate >= 0.97*float64(r.Offered) {
		return "rate"
	}
	return heldBy(r.GenPct, r.ServersPct, r.CoreBusyPct)
}

// heldBy says what held back a run that was not paced: "generator"
// when the generator used at least 90 % of its core (genPct), "server"
// when the servers of the run (serversPct), or all processes on the
// server core (coreBusyPct), kept it at least 90 % busy, "both" when
// both held, and "concurrency" when neither did: the requests in flight
// and the latency held it.
func heldBy(genPct, serversPct, coreBusyPct float64) string {
	gen := genPct >= generatorBound
	srv := serversPct >= serverBound || coreBusyPct >= serverBound
	switch {
	case gen && srv:
		return "both"
	case gen:
		return "generator"
	case srv:
		return "server"
	default:
		return "concurrency"
	}
}

// loadKey identifies one cell of the load table; its rows are the
// repetitions.
type loadKey struct {
	Scenario, Upstream, Loop, Target string
}

// order gives the position of s in names, past their end if absent.
func order(names []string, s string) int {
	if i := slices.Index(names, s); i >= 0 {
		return i
	}
	return len(names)
}

var (
	scenarioOrder = []string{"read", "change"}
	upstreamOrder = []string{"trivial", "work"}
	loopOrder     = []string{"closed", "open"}
	targetOrder   = []string{"direct", "hookgate", "hookgate-sync", "hookgate-async", "nginx", "haproxy"}
)

// groupLoads groups rows by cell, in table order.
func groupLoads(rows []loadRow) ([]loadKey, map[loadKey][]loadRow) {
	groups := map[loadKey][]loadRow{}
	var keys []loadKey
	for _, r := range rows {
		k := loadKey{r.Scenario, r.Upstream, r.Loop, r.Target}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	slices.SortStableFunc(keys, func(a, b loadKey) int {
		for _, c := range [][3]any{
			{scenarioOrder, a.Scenario, b.Scenario}, {upstreamOrder, a.Upstream, b.Upstream},
			{loopOrder, a.Loop, b.Loop}, {targetOrder, a.Target, b.Target},
		} {
			names := c[0].([]string)
			if d := order(names, c[1].(string)) - order(names, c[2].(string)); d != 0 {
				return d
			}
		}
		return 0
	})
	return keys, groups
}

// limits returns the distinct limits of rows, joined by "/".
func limits(rows []loadRow) string {
	var l []string
	for _, r := range rows {
		if !slices.Contains(l, r.Limit) {
			l = append(l, r.Limit)
		}
	}
	return strings.Join(l, "/")
}

// loopName is the loop as the tables show it: "closed", or "open@RATE".
func loopName(rows []loadRow) string {
	if rows[0].Loop == "open" && rows[0].Offered > 0 {
		return fmt.Sprintf("open@%d", rows[0].Offered)
	}
	return rows[0].Loop
}

func cpuPerReq(r loadRow) float64 { return r.UserUs + r.SysUs }

func printLoads(w io.Writer, rows []loadRow) {
	keys, groups := groupLoads(rows)
	fmt.Fprintf(w, "%-8s %-8s %-10s %-14s %-9s %9s %5s %7s %7s %7s %7s %6s %6s %6s %8s %5s %7s %6s %-11s %6s %s\n",
		"scenario", "upstream", "loop", "target", "generator", "req/s", "±%", "p50 ms", "p99 ms", "max ms",
		"µs/req", "user", "sys", "+up µs", "server %", "gen %", "headrm %", "other %", "limit", "errors", "reps")
	for _, k := range keys {
		rs := groups[k]
		var errs int64
		for _, r := range rs {
			errs += r.Errors
		}
		gen := med(rs, func(r loadRow) float64 { return r.GenPct })
		other := math.Max(0, med(rs, func(r loadRow) float64 { return r.CoreBusyPct - r.ServersPct }))
		fmt.Fprintf(w, "%-8s %-8s %-10s %-14s %-9s %9.0f %5.1f %7.3f %7.3f %7.2f %7.1f %6.1f %6.1f %6.1f %8.1f %5.1f %7.1f %6.1f %-11s %6d %d\n",
			k.Scenario, k.Upstream, loopName(rs), k.Target, rs[0].Generator,
			med(rs, func(r loadRow) float64 { return r.Rate }), spread(col(rs, func(r loadRow) float64 { return r.Rate })),
			med(rs, func(r loadRow) float64 { return r.P50Ms }), med(rs, func(r loadRow) float64 { return r.P99Ms }),
			med(rs, func(r loadRow) float64 { return r.MaxMs }),
			med(rs, cpuPerReq), med(rs, func(r loadRow) float64 { return r.UserUs }), med(rs, func(r loadRow) float64 { return r.SysUs }),
			med(rs, func(r loadRow) float64 { return r.UpstreamUs }),
			med(rs, func(r loadRow) float64 { return r.ServerPct }), gen, 100-gen, other, limits(rs), errs, len(rs))
	}
	fmt.Fprint(w, `
Medians over the repetitions; ±% is the req/s spread, (max - min) / median. Closed loop: wrk with a fixed number of
connections, so req/s is the most the slower side allows. Open loop: vegeta sends a fixed rate, so compare latency and CPU.
µs/req = user + sys: the target process's own CPU time per request (/proc/<pid>/stat utime and stime), the upstream's
for direct, the proxy's otherwise; +up µs is the upstream's behind a proxy. server %: the target process's CPU,
gen %: the generator's own (wait4 rusage, the same counters as /proc), each as a share of one core; headrm % is what
the generator had left. other %: the server core's busy time (/proc/stat) beyond the servers started here, that is
other processes on a shared machine. limit: rate (an open loop sent its rate), else generator (it used >= 90 % of its
core), server (the servers or their core >= 90 % busy), both, or concurrency (a closed loop held back by latency).
`)
}

// byWebhooks groups rows by their webhook count, in increasing order.
func byWebhooks[T any](rows []T, webhooks func(T) int) ([]int, map[int][]T) {
	by := map[int][]T{}
	var ns []int
	for _, r := range rows {
		n := webhooks(r)
		if by[n] == nil {
			ns = append(ns, n)
		}
		by[n] = append(by[n], r)
	}
	slices.Sort(ns)
	return ns, by
}

// deliveryLimits returns the distinct limits of delivery rows, joined
// by "/"; "-" for rows of runs that did not record one.
func deliveryLimits(rows []deliveryRow) string {
	var l []string
	for _, r := range rows {
		v := cmp.Or(r.Limit, "-")
		if !slices.Contains(l, v) {
			l = append(l, v)
		}
	}
	return strings.Join(l, "/")
}

// rawPostLimits returns what held raw-post back in rows: "server" when
// the server core was at least 90 % busy while it ran, else
// "concurrency" (its 64 POSTs in flight); "-" for rows of runs that did
// not record it.
func rawPostLimits(rows []deliveryRow) string {
	var l []string
	for _, r := range rows {
		v := "-"
		if r.Limit != "" {
			v = heldBy(0, 0, r.RawBusyPct)
		}
		if !slices.Contains(l, v) {
			l = append(l, v)
		}
	}
	return strings.Join(l, "/")
}

func printDeliveries(w io.Writer, rows []deliveryRow) {
	fmt.Fprintf(w, "%8s %-9s %9s %12s %5s %10s %6s %11s %11s %11s %6s %7s %5s %7s %-11s %s\n",
		"webhooks", "generator", "delivered", "deliveries/s", "±%", "raw-post/s", "x raw", "µs/delivery", "raw µs/POST",
		"µs/creation", "busy %", "other %", "gen %", "headrm %", "limit", "reps")
	ns, by := byWebhooks(rows, func(r deliveryRow) int { return r.Webhooks })
	for _, n := range ns {
		rs := by[n]
		perS := med(rs, func(r deliveryRow) float64 { return r.PerS })
		raw := med(rs, func(r deliveryRow) float64 { return r.RawPerS })
		gen := med(rs, func(r deliveryRow) float64 { return r.GenPct })
		// Runs before the generator was recorded used k6, and did not
		// record the servers' CPU.
		other := "-"
		if rs[0].Limit != "" {
			other = fmt.Sprintf("%.1f", math.Max(0, med(rs, func(r deliveryRow) float64 { return r.CoreBusyPct - r.ServersPct })))
		}
		fmt.Fprintf(w, "%8d %-9s %9.0f %12.0f %5.1f %10.0f %6.2f %11.1f %11.1f %11.1f %6.1f %7s %5.1f %7.1f %-11s %d\n",
			n, cmp.Or(rs[0].Generator, "k6"), slices.Min(col(rs, func(r deliveryRow) float64 { return float64(r.Delivered) })), perS,
			spread(col(rs, func(r deliveryRow) float64 { return r.PerS })), raw, perS/raw,
			med(rs, func(r deliveryRow) float64 { return r.CPUUs }), med(rs, func(r deliveryRow) float64 { return r.RawCPUUs }),
			med(rs, func(r deliveryRow) float64 { return r.CreateCPUUs }), med(rs, func(r deliveryRow) float64 { return r.CoreBusyPct }),
			other, gen, 100-gen, deliveryLimits(rs), len(rs))
	}
	fmt.Fprint(w, `
deliveries/s: notifications per second at the receiver, first to last arrival, one change per webhook (nothing
coalesces), the changes sent by vegeta (each user's once, 32 in flight); raw-post/s: hookgate's own delivery client
alone (bin/raw-post, 64 in flight) posting as many to the same receiver on the same core. µs/delivery: hookgate's CPU
time from the first change to the last notification, per change: proxying the change, its marker and its delivery;
raw µs/POST: raw-post's per POST; µs/creation: hookgate's per webhook created before the changes. busy %: the server
core from the first change to the last notification, other % the part of it beyond the servers started here (other
processes on a shared machine); gen %: the generator's own CPU over its run, headrm % what it had left. limit:
generator (it used >= 90 % of its core), server (the servers or their core >= 90 % busy), both, or concurrency
(neither: the changes in flight and the latency held it).
`)
}

func printBurst(w io.Writer, rows []burstRow) {
	fmt.Fprintf(w, "%-5s %8s %7s %8s %5s %9s %7s %7s %7s %7s %6s %9s %6s %7s %5s %7s %s\n",
		"burst", "webhooks", "changes", "notified", "early", "changes/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "p99 ±%",
		"µs/change", "busy %", "other %", "gen %", "headrm %", "reps")
	ns, by := byWebhooks(rows, func(r burstRow) int { return r.Webhooks })
	for _, n := range ns {
		rs := by[n]
		gen := med(rs, func(r burstRow) float64 { return r.GenPct })
		fmt.Fprintf(w, "%-5s %8d %7.0f %8.0f %5.0f %9.0f %7.3f %7.3f %7.3f %7.3f %6.1f %9.1f %6.1f %7.1f %5.1f %7.1f %d\n", "",
			n, slices.Min(col(rs, func(r burstRow) float64 { return float64(r.Changes) })),
			slices.Min(col(rs, func(r burstRow) float64 { return float64(r.Notified) })),
			med(rs, func(r burstRow) float64 { return float64(r.Early) }),
			med(rs, func(r burstRow) float64 { return r.ChangesPerS }),
			med(rs, func(r burstRow) float64 { return r.P50Ms }), med(rs, func(r burstRow) float64 { return r.P95Ms }),
			med(rs, func(r burstRow) float64 { return r.P99Ms }), med(rs, func(r burstRow) float64 { return r.MaxMs }),
			spread(col(rs, func(r burstRow) float64 { return r.P99Ms })), med(rs, func(r burstRow) float64 { return r.CPUUs }),
			med(rs, func(r burstRow) float64 { return r.CoreBusyPct }),
			math.Max(0, med(rs, func(r burstRow) float64 { return r.CoreBusyPct - r.ServersPct })), gen, 100-gen, len(rs))
	}
	fmt.Fprintf(w, `
burst: one idle webhook per user, then one change per user, %d in flight, sent by the runner's burst client (a Go
program pinned to the generators' CPU) as fast as they are answered; latency: from the change's answer, as the client
read it, to the notification's arrival at the receiver, per webhook (the receiver's /_report); early: how many
notifications arrived before the client had read their change's answer (a negative latency, counted as such in the
quantiles). changes and notified are the minimum over the repetitions (notified < changes fails the run), early the
median. µs/change: hookgate's CPU from the first change to the last notification, per change and its delivery; busy %%:
the server core over that time, other %% the part of it beyond the servers started here; gen %%: the client's own CPU
over the burst.
`, burstConns)
}

func printLatency(w io.Writer, rows []latencyRow) {
	fmt.Fprintf(w, "%-10s %7s %8s %7s %7s %7s %7s %6s %6s %s\n",
		"latency", "changes", "notified", "p50 ms", "p95 ms", "p99 ms", "max ms", "p99 ±%", "busy %", "reps")
	for _, kind := range []string{"healthy", "isolation"} {
		var rs []latencyRow
		for _, r := range rows {
			if r.Kind == kind {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			continue
		}
		fmt.Fprintf(w, "%-10s %7.0f %8.0f %7.3f %7.3f %7.3f %7.3f %6.1f %6.1f %d\n", kind,
			slices.Min(col(rs, func(r latencyRow) float64 { return float64(r.Changes) })),
			slices.Min(col(rs, func(r latencyRow) float64 { return float64(r.Notified) })),
			med(rs, func(r latencyRow) float64 { return r.P50Ms }), med(rs, func(r latencyRow) float64 { return r.P95Ms }),
			med(rs, func(r latencyRow) float64 { return r.P99Ms }), med(rs, func(r latencyRow) float64 { return r.MaxMs }),
			spread(col(rs, func(r latencyRow) float64 { return r.P99Ms })), med(rs, func(r latencyRow) float64 { return r.CoreBusyPct }), len(rs))
	}
	fmt.Fprint(w, `
latency: from the change's answer (as k6 saw it) to the notification's arrival at the receiver, per webhook, one change
per idle webhook at 100 changes/s; isolation adds 10 webhooks timing out and 10 answering 500, changed every second.
changes and notified are the minimum over the repetitions (notified < changes fails the run).
`)
}

func printCoalescing(w io.Writer, rs []coalesceRow) {
	fmt.Fprintf(w, "%-10s %7s %9s %5s %8s %13s %15s %10s %13s %7s %13s %6s %s\n", "coalescing", "changes", "changes/s", "±%",
		"webhooks", "POSTs min-max", "POSTs/webhook/s", "min gap ms", "last after ms", "missing", "CPU µs/change", "busy %", "reps")
	posts := fmt.Sprintf("%d-%d", int64(slices.Min(col(rs, func(r coalesceRow) float64 { return float64(r.MinPosts) }))),
		int64(slices.Max(col(rs, func(r coalesceRow) float64 { return float64(r.MaxPosts) }))))
	fmt.Fprintf(w, "%-10s %7.0f %9.0f %5.1f %8.0f %13s %15.3f %10.1f %13.1f %7.0f %13.1f %6.1f %d\n", "1 user",
		med(rs, func(r coalesceRow) float64 { return float64(r.Changes) }), med(rs, func(r coalesceRow) float64 { return r.ChangesPerS }),
		spread(col(rs, func(r coalesceRow) float64 { return r.ChangesPerS })), med(rs, func(r coalesceRow) float64 { return float64(r.Webhooks) }),
		posts, slices.Max(col(rs, func(r coalesceRow) float64 { return r.PostsPerHookPerS })),
		slices.Min(col(rs, func(r coalesceRow) float64 { return r.MinGapMs })), slices.Min(col(rs, func(r coalesceRow) float64 { return r.LastAfterMs })),
		slices.Max(col(rs, func(r coalesceRow) float64 { return float64(r.Missing) })), med(rs, func(r coalesceRow) float64 { return r.CPUUs }),
		med(rs, func(r coalesceRow) float64 { return r.CoreBusyPct }), len(rs))
	fmt.Fprint(w, `
coalescing: 10 webhooks with minIntervalMs 1000 on one user, every change answered 2xx; POSTs/webhook/s is the highest
rate any webhook saw (notifications after the first, over the first-to-last span); min gap is the shortest time between
two notifications to one webhook; last after is, over the webhooks, the least time from the last change's answer to
that webhook's last notification (negative would mean a change left unnotified); missing counts webhooks without one.
`)
}

// printTables prints a table for each kind of row r holds, then the
// comparisons of hookgate with its baselines.
func printTables(w io.Writer, r results) {
	var parts []func()
	if len(r.Loads) > 0 {
		parts = append(parts, func() { printLoads(w, r.Loads) })
	}
	if len(r.Deliveries) > 0 {
		parts = append(parts, func() { printDeliveries(w, r.Deliveries) })
	}
	if len(r.Burst) > 0 {
		parts = append(parts, func() { printBurst(w, r.Burst) })
	}
	if len(r.Latency) > 0 {
		parts = append(parts, func() { printLatency(w, r.Latency) })
	}
	if len(r.Coalescing) > 0 {
		parts = append(parts, func() { printCoalescing(w, r.Coalescing) })
	}
	if cs := compare(r); len(cs) > 0 {
		parts = append(parts, func() { printComparisons(w, cs) })
	}
	for i, p := range parts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		p()
	}
}
