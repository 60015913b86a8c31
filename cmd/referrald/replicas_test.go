package main

import (
	"strings"
	"testing"
	"time"
)

// TestNATSReplicasReachTheStream: --nats-replicas is what the stream is created with — asked
// for three on the one embedded server, the stream cannot be made and the service says why,
// rather than quietly making a stream of one replica.
func TestNATSReplicasReachTheStream(t *testing.T) {
	s := startService(t, t.TempDir(), "--nats-replicas", "3")
	waitFor(t, "the stream refused for its replicas", 20*time.Second, func() bool {
		logs := s.logs.String()
		return strings.Contains(logs, `"msg":"ensure stream failed, retrying"`) && strings.Contains(logs, "replicas > 1 not supported")
	})
}
