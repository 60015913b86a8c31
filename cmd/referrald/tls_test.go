package main

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/testkit"
)

// TestMutualTLSBindsTheCertificateToTheTokensOrganisation runs referrald with
// --tls-cert/--tls-key/--tls-client-ca: a client certificate is required, and the
// organisation it names must be the token's.
func TestMutualTLSBindsTheCertificateToTheTokensOrganisation(t *testing.T) {
	ca, certs := testkit.NewCA(t), t.TempDir()
	srvCert, srvKey := testkit.WriteCert(t, ca.Issue(t, "server", "", true), certs, "server")
	s := startService(t, t.TempDir(), "--tls-cert", srvCert, "--tls-key", srvKey, "--tls-client-ca", ca.WriteCA(t, certs))
	base := strings.Replace(s.base, "http://", "https://", 1)
	kelaToken := s.token("kela", domain.RoleKelaHandler)
	call := func(cert *tls.Certificate) (int, error) {
		cfg := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		req, err := http.NewRequest("GET", base+"/v1/organisations", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+kelaToken)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	kela := ca.Issue(t, "client", api.CertOrgURIPrefix+"kela", false)
	turku := ca.Issue(t, "client", api.CertOrgURIPrefix+"hva-01", false)
	if st, err := call(&kela); err != nil || st != http.StatusOK {
		t.Errorf("Kela's certificate with Kela's token: %d, %v; want 200", st, err)
	}
	if st, err := call(&turku); err != nil || st != http.StatusUnauthorized {
		t.Errorf("another organisation's certificate with Kela's token: %d, %v; want 401", st, err)
	}
	if _, err := call(nil); err == nil {
		t.Error("no client certificate: the handshake should fail")
	}
}
