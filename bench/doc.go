// Package bench holds hookgate's end-to-end benchmarks and what they share:
// the demo upstream (package bench/upstream) and, in the _timing_test.go
// files, gateways, baselines and clients started on loopback.
//
// Every end-to-end benchmark has a baseline measured in the same run
// (the upstream directly, net/http/httputil.ReverseProxy) so results read
// as ratios: see the README's benchmark section for the command.
package bench
