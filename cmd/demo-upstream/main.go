// Command demo-upstream serves a small Pryv-like API in memory, with seeded
// users and tokens, for trying hookgate out and for its tests and
// benchmarks.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hookgate/hookgate/bench/upstream"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3000", "`address` to listen on, host:port")
	serviceTime := flag.Duration("service-time", 0, "`duration` added to every answer, to play an API doing real work")
	quiet := flag.Bool("quiet", false, "do not print the seeded users and tokens")
	trivial := flag.Bool("trivial", false, "answer every request with the same small JSON, doing no work (benchmarks)")
	users := flag.Int("users", 0, "also seed this many users (`count`), user00001 on, with tokens <user>-personal, -app and -shared")
	flag.Parse()

	s := upstream.New(upstream.Options{ServiceTime: *serviceTime, Trivial: *trivial, Users: *users})
	addr, stop, err := s.Start(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-upstream:", err)
		os.Exit(1)
	}
	if !*quiet {
		fmt.Printf("demo-upstream: Pryv-like API on http://%s (service time %s, %d more users user00001 on)\n", addr, *serviceTime, *users)
		for _, u := range s.Users()[:2] {
			for _, a := range s.Accesses(u) {
				fmt.Printf("  user %-6s %-8s access id %-18s token %s\n", u, a.Type, a.ID, a.Token)
			}
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}
