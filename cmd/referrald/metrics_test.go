package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/store"
)

// TestMetricsAndReportAreWired runs referrald, moves a referral and reads /metrics (no
// token) and the response-time report: the store's milestones reach the histograms, the
// relay's publishes reach its counters, and the report counts the referral.
func TestMetricsAndReportAreWired(t *testing.T) {
	s := startService(t, t.TempDir())
	kela, hki := s.token("kela", domain.RoleKelaHandler), s.token("hva-90", domain.RoleSocialWorker)
	status, ref := s.do("POST", "/v1/referrals", kela, needJSON)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, ref)
	}
	id := ref["id"].(string)
	// A second referral, and Helsinki's inbox page showing both: one access-log entry with
	// two items, indexed under each referral by the background indexer.
	if status, body := s.do("POST", "/v1/referrals", kela, needJSON); status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, body)
	}
	if st, body := s.do("GET", "/v1/referrals", hki, ""); st != http.StatusOK || len(body["items"].([]any)) != 2 {
		t.Fatalf("inbox: %d %v", st, body)
	}
	for _, action := range []string{"receive", "start"} {
		if st, body := s.do("POST", "/v1/referrals/"+id+"/"+action, hki, ""); st != http.StatusOK {
			t.Fatalf("%s: %d %v", action, st, body)
		}
	}
	scrape := func() string {
		resp, err := http.Get(s.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %d", resp.StatusCode)
		}
		return string(b)
	}
	var text string
	waitFor(t, "the relay to publish the three events", 20*time.Second, func() bool {
		text = scrape()
		return strings.Contains(text, "referrals_relay_published_events_total 4") && strings.Contains(text, "referrals_outbox_backlog_events 0") &&
			strings.Contains(text, "referrals_audit_index_pending_entries 0")
	})
	for _, want := range []string{
		`referrals_time_to_acknowledge_business_seconds_count{kind="social_work_need",organisation="hva-90",urgency="normal"} 1`,
		`referrals_time_to_first_response_business_seconds_count{kind="social_work_need",organisation="hva-90",urgency="normal"} 1`,
		"referrals_relay_lag_seconds 0",
		"referrals_relay_healthy 1",
		"referrals_report_aggregate_repairs_total 0",
		`referrals_http_requests_total{method="POST",route="/v1/referrals/:id/receive",status="200"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Group commit: three commands at least, in at least one fsynced transaction each time
	// the service was idle, and pages written for them.
	commits, writes, pages := metricValue(text, "referrals_store_commits_total"),
		metricValue(text, "referrals_store_writes_total"), metricValue(text, "referrals_store_pages_written_total")
	if free := metricValue(text, "referrals_store_free_pages"); free < 0 {
		t.Errorf("no free-pages gauge")
	}
	if commits < 1 || writes < 5 || writes < commits || pages < commits {
		t.Errorf("store counters: %v commits, %v writes, %v pages", commits, writes, pages)
	}
	// Every group commit is timed, and its disk share is part of its duration.
	timed, took, disk := metricValue(text, "referrals_store_commit_duration_seconds_count"),
		metricValue(text, "referrals_store_commit_duration_seconds_sum"), metricValue(text, "referrals_store_commit_disk_seconds_sum")
	if timed < 3 || took <= 0 || disk <= 0 || disk > took {
		t.Errorf("commit histograms: %v commits taking %vs, %vs of it on disk", timed, took, disk)
	}
	if strings.Contains(text, id) || strings.Contains(text, "131052-308T") {
		t.Error("/metrics holds a referral id or an identity code")
	}
	reportFigures(t, s)
	// The page's entry was indexed under the referral, not just found among the pending.
	s.stop()
	db, err := store.Open(filepath.Join(s.dir, "referrals.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.AuditItemsPending(); err != nil || n != 0 {
		t.Errorf("%d entries pending after the indexer ran (%v)", n, err)
	}
	log, err := db.Audit(context.Background(), domain.AuditFilter{Org: "hva-90", ReferralID: id})
	if err != nil {
		t.Fatal(err)
	}
	if acts := auditActions(log.Items); !slices.Contains(acts, "list") {
		t.Errorf("the referral's log %v lacks the inbox page", acts)
	}
}

func auditActions(es []domain.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Action))
	}
	return out
}

func reportFigures(t *testing.T, s *service) {
	t.Helper()
	// The dev clock runs from now; a referral's month is its Helsinki month.
	y, m, _ := time.Now().In(calendar.New(calendar.Options{}).Location()).Date()
	from := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 1, -1)
	path := "/v1/reports/response-times?from=" + from.Format(time.DateOnly) + "&to=" + to.Format(time.DateOnly)
	st, rep := s.do("GET", path, s.token("kela", domain.RoleSupervisor), "")
	if st != http.StatusOK {
		t.Fatalf("report: %d %v", st, rep)
	}
	counts, _ := rep["total"].(map[string]any)["counts"].(map[string]any)
	if counts["created"] != float64(2) || counts["acknowledged"] != float64(1) || counts["responded"] != float64(1) {
		t.Errorf("report counts %v", counts)
	}
}

// metricValue returns the value of an unlabelled sample in a Prometheus text exposition, or -1.
func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
