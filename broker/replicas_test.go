package broker_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/internal/testkit"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts three clustered JetStream servers on loopback and returns the client
// URL of the first.
func startCluster(t *testing.T) string {
	t.Helper()
	ports := []int{freePort(t), freePort(t), freePort(t)}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	var servers []*server.Server
	for i, p := range ports {
		ns, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "referrals-test", Host: "127.0.0.1", Port: p},
			Routes:  routes,
		})
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		servers = append(servers, ns)
	}
	for _, ns := range servers {
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("cluster server not ready")
		}
	}
	return servers[0].ClientURL()
}

// TestEnsureStreamKeepsAReplicatedStream: a stream an operator replicated on a cluster stays
// replicated when the service ensures it on start (Replicas 0), and Replicas asks for a
// number of copies the server applies.
func TestEnsureStreamKeepsAReplicatedStream(t *testing.T) {
	_, js := testkit.JetStream(t, startCluster(t))
	ensure := func(opts broker.StreamOptions) (jetstream.Stream, error) {
		// The cluster elects its JetStream leader after it answers connections.
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s, err := broker.EnsureStream(ctx, js, opts)
			cancel()
			if err == nil || time.Now().After(deadline) {
				return s, err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	s, err := ensure(broker.StreamOptions{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("replicas = %d, want 3", r)
	}
	s, err = ensure(broker.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("after a start without --nats-replicas: replicas = %d, want the stream's 3", r)
	}
	if _, err := broker.EnsureStream(context.Background(), js, broker.StreamOptions{Replicas: 7}); err == nil {
		t.Error("7 replicas accepted")
	}
}
