package main

import (
	"context"
	"crypto"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/openapi"
	"github.com/kela-hva/referrals/store"
)

// fastClock is the business clock of a referrald --dev --dev-clock-start --dev-clock-speed.
type fastClock struct {
	start, realStart time.Time
	speed            float64
}

func (c fastClock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.realStart)) * c.speed)).UTC()
}

// stack is the service's HTTP stack in this process, on a real bbolt file in a --dev-like data
// directory (with the dev signing key), optionally with embedded NATS and the outbox relay.
type stack struct {
	url     string
	dataDir string
	natsURL string
	db      *store.DB
}

type stackOptions struct {
	clock domain.Clock // nil: the machine's clock
	nats  bool
}

func startStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "referrals.db"), store.Options{MaxBatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	key, err := api.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	indexKey, err := datadir.LoadOrCreateSecret(dir, datadir.ClientIndexKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	reg := domain.DefaultRegistry()
	auth, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{key.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	validator, err := openapi.NewValidator(doc)
	if err != nil {
		t.Fatal(err)
	}
	clock := opts.clock
	if clock == nil {
		clock = domain.ClockFunc(time.Now)
	}
	svc := &domain.Service{Store: db, Registry: reg, Clock: clock,
		Policy: domain.NewDeadlinePolicy(calendar.New(calendar.Options{})), ClientKey: datadir.ClientKey(indexKey)}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := httptest.NewServer(api.NewServer(api.Deps{Service: svc, Auth: auth, Validator: validator,
		Logger: log, Registry: reg, Spec: openapi.YAML()}))
	s := &stack{url: srv.URL, dataDir: dir, db: db}

	stopRelay := func() {}
	if opts.nats {
		ns, err := broker.StartEmbedded(broker.EmbeddedOptions{StoreDir: filepath.Join(dir, "nats"), Port: -1})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := broker.Connect("", ns, "test")
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = broker.EnsureStream(ctx, js, broker.StreamOptions{})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		relay := broker.NewRelay(db, js, broker.RelayOptions{Source: "/referrals/test"})
		rctx, rcancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = relay.Run(rctx) }()
		stopRelay = func() {
			rcancel()
			<-done
			nc.Close()
			ns.Shutdown()
			ns.WaitForShutdown()
		}
		s.natsURL = ns.ClientURL()
	}
	t.Cleanup(func() {
		srv.Close()
		stopRelay()
		if err := db.Check(); err != nil {
			t.Errorf("bbolt check: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// referrals returns every referral of the store, as Kela sees them (Kela is party to all).
func (s *stack) referrals(t *testing.T) []*domain.Referral {
	t.Helper()
	var out []*domain.Referral
	for _, dir := range []string{domain.Outgoing, domain.Incoming} {
		f := domain.ListFilter{Org: domain.Kela, Direction: dir, Limit: store.MaxLimit}
		for {
			p, err := s.db.List(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p.Items...)
			if p.Next == "" {
				break
			}
			f.After = p.Next
		}
	}
	return out
}

func noEnv(string) string { return "" }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
