package broker_test

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/testkit"
	"github.com/kela-hva/referrals/store"
)

var _ broker.Outbox = (*store.DB)(nil)

// newFakeClock is a clock standing at t0 that moves only when told to.
func newFakeClock() *testkit.Clock { return testkit.NewClock(t0) }

// publishCounter counts OnPublished calls by event id.
type publishCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func newPublishCounter() *publishCounter { return &publishCounter{n: map[string]int{}} }

func (p *publishCounter) OnPublished(e domain.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n[e.ID]++
}

// check fails the test unless each of want was published exactly once and nothing else was.
func (p *publishCounter) check(t *testing.T, want []domain.Event) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range want {
		if n := p.n[e.ID]; n != 1 {
			t.Errorf("event %s published %d times, want once", e.ID, n)
		}
	}
	if len(p.n) != len(want) {
		t.Errorf("%d events published, want %d", len(p.n), len(want))
	}
}

// mustStore opens a bbolt store on a file in t.TempDir(), checked and closed at the end.
func mustStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "referrals.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("bbolt check: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// commit adds events to db's outbox as one command.
func commit(t *testing.T, db *store.DB, es ...domain.Event) {
	t.Helper()
	err := db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) {
		return &domain.Change{Events: es}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// outboxLen returns the number of entries in db's outbox.
func outboxLen(t *testing.T, db *store.DB) int {
	t.Helper()
	n, err := db.OutboxLen()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// backlog returns the relay's view of the outbox: entries waiting for an ack and kept ones.
func backlog(t *testing.T, r *broker.Relay) (waiting, kept int) {
	t.Helper()
	waiting, kept, err := r.Backlog()
	if err != nil {
		t.Fatal(err)
	}
	if k := r.Kept(); k != kept {
		t.Fatalf("Kept() = %d, Backlog's kept %d", k, kept)
	}
	return waiting, kept
}

// streamMsgs returns the number of messages the stream holds.
func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), broker.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestRelayKeepsAcknowledgedEntriesForKeepFor(t *testing.T) {
	ns := MustStart(t, "", -1)
	_, js := MustConnect(t, ns, true)
	db := mustStore(t)
	clock := newFakeClock()
	pc := newPublishCounter()
	const keep = 2 * time.Second
	// A batch far smaller than what is kept: reading from the oldest entry would find only
	// kept ones and never reach the new.
	r := broker.NewRelay(db, js, broker.RelayOptions{KeepFor: keep, Now: clock.Now, Batch: 8, Poll: 2 * time.Millisecond,
		OnPublished: pc.OnPublished, Logger: testLogger(t)})
	runRelay(t, r)

	// Two groups of commits, a second apart on the relay's clock, of 5 referrals.
	first := events(1, 40, 5)
	for i := 0; i < len(first); i += 4 {
		commit(t, db, first[i:i+4]...)
	}
	waitFor(t, 10*time.Second, "the first group acknowledged", func() bool { w, _ := backlog(t, r); return w == 0 })
	clock.Advance(keep / 2)
	second := events(41, 30, 5)
	for i := 0; i < len(second); i += 3 {
		commit(t, db, second[i:i+3]...)
	}
	waitFor(t, 10*time.Second, "the second group acknowledged", func() bool { w, _ := backlog(t, r); return w == 0 })
	// Many polls later (the relay polls every 2 ms), on a clock that has not moved:
	// everything is in the stream once and still in the outbox.
	published := r.Status().Published
	for range 3 {
		if err := r.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	all := append(slices.Clone(first), second...)
	if n := outboxLen(t, db); n != len(all) {
		t.Errorf("outbox holds %d entries before KeepFor, want all %d", n, len(all))
	}
	if w, k := backlog(t, r); w != 0 || k != len(all) {
		t.Errorf("backlog %d waiting, %d kept; want 0 and %d", w, k, len(all))
	}
	if got := r.Status().Published; got != published || got != uint64(len(all)) {
		t.Errorf("published %d (then %d), want %d", got, published, len(all))
	}
	pc.check(t, all)
	if n := streamMsgs(t, js); n != uint64(len(all)) {
		t.Errorf("stream holds %d messages, want %d", n, len(all))
	}

	// Just before the first group's KeepFor: nothing goes.
	clock.Advance(keep/2 - time.Millisecond)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := outboxLen(t, db); n != len(all) {
		t.Errorf("outbox holds %d entries just before KeepFor, want %d", n, len(all))
	}
	// KeepFor after the first group's acks: the first group goes, the second stays.
	clock.Advance(time.Millisecond)
	waitFor(t, 10*time.Second, "the first group deleted", func() bool { return outboxLen(t, db) == len(second) })
	left, err := db.PendingEvents(100)
	if err != nil {
		t.Fatal(err)
	}
	var leftIDs []string
	for _, en := range left {
		leftIDs = append(leftIDs, en.Event.ID)
	}
	if !slices.Equal(leftIDs, ids(second)) {
		t.Errorf("outbox holds %v, want the second group %v", leftIDs, ids(second))
	}
	// And the second group after its own KeepFor.
	clock.Advance(keep / 2)
	waitFor(t, 10*time.Second, "the second group deleted", func() bool { return outboxLen(t, db) == 0 })
	if w, k := backlog(t, r); w != 0 || k != 0 {
		t.Errorf("backlog %d waiting, %d kept after KeepFor; want 0 and 0", w, k)
	}
	pc.check(t, all)
	if got := streamIDs(t, js); !slices.Equal(got, ids(all)) {
		t.Errorf("stream %v,\nwant %v", got, ids(all))
	}
}

func TestRelayRestartRepublishesKeptEntriesOnce(t *testing.T) {
	ns := MustStart(t, "", -1)
	_, js := MustConnect(t, ns, true)
	db := mustStore(t)
	clock := newFakeClock()
	opts := broker.RelayOptions{KeepFor: time.Minute, Now: clock.Now, Batch: 16, Poll: 2 * time.Millisecond, Logger: testLogger(t)}

	first := broker.NewRelay(db, js, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	kept := events(1, 30, 4)
	for i := 0; i < len(kept); i += 5 {
		commit(t, db, kept[i:i+5]...)
	}
	waitFor(t, 10*time.Second, "the events acknowledged", func() bool { w, _ := backlog(t, first); return w == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := first.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := outboxLen(t, db); n != len(kept) {
		t.Fatalf("outbox holds %d entries at the stop, want the %d kept", n, len(kept))
	}

	// Committed while no relay runs.
	late := events(31, 10, 4)
	commit(t, db, late...)

	// The "restart": a new relay on the same store knows nothing of what was published.
	pc := newPublishCounter()
	opts.OnPublished = pc.OnPublished
	second := broker.NewRelay(db, js, opts)
	if w, k := backlog(t, second); w != len(kept)+len(late) || k != 0 {
		t.Errorf("new relay's backlog %d waiting, %d kept; want %d and 0", w, k, len(kept)+len(late))
	}
	runRelay(t, second)
	waitFor(t, 10*time.Second, "everything acknowledged again", func() bool { w, _ := backlog(t, second); return w == 0 })
	all := append(slices.Clone(kept), late...)
	pc.check(t, all) // the kept ones acknowledged as duplicates
	if got := streamIDs(t, js); !slices.Equal(got, ids(all)) {
		t.Errorf("stream %v,\nwant each event once, in outbox order %v", got, ids(all))
	}
	clock.Advance(time.Minute)
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool { return outboxLen(t, db) == 0 })
	if n := streamMsgs(t, js); n != uint64(len(all)) {
		t.Errorf("stream holds %d messages, want %d", n, len(all))
	}
}

func TestRelayRetriesAFailedDeleteWithoutPublishingAgain(t *testing.T) {
	for _, keep := range []time.Duration{0, time.Second} {
		t.Run("keep="+keep.String(), func(t *testing.T) {
			ns := MustStart(t, "", -1)
			_, js := MustConnect(t, ns, true)
			ob := newOutbox()
			clock := newFakeClock()
			pc := newPublishCounter()
			r := broker.NewRelay(ob, js, broker.RelayOptions{KeepFor: keep, Now: clock.Now, OnPublished: pc.OnPublished})
			es := events(1, 10, 3)
			ob.Add(es...)
			ob.FailDeletes(true)
			clock.Advance(keep)
			// Publishes; with keep 0 the delete fails at once, otherwise nothing is due yet.
			if err := r.Flush(context.Background()); (err == nil) != (keep > 0) {
				t.Fatalf("first Flush = %v", err)
			}
			clock.Advance(keep)
			if err := r.Flush(context.Background()); err == nil {
				t.Fatal("Flush succeeded with failing deletes and entries due")
			}
			if st := r.Status(); st.Healthy || st.Failures == 0 || st.Published != uint64(len(es)) {
				t.Errorf("status after failed deletes %+v", st)
			}
			if w, k := backlog(t, r); w != 0 || k != len(es) || ob.Len() != len(es) {
				t.Errorf("backlog %d waiting, %d kept, outbox %d; want 0, %d, %d", w, k, ob.Len(), len(es), len(es))
			}
			ob.FailDeletes(false)
			if err := r.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if ob.Len() != 0 || !r.Status().Healthy {
				t.Errorf("outbox holds %d, status %+v after the delete succeeded", ob.Len(), r.Status())
			}
			pc.check(t, es)
			if n := streamMsgs(t, js); n != uint64(len(es)) {
				t.Errorf("stream holds %d messages, want %d", n, len(es))
			}
		})
	}
}

func TestRelayOldestWaitingSkipsAcknowledgedEntries(t *testing.T) {
	ns := MustStart(t, "", -1)
	_, js := MustConnect(t, ns, true)
	a1, b1, c1, a2 := event(1, "A"), event(2, "B"), event(3, "C"), event(4, "A")
	fj := &flakyJS{JetStream: js, failed: map[string]bool{a1.ID: false}}
	ob := newOutbox()
	r := broker.NewRelay(ob, fj, broker.RelayOptions{KeepFor: time.Minute, Now: newFakeClock().Now})
	if _, ok, err := r.OldestWaiting(); ok || err != nil {
		t.Errorf("empty outbox: OldestWaiting = %v, %v; want none", ok, err)
	}
	ob.Add(a1, b1, c1, a2)
	if err := r.Flush(context.Background()); err == nil {
		t.Fatal("Flush with a failing publish succeeded")
	}
	// b1 and c1 are acknowledged and kept, behind the failed a1.
	en, ok, err := r.OldestWaiting()
	if err != nil || !ok || en.Event.ID != a1.ID {
		t.Errorf("OldestWaiting = %s %v %v, want %s", en.Event.ID, ok, err, a1.ID)
	}
	if w, k := backlog(t, r); w != 2 || k != 2 {
		t.Errorf("backlog %d waiting, %d kept; want 2 and 2", w, k)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.OldestWaiting(); ok || err != nil {
		t.Errorf("all acknowledged: OldestWaiting = %v, %v; want none", ok, err)
	}
	if w, k := backlog(t, r); w != 0 || k != 4 {
		t.Errorf("backlog %d waiting, %d kept; want 0 and 4", w, k)
	}
	fj.mu.Lock()
	defer fj.mu.Unlock()
	if want := []string{"fail " + a1.ID, "publish " + b1.ID, "publish " + c1.ID, "publish " + a1.ID, "publish " + a2.ID}; !slices.Equal(fj.log, want) {
		t.Errorf("publishes %v, want %v", fj.log, want)
	}
}

func TestCheckKeepFor(t *testing.T) {
	tests := []struct {
		name      string
		keep, dup time.Duration
		ok        bool
	}{
		{"no keeping", 0, 0, true},
		{"twice a 1 s sync", 2 * time.Second, 0, true},
		{"half the default window", broker.DefaultDuplicates / 2, 0, true},
		{"more than half the default window", broker.DefaultDuplicates/2 + time.Second, 0, false},
		{"the whole window", 2 * time.Minute, 2 * time.Minute, false},
		{"a longer window", 4 * time.Minute, 10 * time.Minute, true},
		{"negative", -time.Second, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := broker.CheckKeepFor(tt.keep, tt.dup); (err == nil) != tt.ok {
				t.Errorf("CheckKeepFor(%s, %s) = %v, want ok %v", tt.keep, tt.dup, err, tt.ok)
			}
		})
	}
}

// TestRelayRepublishesKeptEntriesAfterAServerRestart stands for a server that lost what it
// had acknowledged but not written to disk: it comes back on the same port with an empty
// store. The relay, still running, publishes its kept entries again.
func TestRelayRepublishesKeptEntriesAfterAServerRestart(t *testing.T) {
	ns := MustStart(t, "", -1)
	port := ns.Addr().(*net.TCPAddr).Port
	nc, js := MustConnect(t, ns, false)
	ob := newOutbox()
	clock := newFakeClock()
	r := broker.NewRelay(ob, js, broker.RelayOptions{KeepFor: time.Minute, Now: clock.Now, Poll: 5 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, PublishTimeout: time.Second, Logger: testLogger(t)})
	runRelay(t, r)
	kept := events(1, 20, 4)
	ob.Add(kept...)
	waitFor(t, 10*time.Second, "the events acknowledged", func() bool { w, _ := backlog(t, r); return w == 0 })

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, 10*time.Second, "the client to notice", func() bool { return !nc.IsConnected() })
	ns = MustStart(t, "", port) // a new, empty store
	waitFor(t, 10*time.Second, "the client to reconnect", func() bool { return nc.IsConnected() })
	if _, err := broker.EnsureStream(context.Background(), js, broker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	late := events(21, 5, 4)
	ob.Add(late...)
	all := append(slices.Clone(kept), late...)
	waitFor(t, 10*time.Second, "the new stream to hold every event", func() bool { return streamMsgs(t, js) == uint64(len(all)) })
	// Publishes failed until the stream was there again: the order holds per referral only.
	got := map[string][]string{}
	for _, m := range streamMessages(t, js) {
		got[m.Event.Subject] = append(got[m.Event.Subject], m.Event.ID)
	}
	want := map[string][]string{}
	for _, e := range all {
		want[e.ReferralID] = append(want[e.ReferralID], e.ID)
	}
	for ref, w := range want {
		if !slices.Equal(got[ref], w) {
			t.Errorf("referral %s: stream %v, want %v", ref, got[ref], w)
		}
	}
	// A delete needs the server that acknowledged the entries to be up for KeepFor: this one.
	clock.Advance(time.Minute)
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool { return ob.Len() == 0 })
}

// TestRelayKeepsEntriesWhileTheServerThatAckedThemIsDown: KeepFor passing while NATS is down
// deletes nothing — the server may come back without what it had not written to disk — and
// once it is back the entries are published again.
func TestRelayKeepsEntriesWhileTheServerThatAckedThemIsDown(t *testing.T) {
	ns := MustStart(t, "", -1)
	port := ns.Addr().(*net.TCPAddr).Port
	nc, js := MustConnect(t, ns, false)
	ob := newOutbox()
	clock := newFakeClock()
	r := broker.NewRelay(ob, js, broker.RelayOptions{KeepFor: time.Minute, Now: clock.Now, Poll: time.Hour,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, PublishTimeout: time.Second, Logger: testLogger(t)})
	kept := events(1, 6, 3)
	ob.Add(kept...)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w, k := backlog(t, r); w != 0 || k != len(kept) {
		t.Fatalf("after the first flush: %d waiting, %d kept; want all kept", w, k)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, 10*time.Second, "the client to notice", func() bool { return !nc.IsConnected() })
	clock.Advance(2 * time.Minute)
	_ = r.Flush(context.Background()) // would delete the kept entries if it did not ask the server
	if ob.Len() != len(kept) {
		t.Fatalf("outbox %d after KeepFor passed with the server down, want the %d kept entries", ob.Len(), len(kept))
	}

	ns = MustStart(t, "", port) // back, without what it had acknowledged
	waitFor(t, 10*time.Second, "the client to reconnect", func() bool { return nc.IsConnected() })
	if _, err := broker.EnsureStream(context.Background(), js, broker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := streamIDs(t, js); !slices.Equal(got, ids(kept)) {
		t.Errorf("the new stream holds %v, want every kept event again", got)
	}
}

// TestRelayStopsAPassWhenTheServerRestartsUnderIt: with KeepFor, a reconnect in the middle of
// a pass ends it, so that what the lost server had acknowledged (A1) is published again
// before what follows it of the same referral (A2) — not after it.
func TestRelayStopsAPassWhenTheServerRestartsUnderIt(t *testing.T) {
	ns := MustStart(t, "", -1)
	port := ns.Addr().(*net.TCPAddr).Port
	nc, js := MustConnect(t, ns, false)
	a1, b1, a2 := event(1, "A"), event(2, "B"), event(3, "A")
	restarted := false
	restart := func(domain.Event) {
		if restarted {
			return
		}
		restarted = true
		ns.Shutdown()
		ns.WaitForShutdown()
		waitFor(t, 10*time.Second, "the client to notice", func() bool { return !nc.IsConnected() })
		ns = MustStart(t, "", port) // back, without A1
		waitFor(t, 10*time.Second, "the client to reconnect", func() bool { return nc.IsConnected() })
		if _, err := broker.EnsureStream(context.Background(), js, broker.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ob := newOutbox()
	ob.Add(a1, b1, a2)
	r := broker.NewRelay(ob, js, broker.RelayOptions{Window: 1, KeepFor: time.Minute, Now: newFakeClock().Now, Poll: time.Hour,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, PublishTimeout: time.Second, Logger: testLogger(t),
		OnPublished: restart})
	if err := r.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "reconnected") {
		t.Fatalf("Flush across the restart: %v, want the pass ended by the reconnect", err)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := streamIDs(t, js); !slices.Equal(got, ids([]domain.Event{a1, b1, a2})) {
		t.Errorf("the new stream holds %v, want A1, B1, A2 in outbox order", got)
	}
}
