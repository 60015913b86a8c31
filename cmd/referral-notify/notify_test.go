package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/testkit"
)

// syncBuffer collects a running program's output.
type syncBuffer = testkit.Buffer

// completeLines returns the complete lines written to b so far.
func completeLines(b *syncBuffer) []string {
	s := b.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	} else {
		return nil
	}
	return strings.Split(s, "\n")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, what, d, cond)
}

// natsServer is an embedded NATS server whose REFERRALS stream exists.
type natsServer struct {
	t    *testing.T
	dir  string
	port int
	ns   *server.Server
	js   jetstream.JetStream
}

// startNATS starts a server on port (-1: a random one) with its store in dir.
func startNATS(t *testing.T, dir string, port int) *natsServer {
	t.Helper()
	ns, err := broker.StartEmbedded(broker.EmbeddedOptions{StoreDir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	s := &natsServer{t: t, dir: dir, port: ns.Addr().(*net.TCPAddr).Port, ns: ns}
	t.Cleanup(s.stop)
	_, s.js = testkit.JetStream(t, ns.ClientURL())
	if _, err := broker.EnsureStream(context.Background(), s.js, broker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *natsServer) stop() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.ns = nil
	}
}

// publish puts e into the stream as the relay does, with msgID as Nats-Msg-Id ("" for none).
func (s *natsServer) publish(e domain.Event, msgID string) {
	s.t.Helper()
	data, err := broker.Encode(e, "/referrals/test")
	if err != nil {
		s.t.Fatal(err)
	}
	m := &nats.Msg{Subject: e.Subject(), Data: data, Header: nats.Header{"Content-Type": {broker.ContentType}}}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := s.js.PublishMsg(context.Background(), m, opts...); err != nil {
		s.t.Fatal(err)
	}
}

// consumerInfo returns the state of the durable consumer.
func (s *natsServer) consumerInfo(name string) *jetstream.ConsumerInfo {
	s.t.Helper()
	c, err := s.js.Consumer(context.Background(), broker.StreamName, name)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return info
}

// settled reports whether the consumer has acknowledged everything it can see.
func (s *natsServer) settled(name string) bool {
	info := s.consumerInfo(name)
	return info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
}

// notify is one referral-notify started through run.
type notify struct {
	stdout, stderr *syncBuffer
	done           chan error
	cancel         func()
	result         error
	once           sync.Once
}

func startNotify(t *testing.T, args ...string) *notify {
	t.Helper()
	n := &notify{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- run(ctx, args, func(string) string { return "" }, n.stdout, n.stderr) }()
	t.Cleanup(func() {
		if err := n.stop(t); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return n
}

// stop cancels run and returns what it returned.
func (n *notify) stop(t *testing.T) error {
	n.once.Do(func() {
		n.cancel()
		select {
		case n.result = <-n.done:
		case <-time.After(20 * time.Second):
			n.result = errors.New("run did not stop")
		}
	})
	return n.result
}

// endsByItself waits for run to end without being stopped and returns its error.
func (n *notify) endsByItself(t *testing.T) error {
	t.Helper()
	var err error
	select {
	case err = <-n.done:
	case <-time.After(15 * time.Second):
		t.Fatal("run did not end by itself")
	}
	n.once.Do(func() {}) // ended, as expected: the cleanup has nothing to stop or report
	return err
}

// waitLines waits until n printed want lines.
func (n *notify) waitLines(t *testing.T, want int) []string {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d lines", want), 15*time.Second, func() bool {
		select {
		case err := <-n.done:
			t.Fatalf("run ended early: %v\n%s", err, n.stderr.String())
		default:
		}
		return len(completeLines(n.stdout)) >= want
	})
	return completeLines(n.stdout)
}

var (
	t0        = time.Date(2026, 11, 23, 9, 12, 44, 0, time.UTC)
	ackBy     = time.Date(2026, 11, 24, 21, 59, 59, 0, time.UTC)
	respondBy = time.Date(2026, 12, 2, 21, 59, 59, 0, time.UTC)
)

func evID(n int) string  { return fmt.Sprintf("0195f3c2-0000-7000-8000-%012d", n) }
func refID(n int) string { return fmt.Sprintf("0195f3c2-aaaa-7000-8000-%012d", n) }

// ev builds event n of type typ about referral ref from sender to recipient.
func ev(n int, typ domain.EventType, ref int, sender, recipient domain.OrgID) domain.Event {
	return domain.Event{
		ID: evID(n), Type: typ, ReferralID: refID(ref), Sender: sender, Recipient: recipient,
		Time: t0.Add(time.Duration(n) * time.Minute), Kind: domain.KindSocialWorkNeed, Urgency: "normal", Status: "sent",
	}
}

func TestPrintsIncomingAndOutgoingEventsOfItsOrgOnlyAndEachIDOnce(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	incoming := ev(1, domain.EventCreated, 1, "kela", "hva-08")
	incoming.Urgency, incoming.Deadline, incoming.DeadlineName = "urgent", &ackBy, "acknowledge_by"
	other := ev(2, domain.EventCreated, 2, "kela", "hva-90")
	outgoing := ev(3, domain.EventCreated, 3, "hva-08", "kela")
	outgoing.Kind = domain.KindSocialWorkStatement
	changed := ev(4, domain.EventStatusChanged, 1, "kela", "hva-08")
	changed.FromStatus, changed.Status, changed.ActorOrg = "in_progress", "completed", "hva-08"
	otherMessage := ev(5, domain.EventMessageAdded, 5, "hva-01", "kela")
	overdue := ev(6, domain.EventOverdue, 3, "hva-08", "kela")
	overdue.Kind, overdue.Deadline, overdue.DeadlineName = domain.KindSocialWorkStatement, &respondBy, "respond_by"
	for _, e := range []domain.Event{incoming, other, outgoing, changed, otherMessage, overdue} {
		s.publish(e, e.ID)
	}

	n := startNotify(t, "--org", "hva-08", "--nats-url", s.url(), "--log-level", "debug")
	got := n.waitLines(t, 4)
	want := []string{
		"2026-11-23T11:13:44+02:00  created  social_work_need  urgent  new referral from kela  acknowledge_by 2026-11-24  /v1/referrals/" + refID(1),
		"2026-11-23T11:15:44+02:00  created  social_work_statement  normal  sent to kela  -  /v1/referrals/" + refID(3),
		"2026-11-23T11:16:44+02:00  status_changed  social_work_need  normal  status in_progress → completed by hva-08  -  /v1/referrals/" + refID(1),
		"2026-11-23T11:18:44+02:00  overdue  social_work_statement  normal  overdue: respond_by 2026-12-02  respond_by 2026-12-02  /v1/referrals/" + refID(3),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The same CloudEvent again under another Nats-Msg-Id is in the stream twice (as after a
	// relay retry beyond the duplicate window): it is acknowledged but not printed again.
	s.publish(changed, "retry-of-"+changed.ID)
	sentinel := ev(7, domain.EventReceived, 1, "kela", "hva-08")
	s.publish(sentinel, sentinel.ID)
	got = n.waitLines(t, 5)
	waitFor(t, "consumer settled", 10*time.Second, func() bool { return s.settled("notify-hva-08") })
	if len(completeLines(n.stdout)) != 5 || !strings.Contains(got[4], "received by hva-08") {
		t.Errorf("after a duplicate and a new event:\n%s", strings.Join(completeLines(n.stdout), "\n"))
	}
	if !strings.Contains(n.stderr.String(), `"msg":"duplicate event skipped","id":"`+changed.ID) {
		t.Errorf("the duplicate was not seen and skipped:\n%s", n.stderr.String())
	}
	for _, l := range completeLines(n.stdout) {
		if strings.Contains(l, refID(2)) || strings.Contains(l, refID(5)) {
			t.Errorf("printed another organisation's event: %s", l)
		}
	}
}

func TestRestartResumesWithoutReprintingAcknowledgedEvents(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	args := []string{"--org", "kela", "--nats-url", s.url()}
	s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))
	s.publish(ev(2, domain.EventReceived, 1, "kela", "hva-90"), evID(2))
	first := startNotify(t, args...)
	first.waitLines(t, 2)
	waitFor(t, "consumer settled", 10*time.Second, func() bool { return s.settled("notify-kela") })
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}

	s.publish(ev(3, domain.EventMessageAdded, 1, "kela", "hva-90"), evID(3))
	second := startNotify(t, args...)
	got := second.waitLines(t, 1)
	waitFor(t, "consumer settled", 10*time.Second, func() bool { return s.settled("notify-kela") })
	got = completeLines(second.stdout)
	if len(got) != 1 || !strings.Contains(got[0], "message_added") {
		t.Errorf("after restart printed:\n%s\nwant only the new message_added event", strings.Join(got, "\n"))
	}
}

func TestEventRedeliveredAfterACrashBeforeAckIsNotHandledAgain(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	seenFile := filepath.Join(t.TempDir(), "seen")
	args := []string{"--org", "hva-90", "--nats-url", s.url(), "--seen-file", seenFile, "--ack-wait", "1s", "--log-level", "debug"}
	s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))

	// A failure there hands the event back; a real crash leaves it for the 1-second ack wait:
	// either way it comes back, already in the seen file.
	crash := errors.New("simulated crash between handling and ack")
	beforeAck = func(string) error { return crash }
	first := startNotify(t, args...)
	err := first.endsByItself(t)
	beforeAck = nil
	if !errors.Is(err, crash) {
		t.Fatalf("run: %v, want the simulated crash", err)
	}
	if got := completeLines(first.stdout); len(got) != 1 {
		t.Fatalf("first run printed %q", got)
	}
	if info := s.consumerInfo("notify-hva-90"); info.NumAckPending != 1 {
		t.Fatalf("ack pending %d, want the event unacknowledged", info.NumAckPending)
	}

	second := startNotify(t, args...)
	waitFor(t, "the redelivery to be skipped", 15*time.Second, func() bool {
		return strings.Contains(second.stderr.String(), `"msg":"duplicate event skipped","id":"`+evID(1))
	})
	s.publish(ev(2, domain.EventReceived, 1, "kela", "hva-90"), evID(2))
	got := second.waitLines(t, 1)
	waitFor(t, "consumer settled", 10*time.Second, func() bool { return s.settled("notify-hva-90") })
	got = completeLines(second.stdout)
	if len(got) != 1 || !strings.Contains(got[0], "received by hva-90") {
		t.Errorf("after the crash printed:\n%s\nwant only the new event", strings.Join(got, "\n"))
	}
}

func TestSurvivesARestartOfNATS(t *testing.T) {
	dir := t.TempDir()
	s := startNATS(t, dir, -1)
	n := startNotify(t, "--org", "hva-90", "--nats-url", s.url())
	s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))
	n.waitLines(t, 1)

	s.stop()
	waitFor(t, "the disconnect to be noticed", 10*time.Second, func() bool {
		return strings.Contains(n.stderr.String(), "nats disconnected")
	})
	s = startNATS(t, dir, s.port)
	s.publish(ev(2, domain.EventReceived, 1, "kela", "hva-90"), evID(2))
	got := n.waitLines(t, 2)
	if !strings.Contains(got[1], "received by hva-90") {
		t.Errorf("after the NATS restart printed %q", got[1])
	}

	// A restart on a new store (the stream made again, our consumer gone): the consumer is
	// made again, and the redelivered old event is still printed only once.
	s.stop()
	s = startNATS(t, t.TempDir(), s.port)
	s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))
	s.publish(ev(3, domain.EventMessageAdded, 1, "kela", "hva-90"), evID(3))
	got = n.waitLines(t, 3)
	waitFor(t, "consumer settled", 10*time.Second, func() bool { return s.settled("notify-hva-90") })
	if got = completeLines(n.stdout); len(got) != 3 || !strings.Contains(got[2], "message_added") {
		t.Errorf("after a restart on a new store printed:\n%s", strings.Join(got, "\n"))
	}
}

// hookServer is a webhook that answers with status(id) and records every attempt.
type hookServer struct {
	mu       sync.Mutex
	attempts map[string]int
	types    []string
	srv      *httptest.Server
}

func newHookServer(t *testing.T, status func(id string) int) *hookServer {
	h := &hookServer{attempts: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ce, err := broker.Decode(body)
		if err != nil || r.Method != http.MethodPost {
			http.Error(w, "not a CloudEvent", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.attempts[ce.ID]++
		h.types = append(h.types, r.Header.Get("Content-Type"))
		h.mu.Unlock()
		w.WriteHeader(status(ce.ID))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookServer) attemptsOf(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts[id]
}

func TestWebhookReceivesEveryEventAsACloudEvent(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	hook := newHookServer(t, func(string) int { return http.StatusAccepted })
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	n := startNotify(t, "--org", "hva-90", "--nats-url", s.url(), "--webhook", hook.srv.URL, "--dead-letter", dead)
	for i := 1; i <= 3; i++ {
		s.publish(ev(i, domain.EventCreated, i, "kela", "hva-90"), evID(i))
	}
	n.waitLines(t, 3)
	waitFor(t, "consumer settled", 10*time.Second, func() bool { return s.settled("notify-hva-90") })
	for i := 1; i <= 3; i++ {
		if got := hook.attemptsOf(evID(i)); got != 1 {
			t.Errorf("event %d posted %d times, want 1", i, got)
		}
	}
	for _, ct := range hook.types {
		if ct != "application/cloudevents+json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead-letter file written although every post succeeded: %v", err)
	}
}

func TestFailingWebhookEndsInTheDeadLetterFileAfterMaxAttempts(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	refused := evID(2)
	hook := newHookServer(t, func(id string) int {
		if id == refused {
			return http.StatusUnprocessableEntity // final at once
		}
		return http.StatusServiceUnavailable // retried
	})
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	n := startNotify(t, "--org", "hva-90", "--nats-url", s.url(), "--webhook", hook.srv.URL, "--dead-letter", dead,
		"--webhook-max-attempts", "3", "--webhook-backoff", "1ms", "--webhook-max-backoff", "4ms")
	s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))
	s.publish(ev(2, domain.EventCreated, 2, "kela", "hva-90"), evID(2))
	n.waitLines(t, 2)
	waitFor(t, "consumer settled", 15*time.Second, func() bool { return s.settled("notify-hva-90") })

	if got := hook.attemptsOf(evID(1)); got != 3 {
		t.Errorf("503s: %d attempts, want 3", got)
	}
	if got := hook.attemptsOf(refused); got != 1 {
		t.Errorf("422: %d attempts, want 1", got)
	}
	f, err := os.Open(dead)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var letters []deadLetter
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d deadLetter
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		letters = append(letters, d)
	}
	if len(letters) != 2 {
		t.Fatalf("%d dead letters, want 2", len(letters))
	}
	for i, want := range []struct {
		id       string
		attempts int
		err      string
	}{{evID(1), 3, "503"}, {refused, 1, "422"}} {
		d := letters[i]
		ce, err := broker.Decode(d.Event)
		if err != nil || ce.ID != want.id || d.Attempts != want.attempts || !strings.Contains(d.Error, want.err) ||
			d.NATSSubject != "referrals.v1.kela.hva-90.created" || d.StreamSeq == 0 {
			t.Errorf("dead letter %d: %+v (event %s, %v), want id %s after %d attempts with %s", i, d, ce.ID, err, want.id, want.attempts, want.err)
		}
	}
}

func TestSelfAddressedEventMatchingBothFiltersIsDeliveredOnce(t *testing.T) {
	// referrals.v1.*.<org>.> and referrals.v1.<org>.> overlap at <org>.<org>; the stream
	// delivers such a message once, not once per filter.
	s := startNATS(t, t.TempDir(), -1)
	s.publish(ev(1, domain.EventCreated, 1, "hva-08", "hva-08"), evID(1))
	s.publish(ev(2, domain.EventCreated, 2, "kela", "hva-08"), evID(2))
	n := startNotify(t, "--org", "hva-08", "--nats-url", s.url())
	n.waitLines(t, 2)
	waitFor(t, "consumer settled", 10*time.Second, func() bool { return s.settled("notify-hva-08") })
	if info := s.consumerInfo("notify-hva-08"); info.Delivered.Stream != 2 || info.Delivered.Consumer != 2 {
		t.Errorf("delivered stream seq %d, %d deliveries; want 2 and 2", info.Delivered.Stream, info.Delivered.Consumer)
	}
	if got := completeLines(n.stdout); len(got) != 2 {
		t.Errorf("printed %q", got)
	}
}

func TestConfigRefusals(t *testing.T) {
	cases := map[string][]string{
		"no org":                    {},
		"unknown org":               {"--org", "hva-99"},
		"webhook without dead file": {"--org", "kela", "--webhook", "http://127.0.0.1:1/hook"},
		"webhook not http":          {"--org", "kela", "--webhook", "ftp://x/y", "--dead-letter", "d"},
		"zero attempts":             {"--org", "kela", "--webhook", "http://x/y", "--dead-letter", "d", "--webhook-max-attempts", "0"},
		"deliver policy":            {"--org", "kela", "--deliver", "yesterday"},
		"short ack wait":            {"--org", "kela", "--ack-wait", "10ms"},
		"stray argument":            {"--org", "kela", "now"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
				t.Fatal("run started, want a refusal")
			}
		})
	}
	t.Run("flags that would do nothing or be ignored", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			env  map[string]string
			want string
		}{
			{[]string{"--org", "kela", "--dead-letter", "dead.jsonl"}, nil, "--dead-letter"},
			{[]string{"--org", "kela"}, map[string]string{"NOTIFY_DEAD_LETTER": "dead.jsonl"}, "--dead-letter"},
			{[]string{"--org", "kela", "--log-level", "verbose"}, nil, `--log-level "verbose"`},
			{[]string{"--org", "kela"}, map[string]string{"NOTIFY_LOG_LEVEL": "trace"}, `--log-level "trace"`},
		} {
			_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, domain.DefaultRegistry(), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v with env %v: %v, want an error naming %s", tc.args, tc.env, err, tc.want)
			}
		}
		c, err := parseConfig([]string{"--org", "kela", "--log-level", "WARN"}, func(string) string { return "" }, domain.DefaultRegistry(), io.Discard)
		if err != nil || c.logLevel != slog.LevelWarn {
			t.Errorf("--log-level WARN: level %v, %v", c.logLevel, err)
		}
	})
	t.Run("environment", func(t *testing.T) {
		env := map[string]string{"NOTIFY_ORG": "hva-08", "NATS_URL": "nats://example:4222"}
		c, err := parseConfig(nil, func(k string) string { return env[k] }, domain.DefaultRegistry(), io.Discard)
		if err != nil || c.org != "hva-08" || c.natsURL != "nats://example:4222" || c.durable != "notify-hva-08" {
			t.Errorf("config %+v, err %v", c, err)
		}
	})
}

func TestSeenSetForgetsTheOldestAndSurvivesReopening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seen")
	s, err := openSeen(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		if err := s.Add("id-" + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Has("id-1") || !s.Has("id-2") || !s.Has("id-4") || s.Len() != 3 {
		t.Errorf("after 4 adds to a set of 3: has id-1 %v, id-2 %v, id-4 %v, len %d", s.Has("id-1"), s.Has("id-2"), s.Has("id-4"), s.Len())
	}
	s.Close()

	s, err = openSeen(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.Has("id-1") || !s.Has("id-2") || !s.Has("id-3") || !s.Has("id-4") {
		t.Errorf("reopened set lost or kept the wrong ids")
	}
	for i := 5; i <= 20; i++ {
		if err := s.Add("id-" + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines >= 2*3 {
		t.Errorf("file has %d lines, want it compacted below %d", lines, 2*3)
	}
	s, err = openSeen(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Has("id-18") || !s.Has("id-19") || !s.Has("id-20") || s.Has("id-17") {
		t.Errorf("after compaction the set does not hold the last three ids")
	}

	mem, _ := openSeen("", 2)
	mem.Add("a")
	mem.Add("a")
	mem.Add("b")
	if !mem.Has("a") || !mem.Has("b") {
		t.Errorf("a repeated add evicted an id")
	}
}

func TestStopDuringAWebhookPostLetsThePostFinishAndAcksTheEvent(t *testing.T) {
	// SIGTERM while the webhook is answering: the post in flight is finished and the event
	// acknowledged, so a restart neither prints nor posts it again.
	s := startNATS(t, t.TempDir(), -1)
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	hook := newHookServer(t, func(string) int {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
		return http.StatusOK
	})
	var once sync.Once
	releaseHook := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseHook) // before the hook server's Close, which waits for its handlers
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	args := []string{"--org", "hva-90", "--nats-url", s.url(), "--webhook", hook.srv.URL, "--dead-letter", dead,
		"--seen-file", filepath.Join(t.TempDir(), "seen"), "--ack-wait", "1s"}
	s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))

	first := startNotify(t, args...)
	select {
	case <-arrived:
	case <-time.After(15 * time.Second):
		t.Fatal("the event was not posted")
	}
	first.cancel() // SIGTERM with the post in flight
	releaseHook()
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	if info := s.consumerInfo("notify-hva-90"); info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("after the stop: %d unacknowledged, %d pending; want the posted event acknowledged", info.NumAckPending, info.NumPending)
	}

	second := startNotify(t, args...)
	s.publish(ev(2, domain.EventCreated, 2, "kela", "hva-90"), evID(2))
	waitFor(t, "the new event to be handled", 15*time.Second, func() bool {
		return strings.Contains(second.stdout.String(), refID(2)) && hook.attemptsOf(evID(2)) == 1 && s.settled("notify-hva-90")
	})
	if got := completeLines(second.stdout); len(got) != 1 {
		t.Errorf("after the restart printed:\n%s\nwant only the new event", strings.Join(got, "\n"))
	}
	if got := hook.attemptsOf(evID(1)); got != 1 {
		t.Errorf("event posted %d times, want 1", got)
	}
}

func TestWebhookRedirectIsFollowedOnlyWhenItKeepsThePost(t *testing.T) {
	// Go's client follows a 301, 302 or 303 to a POST with a bodiless GET; a receiver that
	// answers that GET with 200 (as a page behind an http-to-https redirect may) would count
	// as a delivery and the event would be acknowledged without anyone having it.
	cases := []struct {
		name      string
		path      string
		delivered bool
	}{
		{"301 would turn it into a GET", "/old", false},
		{"307 keeps the POST", "/moved", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var posts, others int
			mux := http.NewServeMux()
			mux.HandleFunc("/hook/", func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				if _, err := broker.Decode(body); err == nil && r.Method == http.MethodPost {
					posts++
				} else {
					others++
				}
				mu.Unlock()
				w.WriteHeader(http.StatusOK) // whatever came
			})
			mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/hook/", http.StatusMovedPermanently)
			})
			mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/hook/", http.StatusTemporaryRedirect)
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)

			s := startNATS(t, t.TempDir(), -1)
			dead := filepath.Join(t.TempDir(), "dead.jsonl")
			n := startNotify(t, "--org", "hva-90", "--nats-url", s.url(), "--webhook", srv.URL+tc.path, "--dead-letter", dead)
			s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))
			n.waitLines(t, 1)
			waitFor(t, "consumer settled", 10*time.Second, func() bool { return s.settled("notify-hva-90") })

			mu.Lock()
			defer mu.Unlock()
			b, err := os.ReadFile(dead)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if tc.delivered {
				if posts != 1 || others != 0 || len(b) > 0 {
					t.Errorf("%d posts, %d other requests, dead letters %q; want the event posted once", posts, others, b)
				}
				return
			}
			if others != 0 || posts != 0 {
				t.Errorf("the redirect was followed: %d posts, %d other requests", posts, others)
			}
			var d deadLetter
			if err := json.Unmarshal(b, &d); err != nil || !strings.Contains(d.Error, "301") || !strings.Contains(string(d.Event), evID(1)) {
				t.Errorf("dead letter %q (%v), want the event with the 301", b, err)
			}
		})
	}
}

func TestStopDuringAWaitBetweenWebhookRetriesHandsTheEventBackAtOnce(t *testing.T) {
	// SIGTERM while waiting to retry a failed post: the event is handed back (Nak), so a
	// restart gets it at once instead of after the ack wait, which is long here.
	s := startNATS(t, t.TempDir(), -1)
	var failing atomic.Bool
	failing.Store(true)
	hook := newHookServer(t, func(string) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	args := []string{"--org", "hva-90", "--nats-url", s.url(), "--webhook", hook.srv.URL, "--dead-letter", dead,
		"--seen-file", filepath.Join(t.TempDir(), "seen"), "--ack-wait", "30s",
		"--webhook-backoff", "1m", "--webhook-max-backoff", "1m"}
	s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))

	first := startNotify(t, args...)
	waitFor(t, "the first attempt to fail", 15*time.Second, func() bool {
		return strings.Contains(first.stderr.String(), `"msg":"webhook failed; retrying"`)
	})
	if err := first.stop(t); err != nil { // SIGTERM during the wait
		t.Fatal(err)
	}
	if got := hook.attemptsOf(evID(1)); got != 1 {
		t.Fatalf("%d attempts before the stop, want 1", got)
	}

	failing.Store(false)
	second := startNotify(t, args...)
	// Well under the 30 s ack wait: without the Nak the event comes back only after it.
	waitFor(t, "the event to be posted again and acknowledged", 5*time.Second, func() bool {
		return hook.attemptsOf(evID(1)) == 2 && s.settled("notify-hva-90")
	})
	// The first run printed the line but could not deliver the event; the restart handles
	// it in full, so the line is printed again.
	if got := completeLines(second.stdout); len(got) != 1 || !strings.Contains(got[0], refID(1)) {
		t.Errorf("after the restart printed:\n%s\nwant the event's line", strings.Join(got, "\n"))
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead-letter file written: %v", err)
	}
}

func TestAFailedDeadLetterAppendIsCutBack(t *testing.T) {
	// A write that fails part-way (the disk full, or a short write) must not leave half a
	// line for the next dead letter to be glued onto.
	letter := func(n int) deadLetter {
		return deadLetter{At: t0, Attempts: 1, Error: "webhook answered 422 (not retried)", NATSSubject: "referrals.v1.kela.hva-90.created",
			StreamSeq: uint64(n), Event: json.RawMessage(`{"id":"` + evID(n) + `"}`)}
	}
	failures := map[string]func(f *os.File, b []byte) (int, error){
		"short write": func(f *os.File, b []byte) (int, error) { return f.Write(b[:len(b)/2]) },
		"error after part of it": func(f *os.File, b []byte) (int, error) {
			n, _ := f.Write(b[:len(b)/2])
			return n, syscall.ENOSPC
		},
	}
	for name, fail := range failures {
		t.Run(name, func(t *testing.T) {
			w := &webhook{deadLetter: filepath.Join(t.TempDir(), "dead.jsonl")}
			t.Cleanup(func() { writeDeadLetter = (*os.File).Write })

			writeDeadLetter = fail
			if err := w.appendDeadLetter(letter(1)); err == nil {
				t.Fatal("the failed first append returned no error")
			}
			if b, err := os.ReadFile(w.deadLetter); err != nil && !errors.Is(err, os.ErrNotExist) || len(b) != 0 {
				t.Fatalf("after a failed first append the file holds %q (%v), want it empty or absent", b, err)
			}
			writeDeadLetter = (*os.File).Write
			if err := w.appendDeadLetter(letter(2)); err != nil {
				t.Fatal(err)
			}
			writeDeadLetter = fail
			if err := w.appendDeadLetter(letter(3)); err == nil {
				t.Fatal("the failed append returned no error")
			}
			writeDeadLetter = (*os.File).Write
			if err := w.appendDeadLetter(letter(4)); err != nil {
				t.Fatal(err)
			}

			b, err := os.ReadFile(w.deadLetter)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, l := range strings.SplitAfter(string(b), "\n") {
				if l == "" {
					continue
				}
				var d deadLetter
				if err := json.Unmarshal([]byte(l), &d); err != nil || !strings.HasSuffix(l, "\n") {
					t.Fatalf("dead-letter line %q: %v\nfile:\n%s", l, err, b)
				}
				seqs = append(seqs, d.StreamSeq)
			}
			if fmt.Sprint(seqs) != "[2 4]" {
				t.Errorf("dead letters of stream seqs %v, want [2 4]", seqs)
			}
		})
	}
}

func TestAnUnwritableDeadLetterPathIsRefusedAtStart(t *testing.T) {
	// Found only at the first dead letter, such a path would end the program there, and every
	// restart would stall on the same event.
	s := startNATS(t, t.TempDir(), -1)
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, want string
	}{
		{"directory missing", filepath.Join(dir, "missing", "dead.jsonl"), "does not exist"},
		{"a file as directory", filepath.Join(file, "dead.jsonl"), "not a directory"},
		{"the path is a directory", dir, "is a directory"},
	}
	if os.Geteuid() != 0 { // root may write anywhere
		ro := filepath.Join(dir, "read-only")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ name, path, want string }{"read-only directory", filepath.Join(ro, "dead.jsonl"), "permission denied"})
	}
	before, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Old behaviour: it starts and runs until stopped; the refusal comes at once.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			args := []string{"--org", "hva-90", "--nats-url", s.url(), "--webhook", "http://127.0.0.1:1/hook", "--dead-letter", tc.path}
			err := run(ctx, args, func(string) string { return "" }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "--dead-letter") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v; want a refusal naming --dead-letter, with %q", err, tc.want)
			}
		})
	}
	if after, err := os.ReadDir(dir); err != nil || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the checks changed the directory: %v, was %v (%v)", after, before, err)
	}
}

func TestStopRightAfterAnAckHandsTheNextEventBackAtOnce(t *testing.T) {
	// SIGTERM while the next event is on its way to the consumer (the server sends it as soon
	// as the previous one is acknowledged, one at a time): the event is handed back, so a
	// restart gets it at once instead of after the ack wait, which is long here.
	s := startNATS(t, t.TempDir(), -1)
	args := []string{"--org", "hva-90", "--nats-url", s.url(), "--seen-file", filepath.Join(t.TempDir(), "seen"),
		"--ack-wait", "30s"}
	for i := 1; i <= 3; i++ {
		s.publish(ev(i, domain.EventCreated, i, "kela", "hva-90"), evID(i))
	}
	// The stop arrives while the first event is being acknowledged.
	reached, canceled := make(chan struct{}), make(chan struct{})
	var once sync.Once
	beforeAck = func(id string) error {
		if id == evID(1) {
			once.Do(func() { close(reached); <-canceled })
		}
		return nil
	}
	t.Cleanup(func() { beforeAck = nil })
	first := startNotify(t, args...)
	select {
	case <-reached:
	case <-time.After(15 * time.Second):
		t.Fatal("the first event was not handled")
	}
	first.cancel()
	close(canceled)
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	beforeAck = nil
	handled := len(completeLines(first.stdout))

	second := startNotify(t, args...)
	// Well under the 30 s ack wait: an event left in the first run's buffer unacknowledged
	// would come back only after it.
	waitFor(t, "every event handled and acknowledged", 5*time.Second, func() bool {
		return s.settled("notify-hva-90")
	})
	if got := handled + len(completeLines(second.stdout)); got != 3 {
		t.Errorf("%d lines printed over both runs, want 3 (first run %d)", got, handled)
	}
}

func TestAWebhookSlowerThanTheAckWaitIsNotRedeliveredWhileItRuns(t *testing.T) {
	// The webhook takes 2½ ack waits to answer: the notifier tells JetStream the event is in
	// progress while it waits, so the server does not redeliver it under the POST.
	s := startNATS(t, t.TempDir(), -1)
	hook := newHookServer(t, func(string) int {
		time.Sleep(2500 * time.Millisecond)
		return http.StatusNoContent
	})
	n := startNotify(t, "--org", "hva-90", "--nats-url", s.url(), "--webhook", hook.srv.URL,
		"--dead-letter", filepath.Join(t.TempDir(), "dead.jsonl"), "--ack-wait", "1s")
	s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))
	n.waitLines(t, 1)
	waitFor(t, "the event to be acknowledged", 15*time.Second, func() bool { return s.settled("notify-hva-90") })
	info := s.consumerInfo("notify-hva-90")
	if info.Delivered.Consumer != 1 || info.NumRedelivered != 0 {
		t.Errorf("delivered %d times (%d redelivered), want once", info.Delivered.Consumer, info.NumRedelivered)
	}
	if got := hook.attemptsOf(evID(1)); got != 1 {
		t.Errorf("%d posts, want 1", got)
	}
	if strings.Contains(n.stderr.String(), "duplicate event skipped") {
		t.Error("a redelivery reached the notifier")
	}
}

func TestAnUnwritableSeenFileEndsTheRunWithTheEventHandedBack(t *testing.T) {
	// The seen file cannot take the id (a full disk): the event must not be acknowledged, or
	// a re-publish of it after a restart would be printed again unnoticed. It is handed back,
	// so the next start has it at once, not after the 30-second ack wait.
	writeSeen = func(*os.File, string) (int, error) { return 0, syscall.ENOSPC }
	t.Cleanup(func() { writeSeen = (*os.File).WriteString })
	s := startNATS(t, t.TempDir(), -1)
	s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))
	args := []string{"--org", "hva-90", "--nats-url", s.url(), "--seen-file", filepath.Join(t.TempDir(), "seen"), "--ack-wait", "30s"}
	n := startNotify(t, args...)
	err := n.endsByItself(t)
	if err == nil || !strings.Contains(err.Error(), "seen file") {
		t.Fatalf("run: %v, want the seen file's error", err)
	}
	if info := s.consumerInfo("notify-hva-90"); info.AckFloor.Stream != 0 {
		t.Errorf("ack floor at stream seq %d, want the event unacknowledged", info.AckFloor.Stream)
	}
	if !strings.Contains(n.stderr.String(), "handed back for redelivery") {
		t.Errorf("the event was not handed back; log:\n%s", n.stderr.String())
	}

	writeSeen = (*os.File).WriteString
	again := startNotify(t, args...)
	start := time.Now()
	if got := again.waitLines(t, 1); !strings.Contains(got[0], "created") {
		t.Errorf("after the restart printed %q, want the created event", got)
	}
	if waited := time.Since(start); waited > 15*time.Second {
		t.Errorf("the event came back after %v: it waited for the ack wait", waited)
	}
	waitFor(t, "consumer settled", 10*time.Second, func() bool { return s.settled("notify-hva-90") })
}
