package api_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
)

func jwk(kid string, k ed25519.PrivateKey) map[string]any {
	return map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey))}
}

func jwksJSON(keys ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

type claimsEdit func(c jwt.MapClaims)

// signed builds a token as an identity provider would, with kid, signed by key.
func signed(t *testing.T, kid string, key ed25519.PrivateKey, edits ...claimsEdit) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"sub": "u1", "name": "Kela Käsittelijä", "org": "kela", "roles": []string{"kela_handler"},
		"iss": "https://idp.test", "aud": "referrals", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for _, e := range edits {
		e(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWKSURLRotation(t *testing.T) {
	k1, k2 := mustKey(), mustKey()
	var mu sync.Mutex
	set := jwksJSON(jwk("k1", k1))
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(set)
	}))
	defer idp.Close()
	kf, err := api.JWKSFromURL(t.Context(), idp.URL, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.NewAuthenticator(api.AuthConfig{JWKS: kf, Issuer: "https://idp.test", Audience: "referrals"}, domain.DefaultRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate("Bearer " + signed(t, "k1", k1)); err != nil {
		t.Fatalf("k1 before rotation: %v", err)
	}
	// The provider rotates to k2: a token with the new kid makes the set refresh.
	mu.Lock()
	set = jwksJSON(jwk("k2", k2))
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := a.Authenticate("Bearer " + signed(t, "k2", k2))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("k2 after rotation still refused: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the unknown-kid refresh is rate-limited
	}
	if _, err := a.Authenticate("Bearer " + signed(t, "k1", k1)); err == nil {
		t.Error("k1 accepted after it left the key set")
	}
}

func TestJWKSFileRotation(t *testing.T) {
	k1, k2 := mustKey(), mustKey()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwksJSON(jwk("k1", k1)), 0o600); err != nil {
		t.Fatal(err)
	}
	kf, err := api.JWKSFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.NewAuthenticator(api.AuthConfig{JWKS: kf, Issuer: "https://idp.test", Audience: "referrals"}, domain.DefaultRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate("Bearer " + signed(t, "k1", k1)); err != nil {
		t.Fatalf("k1: %v", err)
	}
	if err := os.WriteFile(path, jwksJSON(jwk("k2", k2)), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := a.Authenticate("Bearer " + signed(t, "k2", k2)); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("k2 after the file was replaced: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the file is re-checked at most once a second
	}
	if _, err := a.Authenticate("Bearer " + signed(t, "k1", k1)); err == nil {
		t.Error("k1 accepted after the file dropped it")
	}
	// A broken replacement (half written, or not a key set) keeps the last good keys: every
	// token failing until someone notices would stop the service.
	if err := os.WriteFile(path, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	later := future.Add(2 * time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the once-a-second re-check: the next call reads the file
	if _, err := a.Authenticate("Bearer " + signed(t, "k2", k2)); err != nil {
		t.Errorf("k2 after a broken replacement file: %v, want the last good keys kept", err)
	}
	if _, err := api.JWKSFromFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing JWKS file was accepted")
	}
}

// TestJWKSURLMustBeHTTPS: keys fetched over plain http could be swapped on the way; only
// loopback (a local identity provider, tests) may use it.
func TestJWKSURLMustBeHTTPS(t *testing.T) {
	for _, u := range []string{"http://idp.example/jwks", "http://10.0.0.5/jwks", "ftp://idp.example/jwks"} {
		if _, err := api.JWKSFromURL(context.Background(), u, time.Hour); err == nil || !strings.Contains(err.Error(), "https") {
			t.Errorf("%s: %v, want a refusal naming https", u, err)
		}
	}
}

// TestEveryRejectionReason checks each way a token must fail, and that the problem says why.
func TestEveryRejectionReason(t *testing.T) {
	key := mustKey()
	a, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{key.Public()}, Issuer: "https://idp.test",
		Audience: "referrals", Leeway: api.DefaultLeeway}, domain.DefaultRegistry())
	if err != nil {
		t.Fatal(err)
	}
	hs256 := func() string { // algorithm confusion: HMAC keyed with the public key
		pub := []byte(key.Public().(ed25519.PublicKey))
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
		p := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"u","org":"kela","roles":["kela_handler"],"iss":"https://idp.test","aud":"referrals","exp":` + jsonNum(time.Now().Add(time.Hour).Unix()) + `}`))
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(h + "." + p))
		return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	cases := []struct {
		name, token, says string
	}{
		{"valid token is accepted", signed(t, "", key), ""},
		{"expired", signed(t, "", key, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "expired"},
		{"within leeway", signed(t, "", key, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() }), ""},
		{"not yet valid", signed(t, "", key, func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), "not valid yet"},
		{"no exp", signed(t, "", key, func(c jwt.MapClaims) { delete(c, "exp") }), "exp"},
		{"other issuer", signed(t, "", key, func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }), "issuer"},
		{"other audience", signed(t, "", key, func(c jwt.MapClaims) { c["aud"] = "payroll" }), "audience"},
		{"signed by another key", signed(t, "", mustKey()), "signature"},
		{"HS256 with the public key as secret", hs256(), "invalid"},
		{"no subject", signed(t, "", key, func(c jwt.MapClaims) { delete(c, "sub") }), "subject"},
		{"no name", signed(t, "", key, func(c jwt.MapClaims) { delete(c, "name") }), "name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := a.Authenticate("Bearer " + c.token)
			if c.says == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EUnauthorized || !strings.Contains(de.Message, c.says) {
				t.Errorf("err = %v, want unauthorized saying %q", err, c.says)
			}
		})
	}
	if _, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{key.Public()}, Issuer: "i", Audience: "a", Algorithms: []string{"HS256"}}, domain.DefaultRegistry()); err == nil {
		t.Error("HS256 allowed as an algorithm")
	}
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }
