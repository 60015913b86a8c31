package broker_test

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
)

func TestEnsureStreamIsIdempotentAndConfigured(t *testing.T) {
	ns := MustStart(t, "", -1)
	_, js := MustConnect(t, ns, false) // creates the stream once
	ctx := context.Background()

	s, err := broker.EnsureStream(ctx, js, broker.StreamOptions{})
	if err != nil {
		t.Fatalf("second EnsureStream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.Name != broker.StreamName || !slices.Equal(c.Subjects, []string{"referrals.v1.>"}) ||
		c.Storage != jetstream.FileStorage || c.Duplicates != 2*time.Minute || c.MaxAge != 0 ||
		c.Replicas != 1 || c.Retention != jetstream.LimitsPolicy {
		t.Errorf("stream config = %+v", c)
	}
	names := js.StreamNames(ctx)
	var n int
	for range names.Name() {
		n++
	}
	if n != 1 {
		t.Errorf("%d streams, want 1", n)
	}

	s, err = broker.EnsureStream(ctx, js, broker.StreamOptions{MaxAge: 24 * time.Hour, Duplicates: 5 * time.Minute})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if c := s.CachedInfo().Config; c.MaxAge != 24*time.Hour || c.Duplicates != 5*time.Minute {
		t.Errorf("updated MaxAge %s Duplicates %s", c.MaxAge, c.Duplicates)
	}

	if _, err := broker.EnsureStream(ctx, js, broker.StreamOptions{MaxAge: time.Minute}); err == nil {
		t.Error("EnsureStream with a duplicate window longer than MaxAge succeeded")
	}
}

func TestStartEmbeddedFailsClearlyWhenPortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	start := time.Now()
	ns, err := broker.StartEmbedded(broker.EmbeddedOptions{StoreDir: t.TempDir(), Port: port})
	if err == nil {
		ns.Shutdown()
		t.Fatal("StartEmbedded on a taken port succeeded")
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("error does not name the port: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %s; it should not wait for the ready timeout", d)
	}
}

func TestStartEmbeddedRequiresStoreDir(t *testing.T) {
	if ns, err := broker.StartEmbedded(broker.EmbeddedOptions{Port: -1}); err == nil {
		ns.Shutdown()
		t.Fatal("StartEmbedded without StoreDir succeeded")
	}
}

func TestConnectInProcess(t *testing.T) {
	ns := MustStart(t, "", -1)
	nc, err := broker.Connect("", ns, "inproc")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !nc.IsConnected() || ns.NumClients() != 1 {
		t.Errorf("connected %v, server sees %d clients", nc.IsConnected(), ns.NumClients())
	}
}

func TestConnectFailsWithoutServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if nc, err := broker.Connect("nats://"+addr, nil, "nobody"); err == nil {
		nc.Close()
		t.Fatal("Connect to a closed port succeeded")
	}
}
