// Command demo-receiver prints the webhook notifications it receives, and
// can answer slowly or with an error status, for trying hookgate out.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hookgate/hookgate/bench/receiver"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4000", "`address` to listen on, host:port")
	status := flag.Int("status", 200, "HTTP `status` to answer")
	delay := flag.Duration("delay", 0, "`duration` to wait before answering")
	quiet := flag.Bool("quiet", false, "count notifications (GET /_stats) without printing them")
	secret := flag.String("secret", "", "whsec_ signing `secret`: verify each notification's Standard Webhooks signature and answer 401 when it fails")
	flag.Parse()
	s := receiver.New(receiver.Options{Status: *status, Delay: *delay, CountOnly: true, Secret: *secret,
		OnNotification: func(n receiver.Notification) {
			if *quiet {
				return
			}
			sig := ""
			if *secret != "" {
				sig = " [signature ok]"
				if !n.Verified {
					sig = " [signature REFUSED: " + n.VerifyError + "]"
				}
			}
			fmt.Printf("%s demo-receiver: POST %s %s%s\n", n.At.Format("15:04:05.000"), n.Path, n.Body, sig)
		}})
	addr, stop, err := s.Start(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-receiver:", err)
		os.Exit(1)
	}
	fmt.Printf("demo-receiver: listening on http://%s, answering %d after %s\n", addr, *status, *delay)
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
