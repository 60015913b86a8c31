package broker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/store"
)

// The cost of JetStream fsyncing every write (EmbeddedOptions.SyncInterval 0, nats-server's
// "sync_interval: always") against fsyncing every second with the relay keeping acknowledged
// entries twice that long (referrald's default, as safe) and against nats-server's default of
// fsyncing every 2 minutes (not safe), on the paths the service uses: the relay's pipelined
// waves, from an in-memory outbox and from a bbolt one, and one synchronous publish at a time.
// Run with
//
//	go test ./broker -run '^$' -bench Durability -benchtime 2000x
//
// and compare events/s between the lines.

var durabilityModes = []struct {
	name     string
	interval time.Duration
	keep     time.Duration // RelayOptions.KeepFor
}{
	{"sync=always", 0, 0},
	{"sync=1s+keep=2s", time.Second, broker.KeepForSync(time.Second)},
	{"sync=2m", 2 * time.Minute, 0},
}

func startForBench(b *testing.B, interval time.Duration) (*nats.Conn, jetstream.JetStream) {
	b.Helper()
	ns, err := broker.StartEmbedded(broker.EmbeddedOptions{StoreDir: b.TempDir(), Port: -1, SyncInterval: interval})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := broker.Connect(ns.ClientURL(), nil, b.Name())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := broker.EnsureStream(context.Background(), js, broker.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	return nc, js
}

// BenchmarkDurabilityRelay measures the outbox relay (waves of up to 64 pipelined publishes,
// 16 referrals interleaved) from a full outbox until every event is acknowledged.
func BenchmarkDurabilityRelay(b *testing.B) {
	for _, m := range durabilityModes {
		b.Run(m.name, func(b *testing.B) {
			_, js := startForBench(b, m.interval)
			ob := newOutbox()
			ob.Add(events(1, b.N, 64)...)
			r := broker.NewRelay(ob, js, broker.RelayOptions{Source: "/referrals/bench", Poll: time.Hour, KeepFor: m.keep})
			b.ResetTimer()
			start := time.Now()
			if err := r.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			if waiting, kept, _ := r.Backlog(); waiting != 0 || m.keep == 0 && kept != 0 {
				b.Fatalf("%d events wait in the outbox, %d kept", waiting, kept)
			}
		})
	}
}

// BenchmarkDurabilityRelayStore is BenchmarkDurabilityRelay from a bbolt outbox, whose
// deletes are fsynced commits: one per batch of 256 without KeepFor; with it, kept entries
// are deleted later, a few times per KeepFor (not within the measured Flush).
func BenchmarkDurabilityRelayStore(b *testing.B) {
	for _, m := range durabilityModes {
		b.Run(m.name, func(b *testing.B) {
			_, js := startForBench(b, m.interval)
			db, err := store.Open(filepath.Join(b.TempDir(), "referrals.db"), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			es := events(1, b.N, 64)
			for len(es) > 0 {
				n := min(len(es), 1000)
				chunk := es[:n]
				es = es[n:]
				if err := db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) {
					return &domain.Change{Events: chunk}, nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			r := broker.NewRelay(db, js, broker.RelayOptions{Source: "/referrals/bench", Poll: time.Hour, KeepFor: m.keep})
			b.ResetTimer()
			start := time.Now()
			if err := r.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			if waiting, _, err := r.Backlog(); err != nil || waiting != 0 {
				b.Fatalf("%d events wait in the outbox (%v)", waiting, err)
			}
		})
	}
}

// BenchmarkDurabilitySyncPublish measures one publish at a time, each waiting for its ack:
// the latency a lone event pays.
func BenchmarkDurabilitySyncPublish(b *testing.B) {
	for _, m := range durabilityModes {
		b.Run(m.name, func(b *testing.B) {
			_, js := startForBench(b, m.interval)
			es := events(1, b.N, 64)
			msgs := make([]*nats.Msg, len(es))
			for i, e := range es {
				data, err := broker.Encode(e, "/referrals/bench")
				if err != nil {
					b.Fatal(err)
				}
				msgs[i] = &nats.Msg{Subject: e.Subject(), Data: data}
			}
			ctx := context.Background()
			b.ResetTimer()
			for i, msg := range msgs {
				if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(es[i].ID)); err != nil {
					b.Fatal(fmt.Errorf("publish %d: %w", i, err))
				}
			}
		})
	}
}
