package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookgate/hookgate/internal/procstat"
)

var nan = math.NaN()

// config is the run's configuration, from the mode and flags.
type config struct {
	Mode string
	// Duration of each wrk and vegeta run; Warmup of the unmeasured wrk
	// run against each target before the first repetition (0: none).
	Duration, Warmup time.Duration
	// Reps is how many times every cell runs, interleaved.
	Reps int
	// Rate is the open loop's requests per second; Conns the closed
	// loop's connections, on Threads wrk threads.
	Rate, Conns, Threads int
	// DeliverUsers are the webhook counts of the delivery runs;
	// BurstUsers the idle webhooks of the burst runs; LatUsers those of
	// the latency runs; Changes the changes of the coalescing run.
	DeliverUsers                  []int
	BurstUsers, LatUsers, Changes int
	// Scenarios run, in this order.
	Scenarios []string
	// LoadCPU runs the generators, ServerCPU every server; -1 for no
	// pinning (a machine with one CPU).
	LoadCPU, ServerCPU int
	// Tools' paths.
	K6, Wrk, Vegeta, Nginx, Haproxy string
	// Bin holds hookgate, demo-upstream, demo-receiver and raw-post
	// already built; empty: build them.
	Bin string
	// Results is the directory under which each run's directory is made.
	Results string
	// Timeout bounds the whole run.
	Timeout time.Duration
}

var allScenarios = []string{"reads", "changes", "deliveries", "burst", "latency", "coalescing"}

// parseConfig reads the mode (full or quick; first or last argument)
// and the flags. Flags left at zero take the mode's defaults.
func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		c.Mode, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./loadtest [flags] full|quick\n       go run ./loadtest tables DIR\n       go run ./loadtest burst-client [flags] (the burst's generator, started by the runner)")
		fs.PrintDefaults()
	}
	fs.DurationVar(&c.Duration, "duration", 0, "length of each wrk and vegeta run (default 15s full, 4s quick)")
	fs.DurationVar(&c.Warmup, "warmup", -1, "unmeasured wrk run against each target first (default 2s full, 1s quick; 0 for none)")
	fs.IntVar(&c.Reps, "reps", 0, "repetitions of every cell, interleaved (default 3 full, 1 quick)")
	fs.IntVar(&c.Rate, "rate", 2000, "open-loop rate, requests per second")
	fs.IntVar(&c.Conns, "conns", 32, "closed-loop connections")
	fs.IntVar(&c.Threads, "threads", 1, "wrk threads (it has one CPU)")
	users := fs.String("deliver-users", "", "webhook counts of the delivery runs, comma-separated (default 1000,10000 full, 1000 quick)")
	fs.IntVar(&c.BurstUsers, "burst-users", 0, "idle webhooks of the burst runs, one change each (default 1000)")
	fs.IntVar(&c.LatUsers, "lat-users", 0, "idle webhooks of the latency runs (default 1000 full, 300 quick)")
	fs.IntVar(&c.Changes, "changes", 0, "changes of the coalescing run (default 100000 full, 10000 quick)")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios to run, comma-separated")
	fs.IntVar(&c.LoadCPU, "load-cpu", 0, "CPU of the load generators")
	fs.IntVar(&c.ServerCPU, "server-cpu", 1, "CPU of every server")
	fs.StringVar(&c.K6, "k6", "", "k6 binary (default: k6 on PATH, else GOPATH/bin/k6)")
	fs.StringVar(&c.Wrk, "wrk", "", "wrk binary (default: wrk on PATH)")
	fs.StringVar(&c.Vegeta, "vegeta", "", "vegeta binary (default: vegeta on PATH, else GOPATH/bin/vegeta)")
	fs.StringVar(&c.Nginx, "nginx", "", "nginx binary (default: on PATH or in /usr/sbin)")
	fs.StringVar(&c.Haproxy, "haproxy", "", "haproxy binary (default: on PATH or in /usr/sbin)")
	fs.StringVar(&c.Bin, "bin", "", "directory of hookgate, demo-upstream, demo-receiver and raw-post already built (default: build them)")
	fs.StringVar(&c.Results, "results", "", "directory under which the run's results directory is made (default loadtest/results)")
	fs.DurationVar(&c.Timeout, "timeout", 0, "the whole run at most (default 60m full, 15m quick)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.Mode == "" && fs.NArg() == 1 {
		c.Mode = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	type defaults struct {
		dur, warm, timeout        time.Duration
		reps, burst, lat, changes int
		users                     string
	}
	var d defaults
	switch c.Mode {
	case "full":
		d = defaults{15 * time.Second, 2 * time.Second, 60 * time.Minute, 3, 1000, 1000, 100000, "1000,10000"}
	case "quick":
		d = defaults{4 * time.Second, time.Second, 15 * time.Minute, 1, 1000, 300, 10000, "1000"}
	default:
		fs.Usage()
		return c, fmt.Errorf("mode %q: want full or quick", c.Mode)
	}
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.Reps, d.reps)
	set(&c.BurstUsers, d.burst)
	set(&c.LatUsers, d.lat)
	set(&c.Changes, d.changes)
	if c.Duration == 0 {
		c.Duration = d.dur
	}
	if c.Warmup < 0 {
		c.Warmup = d.warm
	}
	if c.Timeout == 0 {
		c.Timeout = d.timeout
	}
	if *users == "" {
		*users = d.users
	}
	for f := range strings.SplitSeq(*users, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return c, fmt.Errorf("-deliver-users: %q is not a count", f)
		}
		c.DeliverUsers = append(c.DeliverUsers, n)
	}
	for s := range strings.SplitSeq(*scen, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return c, fmt.Errorf("unknown scenario %q (want some of %s)", s, strings.Join(allScenarios, ","))
		}
		c.Scenarios = append(c.Scenarios, s)
	}
	if c.Duration < time.Second || c.Reps < 1 || c.Rate < 1 || c.Conns < 1 || c.Threads < 1 || c.BurstUsers < 1 {
		return c, errors.New("-duration must be at least 1s, and -reps, -rate, -conns, -threads, -burst-users at least 1")
	}
	if runtime.NumCPU() < 2 {
		c.LoadCPU, c.ServerCPU = -1, -1
	}
	return c, nil
}

// findTool returns flag if set, else name on PATH, else the first
// fallback that exists.
func findTool(flag, name string, fallbacks ...string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range fallbacks {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: run make loadtest-deps", name)
}

// repoRoot returns the repository's root: the nearest directory up from
// the working directory that holds go.mod and loadtest/.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "loadtest", "deliver.js")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("run from inside the hookgate repository")
		}
		dir = up
	}
}

// runner runs the scenarios of one load test. Not safe for concurrent
// use.
type runner struct {
	cfg  config
	repo string
	// out is the results directory, kept; raw and logs are in it.
	out, raw string
	// work is a temporary directory (binaries, data, configurations),
	// removed at the end.
	work  string
	bins  string
	clk   int64
	fleet *fleet
	log   io.Writer
	// seq numbers the raw files in the order they were written.
	seq int
	// wrkPost is wrk's Lua script for changes; eventBody vegeta's body
	// file: both in the results directory.
	wrkPost, eventBody                                        string
	loads, deliveriesTSV, burstTSV, latencyTSV, coalescingTSV *tsvFile
}

func (r *runner) bin(name string) string { return filepath.Join(r.bins, name) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "burst-client" {
		return runBurstClient(args[1:], stdout, stderr)
	}
	if len(args) == 2 && args[0] == "tables" {
		res, err := readResults(args[1])
		if err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 1
		}
		printTables(stdout, res)
		return 0
	}
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r, err := newRunner(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 1
	}
	runErr := r.runAll(ctx)
	r.close()
	res, err := readResults(r.out)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 1
	}
	var table bytes.Buffer
	printTables(&table, res)
	os.WriteFile(filepath.Join(r.out, "table.txt"), table.Bytes(), 0o644)
	stdout.Write(table.Bytes())
	if runErr != nil {
		if ctx.Err() != nil && !errors.Is(runErr, context.DeadlineExceeded) {
			runErr = fmt.Errorf("stopped (%v): %w", context.Cause(ctx), runErr)
		}
		fmt.Fprintln(stderr, "loadtest:", runErr)
		fmt.Fprintf(stdout, "\nresults so far: %s\n", r.out)
		return 1
	}
	fmt.Fprintf(stdout, "\nresults: %s\n", r.out)
	return 0
}

// newRunner finds the tools and makes the results and work directories.
func newRunner(cfg config, log io.Writer) (*runner, error) {
	repo, err := repoRoot()
	if err != nil {
		return nil, err
	}
	gopath := filepath.Join(os.Getenv("HOME"), "go")
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopath = strings.TrimSpace(strings.Split(string(out), string(os.PathListSeparator))[0])
	}
	var errs [5]error
	cfg.K6, errs[0] = findTool(cfg.K6, "k6", filepath.Join(gopath, "bin", "k6"))
	cfg.Wrk, errs[1] = findTool(cfg.Wrk, "wrk")
	cfg.Vegeta, errs[2] = findTool(cfg.Vegeta, "vegeta", filepath.Join(gopath, "bin", "vegeta"))
	cfg.Nginx, errs[3] = findTool(cfg.Nginx, "nginx", "/usr/sbin/nginx")
	cfg.Haproxy, errs[4] = findTool(cfg.Haproxy, "haproxy", "/usr/sbin/haproxy")
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	if cfg.Results == "" {
		cfg.Results = filepath.Join(repo, "loadtest", "results")
	}
	r := &runner{cfg: cfg, repo: repo, clk: procstat.ClockTicks(), log: log}
	r.out = filepath.Join(cfg.Results, time.Now().UTC().Format("20060102T150405Z"))
	r.raw = filepath.Join(r.out, "raw")
	logs := filepath.Join(r.out, "logs")
	for _, d := range []string{r.raw, logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if r.work, err = os.MkdirTemp("", "hookgate-loadtest-"); err != nil {
		return nil, err
	}
	r.fleet = &fleet{cpu: cfg.ServerCPU, logs: logs}
	r.loads = &tsvFile{path: filepath.Join(r.out, loadsFile)}
	r.deliveriesTSV = &tsvFile{path: filepath.Join(r.out, deliveriesFile)}
	r.burstTSV = &tsvFile{path: filepath.Join(r.out, burstFile)}
	r.latencyTSV = &tsvFile{path: filepath.Join(r.out, latencyFile)}
	r.coalescingTSV = &tsvFile{path: filepath.Join(r.out, coalescingFile)}
	r.wrkPost = filepath.Join(r.out, "post.lua")
	r.eventBody = filepath.Join(r.out, "event.json")
	if err := errors.Join(os.WriteFile(r.wrkPost, []byte(wrkPost), 0o644),
		os.WriteFile(r.eventBody, []byte(eventBody), 0o644)); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// close stops every server and removes the work directory.
func (r *runner) close() {
	r.fleet.stop()
	os.RemoveAll(r.work)
}

// runAll builds the binaries, writes what describes the run, and runs
// the scenarios.
func (r *runner) runAll(ctx context.Context) error {
	r.bins = r.cfg.Bin
	if r.bins == "" {
		r.bins = filepath.Join(r.work, "bin")
		r.progress("building hookgate, demo-upstream, demo-receiver and raw-post")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", r.bins+"/", "./cmd/hookgate", "./cmd/demo-upstream",
			"./cmd/demo-receiver", "./cmd/raw-post")
		cmd.Dir = r.repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %w\n%s", err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(r.out, "run.txt"), []byte(r.describe(ctx)), 0o644); err != nil {
		return err
	}
	r.progress("hookgate load test: %s (%d x %s), generators on CPU %d, servers on CPU %d, open loop %d req/s, closed loop %d connections",
		r.cfg.Mode, r.cfg.Reps, r.cfg.Duration, r.cfg.LoadCPU, r.cfg.ServerCPU, r.cfg.Rate, r.cfg.Conns)
	steps := map[string]func(context.Context) error{"reads": r.reads, "changes": r.changes,
		"deliveries": r.deliveries, "burst": r.burst, "latency": r.latency, "coalescing": r.coalescing}
	for _, s := range r.cfg.Scenarios {
		if err := steps[s](ctx); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// describe returns the run's settings, the machine and the tools'
// versions, kept as run.txt.
func (r *runner) describe(ctx context.Context) string {
	var b strings.Builder
	fmt.Fprintf(&b, "command: go run ./loadtest %s\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(&b, "started: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "config: %+v\n", r.cfg)
	fmt.Fprintf(&b, "cpus: %d, clock ticks: %d/s\n", runtime.NumCPU(), r.clk)
	if cpu, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(cpu)) {
			if strings.HasPrefix(line, "model name") {
				b.WriteString(line)
				break
			}
		}
	}
	version := func(args ...string) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		fmt.Fprintf(&b, "%s: %s\n", filepath.Base(args[0]), first)
	}
	version("uname", "-sr")
	version("go", "version")
	version(r.cfg.K6, "version")
	version(r.cfg.Wrk, "-v")
	if out, err := exec.CommandContext(ctx, "go", "version", "-m", r.cfg.Vegeta).Output(); err == nil {
		for line := range strings.Lines(string(out)) {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" {
				fmt.Fprintf(&b, "vegeta: %s %s\n", f[1], f[2])
			}
		}
	}
	version(r.cfg.Nginx, "-v")
	version(r.cfg.Haproxy, "-v")
	if rev, err := exec.CommandContext(ctx, "git", "-C", r.repo, "describe", "--always", "--dirty").Output(); err == nil {
		fmt.Fprintf(&b, "revision: %s", rev)
	}
	return b.String()
}
