package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/domain"
)

// Outbox is the store's queue of committed, undelivered events, read by the Relay. *store.DB
// implements it.
type Outbox interface {
	// PendingEvents returns up to max entries, oldest (lowest Seq) first.
	PendingEvents(max int) ([]domain.OutboxEntry, error)
	// DeleteEvents removes delivered entries; unknown seqs are ignored.
	DeleteEvents(seqs []uint64) error
	// Committed is signalled after commits that added events. The relay receives from the
	// same channel for its whole life, so it should be buffered (size 1, non-blocking send).
	Committed() <-chan struct{}
}

// Relay defaults.
const (
	DefaultRelayBatch     = 256
	DefaultRelayWindow    = 64
	DefaultRelayPoll      = time.Second
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
	DefaultPublishTimeout = 5 * time.Second
	DefaultSource         = "/referrals"
)

// RelayOptions configures a Relay. Zero values take the defaults above.
type RelayOptions struct {
	// Source is the CloudEvents source attribute, e.g. "/referrals/<instance>".
	Source string
	// Batch is how many outbox entries are read at once.
	Batch int
	// Window is how many events may await their JetStream ack at once. Events of one referral
	// are never in flight together whatever the window; 1 publishes strictly one by one, which
	// also keeps the stream in outbox order across referrals when publishes fail.
	Window int
	// Poll is the safety poll interval, in case a Committed signal is missed.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential wait after a failure.
	MinBackoff, MaxBackoff time.Duration
	// PublishTimeout bounds the wait for the acks of one window of events.
	PublishTimeout time.Duration
	// Logger receives failures and recoveries; nil discards them.
	Logger *slog.Logger
	// OnPublished, if set, is called with each event JetStream acknowledged (a duplicate the
	// stream dropped included), from the relay's goroutine: it must be quick and not block.
	// Metrics count deadline events with it.
	OnPublished func(domain.Event)
}

// RelayStatus is a snapshot of the relay's health, for /readyz and metrics.
type RelayStatus struct {
	// Healthy is false after a failed delivery attempt (publish, or outbox read or delete) and
	// true again after the next successful publish.
	Healthy bool
	// LastError is the error of the last failed attempt; it is kept after recovery.
	LastError string
	// LastSuccess is when an event was last acknowledged by JetStream.
	LastSuccess time.Time
	// Published counts events acknowledged by JetStream (including ones the stream reported
	// as duplicates).
	Published uint64
	// Failures counts failed delivery attempts (not events).
	Failures uint64
}

// ErrNotConnected is returned (wrapped) by Flush when the NATS connection is down.
var ErrNotConnected = errors.New("broker: nats not connected")

// Relay publishes outbox events to JetStream and removes each entry only after its ack, so an
// event is delivered at least once whatever fails, and the events of one referral reach the
// stream in outbox order.
//
// Ordering design. Events are published in waves: a wave is the longest run of the next
// pending entries, at most Window long, in which no referral appears twice. A wave is
// published with PublishMsgAsync (pipelined on one connection) and the relay waits for every
// ack of the wave before the next wave starts. So the second event of a referral is only ever
// sent after the first one's ack, i.e. after the first is in the stream: per-referral order is
// strict even when acks fail, connections drop mid-wave or a retry re-sends something the
// stream already holds. When any publish of a wave fails, the entries whose acks did arrive
// are deleted (they belong to other referrals, so nothing of their referral is waiting behind
// a failed event), the rest stay in the outbox and the relay backs off and retries from the
// oldest pending entry; anything re-sent that the stream already holds is dropped by its
// Nats-Msg-Id within the duplicate window.
//
// Why not a plain pipeline that stops at the first failure: with event N failed and N+1
// already sent, N+1 may be in the stream (e.g. N was lost with a broken socket and N+1 went
// out on the new connection); re-sending N then puts it after N+1, and nothing can take N+1
// back. Deduplication does not help there, it only drops the later copy. Waves rule that out
// for events of the same referral, which is the guarantee DOMAIN §8 asks for, and still
// pipeline the common case of many referrals. Across referrals the stream follows outbox order
// unless a publish fails; Window 1 (synchronous, one event at a time) keeps even that order at
// the cost of one round trip per event.
type Relay struct {
	ob   Outbox
	js   jetstream.JetStream
	opts RelayOptions
	log  *slog.Logger

	pass sync.Mutex // one delivery pass at a time: Run and Flush must not interleave

	mu     sync.Mutex
	status RelayStatus
}

// NewRelay returns a relay from ob to js; it does nothing until Run or Flush. The stream must
// exist (EnsureStream) for publishes to succeed.
func NewRelay(ob Outbox, js jetstream.JetStream, opts RelayOptions) *Relay {
	if opts.Source == "" {
		opts.Source = DefaultSource
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultRelayBatch
	}
	if opts.Window <= 0 {
		opts.Window = DefaultRelayWindow
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultRelayPoll
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = DefaultPublishTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{ob: ob, js: js, opts: opts, log: log, status: RelayStatus{Healthy: true}}
}

// Run delivers outbox events until ctx is done, waking on ob.Committed() and on the poll
// interval, and backing off with jitter while delivery fails (NATS away, store failing). It
// returns nil once ctx is done; failures are retried, never returned. Events in flight when ctx
// ends stay in the outbox: call Flush with a fresh deadline to deliver them.
func (r *Relay) Run(ctx context.Context) error {
	poll := time.NewTicker(r.opts.Poll)
	defer poll.Stop()
	committed := r.ob.Committed()
	bo := backoff{min: r.opts.MinBackoff, max: r.opts.MaxBackoff}
	failed := 0
	for {
		err := r.drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failed++
			wait := bo.next()
			r.log.Warn("broker: relay delivery failed, will retry",
				"err", err, "attempt", failed, "retry_in", wait.Round(time.Millisecond))
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		if failed > 0 {
			r.log.Info("broker: relay recovered", "failed_attempts", failed)
			failed = 0
			bo.reset()
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-committed:
			if !ok {
				committed = nil // a closed channel would spin; fall back to polling
			}
		case <-poll.C:
		}
	}
}

// Flush publishes everything pending in the outbox now, once, without retrying (used on
// shutdown). It returns nil when the outbox has been emptied, ctx.Err() if ctx ends first, and
// an error (wrapping ErrNotConnected when the connection is down) if an event cannot be
// delivered; undelivered events stay in the outbox.
func (r *Relay) Flush(ctx context.Context) error {
	return r.drain(ctx)
}

// Status returns a snapshot of the relay's health.
func (r *Relay) Status() RelayStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// drain delivers pending entries batch by batch until the outbox is empty or a batch fails.
func (r *Relay) drain(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := r.ob.PendingEvents(r.opts.Batch)
		if err != nil {
			return r.failed(ctx, fmt.Errorf("broker: read outbox: %w", err))
		}
		if len(entries) == 0 {
			return nil
		}
		if err := r.deliver(ctx, entries); err != nil {
			return r.failed(ctx, err)
		}
		if len(entries) < r.opts.Batch {
			return nil
		}
	}
}

// deliver publishes entries wave by wave, stopping after the first wave with a failure, and
// deletes the acknowledged entries from the outbox.
func (r *Relay) deliver(ctx context.Context, entries []domain.OutboxEntry) error {
	if nc := r.js.Conn(); nc != nil && !nc.IsConnected() {
		// Fail fast instead of filling the reconnect buffer with messages nobody will ack.
		return fmt.Errorf("%w (%s)", ErrNotConnected, nc.Status())
	}
	var acked []uint64
	var perr error
	for rest := entries; len(rest) > 0 && perr == nil; {
		wave := nextWave(rest, r.opts.Window)
		rest = rest[len(wave):]
		var ok []uint64
		ok, perr = r.publishWave(ctx, wave)
		acked = append(acked, ok...)
	}
	if len(acked) > 0 {
		r.succeeded(len(acked))
		if err := r.ob.DeleteEvents(acked); err != nil {
			// They are in the stream; they will be re-sent and dropped as duplicates.
			return errors.Join(perr, fmt.Errorf("broker: delete %d delivered events from outbox: %w", len(acked), err))
		}
	}
	return perr
}

// nextWave returns the longest prefix of entries, at most window long, in which no referral
// appears twice. It is never empty when entries is not.
func nextWave(entries []domain.OutboxEntry, window int) []domain.OutboxEntry {
	seen := make(map[string]struct{}, min(window, len(entries)))
	n := 0
	for n < len(entries) && n < window {
		id := entries[n].Event.ReferralID
		if _, dup := seen[id]; dup {
			break
		}
		seen[id] = struct{}{}
		n++
	}
	return entries[:n]
}

// publishWave publishes wave pipelined and waits for all acks. It returns the seqs of the
// acknowledged entries and the first error; after an error in sending, the rest of the wave is
// not sent.
func (r *Relay) publishWave(ctx context.Context, wave []domain.OutboxEntry) ([]uint64, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(wave))
	var first error
	for _, en := range wave {
		msg, err := r.message(en.Event)
		if err != nil {
			// Cannot happen for events made by the domain. The entry blocks delivery, visibly
			// (Healthy false), rather than being dropped.
			first = fmt.Errorf("broker: outbox entry %d: %w", en.Seq, err)
			break
		}
		f, err := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(en.Event.ID), jetstream.WithExpectStream(StreamName))
		if err != nil {
			first = fmt.Errorf("broker: publish outbox entry %d: %w", en.Seq, err)
			break
		}
		futures = append(futures, f)
	}

	timer := time.NewTimer(r.opts.PublishTimeout)
	defer timer.Stop()
	var expired error
	acked := make([]uint64, 0, len(futures))
	for i, f := range futures {
		seq := wave[i].Seq
		if expired != nil {
			// Out of time: collect only what has already arrived.
			select {
			case <-f.Ok():
				acked = append(acked, seq)
				r.published(wave[i].Event)
			default:
			}
			continue
		}
		select {
		case <-f.Ok():
			acked = append(acked, seq)
			r.published(wave[i].Event)
		case err := <-f.Err():
			if first == nil {
				first = fmt.Errorf("broker: publish outbox entry %d: %w", seq, err)
			}
		case <-timer.C:
			expired = fmt.Errorf("broker: publish outbox entry %d: no ack within %s", seq, r.opts.PublishTimeout)
		case <-ctx.Done():
			expired = fmt.Errorf("broker: publish outbox entry %d: %w", seq, ctx.Err())
		}
	}
	if first == nil {
		first = expired
	}
	return acked, first
}

// published tells OnPublished that JetStream acknowledged e.
func (r *Relay) published(e domain.Event) {
	if r.opts.OnPublished != nil {
		r.opts.OnPublished(e)
	}
}

// message builds the NATS message of e.
func (r *Relay) message(e domain.Event) (*nats.Msg, error) {
	data, err := Encode(e, r.opts.Source)
	if err != nil {
		return nil, err
	}
	return &nats.Msg{Subject: e.Subject(), Data: data, Header: nats.Header{"Content-Type": {ContentType}}}, nil
}

func (r *Relay) succeeded(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.Healthy = true
	r.status.LastSuccess = time.Now()
	r.status.Published += uint64(n)
}

// failed records err unless it is only ctx ending, and returns it.
func (r *Relay) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.Healthy = false
	r.status.LastError = err.Error()
	r.status.Failures++
	return err
}

// backoff is a capped exponential backoff with "equal jitter": the wait is half the current
// step plus a random part of the other half, so retries never go below min/2 and
// instances that failed together spread out.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }
