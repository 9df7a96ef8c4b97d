package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// errNoSummary is returned by the parsers of generator output for output
// without the figures of a finished run (the generator could not
// connect, was killed, or printed something else).
var errNoSummary = errors.New("loadtest: no summary in the generator's output")

// loadResult is what one generator run measured.
type loadResult struct {
	// Requests is how many requests completed (with any status).
	Requests int64
	// Rate is requests per second over the run.
	Rate float64
	// P50, P99 and Max are latency quantiles. For wrk (closed loop)
	// they are the latency of the requests it managed to send, without
	// correction for the ones a slow answer held back.
	P50, P99, Max time.Duration
	// Errors counts failed requests: connection errors, timeouts, and
	// answers with a status outside 2xx and 3xx.
	Errors int64
}

// wrkArgs returns wrk's command line for a closed-loop run of conns
// connections on threads threads for dur against url, with the headers
// and, if script is not empty, the Lua script at that path (which sets
// the method and body).
func wrkArgs(url string, threads, conns int, dur time.Duration, headers []string, script string) []string {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", durationArg(dur),
		"--timeout", "5s", "--latency"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	return append(args, url)
}

// durationArg spells dur in whole seconds, at least 1, as wrk wants it.
func durationArg(dur time.Duration) string {
	return strconv.Itoa(max(1, int((dur+time.Second/2)/time.Second))) + "s"
}

// wrkPost is the Lua script that makes wrk send events.create: POST
// with a JSON body, the same request as mutate.js and vegeta's change
// targets.
const wrkPost = `-- events.create through the target, as mutate.js sends it.
wrk.method = "POST"
wrk.body = '` + eventBody + `'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "alice-app"
`

// parseWrk reads the figures of one run from wrk's output with
// --latency:
//
//	Running 2s test @ http://127.0.0.1:18000/alice/events?limit=20
//	  1 threads and 32 connections
//	  Thread Stats   Avg      Stdev     Max   +/- Stdev
//	    Latency     7.91ms   22.36ms 142.25ms   92.50%
//	    Req/Sec    30.59k     9.39k   40.10k    83.33%
//	  Latency Distribution
//	     50%  646.00us
//	     ...
//	     99%  118.43ms
//	  57844 requests in 2.02s, 12.63MB read
//	  Non-2xx or 3xx responses: 10
//	  Socket errors: connect 0, read 0, write 0, timeout 8
//	Requests/sec:  28636.95
//
// The requests line, Requests/sec and the 50 % and 99 % latencies are
// required; the error lines appear only when there were errors.
func parseWrk(out []byte) (loadResult, error) {
	var r loadResult
	var haveReqs, haveRate, have50, have99 bool
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case len(f) >= 4 && f[0] == "Latency" && !strings.HasSuffix(f[1], "%"):
			// Thread stats: Avg Stdev Max +/-Stdev.
			d, err := time.ParseDuration(f[3])
			if err != nil {
				return r, fmt.Errorf("%w: latency max %q", errNoSummary, f[3])
			}
			r.Max = d
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := time.ParseDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("%w: latency %s %q", errNoSummary, f[0], f[1])
			}
			if f[0] == "50%" {
				r.P50, have50 = d, true
			} else {
				r.P99, have99 = d, true
			}
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || n < 0 {
				return r, fmt.Errorf("%w: requests %q", errNoSummary, f[0])
			}
			r.Requests, haveReqs = n, true
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return r, fmt.Errorf("%w: Requests/sec %q", errNoSummary, f[1])
			}
			r.Rate, haveRate = v, true
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			if err != nil || n < 0 {
				return r, fmt.Errorf("%w: non-2xx count %q", errNoSummary, f[len(f)-1])
			}
			r.Errors += n
		case f[0] == "Socket" && len(f) > 1 && f[1] == "errors:":
			// connect N, read N, write N, timeout N
			for i := 3; i < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i], ","), 10, 64)
				if err != nil || n < 0 {
					return r, fmt.Errorf("%w: socket errors %q", errNoSummary, strings.TrimSpace(line))
				}
				r.Errors += n
			}
		}
	}
	if !haveReqs || !haveRate || !have50 || !have99 {
		return r, errNoSummary
	}
	return r, nil
}
