package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// JWKSFromURL returns a key function that fetches the JSON Web Key Set at rawURL, refreshes it
// every refresh interval and when a token names an unknown kid (rate-limited), so the identity
// provider can rotate keys without a restart. Only https URLs are accepted, except loopback
// http for tests and local identity providers. The first fetch must succeed.
func JWKSFromURL(ctx context.Context, rawURL string, refresh time.Duration) (jwt.Keyfunc, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
		return nil, fmt.Errorf("auth: JWKS URL must be https (or http on loopback): %q", rawURL)
	}
	failFirst := false
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{rawURL}, keyfunc.Override{
		RefreshInterval:           refresh,
		HTTPTimeout:               10 * time.Second,
		NoErrorReturnFirstHTTPReq: &failFirst,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS %s: %w", rawURL, err)
	}
	return kf.Keyfunc, nil
}

func isLoopbackHost(h string) bool { return h == "localhost" || h == "127.0.0.1" || h == "::1" }

// jwksFile serves keys from a JWKS file, re-reading it when its modification time changes
// (checked at most once per second), so keys rotate by replacing the file.
type jwksFile struct {
	path string
	mu   sync.Mutex
	mod  time.Time
	seen time.Time
	kf   keyfunc.Keyfunc
}

// JWKSFromFile returns a key function over the JSON Web Key Set in path. Returns an error if
// the file cannot be read or holds no usable key.
func JWKSFromFile(path string) (jwt.Keyfunc, error) {
	f := &jwksFile{path: path}
	if err := f.reload(time.Now()); err != nil {
		return nil, err
	}
	return f.keyfunc, nil
}

func (f *jwksFile) reload(now time.Time) error {
	st, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("auth: JWKS file: %w", err)
	}
	f.seen = now
	if f.kf != nil && st.ModTime().Equal(f.mod) {
		return nil
	}
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("auth: JWKS file: %w", err)
	}
	var probe struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil || len(probe.Keys) == 0 {
		return fmt.Errorf("auth: JWKS file %s: not a JSON Web Key Set with keys", f.path)
	}
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		return fmt.Errorf("auth: JWKS file %s: %w", f.path, err)
	}
	f.kf, f.mod = kf, st.ModTime()
	return nil
}

func (f *jwksFile) keyfunc(t *jwt.Token) (any, error) {
	f.mu.Lock()
	if now := time.Now(); now.Sub(f.seen) >= time.Second {
		if err := f.reload(now); err != nil && f.kf == nil {
			f.mu.Unlock()
			return nil, err
		} // a broken replacement keeps the last good keys
	}
	kf := f.kf
	f.mu.Unlock()
	if kf == nil {
		return nil, errors.New("auth: no JWKS loaded")
	}
	return kf.Keyfunc(t)
}
