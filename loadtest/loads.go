package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hookgate/hookgate/internal/procstat"
)

// cell is one generator run against one target.
type cell struct {
	Scenario, Upstream, Loop, Target string
	Rep                              int
	// URL is where the generator sends its requests; Post sends
	// events.create instead of a GET.
	URL  string
	Post bool
	// Server is the target process; Upstream the upstream behind it,
	// nil for direct.
	Server, UpstreamSrv *server
}

func (c cell) String() string {
	return fmt.Sprintf("%s %s %s %s r%d", c.Scenario, c.Upstream, c.Loop, c.Target, c.Rep)
}

// generatorTimeout bounds one generator run of duration d: it may take
// a few seconds more to connect and to wait for the last answers.
func generatorTimeout(d time.Duration) time.Duration { return d + 30*time.Second }

// rawName returns a new file name in the raw directory for c, with
// suffix.
func (r *runner) rawName(c cell, suffix string) string {
	r.seq++
	return fmt.Sprintf("%03d-%s-%s-%s-%s-r%d%s", r.seq, c.Scenario, c.Upstream, c.Loop, c.Target, c.Rep, suffix)
}

// generate runs the generator of c's loop against c.URL: wrk for the
// closed loop, vegeta at the configured rate for the open one. It calls
// exited (if not nil) as soon as the generator has exited, before its
// output is read or reported on. It returns what the generator
// measured, its own CPU, and its raw output's name.
func (r *runner) generate(ctx context.Context, c cell, dur time.Duration, exited func()) (loadResult, childRun, string, error) {
	if exited == nil {
		exited = func() {}
	}
	var headers []string
	script := ""
	if c.Post {
		script = r.wrkPost
	} else {
		headers = []string{"Authorization: alice-app"}
	}
	if c.Loop == "closed" {
		name := r.rawName(c, ".wrk.txt")
		out := filepath.Join(r.raw, name)
		run, err := runChild(ctx, r.cfg.LoadCPU, nil, generatorTimeout(dur), out,
			append([]string{r.cfg.Wrk}, wrkArgs(c.URL, r.cfg.Threads, r.cfg.Conns, dur, headers, script)...)...)
		exited()
		if err != nil {
			return loadResult{}, run, name, err
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return loadResult{}, run, name, err
		}
		res, err := parseWrk(b)
		if err != nil {
			return res, run, name, fmt.Errorf("%s: %w", out, err)
		}
		return res, run, name, nil
	}
	method, body := "GET", ""
	if c.Post {
		method, body = "POST", r.eventBody
	}
	targets := filepath.Join(r.work, "targets")
	if err := os.WriteFile(targets, []byte(vegetaTargets(method, c.URL, body)), 0o644); err != nil {
		return loadResult{}, childRun{}, "", err
	}
	bin := filepath.Join(r.work, "vegeta.bin")
	name := r.rawName(c, ".vegeta")
	run, err := runChild(ctx, r.cfg.LoadCPU, nil, generatorTimeout(dur), filepath.Join(r.raw, name+"-attack.txt"),
		append([]string{r.cfg.Vegeta}, vegetaAttackArgs(targets, r.cfg.Rate, dur, bin)...)...)
	exited()
	if err != nil {
		return loadResult{}, run, name, err
	}
	// The reports are made after the measurement, on any CPU.
	if _, err := runChild(ctx, -1, nil, time.Minute, filepath.Join(r.raw, name+".txt"), r.cfg.Vegeta, "report", "-type", "text", bin); err != nil {
		return loadResult{}, run, name, err
	}
	js := filepath.Join(r.raw, name+".json")
	if _, err := runChild(ctx, -1, nil, time.Minute, js, r.cfg.Vegeta, "report", "-type", "json", bin); err != nil {
		return loadResult{}, run, name, err
	}
	b, err := os.ReadFile(js)
	if err != nil {
		return loadResult{}, run, name, err
	}
	res, err := parseVegeta(b)
	if err != nil {
		return res, run, name, fmt.Errorf("%s: %w", js, err)
	}
	return res, run, name + ".json", nil
}

// measure runs c and records its row: the generator's figures, the
// servers' CPU time over the run from /proc/<pid>/stat, the server
// core's from /proc/stat. More than 1 % failed requests fail the run.
func (r *runner) measure(ctx context.Context, c cell) error {
	if err := r.fleet.check(); err != nil {
		return err
	}
	u0, err := r.fleet.usage()
	if err != nil {
		return err
	}
	start := time.Now()
	var wall time.Duration
	var u1 usage
	var err1 error
	res, gen, raw, err := r.generate(ctx, c, r.cfg.Duration, func() {
		wall = time.Since(start)
		u1, err1 = r.fleet.usage()
	})
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	if err1 != nil {
		return err1
	}
	t0, t1, c0, c1 := u0.procs, u1.procs, u0.cores, u1.cores
	if res.Errors*100 > res.Requests {
		return fmt.Errorf("%s: %d of %d requests failed; see %s", c, res.Errors, res.Requests, filepath.Join(r.raw, raw))
	}
	share := func(t procstat.CPUTime) float64 {
		return 100 * float64(procstat.TicksDuration(t.Total(), r.clk)) / float64(wall)
	}
	perReq := func(ticks int64) float64 {
		return float64(procstat.TicksDuration(ticks, r.clk).Microseconds()) / float64(max(res.Requests, 1))
	}
	var all procstat.CPUTime
	for s, t := range t1 {
		d := t.Sub(t0[s])
		all.User += d.User
		all.System += d.System
	}
	own := t1[c.Server].Sub(t0[c.Server])
	row := loadRow{Scenario: c.Scenario, Upstream: c.Upstream, Loop: c.Loop, Target: c.Target, Rep: c.Rep,
		Requests: res.Requests, Rate: res.Rate, Errors: res.Errors,
		P50Ms: ms(res.P50), P99Ms: ms(res.P99), MaxMs: ms(res.Max),
		UserUs: perReq(own.User), SysUs: perReq(own.System),
		ServerPct: share(own), ServersPct: share(all), GenPct: gen.percent(), Raw: raw}
	if r.cfg.ServerCPU >= 0 {
		row.CoreBusyPct = procstat.BusyPercent(c0[r.cfg.ServerCPU], c1[r.cfg.ServerCPU])
	}
	if c.Loop == "closed" {
		row.Generator = "wrk"
	} else {
		row.Generator, row.Offered = "vegeta", r.cfg.Rate
	}
	if c.UpstreamSrv != nil {
		row.UpstreamUs = perReq(t1[c.UpstreamSrv].Sub(t0[c.UpstreamSrv]).Total())
	}
	row.Limit = limitOf(row)
	r.progress("%-40s %8.0f req/s  p99 %7.3f ms  %6.1f µs/req  gen %5.1f %%  limit %s", c, row.Rate, row.P99Ms,
		row.UserUs+row.SysUs, row.GenPct, row.Limit)
	return r.loads.add(row)
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// warm runs wrk briefly against each cell's target, unmeasured, so that
// the first measured run does not pay for connections, caches and heap
// growth.
func (r *runner) warm(ctx context.Context, cells []cell) error {
	if r.cfg.Warmup <= 0 {
		return nil
	}
	for _, c := range cells {
		c.Loop, c.Rep = "closed", 0
		if _, _, _, err := r.generate(ctx, c, r.cfg.Warmup, nil); err != nil {
			return fmt.Errorf("warming up: %w", err)
		}
	}
	return nil
}

// runCells warms the targets up, then runs the cells of every
// repetition, closed loop then open, the targets interleaved.
func (r *runner) runCells(ctx context.Context, targets []cell) error {
	if err := r.warm(ctx, targets); err != nil {
		return err
	}
	for rep := 1; rep <= r.cfg.Reps; rep++ {
		for _, loop := range loopOrder {
			for _, c := range targets {
				c.Loop, c.Rep = loop, rep
				if err := r.measure(ctx, c); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// reads measures GET through direct, hookgate, nginx and haproxy, in
// front of a trivial upstream and of one doing 1 ms of work.
func (r *runner) reads(ctx context.Context) error {
	for _, up := range upstreamOrder {
		flags := []string{"-trivial"}
		if up == "work" {
			flags = []string{"-service-time", "1ms"}
		}
		err := func() error {
			defer r.fleet.stop()
			u, err := r.startUpstream(ctx, "read-"+up+"-upstream", flags...)
			if err != nil {
				return err
			}
			hg, err := r.startHookgate(ctx, "read-"+up+"-hookgate", hookgateAddr)
			if err != nil {
				return err
			}
			ng, err := r.startNginx(ctx, "read-"+up+"-nginx")
			if err != nil {
				return err
			}
			hp, err := r.startHaproxy(ctx, "read-"+up+"-haproxy")
			if err != nil {
				return err
			}
			path := "/alice/events?limit=20"
			return r.runCells(ctx, []cell{
				{Scenario: "read", Upstream: up, Target: "direct", URL: "http://" + upstreamAddr + path, Server: u},
				{Scenario: "read", Upstream: up, Target: "hookgate", URL: "http://" + hookgateAddr + path, Server: hg, UpstreamSrv: u},
				{Scenario: "read", Upstream: up, Target: "nginx", URL: "http://" + nginxAddr + path, Server: ng, UpstreamSrv: u},
				{Scenario: "read", Upstream: up, Target: "haproxy", URL: "http://" + haproxyAddr + path, Server: hp, UpstreamSrv: u},
			})
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// changes measures POST events.create direct, through hookgate with
// fsynced markers (-durability sync) and with markers synced every
// second (-durability async), and through nginx passing the same POST,
// in front of the trivial upstream.
func (r *runner) changes(ctx context.Context) error {
	defer r.fleet.stop()
	u, err := r.startUpstream(ctx, "change-upstream", "-trivial")
	if err != nil {
		return err
	}
	hgSync, err := r.startHookgate(ctx, "change-hookgate-sync", hookgateAddr, "-durability", "sync")
	if err != nil {
		return err
	}
	hgAsync, err := r.startHookgate(ctx, "change-hookgate-async", hookgateAsyncAddr, "-durability", "async")
	if err != nil {
		return err
	}
	ng, err := r.startNginx(ctx, "change-nginx")
	if err != nil {
		return err
	}
	const path = "/alice/events"
	c := cell{Scenario: "change", Upstream: "trivial", Post: true}
	at := func(target, addr string, s, up *server) cell {
		c := c
		c.Target, c.URL, c.Server, c.UpstreamSrv = target, "http://"+addr+path, s, up
		return c
	}
	return r.runCells(ctx, []cell{
		at("direct", upstreamAddr, u, nil),
		at("hookgate-sync", hookgateAddr, hgSync, u),
		at("hookgate-async", hookgateAsyncAddr, hgAsync, u),
		at("nginx", nginxAddr, ng, u),
	})
}

// progress prints one line about the run to standard error.
func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.log, strings.TrimRight(format, "\n")+"\n", args...)
}
