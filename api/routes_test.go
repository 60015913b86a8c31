package api_test

import (
	"net/http"
	"slices"
	"sort"
	"testing"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/openapi"
)

// TestRoutesMatchTheSpec fails whenever a route is added without its operation in
// openapi.yaml, or the spec describes an operation the server does not have.
func TestRoutesMatchTheSpec(t *testing.T) {
	reg := domain.DefaultRegistry()
	e := api.NewServer(api.Deps{Service: &domain.Service{Registry: reg}, Logger: nil, Registry: reg})
	var routes []string
	for _, r := range e.Routes() {
		switch r.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			routes = append(routes, r.Method+" "+openapi.EchoPath(r.Path))
		}
	}
	sort.Strings(routes)
	ops := mustValidator(t).Operations()
	if !slices.Equal(routes, ops) {
		t.Errorf("routes and spec differ:\nroutes: %v\nspec:   %v", routes, ops)
	}
}

func TestSpecIsServed(t *testing.T) {
	h := newHarness(t, "")
	r := h.do("GET", "/openapi.yaml", "", nil)
	if r.status != http.StatusOK || string(r.body) != string(openapi.YAML()) {
		t.Errorf("status %d, %d bytes", r.status, len(r.body))
	}
	if r := h.do("GET", "/healthz", "", nil); r.status != http.StatusOK {
		t.Errorf("healthz %d", r.status)
	}
	if r := h.do("GET", "/readyz", "", nil); r.status != http.StatusOK {
		t.Errorf("readyz %d", r.status)
	}
}
