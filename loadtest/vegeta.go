package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// eventBody is the events.create body every change sends (wrk's Lua
// script, vegeta's targets, mutate.js).
const eventBody = `{"streamIds":["diary"],"type":"note/txt","content":"load"}`

// vegetaTargets returns a vegeta targets file (its "http" format) with
// one request: GET url, or, with bodyFile set, POST url with that file
// as its JSON body. Every request carries alice's app token.
func vegetaTargets(method, url, bodyFile string) string {
	var b strings.Builder
	b.WriteString(method + " " + url + "\nAuthorization: alice-app\n")
	if bodyFile != "" {
		b.WriteString("Content-Type: application/json\n@" + bodyFile + "\n")
	}
	return b.String()
}

// vegetaAttackArgs returns the command line of an open-loop vegeta run
// at rate requests per second for dur, writing its results to out. At
// most 512 requests are in flight, over as many connections (hookgate
// answers 429 past 1,250 connections from one address): a target that
// falls that far behind shows as a rate below the one offered, and
// latency, rather than as errors.
func vegetaAttackArgs(targets string, rate int, dur time.Duration, out string) []string {
	return []string{"attack", "-targets", targets, "-rate", strconv.Itoa(rate) + "/s", "-duration", dur.String(),
		"-timeout", "5s", "-max-workers", "512", "-max-connections", "512", "-output", out}
}

// vegetaUserTargets returns a vegeta targets file (its "http" format)
// with one POST base/<user>/events per user, user00001 to the n-th of
// `demo-upstream -users`, in order, each with that user's app token; the
// JSON body comes from vegeta's -body.
func vegetaUserTargets(base string, n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		u := userName(i)
		fmt.Fprintf(&b, "POST %s/%s/events\nAuthorization: %s-app\nContent-Type: application/json\n\n", base, u, u)
	}
	return b.String()
}

// vegetaEachOnceArgs returns the command line of a vegeta run that
// sends every target of the file once, as fast as workers requests in
// flight (over as many connections) allow, then stops: the targets are
// read lazily, and the attack ends when they run out. Running out adds
// one result or a few (one per worker at most) without a status, whose
// error is "no targets to attack": what was sent is the requests with a
// status.
func vegetaEachOnceArgs(targets, body string, workers int, out string) []string {
	w := strconv.Itoa(workers)
	return []string{"attack", "-lazy", "-targets", targets, "-body", body, "-rate", "0", "-workers", w, "-max-workers", w,
		"-max-connections", w, "-timeout", "30s", "-output", out}
}

// vegetaReport is the part of `vegeta report -type json` read here.
// Latencies are in nanoseconds.
type vegetaReport struct {
	Latencies struct {
		P50 int64 `json:"50th"`
		P99 int64 `json:"99th"`
		Max int64 `json:"max"`
	} `json:"latencies"`
	Duration    int64          `json:"duration"`
	Requests    int64          `json:"requests"`
	Rate        float64        `json:"rate"`
	StatusCodes map[string]int `json:"status_codes"`
}

// parseVegeta reads the figures of one run from `vegeta report -type
// json`. Rate is the rate requests were sent at; errors are requests
// without an answer (status code 0) or with a status outside 2xx and
// 3xx.
func parseVegeta(out []byte) (loadResult, error) {
	var v vegetaReport
	if err := json.Unmarshal(out, &v); err != nil {
		return loadResult{}, fmt.Errorf("%w: %v", errNoSummary, err)
	}
	l := v.Latencies
	if v.Requests <= 0 || v.Duration <= 0 || v.Rate < 0 || math.IsNaN(v.Rate) || math.IsInf(v.Rate, 0) ||
		l.P50 < 0 || l.P99 < 0 || l.Max < 0 {
		return loadResult{}, fmt.Errorf("%w: %d requests in %d ns", errNoSummary, v.Requests, v.Duration)
	}
	r := loadResult{Requests: v.Requests, Rate: v.Rate, P50: time.Duration(l.P50), P99: time.Duration(l.P99), Max: time.Duration(l.Max)}
	for code, n := range v.StatusCodes {
		c, err := strconv.Atoi(code)
		if err != nil || n < 0 {
			return loadResult{}, fmt.Errorf("%w: status %q: %d", errNoSummary, code, n)
		}
		if c < 200 || c > 399 {
			r.Errors += int64(n)
		}
	}
	return r, nil
}
