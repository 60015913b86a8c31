package api

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// tokenCache remembers tokens that verified, so that a client sending the same bearer token
// with every request pays for one signature check per TokenCacheTTL instead of one per
// request (an Ed25519 check is ~15 % of a create's CPU). It is keyed by the SHA-256 of the
// token, never the token itself. An entry lives until the token expires (with the leeway the
// parser allows) or for ttl after it verified, whichever is sooner; a hit on a token that named
// its key (kid) also asks the key set whether that key is still there, so a key withdrawn
// from a JWKS stops working at once. With a JWKS, tokens without a kid are not cached (the
// key that verified them is unknown); tokens that fail never are.
type tokenCache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[[sha256.Size]byte]cachedToken
}

type cachedToken struct {
	actor    domain.Actor
	until    time.Time
	kid, alg string // the token's key id and algorithm; kid "" when it named none
}

// DefaultTokenCacheTTL is how long a verified token is trusted without checking its signature
// again.
const DefaultTokenCacheTTL = time.Minute

// tokenCacheMax bounds the cache: about 300 bytes an entry.
const tokenCacheMax = 10_000

func newTokenCache(ttl time.Duration, max int) *tokenCache {
	return &tokenCache{ttl: ttl, max: max, entries: make(map[[sha256.Size]byte]cachedToken)}
}

// get returns the entry of a cached token still valid at now.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (cachedToken, bool) {
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && !now.Before(e.until) {
		delete(c.entries, key)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return cachedToken{}, false
	}
	e.actor.Roles = append([]domain.Role(nil), e.actor.Roles...) // the caller may change its copy
	return e, true
}

// put remembers a verified token until the sooner of exp and now+ttl. When the cache is full
// it drops the expired entries, and if that is not enough, all of them.
func (c *tokenCache) put(key [sha256.Size]byte, e cachedToken, exp, now time.Time) {
	e.until = now.Add(c.ttl)
	if exp.Before(e.until) {
		e.until = exp
	}
	if !now.Before(e.until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[key] = e
}
