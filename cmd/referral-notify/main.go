// Command referral-notify is the notification consumer an organisation runs: a durable
// JetStream consumer of the REFERRALS stream that prints one line per event about the
// organisation's incoming and outgoing referrals, and optionally POSTs each event to a
// webhook. It acknowledges an event only after handling it, deduplicates on the CloudEvents id
// and survives its own restarts and the service's.
//
//	referral-notify --org hva-08 [--nats-url nats://127.0.0.1:4222] [--seen-file FILE]
//	                [--webhook URL --dead-letter FILE [--webhook-max-attempts 5]]
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
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "referral-notify:", err)
		os.Exit(1)
	}
}
