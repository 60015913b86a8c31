package yardstick_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/kela-hva/referrals/internal/yardstick"
)

// createBody is the create of the service's walk-through and its benchmark.
const createBody = `{"kind":"social_work_need","urgency":"normal","kela_case_ref":"TO-2026-0012345",
 "client":{"personal_id":"131052-308T","name":"Matti Meikäläinen","home_municipality":"091","language":"fi","needs_interpreter":false,"phone":"+358401234567","can_use_eservices":false},
 "social_work_need":{"need_flags":["housing_risk","released_from_prison"],"consent":"given","immediate_need":false,"description":"Released 2026-11-20, no address yet."}}`

func mustOpen(tb testing.TB, delay time.Duration) (*yardstick.Store, *httptest.Server) {
	tb.Helper()
	st, err := yardstick.Open(filepath.Join(tb.TempDir(), "yardstick.db"), delay)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(st.Handler())
	tb.Cleanup(func() {
		srv.Close()
		if err := st.Close(); err != nil {
			tb.Error(err)
		}
	})
	return st, srv
}

func post(client *http.Client, url, body string) (int, []byte, error) {
	resp, err := client.Post(url+"/v1/referrals", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestCreateWritesRecordTwoIndexEntriesAndAnOutboxEntry(t *testing.T) {
	st, srv := mustOpen(t, time.Millisecond)
	for i := range 3 {
		status, body, err := post(srv.Client(), srv.URL, createBody)
		if err != nil || status != http.StatusCreated {
			t.Fatalf("create %d: %d %v %s", i, status, err, body)
		}
		var rec struct {
			ID, Kind, Status string
		}
		if err := json.Unmarshal(body, &rec); err != nil || rec.ID == "" || rec.Kind != "social_work_need" || rec.Status != "sent" {
			t.Fatalf("answer %s (%v)", body, err)
		}
	}
	records, index, outbox, err := st.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if records != 3 || index != 6 || outbox != 3 {
		t.Errorf("records %d, index entries %d, outbox %d; want 3, 6, 3", records, index, outbox)
	}
}

func TestCreateRefusesWhatTheServiceRefusesToDecode(t *testing.T) {
	st, srv := mustOpen(t, time.Millisecond)
	for name, tc := range map[string]struct {
		body string
		want int
	}{
		"not JSON":      {`{"kind":`, http.StatusBadRequest},
		"unknown field": {`{"kind":"social_work_need","colour":"red"}`, http.StatusBadRequest},
		"no client":     {`{"kind":"social_work_need"}`, http.StatusUnprocessableEntity},
	} {
		status, body, err := post(srv.Client(), srv.URL, tc.body)
		if err != nil || status != tc.want {
			t.Errorf("%s: status %d (%v) %s, want %d", name, status, err, body, tc.want)
		}
	}
	if records, _, _, _ := st.Counts(); records != 0 {
		t.Errorf("%d records written by refused requests", records)
	}
}

// BenchmarkYardstick measures the raw stack as BenchmarkCreateHTTP (api/bench_test.go)
// measures the service: one client and 64 concurrent clients, at the service's default batch
// delay (1 ms) and at bbolt's own (10 ms).
//
//	go test -run '^$' -bench Yardstick ./internal/yardstick/
func BenchmarkYardstick(b *testing.B) {
	for _, delay := range []time.Duration{time.Millisecond, 10 * time.Millisecond} {
		b.Run(fmt.Sprintf("delay=%s/clients=1", delay), func(b *testing.B) {
			_, srv := mustOpen(b, delay)
			client := srv.Client()
			b.ResetTimer()
			for range b.N {
				if status, body, err := post(client, srv.URL, createBody); err != nil || status != http.StatusCreated {
					b.Fatalf("%d %v %s", status, err, body)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
		b.Run(fmt.Sprintf("delay=%s/clients=64", delay), func(b *testing.B) {
			_, srv := mustOpen(b, delay)
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			client := &http.Client{Transport: tr}
			b.Cleanup(tr.CloseIdleConnections)
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((64 + procs - 1) / procs) // 64 client goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if status, body, err := post(client, srv.URL, createBody); err != nil || status != http.StatusCreated {
						b.Errorf("%d %v %s", status, err, body)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}
