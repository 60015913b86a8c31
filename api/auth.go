package api

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/kela-hva/referrals/domain"
)

// Claims are what a token says about its holder: the user (sub) and their name,
// organisation and roles. The name is required: the access log records it.
type Claims struct {
	jwt.RegisteredClaims
	Org   string   `json:"org"`
	Roles []string `json:"roles"`
	Name  string   `json:"name,omitempty"`
}

// maxNameLen bounds the name claim in characters, as the subject is bounded.
const maxNameLen = 200

// readableName reports whether name can stand for its holder in the access log: valid UTF-8
// of at most maxNameLen characters, with a visible letter or digit, and nothing invisible or
// line-breaking: no control or formatting characters (NUL, zero-width spaces, byte-order
// marks), no characters that display as nothing (Hangul fillers), no line or paragraph
// separators, no private-use characters.
func readableName(name string) bool {
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxNameLen {
		return false
	}
	seen := false
	for _, r := range name {
		switch {
		case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point):
			return false
		case unicode.IsLetter(r), unicode.IsDigit(r):
			seen = true
		}
	}
	return seen
}

// DevIssuer is the issuer of tokens minted with the dev key; Audience is the default audience.
const (
	DevIssuer = "referrald-dev"
	Audience  = "referrals"
)

// Authenticator verifies bearer tokens and turns them into actors. Token times are always
// checked against the machine's real time, never the service's business clock.
type Authenticator struct {
	keyfunc  jwt.Keyfunc
	parser   *jwt.Parser
	registry *domain.Registry
	now      func() time.Time
	leeway   time.Duration
	cache    *tokenCache // tokencache.go; nil: verify every time
	jwks     bool        // keys come from a JWKS, which can change while the service runs
}

// AuthConfig configures token verification: either static Keys or a JWKS (file or URL).
type AuthConfig struct {
	Keys []crypto.PublicKey // Ed25519, ECDSA or RSA public keys
	// JWKS, when set, supplies the keys by the token's kid (refreshed on rotation).
	JWKS     jwt.Keyfunc
	Issuer   string
	Audience string
	// Algorithms allowed; nil means EdDSA only. "none" and HMAC algorithms are never allowed.
	Algorithms []string
	Leeway     time.Duration
	// Now is the real clock used for exp/nbf; nil means time.Now.
	Now func() time.Time
	// CacheTTL is how long a verified token is trusted without checking its signature again
	// (never past its exp): a key withdrawn from the key set stops working within it. Zero
	// means DefaultTokenCacheTTL; negative turns the cache off.
	CacheTTL time.Duration
}

// DefaultLeeway is the clock skew tolerated on exp and nbf.
const DefaultLeeway = 30 * time.Second

// NewAuthenticator returns an authenticator that accepts tokens signed by one of the keys
// with an allowed asymmetric algorithm, for the issuer and audience, with exp required.
// Returns an error without keys or with a symmetric or unknown algorithm.
func NewAuthenticator(cfg AuthConfig, reg *domain.Registry) (*Authenticator, error) {
	if len(cfg.Keys) == 0 && cfg.JWKS == nil {
		return nil, errors.New("auth: no verification keys configured")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: issuer and audience are required")
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = []string{"EdDSA"}
	}
	for _, a := range algs {
		switch a {
		case "EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		default:
			return nil, fmt.Errorf("auth: algorithm %q is not allowed (asymmetric algorithms only)", a)
		}
	}
	kf := cfg.JWKS
	if kf == nil {
		set := jwt.VerificationKeySet{}
		for _, k := range cfg.Keys {
			set.Keys = append(set.Keys, k)
		}
		kf = func(*jwt.Token) (any, error) { return set, nil }
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithIssuer(cfg.Issuer), jwt.WithAudience(cfg.Audience), jwt.WithLeeway(cfg.Leeway),
	}
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	a := &Authenticator{keyfunc: kf, parser: jwt.NewParser(opts...), registry: reg, now: now, leeway: cfg.Leeway, jwks: cfg.JWKS != nil}
	switch {
	case cfg.CacheTTL == 0:
		a.cache = newTokenCache(DefaultTokenCacheTTL, tokenCacheMax)
	case cfg.CacheTTL > 0:
		a.cache = newTokenCache(cfg.CacheTTL, tokenCacheMax)
	}
	return a, nil
}

// Authenticate verifies the Authorization header value and returns the actor. Returns
// EUnauthorized for a missing, malformed, badly signed, expired or inconsistent token.
func (a *Authenticator) Authenticate(header string) (domain.Actor, error) {
	raw, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || raw == "" {
		return domain.Actor{}, domain.Errorf(domain.EUnauthorized, "a bearer token is required")
	}
	var key [32]byte
	if a.cache != nil {
		key = sha256.Sum256([]byte(raw))
		if e, ok := a.cache.get(key, a.now()); ok && a.keyStillThere(e) {
			return e.actor, nil
		}
	}
	var c Claims
	tok, err := a.parser.ParseWithClaims(raw, &c, a.keyfunc)
	if err != nil {
		reason := "the token is invalid"
		switch {
		case errors.Is(err, jwt.ErrTokenInvalidIssuer):
			reason = "the token is from another issuer"
		case errors.Is(err, jwt.ErrTokenInvalidAudience):
			reason = "the token is for another audience"
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			reason = "the token lacks a required claim (exp)"
		case errors.Is(err, jwt.ErrTokenExpired):
			reason = "the token has expired"
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			reason = "the token is not valid yet"
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			reason = "the token signature is invalid"
		}
		return domain.Actor{}, domain.Errorf(domain.EUnauthorized, "%s", reason)
	}
	actor := domain.Actor{UserID: c.Subject, Name: c.Name, Org: domain.OrgID(c.Org)}
	if actor.UserID == "" || len(actor.UserID) > 128 {
		return domain.Actor{}, domain.Errorf(domain.EUnauthorized, "the token has no valid subject")
	}
	// The access log names the user as well as their id (DOMAIN §5, Act 703/2023).
	if !readableName(actor.Name) {
		return domain.Actor{}, domain.Errorf(domain.EUnauthorized, "the token has no valid name: the access log records the user's name")
	}
	if _, ok := a.registry.Organisation(actor.Org); !ok {
		return domain.Actor{}, domain.Errorf(domain.EUnauthorized, "the token names an unknown organisation")
	}
	for _, r := range c.Roles {
		role := domain.Role(r)
		switch {
		case !role.Valid():
			return domain.Actor{}, domain.Errorf(domain.EUnauthorized, "the token names an unknown role")
		case role == domain.RoleKelaHandler && !actor.Org.IsKela(), role == domain.RoleSocialWorker && !actor.Org.IsCounty():
			return domain.Actor{}, domain.Errorf(domain.EUnauthorized, "the token's role does not belong to its organisation")
		}
		actor.Roles = append(actor.Roles, role)
	}
	if a.cache != nil && c.ExpiresAt != nil { // exp is required: the parser refused a token without
		e := cachedToken{actor: actor}
		e.actor.Roles = slices.Clone(actor.Roles) // the caller's copy stays the caller's
		e.kid, _ = tok.Header["kid"].(string)
		e.alg, _ = tok.Header["alg"].(string)
		// Without a kid, only static keys (which never change here) let a hit skip the key
		// check: a JWKS may withdraw the key that verified it.
		if e.kid != "" || !a.jwks {
			a.cache.put(key, e, c.ExpiresAt.Add(a.leeway), a.now())
		}
	}
	return actor, nil
}

// keyStillThere reports whether the key a cached token named by kid is still in the key set
// (a JWKS lookup by kid, no signature check). Tokens without a kid are cached only when the
// keys are static, which do not change while the service runs.
func (a *Authenticator) keyStillThere(e cachedToken) bool {
	if e.kid == "" {
		return true
	}
	_, err := a.keyfunc(&jwt.Token{Header: map[string]any{"kid": e.kid, "alg": e.alg}})
	return err == nil
}

// MintToken signs a token for the claims, valid from now for ttl. Used by referralctl and tests.
func MintToken(key ed25519.PrivateKey, sub string, org domain.OrgID, roles []domain.Role, name string, now time.Time, ttl time.Duration) (string, error) {
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: sub, Issuer: DevIssuer, Audience: jwt.ClaimStrings{Audience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Org: string(org), Name: name,
	}
	for _, r := range roles {
		c.Roles = append(c.Roles, string(r))
	}
	return jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(key)
}

// DevKeyFile is the name of the dev signing key in the data directory.
const DevKeyFile = "dev-signing-key.pem"

// LoadOrCreateDevKey returns the dev signing key from dir, creating it (mode 0600) on first use.
func LoadOrCreateDevKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, DevKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		return parsePrivateKey(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("auth: read dev key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate dev key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("auth: encode dev key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			return LoadOrCreateDevKey(dir)
		}
		return nil, fmt.Errorf("auth: create dev key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, fmt.Errorf("auth: write dev key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("auth: sync dev key: %w", err)
	}
	return priv, f.Close()
}

// ReadDevKey reads an existing dev signing key from dir.
func ReadDevKey(dir string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(filepath.Join(dir, DevKeyFile))
	if err != nil {
		return nil, fmt.Errorf("auth: read dev key (start referrald --dev once to create it): %w", err)
	}
	return parsePrivateKey(b)
}

func parsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("auth: dev key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: parse dev key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("auth: dev key is not Ed25519")
	}
	return priv, nil
}

// ReadPublicKeys reads one or more PEM "PUBLIC KEY" blocks (Ed25519, ECDSA or RSA) from a file.
func ReadPublicKeys(path string) ([]crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read public keys: %w", err)
	}
	var keys []crypto.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: parse public key in %s: %w", path, err)
		}
		switch k.(type) {
		case ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey:
		default:
			return nil, fmt.Errorf("auth: %s: only Ed25519, ECDSA and RSA public keys are accepted", path)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("auth: no PEM public key in %s", path)
	}
	return keys, nil
}
