package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/testkit"
	"github.com/kela-hva/referrals/store"
)

// The crash proof (issue 5, item 4): referrald runs as a real process (this test binary
// re-executed as TestHelperReferraldProcess, which calls run as main does), takes concurrent
// creates and transitions, and is killed with SIGKILL at a random moment. After a restart on
// the same data dir every acknowledged write is there, every referral has exactly one created
// event (and all its other events, in order) in the stream, retried idempotency keys return
// the same referrals, and bbolt's consistency check passes.

// childArgsEnv carries the JSON-encoded arguments of the helper process.
const childArgsEnv = "REFERRALD_TEST_CHILD_ARGS"

// devMonday starts the business clock on a Monday morning, so no deadline warning or overdue
// event fires while a test runs.
const devMonday = "2026-11-23T08:00:00+02:00"

// TestHelperReferraldProcess is not a test: it is referrald's main for the crash test's child
// processes — the command itself (referrald: GC and GOMAXPROCS tuning, the process's
// environment, run) in this test binary — and is skipped when run as a test.
func TestHelperReferraldProcess(t *testing.T) {
	raw := os.Getenv(childArgsEnv)
	if raw == "" {
		t.Skip("helper process of TestCrashLosesNoAcknowledgedWrite")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, "child args:", err)
		os.Exit(2)
	}
	os.Exit(referrald(args, os.Getenv))
}

// process is referrald running in a child process.
type process struct {
	t       *testing.T
	cmd     *exec.Cmd
	logs    *syncBuffer
	base    string
	natsURL string
	exited  chan error
}

// startProcess starts referrald --dev on dir with random ports and waits until it listens.
func startProcess(t *testing.T, dir string) *process {
	t.Helper()
	args, _ := json.Marshal([]string{"--dev", "--data-dir", dir, "--addr", "127.0.0.1:0",
		"--nats-listen", "127.0.0.1:0", "--dev-clock-start", devMonday, "--shutdown-grace", "20s"})
	p := &process{t: t, logs: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperReferraldProcess$", "-test.timeout=5m")
	// The service's own settings come from the flags alone: a NATS_URL or REFERRAL_* of the
	// developer's shell would point the child elsewhere.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "NATS_URL=") || strings.HasPrefix(kv, "REFERRAL_")
	})
	p.cmd.Env = append(env, childArgsEnv+"="+string(args))
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	waitFor(t, "the child to listen", 30*time.Second, func() bool {
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("child exited before listening: %v\n%s", err, p.logs.String())
		default:
		}
		return logField(p.logs.String(), "listening", "addr") != ""
	})
	p.base = "http://" + logField(p.logs.String(), "listening", "addr")
	p.natsURL = logField(p.logs.String(), "embedded nats listening", "url")
	return p
}

// kill ends the child with SIGKILL: no shutdown, no flush.
func (p *process) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	<-p.exited
}

// stop ends the child with SIGTERM and requires a clean exit.
func (p *process) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Fatalf("child exit: %v\n%s", err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		p.t.Fatal("child did not stop on SIGTERM")
	}
}

// mintToken signs a token with dir's dev key.
func mintToken(t *testing.T, dir, org string, role domain.Role) string {
	t.Helper()
	key, err := api.ReadDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.MintToken(key, "u-"+org, domain.OrgID(org), []domain.Role{role}, "Test User", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// apiClient is safe to use from many goroutines (no t.Fatal): errors are returned.
var apiClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

// call sends a request with a purpose and returns the status, headers and JSON body.
func call(base, method, path, token, body string, headers ...string) (int, http.Header, map[string]any, error) {
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Purpose", "benefit_processing")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil && resp.StatusCode < 300 {
		return resp.StatusCode, resp.Header, nil, fmt.Errorf("%s %s: body: %w", method, path, err)
	}
	return resp.StatusCode, resp.Header, m, nil
}

// readyz returns /readyz's status and checks.
func readyz(t *testing.T, base string) (string, map[string]any) {
	t.Helper()
	_, _, m, err := call(base, "GET", "/readyz", "", "")
	if err != nil {
		t.Fatal(err)
	}
	checks, _ := m["checks"].(map[string]any)
	s, _ := m["status"].(string)
	return s, checks
}

// waitDrained waits until the service is ready and its outbox is empty.
func waitDrained(t *testing.T, base string) {
	t.Helper()
	waitFor(t, "the outbox to drain", 30*time.Second, func() bool {
		status, checks := readyz(t, base)
		return status == "ready" && checks["outbox_backlog"] == "0"
	})
}

// streamEvent is one message of the REFERRALS stream.
type streamEvent struct {
	Subject string
	MsgID   string
	Event   broker.CloudEvent
	Data    broker.EventData
}

// readStream returns every message of the stream, in stream order.
func readStream(t *testing.T, natsURL string) []streamEvent {
	t.Helper()
	nc, js := testkit.JetStream(t, natsURL)
	defer nc.Close() // once the stream is read, not at the end of the test
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, broker.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := int(info.State.Msgs)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []streamEvent
	for len(out) < want {
		batch, err := cons.Fetch(min(want-len(out), 500), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			ce, err := broker.Decode(m.Data())
			if err != nil {
				t.Fatalf("stream message %s is not a CloudEvent: %v", m.Subject(), err)
			}
			d, err := ce.EventData()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, streamEvent{Subject: m.Subject(), MsgID: m.Headers().Get("Nats-Msg-Id"), Event: ce, Data: d})
		}
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d stream messages", len(out), want)
		}
	}
	return out
}

// changeEvents returns the events of each referral that record its changes (created,
// received, status_changed), in stream order, leaving out deadline alerts and messages.
func changeEvents(events []streamEvent) map[string][]streamEvent {
	by := map[string][]streamEvent{}
	for _, e := range events {
		switch strings.TrimPrefix(e.Event.Type, domain.EventTypePrefix) {
		case string(domain.EventCreated), string(domain.EventReceived), string(domain.EventStatusChanged):
			by[e.Event.Subject] = append(by[e.Event.Subject], e)
		}
	}
	return by
}

// listAll pages through the caller's referrals in direction and returns id → status and
// version.
func listAll(t *testing.T, base, token, direction string) map[string]ackedState {
	t.Helper()
	out := map[string]ackedState{}
	cursor := ""
	for {
		path := "/v1/referrals?direction=" + direction + "&limit=100"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		code, _, m, err := call(base, "GET", path, token, "")
		if err != nil || code != http.StatusOK {
			t.Fatalf("list: %d %v %v", code, m, err)
		}
		items, _ := m["items"].([]any)
		for _, it := range items {
			r := it.(map[string]any)
			out[r["id"].(string)] = ackedState{status: r["status"].(string), version: int(r["version"].(float64))}
		}
		next, _ := m["next_cursor"].(string)
		if next == "" {
			return out
		}
		cursor = next
	}
}

// ackedState is what an acknowledged write said about a referral.
type ackedState struct {
	status  string
	version int
}

// lifecycle is the path the crash test's workers take each referral along, one version per
// step; change events follow it too.
var lifecycle = []struct {
	action, body, status, event string
}{
	{"", "", "sent", "created"},
	{"receive", "", "received", "received"},
	{"start", "{}", "in_progress", "status_changed"},
	{"complete", `{"outcome":"assessment_started","text":"Arviointi aloitettu."}`, "completed", "status_changed"},
}

func stepOf(status string) int {
	return slices.IndexFunc(lifecycle, func(s struct{ action, body, status, event string }) bool { return s.status == status })
}

// ledger records what the service acknowledged.
type ledger struct {
	mu      sync.Mutex
	keys    []string          // every idempotency key sent, acknowledged or not
	created map[string]string // key → id, for 201s
	state   map[string]ackedState
}

func (l *ledger) sent(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = append(l.keys, key)
}

func (l *ledger) acked(key, id string, st ackedState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if key != "" {
		l.created[key] = id
	}
	l.state[id] = st
}

func (l *ledger) createdCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.created)
}

// work creates referrals and moves each along the lifecycle until a request fails (the
// service is gone). Any answer but 201/200 is a test failure.
func work(t *testing.T, base, kela, county string, w int, l *ledger) {
	for i := 0; ; i++ {
		key := fmt.Sprintf("crash-w%d-%d", w, i)
		l.sent(key)
		code, _, m, err := call(base, "POST", "/v1/referrals", kela, needJSON, "Idempotency-Key", key)
		if err != nil {
			return
		}
		if code != http.StatusCreated {
			t.Errorf("create %s: %d %v", key, code, m)
			return
		}
		id := m["id"].(string)
		l.acked(key, id, ackedState{status: m["status"].(string), version: int(m["version"].(float64))})
		for _, step := range lifecycle[1:] {
			code, _, m, err := call(base, "POST", "/v1/referrals/"+id+"/"+step.action, county, step.body)
			if err != nil {
				return
			}
			if code != http.StatusOK {
				t.Errorf("%s %s: %d %v", step.action, id, code, m)
				return
			}
			l.acked("", id, ackedState{status: m["status"].(string), version: int(m["version"].(float64))})
		}
	}
}

func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	first := startProcess(t, dir)
	kela := mintToken(t, dir, "kela", domain.RoleKelaHandler)
	county := mintToken(t, dir, "hva-90", domain.RoleSocialWorker)

	l := &ledger{created: map[string]string{}, state: map[string]ackedState{}}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() { work(t, first.base, kela, county, w, l) })
	}
	waitFor(t, "acknowledged creates", 30*time.Second, func() bool { return l.createdCount() >= 24 })
	extra := rand.N(400 * time.Millisecond)
	time.Sleep(extra) // a random moment: the point is not to choose it
	first.kill()
	wg.Wait()
	t.Logf("killed %s after the 24th acknowledged create: %d creates and %d referral states acknowledged, %d keys sent",
		extra, len(l.created), len(l.state), len(l.keys))

	second := startProcess(t, dir)

	// Every acknowledged write is there: creates by id, transitions by status and version.
	// One request per worker was in flight at the kill, so a referral may be one step further
	// than acknowledged, never behind and never two steps ahead.
	for id, acked := range l.state {
		code, _, m, err := call(second.base, "GET", "/v1/referrals/"+id, county, "")
		if err != nil || code != http.StatusOK {
			t.Errorf("acknowledged referral %s: %d %v %v", id, code, m, err)
			continue
		}
		st, v := m["status"].(string), int(m["version"].(float64))
		ahead := v - acked.version
		if ahead < 0 || ahead > 1 || stepOf(st) != stepOf(acked.status)+ahead {
			t.Errorf("referral %s is %s v%d, acknowledged %s v%d", id, st, v, acked.status, acked.version)
		}
	}

	// Retrying every key returns the acknowledged referral; keys whose create was in flight
	// return the referral it made, or make it now.
	for _, key := range l.keys {
		code, h, m, err := call(second.base, "POST", "/v1/referrals", kela, needJSON, "Idempotency-Key", key)
		if err != nil || code != http.StatusCreated {
			t.Fatalf("retry %s: %d %v %v", key, code, m, err)
		}
		if id, ok := l.created[key]; ok && (m["id"] != id || h.Get("Idempotent-Replayed") != "true") {
			t.Errorf("retry %s: %v (replayed %q), want the acknowledged %s", key, m["id"], h.Get("Idempotent-Replayed"), id)
		}
	}

	// Every stored referral has exactly one created event and every change after it, in
	// order; no event is in the stream twice; no event names a referral that is not stored.
	waitDrained(t, second.base)
	stored := listAll(t, second.base, kela, "outgoing")
	for _, id := range l.created {
		if _, ok := stored[id]; !ok {
			t.Errorf("acknowledged referral %s is not listed", id)
		}
	}
	events := readStream(t, second.natsURL)
	seen := map[string]bool{}
	for _, e := range events {
		if seen[e.Event.ID] {
			t.Errorf("event %s (%s) is in the stream twice", e.Event.ID, e.Event.Type)
		}
		seen[e.Event.ID] = true
		if e.MsgID != e.Event.ID {
			t.Errorf("event %s has Nats-Msg-Id %q", e.Event.ID, e.MsgID)
		}
	}
	byRef := changeEvents(events)
	for id, st := range stored {
		var got []string
		for _, e := range byRef[id] {
			got = append(got, strings.TrimPrefix(e.Event.Type, domain.EventTypePrefix)+":"+string(e.Data.Status))
		}
		var want []string
		for _, step := range lifecycle[:st.version] {
			want = append(want, step.event+":"+step.status)
		}
		if !slices.Equal(got, want) {
			t.Errorf("referral %s (%s v%d) has events %v, want %v", id, st.status, st.version, got, want)
		}
	}
	for id := range byRef {
		if _, ok := stored[id]; !ok {
			t.Errorf("events for referral %s, which is not stored", id)
		}
	}
	t.Logf("%d referrals stored, %d events in the stream", len(stored), len(events))

	// bbolt's consistency check on the file, with the service stopped.
	second.stop()
	db, err := store.Open(filepath.Join(dir, "referrals.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Check(); err != nil {
		t.Errorf("bbolt check after the crash: %v", err)
	}
	if err := db.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Error(err)
	}
}
