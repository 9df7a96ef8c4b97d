// Command loadtest is the runner behind `make loadtest`: it starts the
// demo upstream, hookgate, nginx, haproxy and the demo receiver on
// 127.0.0.1, every server on one CPU with GOMAXPROCS=1 and the load
// generators on the other, runs the scenarios, keeps every row and every
// generator's raw output in loadtest/results/<UTC time>/, and prints the
// tables, with hookgate's figures as ratios to baselines of the same run.
//
//	go run ./loadtest [flags] full|quick
//	go run ./loadtest tables DIR     # the tables of a kept results directory
//
// Generators: wrk for closed loops (the most a target can do), vegeta for
// open loops (a fixed rate) and for the changes behind the deliveries
// (each user's once), the runner's own burst client (go run ./loadtest
// burst-client, started as a pinned child) for the burst, k6 for the
// other scripted scenarios (latency and isolation, coalescing). Server
// CPU comes from /proc/<pid>/stat, the generator's own from its rusage,
// and every row says whether the generator or the servers were the limit.
//
// It imports nothing of hookgate: it drives the binaries of cmd/, built
// into a work directory at the start. Lifetime: every process it starts
// is stopped before it exits, on an error, a timeout or Ctrl-C; the
// scenarios run one after the other on the main goroutine, and the only
// other goroutines wait for a server to exit or create webhooks, each
// waited for. The burst client's goroutines each send changes until
// none is left, and are waited for before it reports.
package main
