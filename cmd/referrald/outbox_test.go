package main

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// scrapeMetrics returns the text of /metrics.
func scrapeMetrics(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// TestKeptEventsAreNotBacklog runs the embedded server syncing every second (the default) and
// an outbox that keeps delivered events for a minute: /readyz and /metrics count them as kept,
// not as backlog, and the relay lag is 0. A restart publishes them again and the stream drops
// them as duplicates; with the default keep (twice the sync interval) they then leave the
// outbox.
func TestKeptEventsAreNotBacklog(t *testing.T) {
	dir := t.TempDir()
	first := startService(t, dir, "--outbox-keep", "1m", "--dev-clock-start", devMonday)
	kela := first.token("kela", domain.RoleKelaHandler)
	for range 3 {
		if st, body := first.do("POST", "/v1/referrals", kela, needJSON); st != http.StatusCreated {
			t.Fatalf("create: %d %v", st, body)
		}
	}
	var checks map[string]any
	waitFor(t, "the events delivered and kept", 20*time.Second, func() bool {
		var st string
		st, checks = readyz(t, first.base)
		return st == "ready" && checks["outbox_kept"] == "3"
	})
	if checks["outbox_backlog"] != "0" {
		t.Errorf("readyz counts kept events as backlog: %v", checks)
	}
	text := scrapeMetrics(t, first.base)
	for name, want := range map[string]float64{
		"referrals_outbox_backlog_events":        0,
		"referrals_outbox_kept_events":           3,
		"referrals_relay_lag_seconds":            0,
		"referrals_relay_published_events_total": 3,
	} {
		if got := metricValue(text, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if keep := logField(first.logs.String(), "outbox relay", "keep"); keep != "1m0s" {
		t.Errorf("logged keep %q, want 1m0s", keep)
	}
	first.stop()

	second := startService(t, dir, "--dev-clock-start", devMonday)
	if keep := logField(second.logs.String(), "outbox relay", "keep"); keep != "2s" {
		t.Errorf("default keep %q, want 2s (twice --nats-sync 1s)", keep)
	}
	waitFor(t, "the kept events published again", 20*time.Second, func() bool {
		return metricValue(scrapeMetrics(t, second.base), "referrals_relay_published_events_total") == 3
	})
	if events := readStream(t, second.natsURL); len(events) != 3 {
		t.Errorf("stream holds %d events after the restart, want 3 (duplicates dropped)", len(events))
	}
	waitFor(t, "the kept events deleted after 2s", 20*time.Second, func() bool {
		st, checks := readyz(t, second.base)
		return st == "ready" && checks["outbox_kept"] == "0" && checks["outbox_backlog"] == "0"
	})
}
