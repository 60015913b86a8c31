package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
)

// user is one simulated person at work: a Kela benefit handler, a county social worker or a
// supervisor.
type user struct {
	ID   string
	Name string
	Org  domain.OrgID
	Role domain.Role
}

// purpose is the reason code sent as X-Purpose (domain.Purposes): why the user reads client
// data. The service requires it on every endpoint that returns client data.
func (u user) purpose() string { return u.purposeFor("") }

// purposeFor is the user's purpose when working on a referral of kind k ("": in general).
func (u user) purposeFor(k domain.Kind) string {
	switch {
	case u.Role == domain.RoleSupervisor:
		return string(domain.PurposeSupervision)
	case u.Org.IsKela():
		return string(domain.PurposeBenefitProcessing)
	case k == domain.KindSupplementarySupportHandoff:
		return string(domain.PurposeSocialAssistanceProcessing)
	case k == domain.KindJointMeetingRequest:
		return string(domain.PurposeClientContact)
	}
	return string(domain.PurposeServiceNeedAssessment)
}

// tokenSource gives each user a bearer token: minted with the dev signing key of a
// referrald --dev data directory, or taken from tokens given on the command line
// ("org=JWT" or "org:role=JWT").
type tokenSource struct {
	key   ed25519.PrivateKey // nil: only given tokens
	given map[string]string
	ttl   time.Duration

	mu    sync.Mutex
	cache map[user]mintedToken
}

type mintedToken struct {
	token string
	at    time.Time
}

// newTokenSource reads the dev key from dataDir unless tokens are given; it returns an error
// if neither is available or a given token is malformed.
func newTokenSource(dataDir string, given []string, ttl time.Duration) (*tokenSource, error) {
	ts := &tokenSource{given: map[string]string{}, ttl: ttl, cache: map[user]mintedToken{}}
	for _, g := range given {
		who, tok, ok := strings.Cut(g, "=")
		if !ok || who == "" || tok == "" {
			return nil, fmt.Errorf("--token %q: want ORG=JWT or ORG:ROLE=JWT", g)
		}
		ts.given[who] = tok
	}
	if len(ts.given) > 0 {
		return ts, nil
	}
	key, err := api.ReadDevKey(dataDir)
	if err != nil {
		return nil, fmt.Errorf("no --token given and no dev key in --data-dir %s (start referrald --dev with that data dir first): %w", dataDir, err)
	}
	ts.key = key
	return ts, nil
}

// has reports whether a token can be had for someone of org with role.
func (ts *tokenSource) has(org domain.OrgID, role domain.Role) bool {
	if ts.key != nil {
		return true
	}
	_, a := ts.given[string(org)+":"+string(role)]
	_, b := ts.given[string(org)]
	return a || b
}

// token returns u's token; minted tokens are cached and renewed at half their lifetime.
func (ts *tokenSource) token(u user) (string, error) {
	if ts.key == nil {
		if t, ok := ts.given[string(u.Org)+":"+string(u.Role)]; ok {
			return t, nil
		}
		if t, ok := ts.given[string(u.Org)]; ok {
			return t, nil
		}
		return "", fmt.Errorf("no token given for %s (%s)", u.Org, u.Role)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	// Token expiry runs on real time; a long simulation gets fresh tokens at half-life.
	if t, ok := ts.cache[u]; ok && time.Since(t.at) < ts.ttl/2 {
		return t.token, nil
	}
	now := time.Now()
	t, err := api.MintToken(ts.key, u.ID, u.Org, []domain.Role{u.Role}, u.Name, now, ts.ttl)
	if err != nil {
		return "", err
	}
	ts.cache[u] = mintedToken{token: t, at: now}
	return t, nil
}

// apiClient calls the referral service as simulated users and counts the answers.
type apiClient struct {
	base   string
	http   *http.Client
	tokens *tokenSource

	mu       sync.Mutex
	statuses map[string]map[int]int // "POST /v1/referrals/{id}/receive" → status → count
}

func newAPIClient(base string, tokens *tokenSource, conns int) *apiClient {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 90 * time.Second}
	return &apiClient{base: strings.TrimRight(base, "/"), tokens: tokens,
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, statuses: map[string]map[int]int{}}
}

// problemError is an answer of the service outside 2xx.
type problemError struct {
	Status int
	Route  string
	Title  string
	Detail string
}

func (e *problemError) Error() string {
	s := fmt.Sprintf("%s: %d", e.Route, e.Status)
	if e.Title != "" {
		s += " " + e.Title
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// do sends a request as u, with the user's X-Purpose (headers may name another). body, when
// not nil, is sent as JSON;
// a 2xx answer is decoded into out when out is not nil. route names the endpoint in the
// counts (no ids in it). It returns a *problemError for an answer outside 2xx.
func (c *apiClient) do(ctx context.Context, u user, method, path, route string, body, out any, headers ...string) error {
	tok, err := c.tokens.token(u)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Purpose", u.purpose())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.count(route, 0)
		return fmt.Errorf("%s: %w", route, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	c.count(route, resp.StatusCode)
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", route, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		pe := &problemError{Status: resp.StatusCode, Route: route}
		var p struct{ Title, Detail string }
		if json.Unmarshal(b, &p) == nil {
			pe.Title, pe.Detail = p.Title, p.Detail
		}
		return pe
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s: decode answer: %w", route, err)
		}
	}
	return nil
}

func (c *apiClient) count(route string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.statuses[route]
	if m == nil {
		m = map[int]int{}
		c.statuses[route] = m
	}
	m[status]++
}

// statusLines returns "route: 200×12 409×1" lines, sorted, and the number of requests that
// did not get a 2xx answer.
func (c *apiClient) statusLines() ([]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	failed := 0
	for route, m := range c.statuses {
		var codes []int
		for code := range m {
			codes = append(codes, code)
		}
		sort.Ints(codes)
		var parts []string
		for _, code := range codes {
			name := fmt.Sprint(code)
			if code == 0 {
				name = "no-answer"
			}
			parts = append(parts, fmt.Sprintf("%s×%d", name, m[code]))
			if code < 200 || code > 299 {
				failed += m[code]
			}
		}
		lines = append(lines, fmt.Sprintf("%-42s %s", route, strings.Join(parts, " ")))
	}
	sort.Strings(lines)
	return lines, failed
}

// isStatus reports whether err is a problemError with the status.
func isStatus(err error, status int) bool {
	var pe *problemError
	return errors.As(err, &pe) && pe.Status == status
}
