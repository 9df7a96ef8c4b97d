package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// burstOptions configures the burst client.
type burstOptions struct {
	// Target is hookgate's base URL, Receiver the demo receiver's.
	Target, Receiver string
	// Users get one change each: user00001 to the n-th.
	Users int
	// Conns is how many changes are in flight at once, over as many
	// connections.
	Conns int
	// Wait bounds the wait for the notifications before the answer
	// times are reported.
	Wait time.Duration
}

// runBurstClient is `go run ./loadtest burst-client`, the burst's
// generator: the runner starts it as a child of its own, pinned to the
// load CPU. It prints a clientResult line; it exits 1 if a change failed.
func runBurstClient(args []string, stdout, stderr io.Writer) int {
	var o burstOptions
	fs := flag.NewFlagSet("burst-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Target, "target", "http://"+hookgateAddr, "hookgate's base `URL`")
	fs.StringVar(&o.Receiver, "receiver", "http://"+receiverAddr, "the demo receiver's base `URL`")
	fs.IntVar(&o.Users, "users", 1000, "users (`count`) changed once each, user00001 on")
	fs.IntVar(&o.Conns, "conns", burstConns, "changes in flight at once (`count`), over as many connections")
	fs.DurationVar(&o.Wait, "wait", time.Minute, "wait at most this long for the notifications before reporting the answer times")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.Users < 1 || o.Conns < 1 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "burst-client: -users and -conns must be at least 1, and there are no arguments")
		return 2
	}
	res, err := burstClient(context.Background(), o)
	if err != nil {
		fmt.Fprintln(stderr, "burst-client:", err)
		return 1
	}
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	if res.Failed > 0 {
		fmt.Fprintf(stderr, "burst-client: %d of %d changes failed\n", res.Failed, res.Count)
		return 1
	}
	return 0
}

// burstClient makes one change per user (POST /<user>/events with the
// user's app token) through o.Target, o.Conns at a time, noting when
// each answer (201) arrived. Once the receiver has counted as many
// change notifications (or after o.Wait), it tells the receiver each
// change's answer time (POST /_answered?u=I&t=µs, the key of user I's
// webhook being I), as latency.js does: reported after the burst, so
// that these requests do not compete with the notifications. The result
// covers the burst alone, its CPU time included.
func burstClient(ctx context.Context, o burstOptions) (clientResult, error) {
	// fasthttp reads the answer in the goroutine that sent the change,
	// so its time is taken right after the answer is read, with no
	// hand-over between goroutines in between.
	changes := &fasthttp.Client{MaxConnsPerHost: o.Conns, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		NoDefaultUserAgentHeader: true}
	defer changes.CloseIdleConnections()
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	answered := make([]int64, o.Users) // Unix µs of user i+1's answer; 0 if it failed
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	cpu0 := selfCPU()
	start := time.Now()
	for range min(o.Conns, o.Users) {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > o.Users {
					return
				}
				t, err := burstChange(changes, o.Target, i)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				answered[i-1] = t
			}
		})
	}
	wg.Wait()
	res := clientResult{Count: int64(o.Users), Failed: failed.Load(), Seconds: time.Since(start).Seconds()}
	res.CPUSeconds = (selfCPU() - cpu0).Seconds()
	res.Rate = float64(res.Count-res.Failed) / res.Seconds
	if err, _ := firstErr.Load().(error); err != nil {
		return res, fmt.Errorf("%d of %d changes failed, the first: %w", res.Failed, res.Count, err)
	}
	if _, _, err := waitChanged(ctx, client, o.Receiver, res.Count, o.Wait); err != nil {
		return res, err
	}
	return res, reportAnswers(ctx, client, o.Receiver, answered)
}

// burstChange makes user i's change and returns when its answer had
// been read (Unix µs).
func burstChange(client *fasthttp.Client, target string, i int) (int64, error) {
	u := userName(i)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(target + "/" + u + "/events")
	req.Header.Set("Authorization", u+"-app")
	req.Header.SetContentType("application/json")
	req.SetBodyString(eventBody)
	if err := client.Do(req, resp); err != nil {
		return 0, fmt.Errorf("%s: %w", u, err)
	}
	at := time.Now().UnixMicro()
	if resp.StatusCode() != fasthttp.StatusCreated {
		return 0, fmt.Errorf("%s: %d %.200s", u, resp.StatusCode(), resp.Body())
	}
	return at, nil
}

// reportAnswers tells the receiver when each change was answered:
// answered[i] is user i+1's, whose webhook's key is i+1; zero is
// skipped. Keys answered in the same microsecond share one request.
func reportAnswers(ctx context.Context, client *http.Client, receiver string, answered []int64) error {
	byTime := map[int64][]string{}
	var times []int64
	for i, t := range answered {
		if t == 0 {
			continue
		}
		if byTime[t] == nil {
			times = append(times, t)
		}
		byTime[t] = append(byTime[t], strconv.Itoa(i+1))
	}
	for _, t := range times {
		q := url.Values{"u": byTime[t], "t": {strconv.FormatInt(t, 10)}}
		req, err := http.NewRequestWithContext(ctx, "POST", receiver+"/_answered?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("reporting an answer time: %w", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("reporting an answer time: %d %.200s", resp.StatusCode, b)
		}
	}
	return nil
}

// selfCPU returns the user and system CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
