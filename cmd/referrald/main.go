// Command referrald is the Kela–county referral service: the HTTP API, the bbolt store and
// the outbox relay to NATS JetStream. With no NATS_URL it runs an embedded NATS server.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tuneGC(os.Getenv)    // gc.go
	tuneProcs(os.Getenv) // gc.go
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "referrald:", err)
		os.Exit(1)
	}
}
