package main

import (
	"fmt"
	"io"
	"math"
)

// target is a bound a figure should meet: the ratio to the baseline, or
// without a baseline the figure itself, at most (atMost) or at least v.
type target struct {
	atMost bool
	v      float64
}

func (t target) String() string {
	if t.atMost {
		return fmt.Sprintf("<= %.2f", t.v)
	}
	return fmt.Sprintf(">= %.2f", t.v)
}

// The targets of issue 17, in ratios to a baseline of the same run,
// except where noted.
var (
	noTarget        = (*target)(nil)
	atLeastBaseline = &target{v: 1}
	atMostBaseline  = &target{atMost: true, v: 1}
	changeCPU       = &target{atMost: true, v: 1.4} // CPU per change, x nginx's for the same POST
	changeRate      = &target{v: 0.8}               // change throughput, x nginx's POST rate
	asyncP99Ms      = &target{atMost: true, v: 5}   // -durability async p99, in ms (no baseline)
	deliveryRate    = &target{v: 0.8}               // deliveries/s, x raw-post's on the same core
	burstP99Ms      = &target{atMost: true, v: 2}   // change to notification p99 in a burst, in ms (no baseline)
	creationCPUUs   = &target{atMost: true, v: 100} // CPU per webhook created, in µs (no baseline)
)

// comparison is one figure of hookgate next to a baseline measured in
// the same run (or alone, when Base is empty).
type comparison struct {
	Measure   string
	Hookgate  float64
	Base      string // baseline's name; empty for a figure with an absolute target
	BaseValue float64
	Target    *target // nil: shown for information
	// Limits says what held hookgate's and the baseline's runs back,
	// "hookgate / baseline": a rate compared while the generator was the
	// limit compares nothing.
	Limits string
}

// ratio returns Hookgate / BaseValue, NaN without a baseline.
func (c comparison) ratio() float64 {
	if c.Base == "" || c.BaseValue == 0 {
		return math.NaN()
	}
	return c.Hookgate / c.BaseValue
}

// met says whether the target is met: "yes", "no", or "" without one.
func (c comparison) met() string {
	if c.Target == nil {
		return ""
	}
	v := c.Hookgate
	if c.Base != "" {
		v = c.ratio()
	}
	switch {
	case math.IsNaN(v):
		return "?"
	case c.Target.atMost && v <= c.Target.v, !c.Target.atMost && v >= c.Target.v:
		return "yes"
	default:
		return "no"
	}
}

// compare lines hookgate's figures up against the baselines of the same
// run: reads against nginx and haproxy, changes against nginx passing the
// same POST, deliveries against raw-post; the burst's latency against its
// target alone.
func compare(r results) []comparison {
	_, groups := groupLoads(r.Loads)
	var out []comparison
	add := func(measure string, hk []loadRow, base string, bs []loadRow, f func(loadRow) float64, t *target) {
		if len(hk) == 0 || len(bs) == 0 {
			return
		}
		out = append(out, comparison{Measure: measure, Hookgate: med(hk, f), Base: base, BaseValue: med(bs, f),
			Target: t, Limits: limits(hk) + " / " + limits(bs)})
	}
	rate := func(r loadRow) float64 { return r.Rate }
	p99 := func(r loadRow) float64 { return r.P99Ms }
	maxMs := func(r loadRow) float64 { return r.MaxMs }
	for _, up := range upstreamOrder {
		get := func(scenario, loop, target string) []loadRow {
			return groups[loadKey{scenario, up, loop, target}]
		}
		hk := get("read", "closed", "hookgate")
		for _, b := range []string{"nginx", "haproxy"} {
			t1, t2 := atLeastBaseline, atMostBaseline
			if b != "nginx" {
				t1, t2 = noTarget, noTarget
			}
			add("read "+up+" closed: req/s", hk, b, get("read", "closed", b), rate, t1)
			add("read "+up+" closed: CPU µs/req", hk, b, get("read", "closed", b), cpuPerReq, t2)
		}
		if hk := get("read", "open", "hookgate"); len(hk) > 0 {
			open := loopName(hk)
			for _, b := range []string{"nginx", "haproxy"} {
				t := atMostBaseline
				if b != "nginx" {
					t = noTarget
				}
				add("read "+up+" "+open+": CPU µs/req", hk, b, get("read", "open", b), cpuPerReq, t)
				add("read "+up+" "+open+": p99 ms", hk, b, get("read", "open", b), p99, noTarget)
			}
		}
	}
	for _, up := range upstreamOrder {
		get := func(scenario, loop, target string) []loadRow {
			return groups[loadKey{scenario, up, loop, target}]
		}
		for _, mode := range []string{"sync", "async"} {
			name := "hookgate-" + mode
			tr, tc := changeRate, changeCPU
			if mode == "async" {
				tr, tc = noTarget, noTarget
			}
			hk := get("change", "closed", name)
			add("change "+mode+" closed: req/s", hk, "nginx", get("change", "closed", "nginx"), rate, tr)
			add("change "+mode+" closed: CPU µs/req", hk, "nginx", get("change", "closed", "nginx"), cpuPerReq, tc)
			if hk := get("change", "open", name); len(hk) > 0 {
				open := loopName(hk)
				add("change "+mode+" "+open+": CPU µs/req", hk, "nginx", get("change", "open", "nginx"), cpuPerReq, tc)
				add("change "+mode+" "+open+": p99 ms", hk, "nginx", get("change", "open", "nginx"), p99, noTarget)
				if mode == "async" {
					out = append(out, comparison{Measure: "change async " + open + ": p99 ms", Hookgate: med(hk, p99),
						Target: asyncP99Ms, Limits: limits(hk)},
						comparison{Measure: "change async " + open + ": max ms", Hookgate: med(hk, maxMs), Limits: limits(hk)})
				}
			}
		}
	}
	ns, by := byWebhooks(r.Deliveries, func(d deliveryRow) int { return d.Webhooks })
	for _, n := range ns {
		rs := by[n]
		lim := deliveryLimits(rs) + " / " + rawPostLimits(rs)
		out = append(out,
			comparison{Measure: fmt.Sprintf("deliveries %d: deliveries/s", n), Hookgate: med(rs, func(d deliveryRow) float64 { return d.PerS }),
				Base: "raw-post", BaseValue: med(rs, func(d deliveryRow) float64 { return d.RawPerS }), Target: deliveryRate, Limits: lim},
			comparison{Measure: fmt.Sprintf("deliveries %d: CPU µs (change+delivery)", n), Hookgate: med(rs, func(d deliveryRow) float64 { return d.CPUUs }),
				Base: "raw-post", BaseValue: med(rs, func(d deliveryRow) float64 { return d.RawCPUUs }), Limits: lim},
			comparison{Measure: fmt.Sprintf("deliveries %d: CPU µs per webhook created", n),
				Hookgate: med(rs, func(d deliveryRow) float64 { return d.CreateCPUUs }), Target: creationCPUUs})
	}
	ns, bursts := byWebhooks(r.Burst, func(b burstRow) int { return b.Webhooks })
	for _, n := range ns {
		rs := bursts[n]
		lim := ""
		if med(rs, func(b burstRow) float64 { return b.GenPct }) >= generatorBound {
			lim = "generator"
		}
		out = append(out,
			comparison{Measure: fmt.Sprintf("burst %d: notification p99 ms", n), Hookgate: med(rs, func(b burstRow) float64 { return b.P99Ms }),
				Target: burstP99Ms, Limits: lim},
			comparison{Measure: fmt.Sprintf("burst %d: notification max ms", n), Hookgate: med(rs, func(b burstRow) float64 { return b.MaxMs }),
				Limits: lim})
	}
	return out
}

func printComparisons(w io.Writer, cs []comparison) {
	fmt.Fprintf(w, "%-44s %10s %-9s %10s %6s %-8s %-4s %s\n", "hookgate against its baselines (same run)", "hookgate",
		"baseline", "", "ratio", "target", "met", "limits (hookgate / baseline)")
	for _, c := range cs {
		base, ratio, tgt := "", "", ""
		if c.Base != "" {
			base = fmt.Sprintf("%-9s %10.1f", c.Base, c.BaseValue)
			ratio = fmt.Sprintf("%6.2f", c.ratio())
		} else {
			base = fmt.Sprintf("%-9s %10s", "-", "")
			ratio = fmt.Sprintf("%6s", "-")
		}
		if c.Target != nil {
			tgt = c.Target.String()
		}
		fmt.Fprintf(w, "%-44s %10.1f %s %s %-8s %-4s %s\n", c.Measure, c.Hookgate, base, ratio, tgt, c.met(), c.Limits)
	}
	fmt.Fprint(w, `
Medians of the rows above, hookgate's next to the baseline's of the same run. Targets (issue 17) apply to the ratio,
or to hookgate's figure where there is no baseline (async p99 and burst p99 in ms, creation CPU in µs). A rate ratio
means little when either side's limit is "generator". Delivery CPU counts the change that caused it; raw-post's counts
a POST only. Burst limits say "generator" only when the burst client used >= 90 % of its core.
`)
}
