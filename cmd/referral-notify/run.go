package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
)

// beforeAck, when set (by tests only), runs after an event is handled and before it is
// acknowledged; an error ends run there, as a crash would, leaving the event unacknowledged.
var beforeAck func(eventID string) error

// ackTimeout bounds the wait for the server to confirm an ack.
const ackTimeout = 5 * time.Second

// run follows the organisation's events until ctx is cancelled. It returns nil after a
// cancel, and an error for bad configuration or when an event can be neither printed nor
// recorded (stdout, the seen file or the dead-letter file fails): then the event stays
// unacknowledged and comes back at the next start.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	reg := domain.DefaultRegistry()
	cfg, err := parseConfig(args, getenv, reg, stderr)
	if err != nil {
		return err
	}
	if cfg.webhook != "" {
		if err := checkDeadLetter(cfg.deadLetter); err != nil {
			return fmt.Errorf("--dead-letter %q: %w", cfg.deadLetter, err)
		}
	}
	log := newLogger(stderr, cfg.logLevel)

	seen, err := openSeen(cfg.seenFile, cfg.seenSize)
	if err != nil {
		return err
	}
	defer seen.Close()

	nc, err := nats.Connect(cfg.natsURL,
		nats.Name("referral-notify "+string(cfg.org)),
		nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(500*time.Millisecond), nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return fmt.Errorf("nats %s: %w", cfg.natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	n := &notifier{
		org: cfg.org, out: stdout, log: log, seen: seen, loc: calendar.New(calendar.Options{}).Location(),
	}
	if cfg.webhook != "" {
		n.hook = &webhook{
			url: cfg.webhook, client: &http.Client{Timeout: cfg.webhookTimeout, CheckRedirect: keepPOST},
			maxAttempts: cfg.webhookMaxAttempts, backoff: cfg.webhookBackoff, maxBackoff: cfg.webhookMaxBackoff,
			deadLetter: cfg.deadLetter, log: log, keepAliveEvery: cfg.ackWait / 3,
		}
	}
	log.Info("starting", "org", cfg.org, "consumer", cfg.durable, "nats", nc.ConnectedUrlRedacted(),
		"seen_file", cfg.seenFile, "webhook", cfg.webhook != "")

	err = consume(ctx, js, cfg, n, log)
	log.Info("stopped", "printed", n.printed, "duplicates", n.duplicates, "dead_lettered", n.deadLettered)
	return err
}

// consume (re)creates the durable consumer and handles its messages one by one until ctx
// ends or handling fails. While the stream is missing or NATS is away it retries with backoff.
func consume(ctx context.Context, js jetstream.JetStream, cfg config, n *notifier, log *slog.Logger) error {
	wait := 100 * time.Millisecond
	retry := func(what string, err error) bool {
		log.Warn(what+"; retrying", "err", err, "retry_in", wait.String())
		t := time.NewTimer(wait)
		defer t.Stop()
		wait = min(2*wait, 5*time.Second)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cons, err := ensureConsumer(cctx, js, cfg)
		cancel()
		if err != nil {
			if ctx.Err() != nil || !retry("cannot create consumer "+cfg.durable, err) {
				return nil
			}
			continue
		}
		// Short pulls with heartbeats: when the server comes back without our consumer (a
		// new store), the missing heartbeats end the iterator within seconds and the
		// consumer is made again.
		iter, err := cons.Messages(jetstream.PullExpiry(10*time.Second), jetstream.PullHeartbeat(2*time.Second),
			jetstream.WithMessagesErrOnMissingHeartbeat(true))
		if err != nil {
			if !retry("cannot consume", err) {
				return nil
			}
			continue
		}
		log.Info("consuming", "consumer", cfg.durable, "filter_subjects", len(cons.CachedInfo().Config.FilterSubjects))
		wait = 100 * time.Millisecond
		err = n.loop(ctx, iter)
		iter.Stop()
		var fatal *fatalError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &fatal):
			return fatal.err
		}
		if !retry("consumer interrupted", err) {
			return nil
		}
	}
	return nil
}

// ensureConsumer creates the organisation's durable consumer, or updates its filters and ack
// wait. An existing consumer keeps where it started (a deliver policy cannot change).
func ensureConsumer(ctx context.Context, js jetstream.JetStream, cfg config) (jetstream.Consumer, error) {
	cc := jetstream.ConsumerConfig{
		Durable:        cfg.durable,
		Description:    "referral-notify: events of " + string(cfg.org) + "'s incoming and outgoing referrals",
		FilterSubjects: filterSubjects(cfg.org),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.ackWait,
		MaxDeliver:     -1,
		// One event at a time: the next is sent only after the previous one's ack, so the
		// organisation sees each referral's events in order, also after a redelivery.
		MaxAckPending: 1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if cfg.deliver == "new" {
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	existing, err := js.Consumer(ctx, broker.StreamName, cfg.durable)
	switch {
	case err == nil:
		old := existing.CachedInfo().Config
		cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, err
	}
	return js.CreateOrUpdateConsumer(ctx, broker.StreamName, cc)
}

// filterSubjects are the subjects of org's events (DOMAIN §8): incoming
// referrals.v1.*.<org>.> and outgoing referrals.v1.<org>.>. JetStream accepts the two in one
// consumer because neither is a subset of the other, and delivers a message that matches both
// once.
func filterSubjects(org domain.OrgID) []string {
	return []string{"referrals.v1.*." + string(org) + ".>", "referrals.v1." + string(org) + ".>"}
}

// fatalError ends run: handling an event failed in a way a retry will not fix.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// notifier handles the events of one organisation. It is used by one goroutine.
type notifier struct {
	org  domain.OrgID
	out  io.Writer
	log  *slog.Logger
	seen *seenSet
	hook *webhook // nil without --webhook
	loc  *time.Location

	printed, duplicates, deadLettered int
}

// loop handles messages until the iterator fails (returned as it is, to be retried), ctx
// ends, or handling fails (a *fatalError). When ctx ends, the event whose handling it
// interrupts (as in the wait between webhook retries) and any the iterator holds are handed
// back to JetStream (see handBack); so is an event whose handling failed.
func (n *notifier) loop(ctx context.Context, iter jetstream.MessagesContext) error {
	for {
		msg, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				// The server may have sent the next event (it does as soon as the last
				// one is acknowledged) into the iterator's buffer: hand it back too.
				n.handBack(ctx, iter, nil)
				return ctx.Err()
			}
			return err
		}
		if err := n.handle(ctx, msg); err != nil {
			// Stopped, or a failure a retry will not fix (stdout, the seen file or the
			// dead-letter file): either way the event was not handled, and the next start
			// should have it at once rather than after the ack wait.
			n.handBack(ctx, iter, msg)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &fatalError{err}
		}
	}
}

// handle prints the event, posts it to the webhook (or dead-letters it), remembers its id and
// acknowledges it. A duplicate is acknowledged without anything else; a message that is not a
// referral CloudEvent is logged and terminated so it is never redelivered.
func (n *notifier) handle(ctx context.Context, msg jetstream.Msg) error {
	var seq uint64
	if meta, err := msg.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	ce, err := broker.Decode(msg.Data())
	if err != nil {
		n.log.Warn("not a CloudEvent; skipped", "stream_seq", seq, "subject", msg.Subject(), "err", err)
		return n.term(msg)
	}
	if n.seen.Has(ce.ID) {
		n.duplicates++
		n.log.Debug("duplicate event skipped", "id", ce.ID, "stream_seq", seq)
		return n.ack(ctx, msg)
	}
	line, err := formatLine(ce, n.org, n.loc)
	if err != nil {
		n.log.Warn("not a referral event; skipped", "id", ce.ID, "stream_seq", seq, "err", err)
		return n.term(msg)
	}
	if _, err := fmt.Fprintln(n.out, line); err != nil {
		return fmt.Errorf("print event %s: %w", ce.ID, err)
	}
	n.printed++
	if n.hook != nil {
		dead, err := n.hook.deliver(ctx, msg, ce, seq)
		if err != nil {
			return err
		}
		if dead {
			n.deadLettered++
		}
	}
	if err := n.seen.Add(ce.ID); err != nil {
		return err
	}
	if beforeAck != nil {
		if err := beforeAck(ce.ID); err != nil {
			return err
		}
	}
	return n.ack(ctx, msg)
}

// ack acknowledges msg and waits for the server's confirmation, also while shutting down. A
// failed ack is only logged: the event comes back after the ack wait and is then skipped as
// a duplicate (if its id is still remembered).
func (n *notifier) ack(ctx context.Context, msg jetstream.Msg) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		n.log.Warn("ack failed; the event will be redelivered", "subject", msg.Subject(), "err", err)
	}
	return nil
}

// handBack tells the server that msg (if not nil) and whatever the iterator still holds were
// not handled (a Nak), so they are redelivered at once, to the next start, instead of after
// the ack wait; a failure is only logged (the event then comes back after the ack wait). The iterator is drained first: the server redelivers a
// Nak'ed message to a pull request still waiting, and one from this iterator would take it
// into a buffer about to be discarded, where it would again sit until the ack wait ran out.
// Draining unsubscribes and waits for the server to confirm it.
func (n *notifier) handBack(ctx context.Context, iter jetstream.MessagesContext, msg jetstream.Msg) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	iter.Drain()
	for {
		// One unacknowledged message at a time: the iterator holds at most the one the
		// server sent after the last ack, and only when msg is nil.
		m, err := iter.Next(jetstream.NextContext(dctx))
		if err != nil {
			break
		}
		_ = m.Nak()
	}
	if msg == nil {
		return
	}
	if err := msg.Nak(); err != nil {
		n.log.Warn("cannot hand the event back; it will be redelivered after the ack wait", "subject", msg.Subject(), "err", err)
		return
	}
	n.log.Info("event not handled; handed back for redelivery", "subject", msg.Subject())
}

// term tells the server never to redeliver msg; a failure is only logged.
func (n *notifier) term(msg jetstream.Msg) error {
	if err := msg.Term(); err != nil {
		n.log.Warn("cannot terminate message", "subject", msg.Subject(), "err", err)
	}
	return nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
