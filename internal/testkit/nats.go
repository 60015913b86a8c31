package testkit

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream connects to the NATS server at url and returns the connection and its JetStream
// context. The connection is closed when the test
// ends; a helper that returns before then and leaves the test running (a server may restart
// meanwhile) can close it sooner with nc.Close, which is safe to call twice. It fails the test
// if the server cannot be reached.
func JetStream(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatalf("connect to NATS at %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("JetStream context: %v", err)
	}
	return nc, js
}
