package testkit

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestJetStreamConnectsAndClosesWhenTheTestEnds(t *testing.T) {
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	var nc *nats.Conn
	t.Run("connected", func(t *testing.T) {
		var js jetstream.JetStream
		nc, js = JetStream(t, ns.ClientURL())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := js.AccountInfo(ctx); err != nil {
			t.Fatalf("JetStream unusable: %v", err)
		}
	})
	if nc == nil || !nc.IsClosed() {
		t.Error("the connection outlived its test")
	}
}

// fatalTB records a Fatal and stops the goroutine as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper()        {}
func (f *fatalTB) Cleanup(func()) {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestJetStreamFailsTheTestWithoutAServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + l.Addr().String()
	l.Close() // nothing listens there now
	tb := &fatalTB{}
	returned := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		JetStream(tb, url)
		returned <- true
	}()
	<-done
	if len(returned) > 0 || !strings.Contains(tb.msg, url) {
		t.Errorf("JetStream went on without a server (fatal: %q)", tb.msg)
	}
}
