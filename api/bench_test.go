package api_test

import (
	"bytes"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/openapi"
	"github.com/kela-hva/referrals/store"
)

// benchStack is the whole create path: HTTP, auth, OpenAPI validation, the domain and a real
// bbolt file with group commit at the given batch delay.
func benchStack(b *testing.B, delay time.Duration) (*httptest.Server, string) {
	b.Helper()
	db, err := store.Open(filepath.Join(b.TempDir(), "referrals.db"), store.Options{MaxBatchDelay: delay})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	reg := domain.DefaultRegistry()
	auth, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{testKey.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	if err != nil {
		b.Fatal(err)
	}
	doc, err := openapi.Load()
	if err != nil {
		b.Fatal(err)
	}
	v, err := openapi.NewValidator(doc)
	if err != nil {
		b.Fatal(err)
	}
	svc := &domain.Service{Store: db, Registry: reg, Clock: domain.ClockFunc(time.Now),
		Policy: domain.NewDeadlinePolicy(calendar.New(calendar.Options{})), ClientKey: func(s string) string { return "k" + s }}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := httptest.NewServer(api.NewServer(api.Deps{Service: svc, Auth: auth, Validator: v, Logger: log, Registry: reg}))
	b.Cleanup(srv.Close)
	tok, err := api.MintToken(testKey, "bench", domain.Kela, []domain.Role{domain.RoleKelaHandler}, "Bench User", time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return srv, tok
}

func postCreate(client *http.Client, url, tok string, body []byte) error {
	req, _ := http.NewRequest("POST", url+"/v1/referrals", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Purpose", "benefit_processing")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// BenchmarkCreateHTTP measures durable creates through the real HTTP stack, by one client and
// by 64 concurrent clients, at the default batch delay (1 ms) and bbolt's own (10 ms). The
// ratio of the 64-client rate to the single-client rate shows group commit at work.
func BenchmarkCreateHTTP(b *testing.B) {
	body, _ := json.Marshal(needBody(pidMatti, "091"))
	for _, delay := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond} {
		b.Run(fmt.Sprintf("delay=%s/clients=1", delay), func(b *testing.B) {
			srv, tok := benchStack(b, delay)
			client := srv.Client()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := postCreate(client, srv.URL, tok, body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
		b.Run(fmt.Sprintf("delay=%s/clients=64", delay), func(b *testing.B) {
			srv, tok := benchStack(b, delay)
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			client := &http.Client{Transport: tr}
			b.Cleanup(tr.CloseIdleConnections)
			b.SetParallelism((64 + 1) / 2) // 64 goroutines on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := postCreate(client, srv.URL, tok, body); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}
