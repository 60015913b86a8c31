package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
)

// eventWatch measures how long the created event of each measured create takes to reach a
// JetStream consumer: from the commit (the CloudEvents time, which the service takes in the
// create's transaction) and from the create's HTTP answer. It matches events to creates by the
// CloudEvents subject, the referral id.
type eventWatch struct {
	nc *nats.Conn
	cc jetstream.ConsumeContext

	mu      sync.Mutex
	waiting map[string]time.Time // create answered, event not yet seen
	early   map[string]seenEvent // event seen, create answer not yet recorded
	res     eventResult
}

type seenEvent struct{ received, commit time.Time }

// eventResult is what an eventWatch measured.
type eventResult struct {
	expected, matched, missing, beforeAnswer int
	fromCommit, fromAnswer                   histogram
	// clockSkew is set when event times are more than a minute off the machine's clock, as
	// with the service's dev clock: commit latency cannot be measured then.
	clockSkew bool
	waited    time.Duration
}

// startEventWatch subscribes to the created events of the REFERRALS stream with an ordered
// consumer that delivers only new messages. It returns an error if NATS or the stream cannot
// be reached.
func startEventWatch(ctx context.Context, url string) (*eventWatch, error) {
	nc, err := nats.Connect(url, nats.Name("referral-sim load"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("event latency: connect to %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("event latency: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(cctx, broker.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"referrals.v1.*.*." + string(domain.EventCreated)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("event latency: consumer on stream %s: %w", broker.StreamName, err)
	}
	ev := &eventWatch{nc: nc, waiting: map[string]time.Time{}, early: map[string]seenEvent{}}
	if ev.cc, err = cons.Consume(ev.handle); err != nil {
		nc.Close()
		return nil, fmt.Errorf("event latency: consume: %w", err)
	}
	return ev, nil
}

func (ev *eventWatch) handle(msg jetstream.Msg) {
	received := time.Now()
	ce, err := broker.Decode(msg.Data())
	if err != nil || ce.Subject == "" {
		return
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if answered, ok := ev.waiting[ce.Subject]; ok {
		delete(ev.waiting, ce.Subject)
		ev.match(received, ce.Time, answered)
		return
	}
	ev.early[ce.Subject] = seenEvent{received: received, commit: ce.Time}
	if len(ev.early) > 100_000 { // events of creates not ours (other clients, warm-up)
		for id, s := range ev.early {
			if received.Sub(s.received) > time.Minute {
				delete(ev.early, id)
			}
		}
	}
}

// created records that the create of referral id was answered at answered.
func (ev *eventWatch) created(id string, answered time.Time) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.res.expected++
	if s, ok := ev.early[id]; ok {
		delete(ev.early, id)
		ev.match(s.received, s.commit, answered)
		return
	}
	ev.waiting[id] = answered
}

func (ev *eventWatch) match(received, commit, answered time.Time) {
	ev.res.matched++
	if d := received.Sub(commit); d.Abs() > time.Minute {
		ev.res.clockSkew = true
	} else {
		ev.res.fromCommit.Record(d)
	}
	d := received.Sub(answered)
	if d < 0 {
		ev.res.beforeAnswer++
		d = 0
	}
	ev.res.fromAnswer.Record(d)
}

// finish waits up to wait for the events of the recorded creates and returns the figures.
func (ev *eventWatch) finish(wait time.Duration) *eventResult {
	start := time.Now()
	for {
		ev.mu.Lock()
		n := len(ev.waiting)
		ev.mu.Unlock()
		if n == 0 || time.Since(start) > wait {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	r := ev.res
	r.missing = len(ev.waiting)
	r.waited = wait
	return &r
}

func (ev *eventWatch) stop() {
	ev.cc.Stop()
	ev.nc.Close()
}

// eventCounter counts the events of the REFERRALS stream by type (created, received,
// status_changed, message_added, deadline_warning, overdue) as a notification consumer sees
// them, for the day in the life's summary.
type eventCounter struct {
	nc *nats.Conn
	cc jetstream.ConsumeContext

	mu     sync.Mutex
	byType map[string]map[string]int // type → referral id → count
	seen   map[string]bool           // event ids: delivery is at least once
}

// startEventCounter subscribes to every new event of the stream. It returns an error if NATS
// or the stream cannot be reached.
func startEventCounter(ctx context.Context, url string) (*eventCounter, error) {
	nc, err := nats.Connect(url, nats.Name("referral-sim day"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("events: connect to %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("events: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(cctx, broker.StreamName, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("events: consumer on stream %s: %w", broker.StreamName, err)
	}
	c := &eventCounter{nc: nc, byType: map[string]map[string]int{}, seen: map[string]bool{}}
	c.cc, err = cons.Consume(func(msg jetstream.Msg) {
		ce, err := broker.Decode(msg.Data())
		if err != nil {
			return
		}
		t := strings.TrimPrefix(ce.Type, domain.EventTypePrefix)
		c.mu.Lock()
		if c.seen[ce.ID] {
			c.mu.Unlock()
			return
		}
		c.seen[ce.ID] = true
		if c.byType[t] == nil {
			c.byType[t] = map[string]int{}
		}
		c.byType[t][ce.Subject]++
		c.mu.Unlock()
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("events: consume: %w", err)
	}
	return c, nil
}

// counts returns how many events of each type were about the referrals in ours.
func (c *eventCounter) counts(ours map[string]bool) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for t, ids := range c.byType {
		for id, n := range ids {
			if ours[id] {
				out[t] += n
			}
		}
	}
	return out
}

func (c *eventCounter) stop() {
	c.cc.Stop()
	c.nc.Close()
}
