package api_test

import (
	"crypto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
)

// countingKeys is a key function over the test key that counts the signature checks it
// serves (the parser's calls, with the raw token; a cache hit only looks the kid up).
type countingKeys struct {
	calls   atomic.Int32
	removed atomic.Bool // the kid "k1" has left the key set
}

func (k *countingKeys) keyfunc(t *jwt.Token) (any, error) {
	if t.Raw != "" {
		k.calls.Add(1)
	}
	if kid, _ := t.Header["kid"].(string); kid == "k1" && k.removed.Load() {
		return nil, jwt.ErrTokenUnverifiable
	}
	return testKey.Public(), nil
}

func TestTokenCache(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	newAuth := func(t *testing.T, ttl time.Duration) (*api.Authenticator, *countingKeys) {
		t.Helper()
		k := &countingKeys{}
		a, err := api.NewAuthenticator(api.AuthConfig{JWKS: k.keyfunc, Issuer: api.DevIssuer, Audience: api.Audience,
			Leeway: api.DefaultLeeway, Now: clock, CacheTTL: ttl}, domain.DefaultRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return a, k
	}
	mint := func(t *testing.T, kid string, ttl time.Duration) string {
		t.Helper()
		tok, err := api.MintToken(testKey, "u1", domain.Kela, []domain.Role{domain.RoleKelaHandler}, "Test User", now, ttl)
		if err != nil {
			t.Fatal(err)
		}
		if kid == "" {
			return "Bearer " + tok
		}
		// Re-sign with a kid in the header.
		var c api.Claims
		if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
			t.Fatal(err)
		}
		j := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		j.Header["kid"] = kid
		s, err := j.SignedString(testKey)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	auth := func(t *testing.T, a *api.Authenticator, h string) (domain.Actor, error) {
		t.Helper()
		return a.Authenticate(h)
	}

	t.Run("a repeated token is verified once", func(t *testing.T) {
		now = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		a, k := newAuth(t, 0)
		tok := mint(t, "k2", time.Hour)
		for range 5 {
			actor, err := auth(t, a, tok)
			if err != nil || actor.UserID != "u1" || actor.Org != domain.Kela || len(actor.Roles) != 1 {
				t.Fatalf("Authenticate = %+v, %v", actor, err)
			}
			actor.Roles[0] = domain.RoleAuditor // the caller's copy: the cache keeps its own
		}
		if n := k.calls.Load(); n != 1 {
			t.Errorf("key function called %d times for 5 uses, want 1", n)
		}
	})
	t.Run("an expired token is refused even when cached", func(t *testing.T) {
		now = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		a, _ := newAuth(t, time.Hour)
		tok := mint(t, "k2", 10*time.Minute)
		if _, err := auth(t, a, tok); err != nil {
			t.Fatal(err)
		}
		now = now.Add(10*time.Minute + api.DefaultLeeway - time.Second)
		if _, err := auth(t, a, tok); err != nil {
			t.Errorf("within the leeway: %v", err)
		}
		now = now.Add(2 * time.Second)
		_, err := auth(t, a, tok)
		if domain.ErrorCode(err) != domain.EUnauthorized || !strings.Contains(err.Error(), "expired") {
			t.Errorf("past exp + leeway: %v, want expired", err)
		}
	})
	t.Run("a cached token is verified again after the ttl", func(t *testing.T) {
		now = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		a, k := newAuth(t, time.Minute)
		tok := mint(t, "k2", time.Hour)
		_, _ = auth(t, a, tok)
		now = now.Add(59 * time.Second)
		_, _ = auth(t, a, tok)
		if n := k.calls.Load(); n != 1 {
			t.Fatalf("key function called %d times within the ttl, want 1", n)
		}
		now = now.Add(2 * time.Second)
		if _, err := auth(t, a, tok); err != nil {
			t.Fatal(err)
		}
		if n := k.calls.Load(); n != 2 {
			t.Errorf("key function called %d times after the ttl, want 2", n)
		}
	})
	t.Run("a withdrawn key stops a cached token at once", func(t *testing.T) {
		now = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		a, k := newAuth(t, time.Hour)
		tok := mint(t, "k1", time.Hour)
		if _, err := auth(t, a, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := auth(t, a, tok); err != nil {
			t.Fatal(err)
		}
		k.removed.Store(true)
		if _, err := auth(t, a, tok); domain.ErrorCode(err) != domain.EUnauthorized {
			t.Errorf("after the key left the set: %v, want 401", err)
		}
	})
	t.Run("a failing token is never cached", func(t *testing.T) {
		now = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		a, k := newAuth(t, time.Hour)
		tok := mint(t, "k2", time.Hour)
		bad := tok[:len(tok)-4] + "AAAA" // a broken signature
		for range 3 {
			if _, err := auth(t, a, bad); domain.ErrorCode(err) != domain.EUnauthorized {
				t.Fatalf("bad signature: %v", err)
			}
		}
		if n := k.calls.Load(); n != 3 {
			t.Errorf("key function called %d times for 3 bad tokens, want 3 (no caching)", n)
		}
	})
	t.Run("with a JWKS a token without kid is checked every time", func(t *testing.T) {
		now = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		a, k := newAuth(t, time.Hour)
		tok := mint(t, "", time.Hour)
		for range 3 {
			if _, err := auth(t, a, tok); err != nil {
				t.Fatal(err)
			}
		}
		if n := k.calls.Load(); n != 3 {
			t.Errorf("%d signature checks for 3 uses, want 3: the key that verified it may leave the set", n)
		}
	})
	t.Run("static keys cache a token without kid", func(t *testing.T) {
		now = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		a, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{testKey.Public()}, Issuer: api.DevIssuer,
			Audience: api.Audience, Now: clock}, domain.DefaultRegistry())
		if err != nil {
			t.Fatal(err)
		}
		tok := mint(t, "", time.Hour)
		if _, err := auth(t, a, tok); err != nil {
			t.Fatal(err)
		}
		// The same token with a broken signature is a different token: refused.
		if _, err := auth(t, a, tok[:len(tok)-4]+"AAAA"); domain.ErrorCode(err) != domain.EUnauthorized {
			t.Errorf("broken signature: %v", err)
		}
		if _, err := auth(t, a, tok); err != nil {
			t.Errorf("cached token: %v", err)
		}
	})
	t.Run("a negative ttl turns the cache off", func(t *testing.T) {
		now = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		a, k := newAuth(t, -1)
		tok := mint(t, "k2", time.Hour)
		for range 3 {
			if _, err := auth(t, a, tok); err != nil {
				t.Fatal(err)
			}
		}
		if n := k.calls.Load(); n != 3 {
			t.Errorf("key function called %d times without a cache, want 3", n)
		}
	})
}
