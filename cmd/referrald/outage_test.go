package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/testkit"
)

// The NATS outage proof (issue 5, item 5): referrald runs against an external NATS (an
// embedded server of the test's own); NATS stops while writes go on. The API keeps accepting,
// /readyz says degraded, the outbox grows; NATS starts again on the same port and store, and
// the backlog drains into the stream in order per referral, with nothing lost and nothing a
// deduplicating consumer would see twice.

// externalNATS is a NATS server the test stops and starts on a fixed port and store dir.
type externalNATS struct {
	t    *testing.T
	dir  string
	port int
	ns   *server.Server
}

func startExternalNATS(t *testing.T, dir string, port int) *externalNATS {
	t.Helper()
	ns, err := broker.StartEmbedded(broker.EmbeddedOptions{StoreDir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	x := &externalNATS{t: t, dir: dir, port: ns.Addr().(*net.TCPAddr).Port, ns: ns}
	t.Cleanup(x.stop)
	return x
}

func (x *externalNATS) url() string { return "nats://127.0.0.1:" + strconv.Itoa(x.port) }

func (x *externalNATS) stop() {
	if x.ns != nil {
		x.ns.Shutdown()
		x.ns.WaitForShutdown()
		x.ns = nil
	}
}

// outageWriter creates referrals and receives each one, over and over, until stopped, and
// records per referral the change events its acknowledged writes must produce.
type outageWriter struct {
	mu       sync.Mutex
	expected map[string][]string // referral id → "type:status" of each acknowledged change
	order    []string            // referral ids in creation order
	failures []string
	stopped  chan struct{}
	done     chan struct{}
}

func (w *outageWriter) run(base, kela, county string) {
	defer close(w.done)
	tick := time.NewTicker(5 * time.Millisecond) // pace: a steady trickle, not a flood
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-w.stopped:
			return
		case <-tick.C:
		}
		code, _, m, err := call(base, "POST", "/v1/referrals", kela, needJSON, "Idempotency-Key", fmt.Sprintf("outage-%d", i))
		if err != nil || code != http.StatusCreated {
			w.fail(fmt.Sprintf("create %d: %d %v %v", i, code, m, err))
			continue
		}
		id := m["id"].(string)
		w.record(id, "created:sent")
		code, _, m, err = call(base, "POST", "/v1/referrals/"+id+"/receive", county, "")
		if err != nil || code != http.StatusOK {
			w.fail(fmt.Sprintf("receive %s: %d %v %v", id, code, m, err))
			continue
		}
		w.record(id, "received:received")
	}
}

func (w *outageWriter) record(id, change string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.expected[id]; !ok {
		w.order = append(w.order, id)
	}
	w.expected[id] = append(w.expected[id], change)
}

func (w *outageWriter) fail(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures = append(w.failures, s)
}

func (w *outageWriter) referrals() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.order)
}

func backlog(t *testing.T, checks map[string]any) int {
	t.Helper()
	n, err := strconv.Atoi(fmt.Sprint(checks["outbox_backlog"]))
	if err != nil {
		t.Fatalf("readyz has no outbox_backlog: %v", checks)
	}
	return n
}

func TestNATSOutageDegradesThenDrainsInOrderWithoutLoss(t *testing.T) {
	x := startExternalNATS(t, t.TempDir(), -1)
	s := startService(t, t.TempDir(), "--nats-url", x.url(), "--dev-clock-start", devMonday)
	kela := s.token("kela", domain.RoleKelaHandler)
	county := s.token("hva-90", domain.RoleSocialWorker)
	waitFor(t, "ready with NATS", 20*time.Second, func() bool { st, _ := readyz(t, s.base); return st == "ready" })

	w := &outageWriter{expected: map[string][]string{}, stopped: make(chan struct{}), done: make(chan struct{})}
	go w.run(s.base, kela, county)
	defer func() {
		select {
		case <-w.stopped:
		default:
			close(w.stopped)
		}
		<-w.done
	}()
	waitFor(t, "writes with NATS up", 20*time.Second, func() bool { return w.referrals() >= 5 })

	// NATS goes away; the writes go on.
	x.stop()
	var checks map[string]any
	waitFor(t, "readyz to report the outage", 20*time.Second, func() bool {
		var st string
		st, checks = readyz(t, s.base)
		return st == "degraded" && checks["nats"] == "disconnected" && checks["relay"] != "ok"
	})
	during := backlog(t, checks)
	atStop := w.referrals()
	waitFor(t, "the outbox to grow", 20*time.Second, func() bool {
		_, checks = readyz(t, s.base)
		return backlog(t, checks) >= during+10 && w.referrals() >= atStop+5
	})
	if st, _ := readyz(t, s.base); st != "degraded" {
		t.Errorf("readyz %q during the outage, want degraded", st)
	}
	t.Logf("outage: backlog %d → %d, %d referrals written", during, backlog(t, checks), w.referrals()-atStop)

	// NATS is back on the same port and store: the backlog drains while writes go on.
	x = startExternalNATS(t, x.dir, x.port)
	back := w.referrals()
	waitFor(t, "writes after the outage", 20*time.Second, func() bool { return w.referrals() >= back+5 })
	close(w.stopped)
	<-w.done
	waitDrained(t, s.base)
	if len(w.failures) > 0 {
		t.Fatalf("%d writes refused, e.g. %s", len(w.failures), w.failures[0])
	}

	// A deduplicating consumer's view: each event once (by CloudEvents id), and each
	// referral's events complete and in the order they were acknowledged.
	events := readStream(t, x.url())
	seen := map[string]bool{}
	var unique []streamEvent
	for _, e := range events {
		if !seen[e.Event.ID] {
			seen[e.Event.ID] = true
			unique = append(unique, e)
		}
	}
	byRef := changeEvents(unique)
	total := 0
	for _, id := range w.order {
		want := w.expected[id]
		total += len(want)
		var got []string
		for _, e := range byRef[id] {
			got = append(got, strings.TrimPrefix(e.Event.Type, domain.EventTypePrefix)+":"+string(e.Data.Status))
		}
		if !slices.Equal(got, want) {
			t.Errorf("referral %s: events %v, want %v", id, got, want)
		}
	}
	if len(byRef) != len(w.order) {
		t.Errorf("events for %d referrals, %d written", len(byRef), len(w.order))
	}
	t.Logf("%d referrals, %d events expected, %d in the stream (%d duplicates dropped by id)",
		len(w.order), total, len(events), len(events)-len(unique))
}

// TestStopFlushesTheOutboxWhileNATSIsUp: events written while NATS was away, and not yet
// retried when the service is stopped, are published by the stop itself (the relay is still
// in its back-off), not left for the next start.
func TestStopFlushesTheOutboxWhileNATSIsUp(t *testing.T) {
	natsDir := t.TempDir()
	x := startExternalNATS(t, natsDir, -1)
	x.stop() // down from the start; the port is free again
	s := startService(t, t.TempDir(), "--nats-url", x.url())
	status, ref := s.do("POST", "/v1/referrals", s.token("kela", domain.RoleKelaHandler), needJSON)
	if status != http.StatusCreated {
		t.Fatalf("create while NATS is down: %d %v", status, ref)
	}
	// The service retries the stream with a growing wait (100 ms, doubling): once its next try
	// is 6.4 s away, the stop below comes well before it.
	waitFor(t, "a long retry wait", 20*time.Second, func() bool {
		return strings.Contains(s.logs.String(), `"msg":"ensure stream failed, retrying"`) && strings.Contains(s.logs.String(), `"retry_in":"6.4s"`)
	})
	x = startExternalNATS(t, natsDir, x.port)
	_, js := testkit.JetStream(t, x.url())
	if _, err := broker.EnsureStream(context.Background(), js, broker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the service's connection back", 15*time.Second, func() bool {
		_, body := s.do("GET", "/readyz", "", "")
		checks, _ := body["checks"].(map[string]any)
		return checks["nats"] == "ok"
	})
	s.stop()
	events := streamEvents(t, x.url(), 10*time.Second, func(evs []broker.CloudEvent) bool { return len(evs) >= 1 })
	if len(events) != 1 || events[0].Subject != ref["id"] {
		t.Errorf("the stream after the stop: %+v, want the referral's created event", events)
	}
}
