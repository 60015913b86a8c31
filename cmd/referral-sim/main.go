// Command referral-sim drives a running referral service: a day (or a week) in the life of
// Kela benefit handlers and county social workers on the fast dev clock, a load generator
// that measures throughput and latency against the service and the raw-stack yardstick, and a
// bulk loader that seeds a stopped service's bbolt file.
//
//	referral-sim [day] --data-dir ./data --days 5 --speed 600   the day-in-the-life demo
//	referral-sim load --data-dir ./data --duration 30s          load and latency figures
//	referral-sim seed --data-dir ./data --count 10000           bulk-load a stopped service
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "referral-sim:", err)
		os.Exit(1)
	}
}

const usage = `usage: referral-sim [command] [flags]

commands:
  day    (default) a realistic day in the life against a running service on the dev clock
  load   fixed concurrency or rate for a fixed duration: throughput, latency, event latency
  seed   bulk-load referrals into a stopped service's data directory

Run "referral-sim <command> -h" for the flags of a command.
`

// run dispatches to a command; flags without a command run the day in the life.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "day"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "day":
		return runDay(ctx, args, getenv, stdout, stderr)
	case "load":
		return runLoad(ctx, args, getenv, stdout, stderr)
	case "seed":
		return runSeed(ctx, args, getenv, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
