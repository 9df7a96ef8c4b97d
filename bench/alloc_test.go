//go:build !race

package bench

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestPassThroughAllocBudget keeps a proxied read as cheap as fasthttp's
// own streaming client makes it: at most 4 allocations per request more
// than the same request sent to the upstream directly (the 4 are
// fasthttp's per-response body-stream wrapper; the gateway's own code
// allocates nothing). Counts cover every goroutine of the process.
func TestPassThroughAllocBudget(t *testing.T) {
	up := trivialUpstream(t, 128)
	gw := hookgate(t, up, nil)
	allocs := func(addr string) float64 {
		c := &fasthttp.HostClient{Addr: addr}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + addr + "/alice/events")
		for range 100 { // warm pools and connections
			if err := c.Do(req, resp); err != nil {
				t.Fatal(err)
			}
		}
		return testing.AllocsPerRun(2000, func() {
			if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				t.Fatalf("err %v status %d", err, resp.StatusCode())
			}
		})
	}
	direct, through := allocs(up), allocs(gw)
	t.Logf("allocations per request: direct %.2f, through hookgate %.2f", direct, through)
	if through-direct > 4.5 {
		t.Fatalf("a proxied read costs %.2f allocations more than a direct one; budget 4", through-direct)
	}
}
