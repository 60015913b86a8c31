package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestNATSSyncAndOutboxKeep(t *testing.T) {
	const external = "nats://127.0.0.1:4222"
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		sync    time.Duration
		keep    time.Duration
		keepSet bool
		refusal string // part of the error; "" for none
	}{
		{name: "default: sync every second, keep twice that", sync: time.Second, keep: 2 * time.Second},
		{name: "sync always keeps nothing", args: []string{"--nats-sync", "always"}, keep: 0},
		{name: "keep follows the interval", args: []string{"--nats-sync", "5s"}, sync: 5 * time.Second, keep: 10 * time.Second},
		{name: "environment sets the interval", env: map[string]string{"REFERRAL_NATS_SYNC": "250ms"}, sync: 250 * time.Millisecond, keep: 500 * time.Millisecond},
		{name: "keep overrides the derived value", args: []string{"--outbox-keep", "3s"}, sync: time.Second, keep: 3 * time.Second, keepSet: true},
		{name: "keep 0 with an interval is allowed (and warned about)", args: []string{"--nats-sync", "2m", "--outbox-keep", "0"}, sync: 2 * time.Minute, keep: 0, keepSet: true},
		{name: "external NATS keeps nothing by default", args: []string{"--nats-url", external}, sync: time.Second, keep: 0},
		{name: "external NATS with keep", args: []string{"--nats-url", external, "--outbox-keep", "5s"}, sync: time.Second, keep: 5 * time.Second, keepSet: true},
		{name: "environment sets keep", env: map[string]string{"NATS_URL": external, "REFERRAL_OUTBOX_KEEP": "4s"}, sync: time.Second, keep: 4 * time.Second, keepSet: true},
		{name: "flag wins over environment", args: []string{"--outbox-keep", "1s"}, env: map[string]string{"REFERRAL_OUTBOX_KEEP": "4s"}, sync: time.Second, keep: time.Second, keepSet: true},
		{name: "longest keep: half the duplicate window", args: []string{"--outbox-keep", "1m"}, sync: time.Second, keep: time.Minute, keepSet: true},
		{name: "longest derived keep", args: []string{"--nats-sync", "30s"}, sync: 30 * time.Second, keep: time.Minute},

		{name: "negative keep", args: []string{"--outbox-keep", "-1s"}, refusal: "--outbox-keep"},
		{name: "keep not a duration", args: []string{"--outbox-keep", "soon"}, refusal: "--outbox-keep"},
		{name: "keep beyond half the duplicate window", args: []string{"--outbox-keep", "61s"}, refusal: "duplicate window"},
		{name: "keep the whole duplicate window", args: []string{"--nats-url", external, "--outbox-keep", "2m"}, refusal: "duplicate window"},
		{name: "interval whose keep exceeds the window", args: []string{"--nats-sync", "31s"}, refusal: "--nats-sync 31s"},
		{name: "nats default interval of 2m", args: []string{"--nats-sync", "2m"}, refusal: "or set --outbox-keep"},
		{name: "zero interval", args: []string{"--nats-sync", "0s"}, refusal: "--nats-sync"},
		{name: "negative interval", args: []string{"--nats-sync", "-1s"}, refusal: "--nats-sync"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(append([]string{"--dev"}, tt.args...), func(k string) string { return tt.env[k] }, io.Discard)
			if tt.refusal != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refusal) {
					t.Fatalf("err = %v, want one with %q", err, tt.refusal)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.natsSync != tt.sync || c.outboxKeep != tt.keep || c.outboxKeepSet != tt.keepSet {
				t.Errorf("sync %s, keep %s (set %v); want %s, %s (set %v)", c.natsSync, c.outboxKeep, c.outboxKeepSet, tt.sync, tt.keep, tt.keepSet)
			}
		})
	}
}
