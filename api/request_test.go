package api_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/kela-hva/referrals/openapi"
)

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// roundTrip sends method url with the bearer token ("" for none) and body (nil for none,
// else sent as application/json), X-Purpose benefit_processing (every client-data operation
// needs one), then the header pairs, where an empty value removes the header; it reads the
// whole answer, which must be one the spec documents (checkResponse). Any 4xx or 5xx must
// come as application/problem+json. API tests send through it, or call checkResponse
// themselves (backup, mTLS); only the problem tests that call handlers directly do not.
func roundTrip(tb testing.TB, client *http.Client, method, url, token string, body io.Reader, headers ...string) response {
	tb.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("X-Purpose", "benefit_processing")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, url, err)
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		tb.Errorf("%s %s: status %d with Content-Type %q, want application/problem+json", method, url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := response{status: resp.StatusCode, header: resp.Header, body: b}
	checkResponse(tb, req, out)
	return out
}

// specRouter finds a request's operation in the served OpenAPI spec, by path alone.
var specRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	doc.Servers = nil // the test server's address is not among them
	for _, ref := range doc.Components.Schemas {
		closeObjects(ref, map[*openapi3.Schema]bool{})
	}
	return legacy.NewRouter(doc)
})

// closeObjects forbids, for the tests only, properties the spec does not name in every object
// schema that names some: an answer carrying a field the spec does not document (a new field
// nobody described, or an internal one leaking) then fails its check. The served spec leaves
// them open, so that clients accept fields added later.
func closeObjects(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
		s.AdditionalProperties.Has = openapi3.Ptr(false)
	}
	for _, p := range s.Properties {
		closeObjects(p, seen)
	}
	closeObjects(s.Items, seen)
	for _, list := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf, s.AllOf} {
		for _, r := range list {
			closeObjects(r, seen)
		}
	}
}

// checkResponse fails the test if the answer to req is not one the spec documents for its
// operation: its status, and its body against that status's schema. Requests outside the
// spec's paths (unknown routes) are not checked.
func checkResponse(tb testing.TB, req *http.Request, r response) {
	tb.Helper()
	router, err := specRouter()
	if err != nil {
		tb.Fatalf("load the spec: %v", err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 r.status, Header: r.header, Options: opts,
	}
	in.SetBodyBytes(r.body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		tb.Errorf("%s %s: the answer (%d) is not what the spec documents: %v", req.Method, req.URL.Path, r.status, err)
	}
}
