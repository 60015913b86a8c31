package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
)

// fakeMsg is the little of a JetStream message that webhook.deliver uses.
type fakeMsg struct {
	jetstream.Msg
	data []byte
}

func (m fakeMsg) Data() []byte      { return m.data }
func (m fakeMsg) Subject() string   { return "referrals.v1.kela.hva-90.created" }
func (m fakeMsg) InProgress() error { return nil }

// answering is a webhook receiver that gives the answers in turn (the last one from then on)
// and records when each attempt came.
type answering struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter)
	times   []time.Time
}

func (a *answering) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	ans := a.answers[min(len(a.times), len(a.answers))-1]
	a.mu.Unlock()
	ans(w)
}

func (a *answering) attempts() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.times...)
}

func status(code int, header ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

// deliverTo runs one webhook delivery of an event to url.
func deliverTo(t *testing.T, url string, backoff, maxBackoff time.Duration) (dead bool, deadFile string, err error) {
	t.Helper()
	deadFile = filepath.Join(t.TempDir(), "dead.jsonl")
	w := &webhook{url: url, client: &http.Client{Timeout: 2 * time.Second, CheckRedirect: keepPOST}, maxAttempts: 3,
		backoff: backoff, maxBackoff: maxBackoff, deadLetter: deadFile, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dead, err = w.deliver(ctx, fakeMsg{data: []byte(`{"id":"e1"}`)}, broker.CloudEvent{ID: "e1"}, 1)
	return dead, deadFile, err
}

// TestWebhookRetriesWhatMayPassAndNotWhatWillNot: a timeout, a rate limit or a server error
// is tried again; any other refusal is final at once (the event is dead-lettered).
func TestWebhookRetriesWhatMayPassAndNotWhatWillNot(t *testing.T) {
	for _, code := range []int{408, 429, 500, 502, 503, 504, 400, 401, 404, 409, 422} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			a := &answering{answers: []func(http.ResponseWriter){status(code), status(http.StatusNoContent)}}
			srv := httptest.NewServer(a)
			defer srv.Close()
			dead, _, err := deliverTo(t, srv.URL, time.Millisecond, time.Millisecond)
			retried := code == 408 || code == 429 || code >= 500
			if err != nil || dead == retried || (len(a.attempts()) == 2) != retried {
				t.Errorf("%d first: %d attempts, dead-lettered %v, %v; want retried %v", code, len(a.attempts()), dead, err, retried)
			}
		})
	}
}

// TestWebhookWaitsAsRetryAfterSaysWithinItsBound: the receiver's Retry-After sets the wait
// before the next attempt, but never beyond --webhook-max-backoff (with one event in flight
// per organisation, an unbounded wait would hold up all its notifications).
func TestWebhookWaitsAsRetryAfterSaysWithinItsBound(t *testing.T) {
	a := &answering{answers: []func(http.ResponseWriter){status(503, "Retry-After", "1"), status(http.StatusNoContent)}}
	srv := httptest.NewServer(a)
	defer srv.Close()
	if dead, _, err := deliverTo(t, srv.URL, time.Millisecond, 5*time.Second); dead || err != nil {
		t.Fatalf("dead-lettered %v, %v", dead, err)
	}
	if at := a.attempts(); len(at) != 2 || at[1].Sub(at[0]) < 900*time.Millisecond {
		t.Errorf("attempts at %v: want the second a second after the first (Retry-After: 1)", at)
	}

	b := &answering{answers: []func(http.ResponseWriter){status(503, "Retry-After", "3600"), status(http.StatusNoContent)}}
	srv2 := httptest.NewServer(b)
	defer srv2.Close()
	if dead, _, err := deliverTo(t, srv2.URL, time.Millisecond, 100*time.Millisecond); dead || err != nil {
		t.Fatalf("Retry-After beyond the bound: dead-lettered %v, %v", dead, err)
	}
	if at := b.attempts(); len(at) != 2 || at[1].Sub(at[0]) > 2*time.Second {
		t.Errorf("attempts at %v: want the second within the 100ms bound", at)
	}
}

// TestWebhookURLSecretStaysOutOfLogsAndDeadLetters: a token in the webhook URL's query is
// never printed — not at start, not in a failure, not in the dead-letter file.
func TestWebhookURLSecretStaysOutOfLogsAndDeadLetters(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hook?token=s3cret-value"
	srv.Close() // nothing listens there now: the posts fail with a connection error
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	n := startNotify(t, "--org", "hva-90", "--nats-url", s.url(), "--webhook", url, "--dead-letter", dead,
		"--webhook-max-attempts", "2", "--webhook-backoff", "1ms", "--webhook-max-backoff", "2ms", "--log-level", "debug")
	s.publish(ev(1, domain.EventCreated, 1, "kela", "hva-90"), evID(1))
	waitFor(t, "the dead letter", 15*time.Second, func() bool { _, err := os.Stat(dead); return err == nil })
	waitFor(t, "consumer settled", 10*time.Second, func() bool { return s.settled("notify-hva-90") })
	b, err := os.ReadFile(dead)
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"the log": n.stderr.String(), "the dead-letter file": string(b), "the output": n.stdout.String()} {
		if strings.Contains(text, "s3cret") {
			t.Errorf("%s holds the URL's secret:\n%s", what, text)
		}
	}
	if !strings.Contains(n.stderr.String(), "webhook failed") {
		t.Errorf("no failure logged:\n%s", n.stderr.String())
	}
}
