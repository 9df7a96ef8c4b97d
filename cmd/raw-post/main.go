// Command raw-post sends notification POSTs straight to a receiver with
// hookgate's own delivery client and prints the rate: the baseline the
// load test sets hookgate's deliveries against. Loopback only.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookgate/hookgate/delivery"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:4000/raw", "receiver `URL` (loopback)")
	n := flag.Int("n", 1000, "POSTs to send (`count`)")
	c := flag.Int("c", 64, "POSTs in flight at once (`count`), over as many connections")
	flag.Parse()
	client := delivery.NewClient(delivery.ClientOptions{MaxConnsPerHost: *c,
		Guard: delivery.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}})
	body := []byte(`{"messages":["eventsChanged"],"meta":{"apiVersion":"1.9.3","serverTime":1795436682.278,"serial":"hookgate"}}`)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *c {
		wg.Go(func() {
			for next.Add(1) <= int64(*n) {
				if a, err := client.Send(*url, body, nil); err != nil || a.Status < 200 || a.Status > 299 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	out, _ := json.Marshal(map[string]any{"count": *n, "failed": failed.Load(), "seconds": secs, "rate": float64(*n) / secs})
	fmt.Println(string(out))
	if failed.Load() > 0 {
		os.Exit(1)
	}
}
