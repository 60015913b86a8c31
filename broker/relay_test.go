package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
)

// testLogger writes the relay's log to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// runRelay runs r until the end of the test and fails the test if Run returns an error.
func runRelay(t *testing.T, r *broker.Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestRelayDeliversEventsInOrder(t *testing.T) {
	ns := MustStart(t, "", -1)
	_, js := MustConnect(t, ns, true)
	ob := newOutbox()
	r := broker.NewRelay(ob, js, broker.RelayOptions{Source: "/referrals/test", Poll: time.Hour, Logger: testLogger(t)})
	runRelay(t, r)

	var want []domain.Event
	for i := 0; i < 10; i++ { // commits of several sizes, events of 7 referrals interleaved
		es := events(len(want)+1, i*7+1, 7)
		ob.Add(es...)
		want = append(want, es...)
	}
	waitFor(t, 10*time.Second, "outbox to empty", func() bool { return ob.Len() == 0 })

	msgs := streamMessages(t, js)
	if got := streamIDs(t, js); !slices.Equal(got, ids(want)) {
		t.Fatalf("stream holds %d events %v,\nwant %d in outbox order %v", len(got), got, len(want), ids(want))
	}
	for i, m := range msgs {
		if m.Subject != want[i].Subject() {
			t.Errorf("event %d on subject %q, want %q", i, m.Subject, want[i].Subject())
		}
		if m.Event.Source != "/referrals/test" || m.Event.Subject != want[i].ReferralID {
			t.Errorf("event %d: source %q subject %q", i, m.Event.Source, m.Event.Subject)
		}
	}
	st := r.Status()
	if !st.Healthy || st.Published != uint64(len(want)) || st.Failures != 0 || st.LastSuccess.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestRelayWakesOnCommitAndOnPoll(t *testing.T) {
	ns := MustStart(t, "", -1)
	_, js := MustConnect(t, ns, true)

	t.Run("commit", func(t *testing.T) {
		ob := newOutbox()
		runRelay(t, broker.NewRelay(ob, js, broker.RelayOptions{Poll: time.Hour}))
		waitFor(t, 5*time.Second, "first pass", func() bool { return ob.Reads() > 0 })
		ob.Add(event(1, "ref-1"))
		waitFor(t, 5*time.Second, "event delivered on commit signal", func() bool { return ob.Len() == 0 })
	})
	t.Run("poll", func(t *testing.T) {
		ob := &silentOutbox{newOutbox()}
		runRelay(t, broker.NewRelay(ob, js, broker.RelayOptions{Poll: 10 * time.Millisecond}))
		waitFor(t, 5*time.Second, "first pass", func() bool { return ob.Reads() > 0 })
		ob.Add(event(2, "ref-2"))
		waitFor(t, 5*time.Second, "event delivered by the poll", func() bool { return ob.Len() == 0 })
	})
}

// silentOutbox never signals commits.
type silentOutbox struct{ *memOutbox }

func (silentOutbox) Committed() <-chan struct{} { return nil }

func TestStreamDeduplicatesEventID(t *testing.T) {
	ns := MustStart(t, "", -1)
	_, js := MustConnect(t, ns, true)
	ctx := context.Background()
	e := event(1, "ref-1")

	// The same event twice in the outbox (e.g. re-sent after a crash between ack and delete).
	ob := newOutbox()
	ob.Add(e)
	ob.Add(e)
	r := broker.NewRelay(ob, js, broker.RelayOptions{})
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// And once more straight to the stream.
	b, _ := broker.Encode(e, "/referrals/other")
	ack, err := js.Publish(ctx, e.Subject(), b, jetstream.WithMsgID(e.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Duplicate {
		t.Error("third publish not reported as duplicate")
	}
	s, err := js.Stream(ctx, broker.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || ob.Len() != 0 {
		t.Errorf("stream holds %d messages, outbox %d entries; want 1 and 0", info.State.Msgs, ob.Len())
	}
}

// flakyJS fails the first publish of chosen events with an ack error, without sending them, as
// when a message is lost with a broken connection while later ones get through.
type flakyJS struct {
	jetstream.JetStream

	mu     sync.Mutex
	failed map[string]bool // event ids to fail once → already failed
	log    []string        // "publish <id>", "fail <id>", in call order
}

func (f *flakyJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	ce, err := broker.Decode(m.Data)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if done, ok := f.failed[ce.ID]; ok && !done {
		f.failed[ce.ID] = true
		f.log = append(f.log, "fail "+ce.ID)
		return failedAck{m}, nil
	}
	f.log = append(f.log, "publish "+ce.ID)
	return f.JetStream.PublishMsgAsync(m, opts...)
}

type failedAck struct{ m *nats.Msg }

func (failedAck) Ok() <-chan *jetstream.PubAck { return nil }
func (failedAck) Err() <-chan error {
	c := make(chan error, 1)
	c <- errors.New("injected: ack lost")
	return c
}
func (a failedAck) Msg() *nats.Msg { return a.m }

func TestRelayKeepsReferralOrderWhenAPublishFails(t *testing.T) {
	a1, b1, c1, a2, b2 := event(1, "A"), event(2, "B"), event(3, "C"), event(4, "A"), event(5, "B")
	type testCase struct {
		name   string
		window int
		keep   time.Duration
		want   []domain.Event // stream order
	}
	var cases []testCase
	for _, keep := range []time.Duration{0, time.Minute} {
		cases = append(cases,
			// A1 fails; B1 and C1 of the same wave are stored and deleted (or kept); A2 waits
			// for A1.
			testCase{"pipelined/keep=" + keep.String(), 64, keep, []domain.Event{b1, c1, a1, a2, b2}},
			// Nothing is sent after A1 until A1 is acked: outbox order across referrals too.
			testCase{"synchronous/keep=" + keep.String(), 1, keep, []domain.Event{a1, b1, c1, a2, b2}},
		)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := MustStart(t, "", -1)
			_, js := MustConnect(t, ns, true)
			fj := &flakyJS{JetStream: js, failed: map[string]bool{a1.ID: false}}
			ob := newOutbox()
			ob.Add(a1, b1, c1, a2, b2)
			clock := newFakeClock()
			r := broker.NewRelay(ob, fj, broker.RelayOptions{Window: tc.window, KeepFor: tc.keep, Now: clock.Now, Poll: 10 * time.Millisecond,
				MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Logger: testLogger(t)})

			if err := r.Flush(context.Background()); err == nil {
				t.Fatal("Flush with a failing publish succeeded")
			}
			st := r.Status()
			if st.Healthy || st.Failures != 1 || st.LastError == "" {
				t.Errorf("status after failure %+v", st)
			}
			wantWaiting, wantKept := 5, 0
			if tc.window > 1 {
				wantWaiting = 3 // a1, a2, b2
				if tc.keep > 0 {
					wantKept = 2 // b1, c1
				}
			}
			if w, k := backlog(t, r); w != wantWaiting || k != wantKept || ob.Len() != w+k {
				t.Errorf("after the failed pass: %d waiting, %d kept, outbox %d; want %d and %d",
					w, k, ob.Len(), wantWaiting, wantKept)
			}

			runRelay(t, r)
			waitFor(t, 5*time.Second, "every event acknowledged", func() bool { w, _ := backlog(t, r); return w == 0 })
			clock.Advance(tc.keep)
			waitFor(t, 5*time.Second, "outbox to empty", func() bool { return ob.Len() == 0 })
			if got := streamIDs(t, js); !slices.Equal(got, ids(tc.want)) {
				t.Errorf("stream %v, want %v", got, ids(tc.want))
			}
			fj.mu.Lock()
			defer fj.mu.Unlock()
			failAt := slices.Index(fj.log, "fail "+a1.ID)
			a1At := slices.Index(fj.log, "publish "+a1.ID)
			a2At := slices.Index(fj.log, "publish "+a2.ID)
			if failAt < 0 || a1At < failAt || a2At < a1At {
				t.Errorf("A2 published before A1 was re-sent: %v", fj.log)
			}
			for _, e := range []domain.Event{a1, b1, c1, a2, b2} {
				if n := count(fj.log, "publish "+e.ID); n != 1 {
					t.Errorf("%s published %d times: %v", e.ID, n, fj.log)
				}
			}
			if st := r.Status(); !st.Healthy || st.Published != 5 {
				t.Errorf("status after recovery %+v", st)
			}
		})
	}
}

// silentJS swallows the first publish of chosen events: it is never sent and its ack never
// comes, neither an ack nor an error, as when the server takes a message and dies before
// answering.
type silentJS struct {
	jetstream.JetStream

	mu     sync.Mutex
	silent map[string]bool // event ids to swallow once → already swallowed
}

func (s *silentJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	ce, err := broker.Decode(m.Data)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if done, ok := s.silent[ce.ID]; ok && !done {
		s.silent[ce.ID] = true
		return silentAck{m}, nil
	}
	return s.JetStream.PublishMsgAsync(m, opts...)
}

type silentAck struct{ m *nats.Msg }

func (silentAck) Ok() <-chan *jetstream.PubAck { return nil }
func (silentAck) Err() <-chan error            { return nil }
func (a silentAck) Msg() *nats.Msg             { return a.m }

// TestRelayKeepsEventsWhoseAckNeverCame: when a wave's time runs out, only the entries whose
// acks arrived count as delivered; the others stay in the outbox and the next pass sends
// them.
func TestRelayKeepsEventsWhoseAckNeverCame(t *testing.T) {
	ns := MustStart(t, "", -1)
	_, js := MustConnect(t, ns, true)
	a1, b1, c1 := event(1, "A"), event(2, "B"), event(3, "C")
	sj := &silentJS{JetStream: js, silent: map[string]bool{b1.ID: false, c1.ID: false}}
	ob := newOutbox()
	ob.Add(a1, b1, c1)
	r := broker.NewRelay(ob, sj, broker.RelayOptions{Window: 64, PublishTimeout: 200 * time.Millisecond, Poll: time.Hour,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Logger: testLogger(t)})
	if err := r.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "no ack within") {
		t.Fatalf("Flush with two acks that never come: %v, want a timeout", err)
	}
	if st := r.Status(); st.Published != 1 || ob.Len() != 2 {
		t.Errorf("after the timeout: %d published, %d in the outbox; want 1 and the 2 unacknowledged", st.Published, ob.Len())
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatalf("second Flush: %v", err)
	}
	if got := streamIDs(t, js); !slices.Equal(got, ids([]domain.Event{a1, b1, c1})) || ob.Len() != 0 {
		t.Errorf("stream %v, outbox %d; want all three in the stream", got, ob.Len())
	}
}

// count returns how many times s occurs in log.
func count(log []string, s string) int {
	n := 0
	for _, l := range log {
		if l == s {
			n++
		}
	}
	return n
}

func TestRelaySurvivesNATSOutage(t *testing.T) {
	for _, keep := range []time.Duration{0, time.Minute} {
		t.Run("keep="+keep.String(), func(t *testing.T) { testRelaySurvivesNATSOutage(t, keep) })
	}
}

func testRelaySurvivesNATSOutage(t *testing.T, keep time.Duration) {
	dir := t.TempDir()
	ns := MustStart(t, dir, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	nc, js := MustConnect(t, ns, false)
	ob := newOutbox()
	clock := newFakeClock()
	r := broker.NewRelay(ob, js, broker.RelayOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		PublishTimeout: 2 * time.Second, KeepFor: keep, Now: clock.Now, Poll: 10 * time.Millisecond, Logger: testLogger(t)})
	runRelay(t, r)
	waiting := func() int { w, _ := backlog(t, r); return w }

	before := events(1, 20, 4)
	ob.Add(before...)
	waitFor(t, 10*time.Second, "first events delivered", func() bool { return waiting() == 0 })

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, 10*time.Second, "client to notice the outage", func() bool { return !nc.IsConnected() })

	during := events(21, 30, 4)
	for _, e := range during {
		ob.Add(e)
	}
	waitFor(t, 10*time.Second, "relay to report unhealthy", func() bool { return !r.Status().Healthy })
	if n := waiting(); n != len(during) {
		t.Fatalf("%d events wait during the outage, want %d", n, len(during))
	}
	failures := r.Status().Failures
	if failures == 0 || r.Status().LastError == "" {
		t.Errorf("status during outage %+v", r.Status())
	}

	MustStart(t, dir, port)
	waitFor(t, 20*time.Second, "outbox to drain after restart", func() bool { return waiting() == 0 })
	clock.Advance(keep)
	waitFor(t, 10*time.Second, "kept entries deleted", func() bool { return ob.Len() == 0 })

	want := ids(append(before, during...))
	if got := streamIDs(t, js); !slices.Equal(got, want) {
		t.Errorf("stream after outage has %d events %v,\nwant %d %v", len(got), got, len(want), want)
	}
	// With KeepFor the relay publishes what it kept again after the reconnect (the server
	// may have lost it): at least once more each.
	wantPublished := uint64(len(want))
	if keep > 0 {
		wantPublished += uint64(len(before))
	}
	if st := r.Status(); !st.Healthy || st.Published < wantPublished || keep == 0 && st.Published != wantPublished {
		t.Errorf("status after recovery %+v, want %d published", st, wantPublished)
	}
}

func TestRelayKeepsReferralOrderAcrossServerRestarts(t *testing.T) {
	for _, tc := range []struct {
		window int
		keep   time.Duration
	}{{1, 0}, {64, 0}, {64, time.Minute}} {
		window := tc.window
		t.Run(fmt.Sprintf("window=%d/keep=%s", window, tc.keep), func(t *testing.T) {
			dir := t.TempDir()
			ns := MustStart(t, dir, -1)
			port := ns.Addr().(*net.TCPAddr).Port
			nc, js := MustConnect(t, ns, false)
			ob := newOutbox()
			clock := newFakeClock()
			r := broker.NewRelay(ob, js, broker.RelayOptions{Window: window, Batch: 32, MinBackoff: time.Millisecond,
				MaxBackoff: 20 * time.Millisecond, PublishTimeout: time.Second, KeepFor: tc.keep, Now: clock.Now, Poll: 10 * time.Millisecond,
				Logger: testLogger(t)})
			runRelay(t, r)

			// A producer commits events of 5 referrals, a few at a time, while the server
			// goes away and comes back under the relay's feet.
			start := time.Now()
			var produced atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 1; ; n += 3 {
					select {
					case <-stop:
						return
					default:
					}
					ob.Add(events(n, 3, 5)...)
					produced.Store(int64(n + 2))
					time.Sleep(time.Millisecond) // pacing, not waiting for anything
				}
			}()
			for cycle := 0; cycle < 3; cycle++ {
				published := r.Status().Published
				waitFor(t, 10*time.Second, "progress", func() bool { return r.Status().Published >= published+100 })
				ns.Shutdown()
				ns.WaitForShutdown()
				waitFor(t, 10*time.Second, "disconnect", func() bool { return !nc.IsConnected() })
				ns = MustStart(t, dir, port)
			}
			t.Logf("restarts done after %s", time.Since(start))
			close(stop)
			wg.Wait()
			waitFor(t, 30*time.Second, "outbox to drain", func() bool { w, _ := backlog(t, r); return w == 0 })
			if _, kept := backlog(t, r); tc.keep > 0 && kept != int(produced.Load()) {
				t.Errorf("%d entries kept, want all %d", kept, produced.Load())
			}
			clock.Advance(tc.keep)
			waitFor(t, 10*time.Second, "kept entries deleted", func() bool { return ob.Len() == 0 })

			t.Logf("drained after %s", time.Since(start))
			want := events(1, int(produced.Load()), 5)
			msgs := streamMessages(t, js)
			t.Logf("read after %s", time.Since(start))
			var got []string
			for _, m := range msgs {
				if m.MsgID != m.Event.ID {
					t.Errorf("message %s has Nats-Msg-Id %q", m.Event.ID, m.MsgID)
				}
				got = append(got, m.Event.ID)
			}
			if len(got) != len(want) {
				t.Errorf("stream holds %d events, produced %d", len(got), len(want))
			}
			seen := map[string]bool{}
			for _, id := range got {
				if seen[id] {
					t.Errorf("event %s twice in the stream", id)
				}
				seen[id] = true
			}
			// Per referral, the stream follows outbox order.
			byRef := map[string][]string{}
			for _, m := range msgs {
				byRef[m.Event.Subject] = append(byRef[m.Event.Subject], m.Event.ID)
			}
			wantByRef := map[string][]string{}
			for _, e := range want {
				wantByRef[e.ReferralID] = append(wantByRef[e.ReferralID], e.ID)
			}
			for ref, w := range wantByRef {
				if g := byRef[ref]; !slices.Equal(g, w) {
					t.Errorf("referral %s: stream order %v, want %v", ref, g, w)
				}
			}
			if window == 1 && !slices.Equal(got, ids(want)) {
				t.Errorf("window 1: stream not in outbox order")
			}
			t.Logf("%d events, %d failed attempts", len(got), r.Status().Failures)
		})
	}
}

func TestRelayBacksOffWhileDisconnected(t *testing.T) {
	ns := MustStart(t, "", -1)
	nc, js := MustConnect(t, ns, false)
	nc.Close()
	ob := newOutbox()
	ob.Add(event(1, "ref-1"))
	const step = 40 * time.Millisecond
	r := broker.NewRelay(ob, js, broker.RelayOptions{MinBackoff: step, MaxBackoff: step, Poll: time.Millisecond})
	start := time.Now()
	runRelay(t, r)
	waitFor(t, 10*time.Second, "five failures", func() bool { return r.Status().Failures >= 5 })
	elapsed := time.Since(start)
	// Waits are at least step/2 each (equal jitter), whatever the poll interval.
	if minWait := 4 * step / 2; elapsed < minWait {
		t.Errorf("5 attempts in %s, want at least %s", elapsed, minWait)
	}
	if reads, fails := ob.Reads(), r.Status().Failures; uint64(reads) > fails+1 {
		t.Errorf("%d outbox reads for %d failed attempts: retrying without backing off", reads, fails)
	}
	if ob.Len() != 1 {
		t.Errorf("outbox lost the event")
	}
}

func TestRelayFlushDeliversWhatRunLeftBehind(t *testing.T) {
	ns := MustStart(t, "", -1)
	nc, js := MustConnect(t, ns, true)
	ob := newOutbox()
	r := broker.NewRelay(ob, js, broker.RelayOptions{Batch: 8, Window: 4})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	first := events(1, 5, 2)
	ob.Add(first...)
	waitFor(t, 5*time.Second, "first events delivered", func() bool { return ob.Len() == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after cancel", err)
	}

	// Committed after the relay stopped: only Flush delivers them.
	late := events(6, 50, 3) // more than one batch
	ob.Add(late...)
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	if err := r.Flush(fctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if ob.Len() != 0 {
		t.Fatalf("outbox holds %d after Flush", ob.Len())
	}
	if got, want := streamIDs(t, js), ids(append(first, late...)); !slices.Equal(got, want) {
		t.Errorf("stream %v, want %v", got, want)
	}

	nc.Close()
	ob.Add(event(100, "ref-x"))
	if err := r.Flush(fctx); !errors.Is(err, broker.ErrNotConnected) {
		t.Errorf("Flush on a closed connection = %v, want ErrNotConnected", err)
	}
	if ob.Len() != 1 {
		t.Errorf("outbox holds %d, want the undelivered event", ob.Len())
	}
}

func TestRelayFlushStopsWhenContextEnds(t *testing.T) {
	ns := MustStart(t, "", -1)
	_, js := MustConnect(t, ns, true)
	ob := newOutbox()
	ob.Add(event(1, "ref-1"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := broker.NewRelay(ob, js, broker.RelayOptions{}).Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Flush = %v, want context.Canceled", err)
	}
	if ob.Len() != 1 {
		t.Error("outbox changed")
	}
}

func BenchmarkRelay(b *testing.B) {
	for _, transport := range []string{"inproc", "tcp"} {
		for _, window := range []int{1, 64, 256} {
			for _, refs := range []int{1, 1000} {
				name := fmt.Sprintf("%s/window=%d/referrals=%d", transport, window, refs)
				b.Run(name, func(b *testing.B) {
					ns := MustStart(b, "", -1)
					_, js := MustConnect(b, ns, transport == "inproc")
					ob := newOutbox()
					r := broker.NewRelay(ob, js, broker.RelayOptions{Window: window})
					es := events(1, b.N, refs)
					b.ResetTimer()
					ob.Add(es...)
					if err := r.Flush(context.Background()); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if ob.Len() != 0 {
						b.Fatalf("outbox holds %d", ob.Len())
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				})
			}
		}
	}
}
