package openapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/kela-hva/referrals/domain"
)

// testID is a valid test identity code (henkilötunnus); it must never appear in an error.
const testID = "131052-308T"

const refID = "01936f0e-5b2a-7c3d-8e4f-0123456789ab"

const validNeed = `{
  "kind": "social_work_need",
  "urgency": "normal",
  "kela_case_ref": "TO-2026-0012345",
  "client": {
    "personal_id": "131052-308T",
    "name": "Matti Meikäläinen",
    "home_municipality": "091",
    "language": "fi",
    "needs_interpreter": false,
    "phone": "+358401234567",
    "can_use_eservices": false
  },
  "social_work_need": {
    "need_flags": ["housing_risk", "released_from_prison"],
    "consent": "given",
    "immediate_need": false,
    "description": "Released 2026-11-20, no address yet."
  }
}`

const validHandoff = `{
  "kind": "supplementary_support_handoff",
  "urgency": "urgent",
  "client": {"personal_id": "131052-308T", "name": "Maija", "home_municipality": "837", "preferred_contact_channel": "letter"},
  "supplementary_support": {
    "support_types": ["supplementary", "preventive"],
    "application_received_at_kela": "2026-11-18",
    "basic_decision_date": "2026-11-20",
    "expense_items": [{"type": "medical", "amount_eur": "84.50", "text": "glasses"}],
    "document_refs": ["doc:2026/123"]
  }
}`

const validDirectPayment = `{
  "kind": "direct_payment_request",
  "urgency": "normal",
  "kela_case_ref": "TO-2026-1",
  "client": {"personal_id": "131052-308T", "name": "Maija"},
  "to_kela": {"subject": "Rent", "text": "Please pay the rent directly."},
  "direct_payment": {
    "bills": [{"biller": "Landlord Oy", "reference": "RF18 1234", "amount_eur": "650", "period": "monthly"}],
    "valid_from": "2026-12-01", "valid_until": "2027-05-31"
  }
}`

var (
	loadOnce sync.Once
	testDoc  *openapi3.T
	testV    *Validator
	loadErr  error
)

func validator(tb testing.TB) *Validator {
	tb.Helper()
	loadOnce.Do(func() {
		testDoc, loadErr = Load()
		if loadErr == nil {
			testV, loadErr = NewValidator(testDoc)
		}
	})
	if loadErr != nil {
		tb.Fatalf("load: %v", loadErr)
	}
	return testV
}

func newRequest(method, target string, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("X-Purpose", "benefit_processing") // required where client data is returned
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// validate runs ValidateRequest and returns the *domain.Error (nil if valid).
func validate(t *testing.T, r *http.Request, route string, params map[string]string, body string) *domain.Error {
	t.Helper()
	err := validator(t).ValidateRequest(context.Background(), r, route, params, []byte(body))
	if err == nil {
		return nil
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("error is %T (%v), want *domain.Error", err, err)
	}
	return de
}

func TestLoad(t *testing.T) {
	doc, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	if !bytes.Equal(YAML(), specYAML) || len(YAML()) == 0 {
		t.Error("YAML() does not return the embedded spec")
	}
	// Independent load of YAML() with a fresh loader, as the brief prescribes.
	doc2, err := openapi3.NewLoader().LoadFromData(YAML())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc2.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if doc.Components.SecuritySchemes["bearerAuth"] == nil {
		t.Error("no bearerAuth security scheme")
	}
}

func TestOperations(t *testing.T) {
	want := []string{
		"GET /healthz",
		"GET /metrics",
		"GET /openapi.yaml",
		"GET /readyz",
		"GET /v1/admin/backup",
		"GET /v1/audit",
		"GET /v1/municipalities",
		"GET /v1/organisations",
		"GET /v1/referrals",
		"GET /v1/referrals/{id}",
		"GET /v1/referrals/{id}/messages",
		"GET /v1/referrals/{id}/timeline",
		"GET /v1/reports/response-times",
		"POST /v1/audit/client-extract",
		"POST /v1/clients/search",
		"POST /v1/referrals",
		"POST /v1/referrals/{id}/complete",
		"POST /v1/referrals/{id}/forward",
		"POST /v1/referrals/{id}/messages",
		"POST /v1/referrals/{id}/receive",
		"POST /v1/referrals/{id}/request-info",
		"POST /v1/referrals/{id}/return",
		"POST /v1/referrals/{id}/start",
		"POST /v1/referrals/{id}/withdraw",
	}
	got := validator(t).Operations()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Operations() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got[0] = "mutated"
	if validator(t).Operations()[0] != want[0] {
		t.Error("Operations() exposes internal state")
	}
}

// TestChangesAnswerWithTheUpdatedReferral checks DOMAIN §9's "each returns the updated
// referral" in the spec: every POST on a referral (the seven transitions and a message)
// succeeds only with 200 ReferralUpdated, the referral with its ETag.
func TestChangesAnswerWithTheUpdatedReferral(t *testing.T) {
	const updated = "#/components/responses/ReferralUpdated"
	doc := validator(t).routes["GET /healthz"].Spec
	var posts []string
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/v1/referrals/{id}/") || item.Post == nil {
			continue
		}
		posts = append(posts, path)
		if ok := item.Post.Responses.Value("200"); ok == nil || ok.Ref != updated {
			t.Errorf("POST %s: 200 is not %s", path, updated)
		}
		for code := range item.Post.Responses.Map() {
			if strings.HasPrefix(code, "2") && code != "200" {
				t.Errorf("POST %s: success %s besides 200", path, code)
			}
		}
	}
	if len(posts) != 8 {
		t.Errorf("%d POST operations on a referral, want 8 (seven transitions and messages): %v", len(posts), posts)
	}
}

// TestSecurity checks that every /v1 operation needs bearerAuth and the four operational
// endpoints need nothing, and that every /v1 operation has the error responses it needs.
func TestSecurity(t *testing.T) {
	doc := validator(t).routes["GET /healthz"].Spec
	if len(doc.Security) != 1 || doc.Security[0]["bearerAuth"] == nil {
		t.Fatalf("global security = %v, want bearerAuth", doc.Security)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if strings.HasPrefix(path, "/v1/") {
				if op.Security != nil && len(*op.Security) == 0 {
					t.Errorf("%s: security disabled", name)
				}
				for _, code := range []string{"401", "403", "500"} {
					if op.Responses.Value(code) == nil {
						t.Errorf("%s: no %s response", name, code)
					}
				}
				if op.RequestBody != nil {
					for _, code := range []string{"400", "413", "415", "422"} {
						if op.Responses.Value(code) == nil {
							t.Errorf("%s: no %s response", name, code)
						}
					}
				}
				for code, rr := range op.Responses.Map() {
					if code[0] == '4' || code[0] == '5' {
						if rr.Value.Content.Get("application/problem+json") == nil {
							t.Errorf("%s %s: not application/problem+json", name, code)
						}
					}
				}
			} else if op.Security == nil || len(*op.Security) != 0 {
				t.Errorf("%s: want security: []", name)
			}
		}
	}
}

func TestValidateCreate(t *testing.T) {
	long := strings.Repeat("a", domain.MaxTextLen+1)
	replace := func(old, new string) string {
		if !strings.Contains(validNeed, old) {
			t.Fatalf("test body has no %q", old)
		}
		return strings.Replace(validNeed, old, new, 1)
	}
	tests := []struct {
		name string
		body string
		code domain.Code // "" = valid
		ptrs []string    // pointers that must be reported
	}{
		{"valid social_work_need", validNeed, "", nil},
		{"valid handoff", validHandoff, "", nil},
		{"valid direct payment", validDirectPayment, "", nil},
		{"unknown top-level field", replace(`"urgency"`, `"nickname": "x", "urgency"`), domain.EMalformed, []string{"/nickname"}},
		{"unknown nested field", replace(`"name"`, `"nickname": "x", "name"`), domain.EMalformed, []string{"/client/nickname"}},
		{"unknown field deeper", strings.Replace(validHandoff, `"type": "medical"`, `"colour": 1, "type": "medical"`, 1), domain.EMalformed, []string{"/supplementary_support/expense_items/0/colour"}},
		{"unknown field needing escape", replace(`"urgency"`, `"a/b": 1, "urgency"`), domain.EMalformed, []string{""}},
		{"wrong enum", replace(`"urgency": "normal"`, `"urgency": "soon"`), domain.EInvalid, []string{"/urgency"}},
		{"wrong kind", replace(`"kind": "social_work_need"`, `"kind": "gossip"`), domain.EInvalid, []string{"/kind"}},
		{"wrong nested enum", replace(`"released_from_prison"`, `"bored"`), domain.EInvalid, []string{"/social_work_need/need_flags/1"}},
		{"missing required top-level", replace(`"urgency": "normal",`, ``), domain.EInvalid, []string{"/urgency"}},
		{"missing required nested", replace(`"personal_id": "131052-308T",`, ``), domain.EInvalid, []string{"/client/personal_id"}},
		{"missing consent", replace(`"consent": "given",`, ``), domain.EInvalid, []string{"/social_work_need/consent"}},
		{"empty need flags", replace(`["housing_risk", "released_from_prison"]`, `[]`), domain.EInvalid, []string{"/social_work_need/need_flags"}},
		{"repeated need flag", replace(`["housing_risk", "released_from_prison"]`, `["housing_risk", "housing_risk"]`), domain.EInvalid, []string{"/social_work_need/need_flags"}},
		{"too-long description", replace(`"Released 2026-11-20, no address yet."`, `"`+long+`"`), domain.EInvalid, []string{"/social_work_need/description"}},
		{"name too long", replace(`"Matti Meikäläinen"`, `"`+strings.Repeat("ä", domain.MaxNameLen+1)+`"`), domain.EInvalid, []string{"/client/name"}},
		{"name at the limit in runes", replace(`"Matti Meikäläinen"`, `"`+strings.Repeat("ä", domain.MaxNameLen)+`"`), "", nil},
		{"municipality pattern", replace(`"091"`, `"91"`), domain.EInvalid, []string{"/client/home_municipality"}},
		{"language pattern", replace(`"language": "fi"`, `"language": "FIN"`), domain.EInvalid, []string{"/client/language"}},
		{"wrong type", replace(`"needs_interpreter": false`, `"needs_interpreter": "no"`), domain.EInvalid, []string{"/client/needs_interpreter"}},
		{"null block", replace(`"kela_case_ref": "TO-2026-0012345",`, `"to_kela": null,`), domain.EInvalid, []string{"/to_kela"}},
		{"reduction level out of range", replace(`"consent": "given"`, `"reduction_level": 3, "consent": "given"`), domain.EInvalid, []string{"/social_work_need/reduction_level"}},
		{"amount pattern", strings.Replace(validHandoff, `"84.50"`, `"84,50"`, 1), domain.EInvalid, []string{"/supplementary_support/expense_items/0/amount_eur"}},
		{"date format", strings.Replace(validHandoff, `"2026-11-18"`, `"18.11.2026"`, 1), domain.EInvalid, []string{"/supplementary_support/application_received_at_kela"}},
		{"bill period", strings.Replace(validDirectPayment, `"monthly"`, `"weekly"`, 1), domain.EInvalid, []string{"/direct_payment/bills/0/period"}},
		{"no bills", strings.Replace(validDirectPayment, `[{"biller": "Landlord Oy", "reference": "RF18 1234", "amount_eur": "650", "period": "monthly"}]`, `[]`, 1), domain.EInvalid, []string{"/direct_payment/bills"}},
		{"malformed JSON", `{"kind": "social_work_need",`, domain.EMalformed, []string{""}},
		{"trailing garbage", validNeed + `}`, domain.EMalformed, []string{""}},
		{"not an object", `[]`, domain.EInvalid, []string{""}},
		{"empty body", ``, domain.EMalformed, []string{""}},
		{"unknown and invalid together: 400 wins", replace(`"urgency": "normal"`, `"urgency": "soon", "nickname": 1`), domain.EMalformed, []string{"/urgency", "/nickname"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRequest(http.MethodPost, "/v1/referrals", tt.body)
			e := validate(t, r, "/v1/referrals", nil, tt.body)
			if tt.code == "" {
				if e != nil {
					t.Fatalf("want valid, got %v (fields %+v)", e, e.Fields)
				}
				return
			}
			if e == nil {
				t.Fatalf("want %s, got nil", tt.code)
			}
			if e.Code != tt.code {
				t.Errorf("code = %s, want %s (fields %+v)", e.Code, tt.code, e.Fields)
			}
			for _, p := range tt.ptrs {
				if !hasPointer(e, p) {
					t.Errorf("no field error at %q; got %+v", p, e.Fields)
				}
			}
			for _, f := range e.Fields {
				if f.Detail == "" {
					t.Errorf("empty detail at %q", f.Pointer)
				}
			}
		})
	}
}

func TestSeveralErrorsReportedAtOnce(t *testing.T) {
	body := strings.NewReplacer(
		`"urgency": "normal"`, `"urgency": "soon"`,
		`"091"`, `"9"`,
		`"consent": "given"`, `"consent": "maybe"`,
	).Replace(validNeed)
	e := validate(t, newRequest(http.MethodPost, "/v1/referrals", body), "/v1/referrals", nil, body)
	if e == nil || e.Code != domain.EInvalid {
		t.Fatalf("got %v, want EInvalid", e)
	}
	for _, p := range []string{"/urgency", "/client/home_municipality", "/social_work_need/consent"} {
		if !hasPointer(e, p) {
			t.Errorf("missing %s in %+v", p, e.Fields)
		}
	}
}

func TestValidateTransitions(t *testing.T) {
	params := map[string]string{"id": refID}
	tests := []struct {
		name, route, body string
		code              domain.Code
		ptrs              []string
	}{
		{"receive empty object", "/v1/referrals/:id/receive", `{}`, "", nil},
		{"receive no body", "/v1/referrals/:id/receive", ``, "", nil},
		{"start no body", "/v1/referrals/:id/start", ``, "", nil},
		{"receive with a property", "/v1/referrals/:id/receive", `{"note": "x"}`, domain.EMalformed, []string{"/note"}},
		{"request-info", "/v1/referrals/:id/request-info", `{"question": "Which address?"}`, "", nil},
		{"request-info missing question", "/v1/referrals/:id/request-info", `{}`, domain.EInvalid, []string{"/question"}},
		{"request-info empty question", "/v1/referrals/:id/request-info", `{"question": ""}`, domain.EInvalid, []string{"/question"}},
		{"complete", "/v1/referrals/:id/complete", `{"outcome": "assessment_started", "feedback": "useful", "text": "ok"}`, "", nil},
		{"complete handoff", "/v1/referrals/:id/complete", `{"outcome": "decided", "decision": "granted", "decision_date": "2026-11-25"}`, "", nil},
		{"complete bad outcome", "/v1/referrals/:id/complete", `{"outcome": "done"}`, domain.EInvalid, []string{"/outcome"}},
		{"complete bad date", "/v1/referrals/:id/complete", `{"outcome": "decided", "decision": "granted", "decision_date": "25.11.2026"}`, domain.EInvalid, []string{"/decision_date"}},
		{"return", "/v1/referrals/:id/return", `{"reason": "wrong_recipient", "text": "not ours"}`, "", nil},
		{"return without text", "/v1/referrals/:id/return", `{"reason": "wrong_recipient"}`, domain.EInvalid, []string{"/text"}},
		{"return bad reason", "/v1/referrals/:id/return", `{"reason": "bored", "text": "x"}`, domain.EInvalid, []string{"/reason"}},
		{"withdraw", "/v1/referrals/:id/withdraw", `{"reason": "duplicate"}`, "", nil},
		{"withdraw bad reason", "/v1/referrals/:id/withdraw", `{"reason": "wrong_recipient"}`, domain.EInvalid, []string{"/reason"}},
		{"forward", "/v1/referrals/:id/forward", `{"to_municipality": "837", "text": "moved"}`, "", nil},
		{"forward bad code", "/v1/referrals/:id/forward", `{"to_municipality": "Tampere"}`, domain.EInvalid, []string{"/to_municipality"}},
		{"message", "/v1/referrals/:id/messages", `{"text": "hello"}`, "", nil},
		{"message too long", "/v1/referrals/:id/messages", `{"text": "` + strings.Repeat("x", domain.MaxTextLen+1) + `"}`, domain.EInvalid, []string{"/text"}},
		{"message unknown field", "/v1/referrals/:id/messages", `{"text": "hi", "to": "x"}`, domain.EMalformed, []string{"/to"}},
		{"client search", "/v1/clients/search", `{"personal_id": "131052-308T"}`, "", nil},
		{"client search short id", "/v1/clients/search", `{"personal_id": "131052"}`, domain.EInvalid, []string{"/personal_id"}},
		{"client search missing", "/v1/clients/search", `{}`, domain.EInvalid, []string{"/personal_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRequest(http.MethodPost, EchoPathTarget(tt.route), tt.body)
			e := validate(t, r, tt.route, params, tt.body)
			if tt.code == "" {
				if e != nil {
					t.Fatalf("want valid, got %v (fields %+v)", e, e.Fields)
				}
				return
			}
			if e == nil {
				t.Fatalf("want %s, got nil", tt.code)
			}
			if e.Code != tt.code {
				t.Errorf("code = %s, want %s (fields %+v)", e.Code, tt.code, e.Fields)
			}
			for _, p := range tt.ptrs {
				if !hasPointer(e, p) {
					t.Errorf("no field error at %q; got %+v", p, e.Fields)
				}
			}
		})
	}
}

// EchoPathTarget turns a route into a concrete URL for the test request.
func EchoPathTarget(route string) string { return strings.ReplaceAll(route, ":id", refID) }

func TestValidateParameters(t *testing.T) {
	tests := []struct {
		name, method, target, route string
		params                      map[string]string
		header                      map[string]string
		wantDetail                  string // "" = valid; else a substring of some detail
	}{
		{"list defaults", "GET", "/v1/referrals", "/v1/referrals", nil, nil, ""},
		{"list all filters", "GET", "/v1/referrals?direction=outgoing&status=info_requested&kind=social_work_need&urgency=urgent&overdue=true&cursor=abc&limit=200", "/v1/referrals", nil, nil, ""},
		{"limit not a number", "GET", "/v1/referrals?limit=many", "/v1/referrals", nil, nil, "query parameter limit"},
		{"limit zero", "GET", "/v1/referrals?limit=0", "/v1/referrals", nil, nil, "query parameter limit"},
		{"limit too big", "GET", "/v1/referrals?limit=201", "/v1/referrals", nil, nil, "query parameter limit"},
		{"bad direction", "GET", "/v1/referrals?direction=sideways", "/v1/referrals", nil, nil, "query parameter direction"},
		{"bad status", "GET", "/v1/referrals?status=lost", "/v1/referrals", nil, nil, "query parameter status"},
		{"bad overdue", "GET", "/v1/referrals?overdue=maybe", "/v1/referrals", nil, nil, "query parameter overdue"},
		{"id not a uuid", "GET", "/v1/referrals/123", "/v1/referrals/:id", map[string]string{"id": "123"}, nil, "path parameter id"},
		{"id ok", "GET", "/v1/referrals/" + refID, "/v1/referrals/:id", map[string]string{"id": refID}, nil, ""},
		{"timeline", "GET", "/v1/referrals/" + refID + "/timeline", "/v1/referrals/:id/timeline", map[string]string{"id": refID}, nil, ""},
		{"idempotency key too long", "POST", "/v1/referrals", "/v1/referrals", nil, map[string]string{"Idempotency-Key": strings.Repeat("k", 129)}, "header parameter Idempotency-Key"},
		{"idempotency key ok", "POST", "/v1/referrals", "/v1/referrals", nil, map[string]string{"Idempotency-Key": strings.Repeat("k", 128)}, ""},
		{"if-match ok", "POST", "/v1/referrals/" + refID + "/receive", "/v1/referrals/:id/receive", map[string]string{"id": refID}, map[string]string{"If-Match": `"3"`}, ""},
		{"if-match too long", "POST", "/v1/referrals/" + refID + "/receive", "/v1/referrals/:id/receive", map[string]string{"id": refID}, map[string]string{"If-Match": strings.Repeat("9", 129)}, "header parameter If-Match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.method == "POST" && tt.route == "/v1/referrals" {
				body = validNeed
			}
			r := newRequest(tt.method, tt.target, body)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			e := validate(t, r, tt.route, tt.params, body)
			if tt.wantDetail == "" {
				if e != nil {
					t.Fatalf("want valid, got %v (fields %+v)", e, e.Fields)
				}
				return
			}
			if e == nil {
				t.Fatal("want an error, got nil")
			}
			if e.Code != domain.EMalformed {
				t.Errorf("code = %s, want %s", e.Code, domain.EMalformed)
			}
			found := false
			for _, f := range e.Fields {
				if f.Pointer != "" {
					t.Errorf("parameter error has pointer %q", f.Pointer)
				}
				if strings.Contains(f.Detail, tt.wantDetail) {
					found = true
				}
			}
			if !found {
				t.Errorf("no detail naming %q in %+v", tt.wantDetail, e.Fields)
			}
		})
	}
}

// TestNoPersonalDataInErrors crafts failing bodies that carry the identity code in many
// places and checks that it appears in no message, pointer or detail.
func TestNoPersonalDataInErrors(t *testing.T) {
	bodies := map[string]string{
		"too long":           strings.Replace(validNeed, `"131052-308T"`, `"131052-308TX"`, 1),
		"as urgency":         strings.Replace(validNeed, `"urgency": "normal"`, `"urgency": "131052-308T"`, 1),
		"as kind":            strings.Replace(validNeed, `"kind": "social_work_need"`, `"kind": "131052-308T"`, 1),
		"as municipality":    strings.Replace(validNeed, `"091"`, `"131052-308T"`, 1),
		"as language":        strings.Replace(validNeed, `"language": "fi"`, `"language": "131052-308T"`, 1),
		"as case ref":        strings.Replace(validNeed, `"TO-2026-0012345"`, `"131052-308T!"`, 1),
		"as phone":           strings.Replace(validNeed, `"+358401234567"`, `"131052-308T"`, 1),
		"as need flag":       strings.Replace(validNeed, `"housing_risk",`, `"131052-308T",`, 1),
		"as boolean":         strings.Replace(validNeed, `"needs_interpreter": false`, `"needs_interpreter": "131052-308T"`, 1),
		"as unknown value":   strings.Replace(validNeed, `"name"`, `"nickname": "131052-308T", "name"`, 1),
		"as unknown key":     strings.Replace(validNeed, `"name"`, `"131052-308T": true, "name"`, 1),
		"as top-level key":   strings.Replace(validNeed, `"kind"`, `"131052-308T": 1, "kind"`, 1),
		"inside a key":       strings.Replace(validNeed, `"kind"`, `"hetu131052308T": 1, "kind"`, 1),
		"in broken JSON":     `{"client": {"personal_id": "131052-308T", }`,
		"in broken JSON (2)": `{"client": {"personal_id": 131052-308T}}`,
		"with other errors":  strings.NewReplacer(`"urgency": "normal"`, `"urgency": "x"`, `"091"`, `"1"`).Replace(validNeed),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			r := newRequest(http.MethodPost, "/v1/referrals", body)
			err := validator(t).ValidateRequest(context.Background(), r, "/v1/referrals", nil, []byte(body))
			if err == nil {
				t.Fatal("want an error")
			}
			var e *domain.Error
			if !errors.As(err, &e) {
				t.Fatalf("not a *domain.Error: %T", err)
			}
			texts := []string{err.Error(), e.Message}
			for _, f := range e.Fields {
				texts = append(texts, f.Pointer, f.Detail)
			}
			for _, s := range texts {
				for _, frag := range []string{testID, "131052", "308T"} {
					if strings.Contains(s, frag) {
						t.Errorf("error text %q contains %q", s, frag)
					}
				}
			}
		})
	}
	// The search body too.
	body := `{"personal_id": "131052-308TT", "pid": "131052-308T"}`
	r := newRequest(http.MethodPost, "/v1/clients/search", body)
	err := validator(t).ValidateRequest(context.Background(), r, "/v1/clients/search", nil, []byte(body))
	var e *domain.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *domain.Error, got %v", err)
	}
	for _, f := range e.Fields {
		if strings.Contains(f.Detail+f.Pointer, "131052") {
			t.Errorf("field %+v contains the identity code", f)
		}
	}
}

func TestRequestNotModified(t *testing.T) {
	body := validNeed
	r := newRequest(http.MethodGet, "/v1/referrals?status=sent", "")
	if e := validate(t, r, "/v1/referrals", nil, ""); e != nil {
		t.Fatal(e)
	}
	if r.URL.RawQuery != "status=sent" {
		t.Errorf("query rewritten to %q", r.URL.RawQuery)
	}

	r = httptest.NewRequest(http.MethodPost, "/v1/referrals", strings.NewReader(body))
	r.Header.Set("Content-Type", "text/plain")
	// Whatever the Content-Type (415 is the api layer's call), the body is validated as JSON
	// and the caller's request is left alone.
	bad := strings.Replace(body, `"normal"`, `"soon"`, 1)
	if e := validate(t, r, "/v1/referrals", nil, bad); e == nil || !hasPointer(e, "/urgency") {
		t.Errorf("text/plain body not validated as JSON: %v", e)
	}
	if got := r.Header.Get("Content-Type"); got != "text/plain" {
		t.Errorf("Content-Type changed to %q", got)
	}
	rest, _ := io.ReadAll(r.Body)
	if string(rest) != body {
		t.Error("r.Body was read")
	}
}

func TestUnknownOperation(t *testing.T) {
	for _, c := range []struct{ method, route string }{
		{"GET", "/metrics"},
		{"DELETE", "/v1/referrals/:id"},
		{"GET", "/v1/reports/response-times"},
	} {
		r := newRequest(c.method, "/x", "")
		if err := validator(t).ValidateRequest(context.Background(), r, c.route, nil, nil); err != nil {
			t.Errorf("%s %s: %v, want nil", c.method, c.route, err)
		}
	}
}

func TestEchoPath(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/referrals":                  "/v1/referrals",
		"/v1/referrals/:id":              "/v1/referrals/{id}",
		"/v1/referrals/:id/request-info": "/v1/referrals/{id}/request-info",
		"/a/:x/b/:y":                     "/a/{x}/b/{y}",
	} {
		if got := EchoPath(in); got != want {
			t.Errorf("EchoPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	v := validator(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				r := newRequest(http.MethodPost, "/v1/referrals", validNeed)
				if err := v.ValidateRequest(context.Background(), r, "/v1/referrals", nil, []byte(validNeed)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// --- drift between the spec and the domain -------------------------------------------------

// resolve follows a path of property names ("client.preferred_contact_channel"; "[]" for
// array items) from a component schema.
func resolve(t *testing.T, doc *openapi3.T, component, path string) *openapi3.Schema {
	t.Helper()
	ref := doc.Components.Schemas[component]
	if ref == nil || ref.Value == nil {
		t.Fatalf("no schema %s", component)
	}
	s := ref.Value
	if path == "" {
		return s
	}
	for _, part := range strings.Split(path, ".") {
		name, items := strings.CutSuffix(part, "[]")
		if name != "" {
			p := s.Properties[name]
			if p == nil || p.Value == nil {
				t.Fatalf("%s: no property %s in %s", component, name, path)
			}
			s = p.Value
		}
		if items {
			if s.Items == nil || s.Items.Value == nil {
				t.Fatalf("%s: %s has no items", component, path)
			}
			s = s.Items.Value
		}
	}
	return s
}

func enumOf(s *openapi3.Schema) []string {
	out := make([]string, 0, len(s.Enum))
	for _, e := range s.Enum {
		str, _ := e.(string)
		out = append(out, str)
	}
	sort.Strings(out)
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func strs[T ~string](xs ...T) []string {
	out := make([]string, 0, len(xs))
	seen := map[string]bool{}
	for _, x := range xs {
		if !seen[string(x)] {
			out = append(out, string(x))
			seen[string(x)] = true
		}
	}
	sort.Strings(out)
	return out
}

func union(sets ...map[string]bool) map[string]bool {
	u := map[string]bool{}
	for _, s := range sets {
		for k := range s {
			u[k] = true
		}
	}
	return u
}

func TestEnumsMatchDomain(t *testing.T) {
	doc := validator(t).routes["POST /v1/referrals"].Spec
	kinds := strs(domain.Kinds...)
	statuses := strs(domain.Statuses...)
	urgencies := strs(domain.Normal, domain.Urgent)
	outcomes := keys(union(domain.NeedOutcomes, domain.ToKelaOutcomes, domain.MeetingOutcomes, map[string]bool{"decided": true}))
	tests := []struct {
		component, path string
		want            []string
	}{
		{"Kind", "", kinds},
		{"CreateRequest", "kind", kinds},
		{"Referral", "kind", kinds},
		{"Status", "", statuses},
		{"Referral", "status", statuses},
		{"TimelineEntry", "to", statuses},
		{"Urgency", "", urgencies},
		{"CreateRequest", "urgency", urgencies},
		{"Direction", "", strs(domain.KelaToCounty, domain.CountyToKela)},
		{"TransitionAction", "", strs(domain.TransitionActions()...)},
		{"Problem", "allowed[]", strs(domain.TransitionActions()...)},
		{"Action", "", strs(append(domain.TransitionActions(), domain.ActionCreate, domain.ActionMessage)...)},
		{"Role", "", strs(domain.RoleKelaHandler, domain.RoleSocialWorker, domain.RoleSupervisor, domain.RoleAuditor, domain.RoleOperator)},
		{"NeedFlag", "", keys(domain.NeedFlags)},
		{"CreateRequest", "social_work_need.need_flags[]", keys(domain.NeedFlags)},
		{"SupportType", "", keys(domain.SupportTypes)},
		{"CreateRequest", "supplementary_support.support_types[]", keys(domain.SupportTypes)},
		{"StatementTopic", "", keys(domain.StatementTopics)},
		{"CreateRequest", "to_kela.topics[]", keys(domain.StatementTopics)},
		{"ContactChannel", "", keys(domain.ContactChannels)},
		{"CreateRequest", "client.preferred_contact_channel", keys(domain.ContactChannels)},
		{"ExpenseType", "", keys(domain.ExpenseTypes)},
		{"CreateRequest", "supplementary_support.expense_items[].type", keys(domain.ExpenseTypes)},
		{"BillPeriod", "", keys(domain.BillPeriods)},
		{"CreateRequest", "direct_payment.bills[].period", keys(domain.BillPeriods)},
		{"ReturnReason", "", keys(domain.ReturnReasons)},
		{"ReturnRequest", "reason", keys(domain.ReturnReasons)},
		{"WithdrawReason", "", keys(domain.WithdrawReasons)},
		{"WithdrawRequest", "reason", keys(domain.WithdrawReasons)},
		{"NeedFeedback", "", keys(domain.NeedFeedback)},
		{"CompleteRequest", "feedback", keys(domain.NeedFeedback)},
		{"HandoffDecision", "", keys(domain.HandoffDecisions)},
		{"CompleteRequest", "decision", keys(domain.HandoffDecisions)},
		{"CompletionOutcome", "", outcomes},
		{"CompleteRequest", "outcome", outcomes},
		{"Consent", "", []string{"given", "not_given"}},
		{"MessageType", "", []string{"answer", "message", "question"}},
		{"Closure", "action", strs(domain.ActionReturn, domain.ActionWithdraw, domain.ActionForward)},
	}
	for _, tt := range tests {
		got := enumOf(resolve(t, doc, tt.component, tt.path))
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %s: spec enum %v, domain %v", tt.component, tt.path, got, tt.want)
		}
	}
}

func TestLimitsMatchDomain(t *testing.T) {
	doc := validator(t).routes["POST /v1/referrals"].Spec
	tests := []struct {
		component, path string
		maxLen          int
	}{
		{"Client", "name", domain.MaxNameLen},
		{"SocialWorkNeed", "description", domain.MaxTextLen},
		{"SocialWorkNeed", "consent_justification", domain.MaxTextLen},
		{"ExpenseItem", "text", domain.MaxTextLen},
		{"ToKela", "subject", domain.MaxSubjectLen},
		{"ToKela", "text", domain.MaxTextLen},
		{"Bill", "biller", domain.MaxSubjectLen},
		{"JointMeeting", "subject", domain.MaxSubjectLen},
		{"JointMeeting", "text", domain.MaxTextLen},
		{"RequestInfoRequest", "question", domain.MaxTextLen},
		{"CompleteRequest", "text", domain.MaxTextLen},
		{"ReturnRequest", "text", domain.MaxTextLen},
		{"WithdrawRequest", "text", domain.MaxTextLen},
		{"ForwardRequest", "text", domain.MaxTextLen},
		{"MessageRequest", "text", domain.MaxTextLen},
	}
	for _, tt := range tests {
		s := resolve(t, doc, tt.component, tt.path)
		if s.MaxLength == nil || int(*s.MaxLength) != tt.maxLen {
			t.Errorf("%s.%s maxLength = %s, want %d", tt.component, tt.path, deref(s.MaxLength), tt.maxLen)
		}
	}
	for _, tt := range []struct{ component, path string }{
		{"SocialWorkNeed", "need_flags"}, {"SupplementarySupport", "support_types"},
		{"SupplementarySupport", "expense_items"}, {"SupplementarySupport", "document_refs"},
		{"ToKela", "topics"}, {"DirectPayment", "bills"},
	} {
		s := resolve(t, doc, tt.component, tt.path)
		if s.MaxItems == nil || int(*s.MaxItems) != domain.MaxListLen {
			t.Errorf("%s.%s maxItems = %s, want %d", tt.component, tt.path, deref(s.MaxItems), domain.MaxListLen)
		}
	}
	// personal_id: length only; the check character is the domain's.
	for _, c := range []string{"Client", "ClientSearchRequest"} {
		s := resolve(t, doc, c, "personal_id")
		if s.MinLength != 11 || s.MaxLength == nil || *s.MaxLength != 11 || s.Pattern != "" {
			t.Errorf("%s.personal_id: want minLength 11, maxLength 11, no pattern", c)
		}
	}
}

// TestRequestSchemasClosed checks that every object in every request body schema, at any
// depth, has additionalProperties: false, and that no request schema uses oneOf/anyOf/allOf/not.
func TestRequestSchemasClosed(t *testing.T) {
	v := validator(t)
	n := 0
	for key, route := range v.routes {
		rb := route.Operation.RequestBody
		if rb == nil {
			continue
		}
		mt := rb.Value.Content.Get("application/json")
		if mt == nil || mt.Schema == nil {
			t.Errorf("%s: no application/json schema", key)
			continue
		}
		n++
		var walk func(path string, s *openapi3.Schema)
		walk = func(path string, s *openapi3.Schema) {
			if len(s.OneOf)+len(s.AnyOf)+len(s.AllOf) > 0 || s.Not != nil {
				t.Errorf("%s %s: composition in a request schema", key, path)
			}
			if s.Type.Is("object") {
				if s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has {
					t.Errorf("%s %s: additionalProperties is not false", key, path)
				}
				for name, p := range s.Properties {
					walk(path+"/"+name, p.Value)
				}
			}
			if s.Type.Is("array") {
				walk(path+"/[]", s.Items.Value)
			}
		}
		walk("", mt.Schema.Value)
	}
	if n != 11 {
		t.Errorf("%d operations with a body, want 11", n)
	}
}

func deref(p *uint64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatUint(*p, 10)
}

func hasPointer(e *domain.Error, p string) bool {
	for _, f := range e.Fields {
		if f.Pointer == p {
			return true
		}
	}
	return false
}

func BenchmarkValidateCreate(b *testing.B) {
	v := validator(b)
	body := []byte(validNeed)
	ctx := context.Background()
	r := httptest.NewRequest(http.MethodPost, "/v1/referrals", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", "k-1")
	r.Header.Set("X-Purpose", "benefit_processing")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := v.ValidateRequest(ctx, r, "/v1/referrals", nil, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateInvalidCreate(b *testing.B) {
	v := validator(b)
	body := []byte(strings.Replace(validNeed, `"name"`, `"nickname": 1, "name"`, 1))
	ctx := context.Background()
	r := httptest.NewRequest(http.MethodPost, "/v1/referrals", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		if err := v.ValidateRequest(ctx, r, "/v1/referrals", nil, body); err == nil {
			b.Fatal("want an error")
		}
	}
}
