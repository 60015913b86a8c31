package api_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a leaf certificate; org, when set, goes into the URI SAN.
func (ca *testCA) issue(t *testing.T, cn, org string, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if org != "" {
		u, _ := url.Parse(api.CertOrgURIPrefix + org)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: crypto.PrivateKey(key)}
}

func TestMutualTLSOrganisationMustMatchTheToken(t *testing.T) {
	h := newHarness(t, "")
	reg := domain.DefaultRegistry()
	auth, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{testKey.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	if err != nil {
		t.Fatal(err)
	}
	svc := &domain.Service{Store: h.db, Registry: reg, Clock: h.clock}
	ca := newCA(t)
	srv := httptest.NewUnstartedServer(api.NewServer(api.Deps{Service: svc, Auth: auth, Registry: reg,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), RequireClientCert: true}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool,
		Certificates: []tls.Certificate{ca.issue(t, "server", "", true)}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	call := func(cert *tls.Certificate, token string) (int, error) {
		cfg := &tls.Config{RootCAs: ca.pool}
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
	hkiCert := ca.issue(t, "client", "hva-90", false)
	cnCert := ca.issue(t, "hva-90", "", false)
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
	stranger := newCA(t).issue(t, "client", "hva-90", false)
	if _, err := call(&stranger, hkiWorker(h)); err == nil {
		t.Error("a certificate from another CA was accepted")
	}
}
