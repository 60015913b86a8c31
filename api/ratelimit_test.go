package api_test

import (
	"crypto"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
)

func TestRateLimitIsPerOrganisation(t *testing.T) {
	h := newHarness(t, "") // for tokens and a store
	reg := domain.DefaultRegistry()
	auth, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{testKey.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	if err != nil {
		t.Fatal(err)
	}
	svc := &domain.Service{Store: h.db, Registry: reg, Clock: h.clock}
	srv := httptest.NewServer(api.NewServer(api.Deps{Service: svc, Auth: auth, Registry: reg,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), RateLimit: api.RateLimit{PerSecond: 0.5, Burst: 2}}))
	defer srv.Close()
	get := func(tok string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/organisations", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	hki, tre := hkiWorker(h), tampere(h)
	for i := 0; i < 2; i++ {
		if r := get(hki); r.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i+1, r.StatusCode)
		}
	}
	r := get(hki)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "2" || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("over the budget: %d, Retry-After %q, %q; want 429, 2, problem", r.StatusCode, r.Header.Get("Retry-After"), r.Header.Get("Content-Type"))
	}
	// Refused requests spend nothing: retrying while limited does not push the wait out.
	for i := range 4 {
		if r := get(hki); r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "2" {
			t.Errorf("refused retry %d: %d, Retry-After %q; want 429 and still 2", i+1, r.StatusCode, r.Header.Get("Retry-After"))
		}
	}
	if r := get(tre); r.StatusCode != http.StatusOK {
		t.Errorf("another organisation was limited too: %d", r.StatusCode)
	}
	// Unauthenticated requests are refused before they can spend anyone's budget.
	if r := get("forged"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged token: %d", r.StatusCode)
	}
}
