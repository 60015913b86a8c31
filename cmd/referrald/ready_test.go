package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/testkit"
)

// TestReadinessIsDegradedWhileTheRelayFails: NATS answers but JetStream takes no events (here:
// no REFERRALS stream), so they pile up in the outbox — /readyz must say so, not "ready".
func TestReadinessIsDegradedWhileTheRelayFails(t *testing.T) {
	ns, err := broker.StartEmbedded(broker.EmbeddedOptions{StoreDir: t.TempDir(), Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	clock := testkit.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	_, db := watcherService(t, clock, 1, func(s domain.Store) domain.Store { return s }) // one referral: one event
	relay := broker.NewRelay(db, js, broker.RelayOptions{Source: "/referrals", PublishTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ready := readiness(nc, relay)
	if status, checks := ready(context.Background()); status != api.Ready || checks["relay"] != "ok" {
		t.Fatalf("before any failure: %s %v", status, checks)
	}
	if err := relay.Flush(context.Background()); err == nil {
		t.Fatal("publishing without a stream succeeded")
	}
	status, checks := ready(context.Background())
	if status != api.Degraded || checks["nats"] != "ok" || checks["relay"] == "ok" || checks["outbox_backlog"] != "1" {
		t.Errorf("with NATS up and the relay failing: %s %v; want degraded, the relay named, the event waiting", status, checks)
	}
}
