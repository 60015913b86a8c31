package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/testkit"
	"github.com/kela-hva/referrals/store"
	"github.com/nats-io/nats.go/jetstream"
)

// streamEvents follows the REFERRALS stream from its start, decoding each message, until
// done holds for what has arrived or timeout passes (then the test fails).
func streamEvents(t *testing.T, url string, timeout time.Duration, done func([]broker.CloudEvent) bool) []broker.CloudEvent {
	t.Helper()
	nc, js := testkit.JetStream(t, url)
	defer nc.Close() // once the stream is read, not at the end of the test
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stream jetstream.Stream
	var err error
	waitFor(t, "stream", timeout, func() bool {
		stream, err = js.Stream(ctx, broker.StreamName)
		return err == nil
	})
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []broker.CloudEvent
	for !done(out) {
		if ctx.Err() != nil {
			t.Fatalf("timed out with %d events: %+v", len(out), out)
		}
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			ce, err := broker.Decode(m.Data())
			if err != nil {
				t.Fatalf("not a CloudEvent: %v: %s", err, m.Data())
			}
			if m.Subject() != "referrals.v1.kela.hva-90."+strings.TrimPrefix(ce.Type, domain.EventTypePrefix) {
				t.Errorf("subject %s for %s", m.Subject(), ce.Type)
			}
			for _, secret := range []string{"131052-308T", "Meikäläinen", "Released", "+358401234567"} {
				if strings.Contains(string(m.Data()), secret) {
					t.Errorf("event carries %q", secret)
				}
			}
			out = append(out, ce)
		}
	}
	return out
}

// alertOf returns "type deadline_name" of an alert event, "" for other events.
func alertOf(t *testing.T, ce broker.CloudEvent) string {
	t.Helper()
	typ := strings.TrimPrefix(ce.Type, domain.EventTypePrefix)
	if typ != string(domain.EventDeadlineWarning) && typ != string(domain.EventOverdue) {
		return ""
	}
	d, err := ce.EventData()
	if err != nil {
		t.Fatal(err)
	}
	if d.Deadline == nil || d.ActorOrg != "" {
		t.Errorf("alert data %+v: want a deadline and no actor", d)
	}
	return typ + " " + d.DeadlineName
}

// TestFastDevClockFiresDeadlineAlertsEndToEnd runs referrald with a business clock 200,000
// times real time: a referral created at once is past both its deadlines within seconds; the
// watcher, ticking on real time, publishes each warning and overdue alert once to NATS, and
// overdue=true lists the referral.
func TestFastDevClockFiresDeadlineAlertsEndToEnd(t *testing.T) {
	s := startService(t, t.TempDir(), "--dev-clock-start", "2026-11-23T08:00:00+02:00",
		"--dev-clock-speed", "200000", "--watch-interval", "20ms")
	kela, hki := s.token("kela", domain.RoleKelaHandler), s.token("hva-90", domain.RoleSocialWorker)
	status, ref := s.do("POST", "/v1/referrals", kela, needJSON)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, ref)
	}
	id := ref["id"].(string)

	want := []string{"deadline_warning acknowledge_by", "overdue acknowledge_by", "deadline_warning respond_by", "overdue respond_by"}
	events := streamEvents(t, s.natsURL, 60*time.Second, func(evs []broker.CloudEvent) bool {
		for _, ce := range evs {
			if ce.Subject == id && alertOf(t, ce) == "overdue respond_by" {
				return true
			}
		}
		return false
	})
	var got []string
	for _, ce := range events {
		if ce.Subject != id {
			t.Errorf("event about %s", ce.Subject)
		}
		if a := alertOf(t, ce); a != "" {
			got = append(got, a)
		}
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("alerts on NATS: %v, want each once in order: %v", got, want)
	}

	for _, q := range []struct{ token, query string }{{hki, ""}, {kela, "&direction=outgoing"}} {
		st, page := s.do("GET", "/v1/referrals?overdue=true"+q.query, q.token, "")
		if st != http.StatusOK {
			t.Fatalf("overdue list: %d %v", st, page)
		}
		items, _ := page["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["id"] != id {
			t.Errorf("overdue=true%s lists %v, want %s", q.query, items, id)
		}
	}
	if st, page := s.do("GET", "/v1/referrals?overdue=true&direction=outgoing", hki, ""); st != http.StatusOK || len(page["items"].([]any)) != 0 {
		t.Errorf("Helsinki's outgoing overdue: %d %v, want none", st, page)
	}

	// Many ticks later (another real second: over two business days), still each alert once.
	until := time.Now().Add(time.Second)
	var after []string
	for _, ce := range streamEvents(t, s.natsURL, 30*time.Second, func([]broker.CloudEvent) bool { return time.Now().After(until) }) {
		if a := alertOf(t, ce); a != "" {
			after = append(after, a)
		}
	}
	if len(after) != len(want) {
		t.Errorf("after stopping, the stream holds alerts %v, want %v", after, want)
	}

	// /metrics counts each alert once, as it fired.
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, w := range want {
		event, deadline, _ := strings.Cut(w, " ")
		series := `referrals_deadline_alerts_total{deadline="` + deadline + `",event="` + event +
			`",kind="social_work_need",organisation="hva-90",urgency="normal"} 1`
		if !strings.Contains(string(text), series+"\n") {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

func TestDeadlinesConfigIsLoadedOrRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.json", `{"warning_lead": "soon", "rules": {"mystery": {}}}`)
	runErr := func(args []string, env map[string]string) error {
		t.Helper()
		return run(context.Background(), append([]string{"--dev", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, args...),
			func(k string) string { return env[k] }, io.Discard, io.Discard)
	}
	t.Run("bad file refuses to start, naming every fault", func(t *testing.T) {
		err := runErr([]string{"--deadlines-config", bad}, nil)
		if err == nil {
			t.Fatal("run started with a bad deadline configuration")
		}
		for _, want := range []string{"--deadlines-config", bad, "/warning_lead", "/rules/mystery", "unknown kind"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})
	t.Run("bad file from the environment", func(t *testing.T) {
		err := runErr(nil, map[string]string{"REFERRAL_DEADLINES_CONFIG": bad})
		if err == nil || !strings.Contains(err.Error(), "/warning_lead") {
			t.Errorf("err = %v, want the bad file refused", err)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		err := runErr([]string{"--deadlines-config", write("garbage.json", "rules: yes")}, nil)
		if err == nil || !strings.Contains(err.Error(), "must be a JSON object") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		err := runErr([]string{"--deadlines-config", filepath.Join(dir, "nowhere.json")}, nil)
		if err == nil || !strings.Contains(err.Error(), "--deadlines-config") || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("watch interval must be positive", func(t *testing.T) {
		if err := runErr([]string{"--watch-interval", "0s"}, nil); err == nil || !strings.Contains(err.Error(), "--watch-interval") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("the shipped example loads", func(t *testing.T) {
		c, err := loadDeadlineConfig("../../deadlines.example.json")
		if err != nil {
			t.Fatal(err)
		}
		if c.WarningLead != domain.DefaultWarningLead || c.CountEvesAsBusinessDays {
			t.Errorf("example = %+v", c)
		}
	})
	t.Run("a good file sets the deadlines", func(t *testing.T) {
		good := write("good.json", `{"count_eves_as_business_days": true, "rules": {"social_work_need":
			{"normal": {"acknowledge_days": 2, "respond_days": 4, "basis": "local rule, SHL §36"}}}}`)
		// Business clock at Mon 21 Dec 2026: with the eves counted, Thu 24 Dec is day 3 and
		// Mon 28 Dec day 4 (without, Tue 29 Dec).
		s := startService(t, t.TempDir(), "--deadlines-config", good, "--dev-clock-start", "2026-12-21T08:00:00+02:00", "--dev-clock-speed", "1")
		st, ref := s.do("POST", "/v1/referrals", s.token("kela", domain.RoleKelaHandler), needJSON)
		if st != http.StatusCreated {
			t.Fatalf("create: %d %v", st, ref)
		}
		d := ref["deadlines"].(map[string]any)
		if d["acknowledge_by"] != "2026-12-23T21:59:59Z" || d["respond_by"] != "2026-12-28T21:59:59Z" || d["basis"] != "local rule, SHL §36" {
			t.Errorf("deadlines = %v", d)
		}
	})
}

// failingDue is a store whose first failures DueAlerts calls fail.
type failingDue struct {
	domain.Store
	failures atomic.Int32
}

func (f *failingDue) DueAlerts(ctx context.Context, df domain.DueFilter) ([]domain.Alert, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, errors.New("injected: the store is busy")
	}
	return f.Store.DueAlerts(ctx, df)
}

// watcherService is a service on a new store in dir whose business clock is clock, with
// n referrals created at the clock's time.
func watcherService(t *testing.T, clock *testkit.Clock, n int, wrap func(domain.Store) domain.Store) (*domain.Service, *store.DB) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "referrals.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc := &domain.Service{Store: wrap(db), Registry: domain.DefaultRegistry(), Clock: clock,
		Policy:    domain.NewDeadlinePolicy(calendar.New(calendar.Options{})),
		ClientKey: func(pid string) string { return "k-" + pid }}
	kela := domain.Actor{UserID: "k", Name: "Kela Käsittelijä", Org: domain.Kela, Roles: []domain.Role{domain.RoleKelaHandler}}
	for range n {
		_, _, err := svc.Create(context.Background(), kela, &domain.CreateRequest{Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal,
			Client:         &domain.Client{PersonalID: "131052-308T", Name: "Testi", HomeMunicipality: "091"},
			SocialWorkNeed: &domain.SocialWorkNeed{NeedFlags: []string{"other"}, Consent: "given", Description: "d"}}, "")
		if err != nil {
			t.Fatal(err)
		}
	}
	return svc, db
}

// overdueEvents counts the overdue events in db's outbox.
func overdueEvents(t *testing.T, db *store.DB) int {
	t.Helper()
	evs, err := db.PendingEvents(100000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Event.Type == domain.EventOverdue {
			n++
		}
	}
	return n
}

// TestWatcherFiresEverythingDueAtStartInBatches: alerts that fell due while the service was
// down all fire at the watcher's start — more than one batch of them — not one batch a tick.
func TestWatcherFiresEverythingDueAtStartInBatches(t *testing.T) {
	clock := testkit.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	n := watchBatch/2 + 1 // two overdue and two warnings each: over four batches
	svc, db := watcherService(t, clock, n, func(s domain.Store) domain.Store { return s })
	clock.Advance(60 * 24 * time.Hour) // past every deadline
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		runWatcher(ctx, svc, clock, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(done)
	}()
	waitFor(t, "every overdue alert", 10*time.Second, func() bool { return overdueEvents(t, db) == 2*n })
	cancel()
	<-done
}

// TestWatcherKeepsGoingAfterAFailure: a store error in one step is retried at the next
// tick; the watcher does not stop.
func TestWatcherKeepsGoingAfterAFailure(t *testing.T) {
	clock := testkit.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	fd := &failingDue{}
	fd.failures.Store(2)
	svc, db := watcherService(t, clock, 1, func(s domain.Store) domain.Store { fd.Store = s; return fd })
	clock.Advance(60 * 24 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		runWatcher(ctx, svc, clock, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(done)
	}()
	waitFor(t, "the overdue alerts after two failed steps", 10*time.Second, func() bool { return overdueEvents(t, db) == 2 })
	cancel()
	<-done
}
