package api_test

import (
	"crypto"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/testkit"
)

// mtlsServer serves h's store over TLS with a server certificate of ca, the service
// requiring a client certificate, and the TLS layer asking for one as clientAuth says.
func mtlsServer(t *testing.T, h *harness, ca *testkit.CA, clientAuth tls.ClientAuthType) *httptest.Server {
	t.Helper()
	reg := domain.DefaultRegistry()
	auth, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{testKey.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(api.NewServer(api.Deps{Service: &domain.Service{Store: h.db, Registry: reg, Clock: h.clock},
		Auth: auth, Registry: reg, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), RequireClientCert: true}))
	srv.TLS = &tls.Config{ClientAuth: clientAuth, ClientCAs: ca.Pool,
		Certificates: []tls.Certificate{ca.Issue(t, "server", "", true)}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestMutualTLSOrganisationMustMatchTheToken(t *testing.T) {
	h := newHarness(t, "")
	ca := testkit.NewCA(t)
	srv := mtlsServer(t, h, ca, tls.RequireAndVerifyClientCert)

	call := func(cert *tls.Certificate, token string) (int, error) {
		cfg := &tls.Config{RootCAs: ca.Pool}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		req, _ := http.NewRequest("GET", srv.URL+"/v1/organisations", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err
		}
		checkResponse(t, req, response{status: resp.StatusCode, header: resp.Header, body: b})
		return resp.StatusCode, nil
	}
	hkiCert := ca.Issue(t, "client", api.CertOrgURIPrefix+"hva-90", false)
	cnCert := ca.Issue(t, "hva-90", "", false)
	if st, err := call(&hkiCert, hkiWorker(h)); err != nil || st != http.StatusOK {
		t.Errorf("matching certificate and token: %d %v", st, err)
	}
	if st, err := call(&cnCert, hkiWorker(h)); err != nil || st != http.StatusOK {
		t.Errorf("organisation in the common name: %d %v", st, err)
	}
	if st, err := call(&hkiCert, kelaHandler(h)); err != nil || st != http.StatusUnauthorized {
		t.Errorf("Helsinki's certificate with Kela's token: %d %v, want 401", st, err)
	}
	if _, err := call(nil, hkiWorker(h)); err == nil {
		t.Error("no client certificate: the TLS handshake should fail")
	}
	stranger := testkit.NewCA(t).Issue(t, "client", api.CertOrgURIPrefix+"hva-90", false)
	if _, err := call(&stranger, hkiWorker(h)); err == nil {
		t.Error("a certificate from another CA was accepted")
	}
}

// TestMutualTLSNeedsAVerifiedCertificate: behind a TLS layer that asks for a client
// certificate but does not verify it, a certificate naming the right organisation is still
// refused — the handler trusts only a chain the TLS layer verified.
func TestMutualTLSNeedsAVerifiedCertificate(t *testing.T) {
	h := newHarness(t, "")
	ca := testkit.NewCA(t)
	srv := mtlsServer(t, h, ca, tls.RequireAnyClientCert)                               // asks, does not verify
	forged := testkit.NewCA(t).Issue(t, "client", api.CertOrgURIPrefix+"hva-90", false) // nobody's CA
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{forged}}}}
	req, _ := http.NewRequest("GET", srv.URL+"/v1/organisations", nil)
	req.Header.Set("Authorization", "Bearer "+hkiWorker(h))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unverified certificate naming the token's organisation: %d, want 401", resp.StatusCode)
	}
}
