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

func main() { os.Exit(referrald(os.Args[1:], os.Getenv)) }

// referrald is the whole command with its arguments and environment, returning the exit
// status: the crash test's child processes run exactly this.
func referrald(args []string, getenv func(string) string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tuneGC(getenv)    // gc.go
	tuneProcs(getenv) // gc.go
	if err := run(ctx, args, getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "referrald:", err)
		return 1
	}
	return 0
}
