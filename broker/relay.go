package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/domain"
)

// Outbox is the store's queue of committed, undelivered events, read by the Relay. *store.DB
// implements it.
type Outbox interface {
	// PendingEventsAfter returns up to max entries whose Seq is greater than after, oldest
	// (lowest Seq) first. Entries must become visible in Seq order: once the relay has read
	// up to a Seq, no entry may appear below it.
	PendingEventsAfter(after uint64, max int) ([]domain.OutboxEntry, error)
	// DeleteEvents removes delivered entries; unknown seqs are ignored.
	DeleteEvents(seqs []uint64) error
	// OutboxLen returns the number of entries in the outbox, kept ones included.
	OutboxLen() (int, error)
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
	// KeepFor is how long an entry JetStream acknowledged stays in the outbox before the
	// relay deletes it. 0 deletes it at once: right when the server writes every message to
	// disk before acknowledging it (sync_interval: always) or the stream is replicated.
	// Against a server that fsyncs only every interval, set it above the longest time an
	// acknowledged message can wait for its fsync (twice the interval): if the server loses
	// unsynced messages (power loss), their entries are still in the outbox, and the next
	// start publishes them again.
	//
	// The relay remembers kept entries (in memory, a few bytes each) and does not publish
	// them again itself; it deletes them in batches, between KeepFor and 1¼ KeepFor after
	// their ack, one DeleteEvents per pass at most. A new relay (a restart) has no memory and
	// publishes everything still in the outbox, and the stream drops what it already holds by
	// Nats-Msg-Id, but only within its duplicate window: KeepFor must be well below that
	// window (CheckKeepFor), the rest of the window being the time a restart may take.
	// Negative means 0.
	//
	// Against an external server, which can restart while the relay runs, the relay deletes
	// kept entries only after a round trip to the server on the connection their acks came
	// on (so the server has been up for KeepFor since), and after a reconnect it forgets what
	// it kept and publishes everything in the outbox again, as after its own restart.
	KeepFor time.Duration
	// Now is the clock KeepFor is measured on; nil means time.Now. Tests set it to move
	// time forward without sleeping.
	Now func() time.Time
}

// releaseShare is the fraction of KeepFor the relay lets pass between two deletes of kept
// entries, so that they go in a few larger transactions instead of one per pass.
const releaseShare = 4

// RelayStatus is a snapshot of the relay's health, for /readyz and metrics.
type RelayStatus struct {
	// Healthy is false after a failed delivery attempt (publish, or outbox read or delete) and
	// true again after the next successful publish or delete.
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

// Relay publishes outbox events to JetStream and removes each entry only after its ack (and,
// with KeepFor, only once the stream should have synced it: see KeepForSync), so an event is delivered
// at least once whatever fails, and the events of one referral reach the stream in outbox
// order.
//
// Reading. The relay remembers the highest Seq up to which every entry has been acknowledged
// and reads on from just after it (Outbox.PendingEventsAfter), so entries it keeps after
// their ack never crowd out new ones. Entries acknowledged beyond that point (the rest of a
// wave when one of its publishes failed) are remembered one by one and skipped when read
// again; the failed one, and what follows it of its referral, is retried first.
//
// Ordering design. Events are published in waves: a wave is the longest run of the next
// pending entries, at most Window long, in which no referral appears twice. A wave is
// published with PublishMsgAsync (pipelined on one connection) and the relay waits for every
// ack of the wave before the next wave starts. So the second event of a referral is only ever
// sent after the first one's ack, i.e. after the first is in the stream: per-referral order is
// strict even when acks fail, connections drop mid-wave or a retry re-sends something the
// stream already holds. When any publish of a wave fails, the entries whose acks did arrive
// are deleted, or kept (they belong to other referrals, so nothing of their referral is
// waiting behind a failed event), the rest stay in the outbox and the relay backs off and
// retries from the oldest unacknowledged entry; anything re-sent that the stream already holds
// is dropped by its Nats-Msg-Id within the duplicate window.
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

	// mem guards what the relay remembers of the outbox. It is held while kept entries are
	// deleted and while Backlog reads the outbox, so that the two agree.
	mem sync.Mutex
	// after is the Seq up to which every entry has been acknowledged (kept or deleted).
	after uint64
	// ahead holds acknowledged entries above after: skipped when read again.
	ahead map[uint64]struct{}
	// kept are acknowledged entries still in the outbox, in ack order.
	kept []keptEntry
	// released is when kept entries were last deleted (or a delete was put off because the
	// server did not answer).
	released time.Time
	// conn is the connection's reconnect count the memory belongs to (KeepFor only).
	conn uint64

	mu     sync.Mutex
	status RelayStatus
}

// keptEntry is an acknowledged outbox entry the relay has not deleted yet.
type keptEntry struct {
	seq   uint64
	acked time.Time // on RelayOptions.Now
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
	opts.KeepFor = max(opts.KeepFor, 0)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{ob: ob, js: js, opts: opts, log: log, ahead: map[uint64]struct{}{}, status: RelayStatus{Healthy: true}}
}

// Run delivers outbox events until ctx is done, waking on ob.Committed(), on the poll
// interval and when kept entries are due for deletion, and backing off with jitter while
// delivery fails (NATS away, store failing). It returns nil once ctx is done; failures are
// retried, never returned. Events in flight when ctx ends stay in the outbox: call Flush with
// a fresh deadline to deliver them.
func (r *Relay) Run(ctx context.Context) error {
	poll := time.NewTicker(r.opts.Poll)
	defer poll.Stop()
	committed := r.ob.Committed()
	bo := backoff{min: r.opts.MinBackoff, max: r.opts.MaxBackoff}
	failed := 0
	for {
		err := r.drain(ctx, false)
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
		var due <-chan time.Time
		var dueTimer *time.Timer
		if d, ok := r.nextRelease(); ok {
			dueTimer = time.NewTimer(d)
			due = dueTimer.C
		}
		select {
		case <-ctx.Done():
		case _, ok := <-committed:
			if !ok {
				committed = nil // a closed channel would spin; fall back to polling
			}
		case <-poll.C:
		case <-due:
		}
		if dueTimer != nil {
			dueTimer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// Flush publishes everything pending in the outbox now, once, without retrying (used on
// shutdown), and deletes the kept entries whose KeepFor has passed. It returns nil when every
// entry has been acknowledged, ctx.Err() if ctx ends first, and an error (wrapping
// ErrNotConnected when the connection is down) if an event cannot be delivered; undelivered
// events stay in the outbox.
//
// With KeepFor, acknowledged entries younger than KeepFor stay in the outbox after Flush
// (nats-server does not fsync its file store when it stops either): the next start
// publishes them again and the stream drops them as duplicates, if it starts within the
// stream's duplicate window.
func (r *Relay) Flush(ctx context.Context) error {
	return r.drain(ctx, true)
}

// Status returns a snapshot of the relay's health.
func (r *Relay) Status() RelayStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// drain delivers pending entries batch by batch until it has read the whole outbox or a batch
// fails; after each batch it deletes the kept entries that are due (all that are, when
// flush is set, however recently the last delete was).
func (r *Relay) drain(ctx context.Context, flush bool) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.forgetOnReconnect()
		read, todo, err := r.next()
		if err != nil {
			return r.failed(ctx, fmt.Errorf("broker: read outbox: %w", err))
		}
		var perr error
		if len(todo) > 0 {
			perr = r.deliver(ctx, todo)
		}
		r.advance(read)
		if err := errors.Join(perr, r.release(flush)); err != nil {
			return r.failed(ctx, err)
		}
		if len(read) < r.opts.Batch {
			return nil
		}
	}
}

// next reads the next batch after the entries the relay has handled, and returns it with the
// entries of it still to publish (those not acknowledged already).
func (r *Relay) next() (read, todo []domain.OutboxEntry, err error) {
	r.mem.Lock()
	after := r.after
	r.mem.Unlock()
	read, err = r.ob.PendingEventsAfter(after, r.opts.Batch)
	if err != nil {
		return nil, nil, err
	}
	r.mem.Lock()
	defer r.mem.Unlock()
	if len(r.ahead) == 0 {
		return read, read, nil
	}
	todo = make([]domain.OutboxEntry, 0, len(read))
	for _, en := range read {
		if _, done := r.ahead[en.Seq]; !done {
			todo = append(todo, en)
		}
	}
	return read, todo, nil
}

// advance moves the read position past the leading entries of read that are acknowledged.
func (r *Relay) advance(read []domain.OutboxEntry) {
	r.mem.Lock()
	defer r.mem.Unlock()
	for _, en := range read {
		if _, done := r.ahead[en.Seq]; !done {
			return
		}
		delete(r.ahead, en.Seq)
		r.after = en.Seq
	}
}

// deliver publishes entries wave by wave, stopping after the first wave with a failure, and
// remembers the acknowledged entries for release.
func (r *Relay) deliver(ctx context.Context, entries []domain.OutboxEntry) error {
	if nc := r.js.Conn(); nc != nil && !nc.IsConnected() {
		// Fail fast instead of filling the reconnect buffer with messages nobody will ack.
		return fmt.Errorf("%w (%s)", ErrNotConnected, nc.Status())
	}
	r.mem.Lock()
	conn := r.conn
	r.mem.Unlock()
	var acked []uint64
	var perr error
	for rest := entries; len(rest) > 0 && perr == nil; {
		if r.opts.KeepFor > 0 && r.reconnects() != conn {
			// Entries kept from the old connection may be lost with the server: the next
			// pass publishes them again, before anything that follows them.
			perr = errReconnected
			break
		}
		wave := nextWave(rest, r.opts.Window)
		rest = rest[len(wave):]
		var ok []uint64
		ok, perr = r.publishWave(ctx, wave)
		acked = append(acked, ok...)
	}
	if len(acked) > 0 {
		r.succeeded(len(acked))
		r.keep(acked)
	}
	return perr
}

// keep remembers acknowledged entries until release deletes them.
func (r *Relay) keep(seqs []uint64) {
	r.mem.Lock()
	defer r.mem.Unlock()
	now := r.opts.Now()
	for _, seq := range seqs {
		r.ahead[seq] = struct{}{}
		r.kept = append(r.kept, keptEntry{seq: seq, acked: now})
	}
}

// release deletes, in one DeleteEvents, the kept entries acknowledged KeepFor ago or longer,
// unless the last delete was less than KeepFor/4 ago (and flush is not set). With KeepFor it
// first makes sure the server that acknowledged them is still up (serverKeptUp), and puts the
// delete off for KeepFor/4 if not. Entries stay remembered when the delete fails, and are
// deleted by a later pass; they are in the stream, so they are not published again.
func (r *Relay) release(flush bool) error {
	r.mem.Lock()
	now := r.opts.Now()
	n := 0
	if r.opts.KeepFor == 0 || flush || now.Sub(r.released) >= r.opts.KeepFor/releaseShare {
		for n < len(r.kept) && now.Sub(r.kept[n].acked) >= r.opts.KeepFor {
			n++
		}
	}
	conn := r.conn
	r.mem.Unlock()
	if n == 0 {
		return nil
	}
	// Only the pass changes the memory, and this is the pass: no lock needed to wait for
	// the server, and the memory is as it was when unlocked.
	if r.opts.KeepFor > 0 && !r.serverKeptUp(conn) {
		r.mem.Lock()
		r.released = now
		r.mem.Unlock()
		return nil
	}
	r.mem.Lock()
	defer r.mem.Unlock()
	seqs := make([]uint64, n)
	for i, k := range r.kept[:n] {
		seqs[i] = k.seq
	}
	if err := r.ob.DeleteEvents(seqs); err != nil {
		return fmt.Errorf("broker: delete %d delivered events from outbox: %w", n, err)
	}
	for _, seq := range seqs {
		delete(r.ahead, seq) // deleted before the read position reached it
	}
	r.kept = slices.Delete(r.kept, 0, n)
	r.released = now
	r.mu.Lock()
	r.status.Healthy = true
	r.mu.Unlock()
	return nil
}

// errReconnected stops a pass when the NATS connection has been re-established under it.
var errReconnected = errors.New("broker: nats reconnected during delivery; publishing kept events again")

// reconnects returns how many times the NATS connection has reconnected (0 without one).
func (r *Relay) reconnects() uint64 {
	if nc := r.js.Conn(); nc != nil {
		return nc.Stats().Reconnects
	}
	return 0
}

// serverKeptUp reports whether the server that acknowledged the kept entries is still up: the
// connection, the one of reconnect count conn, answers a ping. A server cannot restart under
// an open connection, so it has been up since the acks, long enough (KeepFor) to have
// written them to disk. False if the connection is down, has been re-established or does
// not answer within PublishTimeout.
func (r *Relay) serverKeptUp(conn uint64) bool {
	nc := r.js.Conn()
	if nc == nil {
		return true
	}
	if !nc.IsConnected() || nc.Stats().Reconnects != conn {
		return false
	}
	if err := nc.FlushTimeout(r.opts.PublishTimeout); err != nil {
		r.log.Debug("broker: nats does not answer, kept events stay in the outbox", "err", err)
		return false
	}
	return nc.Stats().Reconnects == conn
}

// forgetOnReconnect drops what the relay remembers of acknowledged entries once the NATS
// connection has been re-established (KeepFor only): the server may have restarted and lost
// what it had not written to disk, so the relay reads the outbox from the start and publishes
// everything in it again, as after its own restart; the stream drops what it holds.
func (r *Relay) forgetOnReconnect() {
	if r.opts.KeepFor == 0 {
		return
	}
	n := r.reconnects()
	r.mem.Lock()
	defer r.mem.Unlock()
	if n == r.conn {
		return
	}
	if len(r.kept) > 0 {
		r.log.Info("broker: nats reconnected, publishing the kept events again", "kept", len(r.kept))
	}
	r.conn = n
	r.after = 0
	clear(r.ahead)
	r.kept = nil
}

// nextRelease returns how long until kept entries are due for deletion, and false if the
// relay keeps none.
func (r *Relay) nextRelease() (time.Duration, bool) {
	r.mem.Lock()
	defer r.mem.Unlock()
	if len(r.kept) == 0 {
		return 0, false
	}
	due := r.kept[0].acked.Add(r.opts.KeepFor)
	if next := r.released.Add(r.opts.KeepFor / releaseShare); next.After(due) {
		due = next
	}
	return max(due.Sub(r.opts.Now()), time.Millisecond), true
}

// Backlog returns how many outbox entries wait for JetStream's ack (waiting) and how many
// acknowledged ones the relay keeps in the outbox for KeepFor (kept). waiting is the
// outbox's length minus kept, read while the relay cannot delete, so the two add up to the
// outbox's length; an entry whose ack is on its way counts as waiting. It returns the
// outbox's error if its length cannot be read.
func (r *Relay) Backlog() (waiting, kept int, err error) {
	r.mem.Lock()
	defer r.mem.Unlock()
	n, err := r.ob.OutboxLen()
	if err != nil {
		return 0, 0, err
	}
	return max(n-len(r.kept), 0), len(r.kept), nil
}

// Kept returns how many acknowledged entries the relay keeps in the outbox for KeepFor
// (Backlog's kept) without reading the outbox.
func (r *Relay) Kept() int {
	r.mem.Lock()
	defer r.mem.Unlock()
	return len(r.kept)
}

// OldestWaiting returns the oldest outbox entry JetStream has not acknowledged, and false
// when every entry is acknowledged. It reads the outbox from where the relay reads on, and
// returns the outbox's error if that read fails.
func (r *Relay) OldestWaiting() (domain.OutboxEntry, bool, error) {
	r.mem.Lock()
	defer r.mem.Unlock()
	// Among the first len(ahead)+1 entries after the read position, one is not acknowledged.
	es, err := r.ob.PendingEventsAfter(r.after, len(r.ahead)+1)
	if err != nil {
		return domain.OutboxEntry{}, false, err
	}
	for _, en := range es {
		if _, done := r.ahead[en.Seq]; !done {
			return en, true, nil
		}
	}
	return domain.OutboxEntry{}, false, nil
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
