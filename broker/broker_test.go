package broker_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
)

// MustStart starts an embedded server on a random loopback port with its store in dir (a fresh
// t.TempDir() when dir is "") and shuts it down at the end of the test.
func MustStart(tb testing.TB, dir string, port int) *server.Server {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	ns, err := broker.StartEmbedded(broker.EmbeddedOptions{StoreDir: dir, Host: "127.0.0.1", Port: port})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// MustConnect connects to ns, in process when inProcess is set, over TCP otherwise, and
// returns the connection with a JetStream context whose REFERRALS stream exists.
func MustConnect(tb testing.TB, ns *server.Server, inProcess bool) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	var nc *nats.Conn
	var err error
	if inProcess {
		nc, err = broker.Connect("", ns, tb.Name())
	} else {
		nc, err = broker.Connect(ns.ClientURL(), nil, tb.Name())
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := broker.EnsureStream(context.Background(), js, broker.StreamOptions{}); err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// memOutbox is an in-memory Outbox.
type memOutbox struct {
	mu          sync.Mutex
	entries     []domain.OutboxEntry
	next        uint64
	reads       int
	failDeletes bool // DeleteEvents fails while set
	commits     chan struct{}
}

func newOutbox() *memOutbox { return &memOutbox{commits: make(chan struct{}, 1)} }

// Add appends events as one commit and signals it.
func (o *memOutbox) Add(events ...domain.Event) {
	o.mu.Lock()
	for _, e := range events {
		o.next++
		o.entries = append(o.entries, domain.OutboxEntry{Seq: o.next, Event: e})
	}
	o.mu.Unlock()
	select {
	case o.commits <- struct{}{}:
	default:
	}
}

func (o *memOutbox) PendingEventsAfter(after uint64, max int) ([]domain.OutboxEntry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reads++
	i, _ := slices.BinarySearchFunc(o.entries, after+1, func(e domain.OutboxEntry, seq uint64) int { return cmp.Compare(e.Seq, seq) })
	rest := o.entries[i:]
	return slices.Clone(rest[:min(max, len(rest))]), nil
}

func (o *memOutbox) DeleteEvents(seqs []uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failDeletes {
		return errors.New("injected: delete failed")
	}
	del := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		del[s] = true
	}
	o.entries = slices.DeleteFunc(o.entries, func(e domain.OutboxEntry) bool { return del[e.Seq] })
	return nil
}

func (o *memOutbox) OutboxLen() (int, error) { return o.Len(), nil }

func (o *memOutbox) Committed() <-chan struct{} { return o.commits }

// FailDeletes makes DeleteEvents fail (or succeed again).
func (o *memOutbox) FailDeletes(fail bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failDeletes = fail
}

func (o *memOutbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.entries)
}

func (o *memOutbox) Reads() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reads
}

var _ broker.Outbox = (*memOutbox)(nil)

var t0 = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// event returns the n-th test event, about referral ref.
func event(n int, ref string) domain.Event {
	return domain.Event{
		ID: fmt.Sprintf("0195f3c2-0000-7000-8000-%012d", n), Type: domain.EventStatusChanged,
		ReferralID: ref, Sender: domain.Kela, Recipient: "hva-90", Time: t0.Add(time.Duration(n) * time.Second),
		Kind: domain.KindSocialWorkNeed, Urgency: "normal", Status: "received", FromStatus: "sent",
	}
}

// events returns n events spread round-robin over refs referrals, numbered from first.
func events(first, n, refs int) []domain.Event {
	es := make([]domain.Event, n)
	for i := range es {
		es[i] = event(first+i, fmt.Sprintf("ref-%d", (first+i)%refs))
	}
	return es
}

func ids(es []domain.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// streamMsg is a stored message of the REFERRALS stream.
type streamMsg struct {
	Subject string
	MsgID   string
	Event   broker.CloudEvent
}

// streamMessages returns every message of the stream in stream order.
func streamMessages(tb testing.TB, js jetstream.JetStream) []streamMsg {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, broker.StreamName)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var out []streamMsg
	if info.State.Msgs == 0 {
		return out
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	for uint64(len(out)) < info.State.Msgs {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			tb.Fatal(err)
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				tb.Fatal(err)
			}
			ce, err := broker.Decode(m.Data())
			if err != nil {
				tb.Fatalf("stream seq %d: %v", md.Sequence.Stream, err)
			}
			if ct := m.Headers().Get("Content-Type"); ct != broker.ContentType {
				tb.Errorf("stream seq %d: Content-Type %q, want %q", md.Sequence.Stream, ct, broker.ContentType)
			}
			out = append(out, streamMsg{Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Event: ce})
		}
		if err := batch.Error(); err != nil {
			tb.Fatal(err)
		}
		if ctx.Err() != nil {
			tb.Fatalf("read %d of %d stream messages", len(out), info.State.Msgs)
		}
	}
	return out
}

// streamIDs returns the event ids in the stream, in stream order, checking that every message
// carries its event id as Nats-Msg-Id.
func streamIDs(tb testing.TB, js jetstream.JetStream) []string {
	tb.Helper()
	var out []string
	for _, m := range streamMessages(tb, js) {
		if m.MsgID != m.Event.ID {
			tb.Errorf("message %s has Nats-Msg-Id %q", m.Event.ID, m.MsgID)
		}
		out = append(out, m.Event.ID)
	}
	return out
}
