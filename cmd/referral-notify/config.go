package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// config is everything referral-notify can be told, by flag or by environment variable.
type config struct {
	org      domain.OrgID
	natsURL  string
	durable  string
	deliver  string // "all" or "new"; only used when the consumer is created
	ackWait  time.Duration
	seenFile string
	seenSize int

	webhook            string
	webhookMaxAttempts int
	webhookTimeout     time.Duration
	webhookBackoff     time.Duration
	webhookMaxBackoff  time.Duration
	deadLetter         string

	logLevel slog.Level
}

// Defaults.
const (
	defaultNATSURL  = "nats://127.0.0.1:4222"
	defaultSeenSize = 10000
)

// parseConfig reads flags over environment defaults. It returns an error for a missing or
// unknown organisation, a webhook without a dead-letter file (or a dead-letter file without a
// webhook), an unknown log level and values out of range.
func parseConfig(args []string, getenv func(string) string, reg *domain.Registry, stderr io.Writer) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var c config
	var org, logLevel string
	fs := flag.NewFlagSet("referral-notify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&org, "org", env("NOTIFY_ORG", ""), "organisation whose incoming and outgoing referral events to follow: kela or hva-NN (NOTIFY_ORG)")
	fs.StringVar(&c.natsURL, "nats-url", env("NATS_URL", defaultNATSURL), "NATS server URL (NATS_URL)")
	fs.StringVar(&c.durable, "durable", env("NOTIFY_DURABLE", ""), "durable consumer name (default notify-<org>) (NOTIFY_DURABLE)")
	fs.StringVar(&c.deliver, "deliver", env("NOTIFY_DELIVER", "all"), "where a new consumer starts: all (every event the stream still holds) or new; an existing consumer resumes where it was (NOTIFY_DELIVER)")
	fs.DurationVar(&c.ackWait, "ack-wait", 30*time.Second, "how long JetStream waits for an ack before redelivering; after a crash, unacknowledged events come back after this long")
	fs.StringVar(&c.seenFile, "seen-file", env("NOTIFY_SEEN_FILE", ""), "file that keeps the ids of recently handled events, so an event redelivered after a crash is not printed or posted again; empty keeps them in memory only (NOTIFY_SEEN_FILE)")
	fs.IntVar(&c.seenSize, "seen-size", defaultSeenSize, "how many recent event ids to remember for deduplication")
	fs.StringVar(&c.webhook, "webhook", env("NOTIFY_WEBHOOK", ""), "URL to POST every event to as application/cloudevents+json (NOTIFY_WEBHOOK)")
	fs.IntVar(&c.webhookMaxAttempts, "webhook-max-attempts", 5, "attempts per event before it goes to the dead-letter file")
	fs.DurationVar(&c.webhookTimeout, "webhook-timeout", 10*time.Second, "timeout of one webhook request; a stop waits for the one in flight, up to this long")
	fs.DurationVar(&c.webhookBackoff, "webhook-backoff", 500*time.Millisecond, "wait before the second attempt; it doubles (with jitter) after each failure")
	fs.DurationVar(&c.webhookMaxBackoff, "webhook-max-backoff", 30*time.Second, "longest wait between attempts")
	fs.StringVar(&c.deadLetter, "dead-letter", env("NOTIFY_DEAD_LETTER", ""), "JSON-lines file for events the webhook refused --webhook-max-attempts times; required with --webhook (NOTIFY_DEAD_LETTER)")
	fs.StringVar(&logLevel, "log-level", env("NOTIFY_LOG_LEVEL", "info"), "debug, info, warn or error (NOTIFY_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.org = domain.OrgID(org)
	if org == "" {
		return c, errors.New("--org is required (kela or hva-NN)")
	}
	if _, ok := reg.Organisation(c.org); !ok {
		return c, fmt.Errorf("--org %q: not an organisation (kela, hva-01 … hva-21, hva-90)", org)
	}
	if c.durable == "" {
		c.durable = "notify-" + org
	}
	switch {
	case c.deliver != "all" && c.deliver != "new":
		return c, fmt.Errorf("--deliver %q: want all or new", c.deliver)
	case c.ackWait < time.Second:
		return c, errors.New("--ack-wait must be at least 1s")
	case c.seenSize < 1:
		return c, errors.New("--seen-size must be positive")
	case c.webhook == "" && c.deadLetter != "":
		return c, errors.New("--dead-letter is only used with --webhook (for the events it cannot deliver)")
	}
	if err := c.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return c, fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
	}
	if c.webhook != "" {
		u, err := url.Parse(c.webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, errors.New("--webhook: want an http or https URL")
		}
		switch {
		case c.deadLetter == "":
			return c, errors.New("--webhook needs --dead-letter FILE for the events it cannot deliver")
		case c.webhookMaxAttempts < 1:
			return c, errors.New("--webhook-max-attempts must be at least 1")
		case c.webhookTimeout <= 0 || c.webhookBackoff <= 0 || c.webhookMaxBackoff < c.webhookBackoff:
			return c, errors.New("--webhook-timeout and --webhook-backoff must be positive and --webhook-max-backoff at least --webhook-backoff")
		}
	}
	return c, nil
}
