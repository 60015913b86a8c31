package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
)

// endpoint is one operation of the contract with what its rightful caller sends.
type endpoint struct {
	name   string
	method string
	path   string // "{id}" is replaced by a fresh referral's id
	body   any
	// prepare brings the fresh referral into the state the operation needs.
	prepare func(h *harness, id string)
	// own is the organisation and role that may call it; want its status.
	ownOrg  string
	ownRole domain.Role
	want    int
	// public reference data: any authenticated role may read it.
	anyRole bool
}

func received(h *harness, id string) { h.act(hkiWorker(h), id, "receive", nil) }

var endpoints = []endpoint{
	{name: "create", method: "POST", path: "/v1/referrals", body: needBody(pidMatti, "091"), ownOrg: "kela", ownRole: domain.RoleKelaHandler, want: 201},
	{name: "list", method: "GET", path: "/v1/referrals", ownOrg: "hva-90", ownRole: domain.RoleSocialWorker, want: 200},
	{name: "get", method: "GET", path: "/v1/referrals/{id}", ownOrg: "hva-90", ownRole: domain.RoleSocialWorker, want: 200},
	{name: "receive", method: "POST", path: "/v1/referrals/{id}/receive", ownOrg: "hva-90", ownRole: domain.RoleSocialWorker, want: 200},
	{name: "start", method: "POST", path: "/v1/referrals/{id}/start", body: map[string]any{}, prepare: received, ownOrg: "hva-90", ownRole: domain.RoleSocialWorker, want: 200},
	{name: "request-info", method: "POST", path: "/v1/referrals/{id}/request-info", body: map[string]any{"question": "Osoite?"}, ownOrg: "hva-90", ownRole: domain.RoleSocialWorker, want: 200},
	{name: "complete", method: "POST", path: "/v1/referrals/{id}/complete", body: map[string]any{"outcome": "already_client"}, prepare: received, ownOrg: "hva-90", ownRole: domain.RoleSocialWorker, want: 200},
	{name: "return", method: "POST", path: "/v1/referrals/{id}/return", body: map[string]any{"reason": "not_our_client", "text": "Ei asiakkaamme."}, ownOrg: "hva-90", ownRole: domain.RoleSocialWorker, want: 200},
	{name: "withdraw", method: "POST", path: "/v1/referrals/{id}/withdraw", body: map[string]any{"reason": "sent_in_error"}, ownOrg: "kela", ownRole: domain.RoleKelaHandler, want: 200},
	{name: "forward", method: "POST", path: "/v1/referrals/{id}/forward", body: map[string]any{"to_municipality": "837"}, ownOrg: "hva-90", ownRole: domain.RoleSocialWorker, want: 200},
	{name: "add message", method: "POST", path: "/v1/referrals/{id}/messages", body: map[string]any{"text": "Soitin asiakkaalle."}, ownOrg: "hva-90", ownRole: domain.RoleSocialWorker, want: 200},
	{name: "messages", method: "GET", path: "/v1/referrals/{id}/messages", ownOrg: "kela", ownRole: domain.RoleKelaHandler, want: 200},
	{name: "timeline", method: "GET", path: "/v1/referrals/{id}/timeline", ownOrg: "kela", ownRole: domain.RoleKelaHandler, want: 200},
	{name: "client search", method: "POST", path: "/v1/clients/search", body: map[string]any{"personal_id": pidMatti}, ownOrg: "kela", ownRole: domain.RoleKelaHandler, want: 200},
	{name: "organisations", method: "GET", path: "/v1/organisations", ownOrg: "hva-90", ownRole: domain.RoleAuditor, want: 200, anyRole: true},
	{name: "municipalities", method: "GET", path: "/v1/municipalities", ownOrg: "kela", ownRole: domain.RoleAuditor, want: 200, anyRole: true},
}

// TestEndpointAuthorizationMatrix runs every endpoint for its own organisation, another
// organisation, no token, a bad signature, an expired token and a wrong role.
func TestEndpointAuthorizationMatrix(t *testing.T) {
	h := newHarness(t, "")
	// The other organisation: a county that is party to nothing here, and for Kela's own
	// operations on a county's referral, a county again (Kela is party to all of these).
	otherOrg := func(h *harness) string { return h.token("hva-08", domain.RoleSocialWorker, domain.RoleSupervisor) }
	expired := func(h *harness, e endpoint) string {
		tok, err := api.MintToken(h.key, "user", domain.OrgID(e.ownOrg), []domain.Role{e.ownRole}, "Test User", time.Now().Add(-2*time.Hour), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	badSignature := func(h *harness, e endpoint) string {
		tok, err := api.MintToken(otherKey, "user", domain.OrgID(e.ownOrg), []domain.Role{e.ownRole}, "Test User", time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, e := range endpoints {
		fresh := func() string {
			id := h.create(kelaHandler(h), needBody(pidMatti, "091"))
			if e.prepare != nil {
				e.prepare(h, id)
			}
			return strings.ReplaceAll(e.path, "{id}", id)
		}
		scoped := strings.Contains(e.path, "{id}")
		t.Run(e.name+"/own org", func(t *testing.T) {
			if r := h.do(e.method, fresh(), h.token(e.ownOrg, e.ownRole), e.body); r.status != e.want {
				t.Errorf("status %d, want %d: %s", r.status, e.want, r.body)
			}
		})
		if scoped {
			t.Run(e.name+"/other org", func(t *testing.T) {
				if r := h.do(e.method, fresh(), otherOrg(h), e.body); r.status != http.StatusNotFound {
					t.Errorf("status %d, want 404: %s", r.status, r.body)
				}
			})
		}
		t.Run(e.name+"/no token", func(t *testing.T) {
			r := h.do(e.method, fresh(), "", e.body)
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("status %d (WWW-Authenticate %q), want 401", r.status, r.header.Get("WWW-Authenticate"))
			}
		})
		t.Run(e.name+"/bad signature", func(t *testing.T) {
			if r := h.do(e.method, fresh(), badSignature(h, e), e.body); r.status != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", r.status)
			}
		})
		t.Run(e.name+"/expired", func(t *testing.T) {
			r := h.do(e.method, fresh(), expired(h, e), e.body)
			if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "expired") {
				t.Errorf("status %d, want 401 saying expired: %s", r.status, r.body)
			}
		})
		if !e.anyRole {
			t.Run(e.name+"/wrong role", func(t *testing.T) {
				if r := h.do(e.method, fresh(), h.token(e.ownOrg, domain.RoleAuditor), e.body); r.status != http.StatusForbidden {
					t.Errorf("status %d, want 403: %s", r.status, r.body)
				}
			})
		}
	}
}

func TestOtherOrganisationsDataStaysHidden(t *testing.T) {
	h := newHarness(t, "")
	h.create(kelaHandler(h), needBody(pidMatti, "091"))
	tre := tampere(h)
	if items := h.do("GET", "/v1/referrals", tre, nil).json(t)["items"].([]any); len(items) != 0 {
		t.Errorf("Tampere lists %d of Helsinki's referrals", len(items))
	}
	s := h.do("POST", "/v1/clients/search", tre, map[string]any{"personal_id": pidMatti}).json(t)
	if items := s["items"].([]any); len(items) != 0 {
		t.Errorf("Tampere finds %d of Helsinki's referrals by identity code", len(items))
	}
	// An unknown id and another organisation's id answer alike.
	unknown := h.do("GET", "/v1/referrals/01936f0e-0000-7000-8000-000000000000", tre, nil)
	if unknown.status != http.StatusNotFound {
		t.Errorf("unknown id: %d", unknown.status)
	}
}

func TestTokensThatMustBeRefused(t *testing.T) {
	h := newHarness(t, "")
	mintFor := func(sub, name, org string, roles ...domain.Role) string {
		tok, err := api.MintToken(h.key, sub, domain.OrgID(org), roles, name, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	mintNamed := func(name, org string, roles ...domain.Role) string { return mintFor("u", name, org, roles...) }
	mint := func(org string, roles ...domain.Role) string { return mintNamed("Test User", org, roles...) }
	for _, name := range []string{"Test User", "Åsa Öhman-Äijälä", strings.Repeat("ä", 200)} {
		if r := h.do("GET", "/v1/referrals", mintNamed(name, "kela", domain.RoleKelaHandler), nil); r.status != http.StatusOK {
			t.Fatalf("a valid token named %q: status %d, want 200", name, r.status)
		}
	}
	// The longest subject the access log's user query takes (GET /v1/audit?user=).
	if r := h.do("GET", "/v1/referrals", mintFor(strings.Repeat("a", 128), "Test User", "kela", domain.RoleKelaHandler), nil); r.status != http.StatusOK {
		t.Fatalf("a subject of 128 characters: status %d, want 200", r.status)
	}
	cases := map[string]string{
		// An access log entry's user must be one an auditor can ask for.
		"subject too long": mintFor(strings.Repeat("a", 129), "Test User", "kela", domain.RoleKelaHandler),
		// The access log must name the user (DOMAIN §5).
		"no name":                    mintNamed("", "kela", domain.RoleKelaHandler),
		"blank name":                 mintNamed("  ", "kela", domain.RoleKelaHandler),
		"name too long":              mintNamed(strings.Repeat("ä", 201), "kela", domain.RoleKelaHandler),
		"name of control characters": mintNamed("\x01\x02\t\x7f", "kela", domain.RoleKelaHandler),
		"name with a NUL":            mintNamed("Liisa\x00", "kela", domain.RoleKelaHandler),
		"name of zero-width spaces":  mintNamed("\u200b\u200b", "kela", domain.RoleKelaHandler),
		"name of a byte-order mark":  mintNamed("\ufeff", "kela", domain.RoleKelaHandler),
		"name of punctuation only":   mintNamed("-.-", "kela", domain.RoleKelaHandler),
		"name of a hangul filler":    mintNamed("\u3164", "kela", domain.RoleKelaHandler),
		"name with a line separator": mintNamed("Liisa\u2028Virtanen", "kela", domain.RoleKelaHandler),
		"name of private-use marks":  mintNamed("Liisa\ue000", "kela", domain.RoleKelaHandler),
		"unknown organisation":       mint("hva-99", domain.RoleSocialWorker),
		"kela role at a county":      mint("hva-90", domain.RoleKelaHandler),
		"social worker role at kela": mint("kela", domain.RoleSocialWorker),
		"unknown role":               mint("kela", domain.Role("admin")),
		"not a JWT":                  "not-a-token",
		"alg none":                   "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1Iiwib3JnIjoia2VsYSIsInJvbGVzIjpbImtlbGFfaGFuZGxlciJdfQ.",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			if r := h.do("GET", "/v1/referrals", tok, nil); r.status != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", r.status)
			}
		})
	}
}
