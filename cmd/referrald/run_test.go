package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

// syncBuffer collects a running program's output.
type syncBuffer = testkit.Buffer

// service is one running referrald, started through run as main does.
type service struct {
	t       *testing.T
	dir     string
	base    string // http://127.0.0.1:port
	natsURL string // embedded server's URL, "" with an external one
	logs    *syncBuffer
	stop    func()
}

// logField returns field of the first JSON log line whose msg is msg.
func logField(logs, msg, field string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			s, _ := m[field].(string)
			return s
		}
	}
	return ""
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, what, d, cond)
}

func startService(t *testing.T, dir string, extra ...string) *service {
	t.Helper()
	s := &service{t: t, dir: dir, logs: &syncBuffer{}}
	args := append([]string{"--dev", "--data-dir", dir, "--addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, io.Discard, s.logs) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("run did not stop")
			}
		})
	}
	t.Cleanup(s.stop)
	waitFor(t, "listening", 20*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("run ended: %v\n%s", err, s.logs.String())
		default:
		}
		return logField(s.logs.String(), "listening", "addr") != ""
	})
	s.base = "http://" + logField(s.logs.String(), "listening", "addr")
	s.natsURL = logField(s.logs.String(), "embedded nats listening", "url")
	return s
}

func (s *service) token(org string, role domain.Role) string {
	s.t.Helper()
	key, err := api.ReadDevKey(s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	tok, err := api.MintToken(key, "u-"+org, domain.OrgID(org), []domain.Role{role}, "Test User", time.Now(), time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

func (s *service) do(method, path, token, body string, headers ...string) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Purpose", "benefit_processing")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

const needJSON = `{"kind":"social_work_need","urgency":"normal","kela_case_ref":"TO-2026-0012345",
 "client":{"personal_id":"131052-308T","name":"Matti Meikäläinen","home_municipality":"091","language":"fi","needs_interpreter":false,"phone":"+358401234567","can_use_eservices":false},
 "social_work_need":{"need_flags":["housing_risk","released_from_prison"],"consent":"given","immediate_need":false,"description":"Released 2026-11-20, no address yet."}}`

// streamMessages reads every message of the REFERRALS stream.
func streamMessages(t *testing.T, url string, want int) []jetstream.Msg {
	t.Helper()
	nc, js := testkit.JetStream(t, url)
	defer nc.Close() // once the stream is read, not at the end of the test
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stream jetstream.Stream
	var err error
	waitFor(t, "stream", 10*time.Second, func() bool {
		stream, err = js.Stream(ctx, broker.StreamName)
		return err == nil
	})
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for len(out) < want {
		batch, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d events", len(out), want)
		}
	}
	return out
}

func TestEventsReachNATSWithoutPersonalData(t *testing.T) {
	s := startService(t, t.TempDir())
	kela, hki := s.token("kela", domain.RoleKelaHandler), s.token("hva-90", domain.RoleSocialWorker)
	status, ref := s.do("POST", "/v1/referrals", kela, needJSON)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, ref)
	}
	id := ref["id"].(string)
	for _, step := range []struct{ action, body string }{
		{"receive", ""}, {"start", "{}"}, {"complete", `{"outcome":"assessment_started","text":"Arviointi aloitettu."}`},
	} {
		if st, body := s.do("POST", "/v1/referrals/"+id+"/"+step.action, hki, step.body); st != http.StatusOK {
			t.Fatalf("%s: %d %v", step.action, st, body)
		}
	}
	msgs := streamMessages(t, s.natsURL, 4)
	want := []struct{ subject, typ string }{
		{"referrals.v1.kela.hva-90.created", "fi.kela.referrals.v1.referral.created"},
		{"referrals.v1.kela.hva-90.received", "fi.kela.referrals.v1.referral.received"},
		{"referrals.v1.kela.hva-90.status_changed", "fi.kela.referrals.v1.referral.status_changed"},
		{"referrals.v1.kela.hva-90.status_changed", "fi.kela.referrals.v1.referral.status_changed"},
	}
	for i, m := range msgs {
		if m.Subject() != want[i].subject {
			t.Errorf("event %d subject %s, want %s", i, m.Subject(), want[i].subject)
		}
		ce, err := broker.Decode(m.Data())
		if err != nil {
			t.Fatalf("event %d is not a CloudEvent: %v", i, err)
		}
		if ce.Type != want[i].typ || ce.Subject != id || ce.SpecVersion != "1.0" {
			t.Errorf("event %d: type %s subject %s specversion %s", i, ce.Type, ce.Subject, ce.SpecVersion)
		}
		if got := m.Headers().Get("Nats-Msg-Id"); got != ce.ID || got == "" {
			t.Errorf("event %d: Nats-Msg-Id %q, CloudEvents id %q", i, got, ce.ID)
		}
		for _, secret := range []string{"131052-308T", "Meikäläinen", "Released", "Arviointi", "+358401234567", "TO-2026"} {
			if strings.Contains(string(m.Data()), secret) {
				t.Errorf("event %d carries %q", i, secret)
			}
		}
	}
	for _, secret := range []string{"131052-308T", "Meikäläinen", "Released", "Arviointi"} {
		if strings.Contains(s.logs.String(), secret) {
			t.Errorf("logs carry %q", secret)
		}
	}
}

// TestRestartKeepsEverythingAndDeliversThePendingOutbox writes while NATS is unreachable,
// stops, and starts again with NATS: the data, the idempotency key and the indexes are there,
// and the event waiting in the outbox is published.
func TestRestartKeepsEverythingAndDeliversThePendingOutbox(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := "nats://" + ln.Addr().String()
	ln.Close() // nothing listens there now

	first := startService(t, dir, "--nats-url", nowhere)
	kela := first.token("kela", domain.RoleKelaHandler)
	status, ref := first.do("POST", "/v1/referrals", kela, needJSON, "Idempotency-Key", "retry-1")
	if status != http.StatusCreated {
		t.Fatalf("create while NATS is away: %d %v", status, ref)
	}
	id := ref["id"].(string)
	if st, body := first.do("GET", "/readyz", "", ""); st != http.StatusOK || body["status"] != "degraded" {
		t.Errorf("readyz while NATS is away: %d %v, want 200 degraded", st, body)
	}
	first.stop()

	second := startService(t, dir)
	kela = second.token("kela", domain.RoleKelaHandler)
	hki := second.token("hva-90", domain.RoleSocialWorker)
	if st, got := second.do("GET", "/v1/referrals/"+id, hki, ""); st != http.StatusOK || got["status"] != "sent" {
		t.Fatalf("after restart: %d %v", st, got)
	}
	if st, got := second.do("GET", "/v1/referrals?status=sent", hki, ""); st != http.StatusOK || len(got["items"].([]any)) != 1 {
		t.Errorf("inbox index after restart: %d %v", st, got)
	}
	if st, got := second.do("POST", "/v1/referrals", kela, needJSON, "Idempotency-Key", "retry-1"); st != http.StatusCreated || got["id"] != id {
		t.Errorf("idempotent retry after restart: %d %v, want %s", st, got["id"], id)
	}
	msgs := streamMessages(t, second.natsURL, 1)
	ce, err := broker.Decode(msgs[0].Data())
	if err != nil || ce.Subject != id || !strings.HasSuffix(ce.Type, ".created") {
		t.Errorf("pending event after restart: %+v %v", ce, err)
	}
}

func TestConfigRefusals(t *testing.T) {
	// Each case is a complete production configuration (token keys, encryption keys, client
	// index key) with one thing wrong, so that each fails for its own reason.
	prod := []string{"--jwt-public-key", "k.pem", "--jwt-issuer", "https://idp", "--encryption-keys", "keys.json", "--client-index-key", "index.key"}
	if _, err := parseConfig(prod, func(string) string { return "" }, io.Discard); err != nil {
		t.Fatalf("the complete configuration: %v", err)
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no token keys without --dev", []string{"--encryption-keys", "keys.json", "--client-index-key", "index.key"}, nil, "without --dev, --jwt-issuer"},
		{"no encryption keys without --dev", []string{"--jwt-public-key", "k.pem", "--jwt-issuer", "x", "--client-index-key", "index.key"}, nil, "--encryption-keys FILE"},
		{"dev clock speed without --dev", append(prod, "--dev-clock-speed", "60"), nil, "only allowed with --dev"},
		{"dev clock start without --dev", append(prod, "--dev-clock-start", "2026-11-23T08:00:00Z"), nil, "only allowed with --dev"},
		{"REFERRAL_DEV=false is not dev", []string{"--encryption-keys", "keys.json", "--client-index-key", "index.key"}, map[string]string{"REFERRAL_DEV": "false"}, "without --dev"},
		{"dev clock start not a time", []string{"--dev", "--dev-clock-start", "tomorrow"}, nil, "RFC 3339"},
		{"stray argument", []string{"--dev", "serve"}, nil, "serve"},
		{"dev issuer outside --dev", []string{"--jwt-public-key", "k.pem", "--jwt-issuer", "referrald-dev", "--encryption-keys", "keys.json", "--client-index-key", "index.key"}, nil, "dev issuer"},
		{"two token key sources", append(prod, "--jwks-file", "j.json"), nil, "only one of"},
		{"client CA without a certificate", append(prod, "--tls-client-ca", "ca.pem"), nil, "--tls-client-ca needs them"},
		{"certificate without its key", append(prod, "--tls-cert", "c.pem"), nil, "--tls-cert and --tls-key go together"},
		{"seven stream replicas", []string{"--dev", "--nats-replicas", "7"}, nil, "--nats-replicas"},
		{"an even number of stream replicas", []string{"--dev", "--nats-replicas", "2"}, nil, "--nats-replicas"},
		{"two keyring sources", append(prod, "--dev"), map[string]string{"REFERRAL_ENCRYPTION_KEYS": "{}"}, "not both"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a refusal with %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		env string
		dev bool
	}{{"true", true}, {"false", false}, {"", false}} {
		c, err := parseConfig(prod, func(k string) string {
			if k == "REFERRAL_DEV" {
				return tc.env
			}
			return ""
		}, io.Discard)
		if err != nil || c.dev != tc.dev {
			t.Errorf("REFERRAL_DEV=%q: dev %v, %v; want %v", tc.env, c.dev, err, tc.dev)
		}
	}
	// Refusals stop run before it starts anything; a symmetric token algorithm is refused
	// when the verifier is set up.
	for _, args := range [][]string{{"--data-dir", t.TempDir()}, {"--dev", "--data-dir", t.TempDir(), "--jwt-algorithms", "HS256"}} {
		if err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
			t.Errorf("run %v started, want a refusal", args)
		}
	}
	t.Run("bad environment value", func(t *testing.T) {
		env := func(k string) string {
			if k == "REFERRAL_BODY_LIMIT" {
				return "lots"
			}
			return ""
		}
		if _, err := parseConfig([]string{"--dev"}, env, io.Discard); err == nil || !strings.Contains(err.Error(), "REFERRAL_BODY_LIMIT") {
			t.Errorf("err = %v, want one naming REFERRAL_BODY_LIMIT", err)
		}
	})
	t.Run("flags win over environment", func(t *testing.T) {
		env := func(k string) string {
			if k == "REFERRAL_ADDR" {
				return "127.0.0.1:9999"
			}
			return ""
		}
		c, err := parseConfig([]string{"--dev", "--addr", "127.0.0.1:7777"}, env, io.Discard)
		if err != nil || c.addr != "127.0.0.1:7777" {
			t.Errorf("addr %q, err %v", c.addr, err)
		}
	})
}

func TestDevClockRunsFasterFromItsStart(t *testing.T) {
	real := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := devClock{start: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC), realStart: real, speed: 60,
		real: func() time.Time { return real.Add(time.Minute) }}
	if got := c.Now(); !got.Equal(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("one real minute at speed 60 = %v, want 09:00", got)
	}
	// The clock the flags make: a start alone runs at real speed; neither (or no --dev) is
	// the real clock.
	now := real
	tick := func() time.Time { return now }
	start := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		cfg   config
		after time.Time // the business time after one real minute
	}{
		{"start alone", config{dev: true, devClockStart: start}, start.Add(time.Minute)},
		{"speed alone", config{dev: true, devClockSpeed: 60}, real.Add(time.Hour)},
		{"start and speed", config{dev: true, devClockStart: start, devClockSpeed: 60}, start.Add(time.Hour)},
		{"neither", config{dev: true}, real.Add(time.Minute)},
		{"not dev", config{devClockStart: start, devClockSpeed: 60}, real.Add(time.Minute)},
	} {
		now = real
		clock := businessClock(tc.cfg, tick)
		now = real.Add(time.Minute)
		if got := clock.Now(); !got.Equal(tc.after) {
			t.Errorf("%s: after a real minute %v, want %v", tc.name, got, tc.after)
		}
	}
}
