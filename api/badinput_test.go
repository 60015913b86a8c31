package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// with returns a valid social_work_need body changed by edit.
func with(edit func(b map[string]any)) map[string]any {
	b := needBody(pidMatti, "091")
	edit(b)
	return b
}

func client(b map[string]any) map[string]any { return b["client"].(map[string]any) }
func need(b map[string]any) map[string]any   { return b["social_work_need"].(map[string]any) }

// TestBadInputGetsAProblemNamingTheField sends each kind of bad create request once.
func TestBadInputGetsAProblemNamingTheField(t *testing.T) {
	h := newHarness(t, "")
	cases := []struct {
		name        string
		body        any
		contentType string
		want        int
		pointer     string
	}{
		{"malformed JSON", `{"kind": "social_work_need",`, "", 400, ""},
		{"not an object", `[1,2]`, "", 422, ""},
		{"two objects", `{"kind":"social_work_need"} {}`, "", 400, ""},
		{"unknown top-level field", with(func(b map[string]any) { b["nickname"] = "x" }), "", 400, "/nickname"},
		{"unknown nested field", with(func(b map[string]any) { client(b)["nickname"] = "x" }), "", 400, "/client/nickname"},
		{"wrong JSON type", with(func(b map[string]any) { b["urgency"] = 3 }), "", 422, "/urgency"},
		{"wrong content type", `kind=social_work_need`, "application/x-www-form-urlencoded", 415, ""},
		{"invalid identity code check character", with(func(b map[string]any) { client(b)["personal_id"] = "131052-308U" }), "", 422, "/client/personal_id"},
		{"invalid identity code date", with(func(b map[string]any) { client(b)["personal_id"] = "310252-308T" }), "", 422, "/client/personal_id"},
		{"unknown municipality", with(func(b map[string]any) { client(b)["home_municipality"] = "999" }), "", 422, "/client/home_municipality"},
		{"Åland municipality", with(func(b map[string]any) { client(b)["home_municipality"] = "478" }), "", 422, "/client/home_municipality"},
		{"missing home municipality", with(func(b map[string]any) { delete(client(b), "home_municipality") }), "", 422, "/client/home_municipality"},
		{"consent not_given without immediate need", with(func(b map[string]any) {
			need(b)["consent"] = "not_given"
			need(b)["consent_justification"] = "Välitön vaara."
		}), "", 422, "/social_work_need/immediate_need"},
		{"consent not_given without justification", with(func(b map[string]any) {
			need(b)["consent"] = "not_given"
			need(b)["immediate_need"] = true
		}), "", 422, "/social_work_need/consent_justification"},
		{"unknown need flag", with(func(b map[string]any) { need(b)["need_flags"] = []string{"bored"} }), "", 422, "/social_work_need/need_flags/0"},
		{"no need flags", with(func(b map[string]any) { need(b)["need_flags"] = []string{} }), "", 422, "/social_work_need/need_flags"},
		{"reduction without level", with(func(b map[string]any) { need(b)["need_flags"] = []string{"basic_amount_reduction"} }), "", 422, "/social_work_need/reduction_level"},
		{"block of another kind", with(func(b map[string]any) { b["to_kela"] = map[string]any{"subject": "x", "text": "y"} }), "", 422, "/to_kela"},
		{"description too long", with(func(b map[string]any) { need(b)["description"] = strings.Repeat("å", 4001) }), "", 422, "/social_work_need/description"},
		{"unknown kind", with(func(b map[string]any) { b["kind"] = "gossip" }), "", 422, "/kind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r response
			if c.contentType != "" {
				r = h.do("POST", "/v1/referrals", kelaHandler(h), c.body, "Content-Type", c.contentType)
			} else {
				r = h.do("POST", "/v1/referrals", kelaHandler(h), c.body)
			}
			if r.status != c.want {
				t.Fatalf("status %d, want %d: %s", r.status, c.want, r.body)
			}
			p := r.json(t)
			if p["status"].(float64) != float64(c.want) || p["type"] == "" || p["title"] == "" {
				t.Errorf("not a problem body: %s", r.body)
			}
			if c.pointer != "" && !hasPointer(p, c.pointer) {
				t.Errorf("no error for %s in %s", c.pointer, r.body)
			}
			if strings.Contains(string(r.body), "131052-308") || strings.Contains(string(r.body), "310252") {
				t.Errorf("problem echoes the identity code: %s", r.body)
			}
		})
	}
	// Nothing of the above was stored.
	if n := len(h.do("GET", "/v1/referrals?direction=outgoing", kelaHandler(h), nil).json(t)["items"].([]any)); n != 0 {
		t.Errorf("%d referrals stored from bad input", n)
	}
}

func hasPointer(problem map[string]any, pointer string) bool {
	errs, _ := problem["errors"].([]any)
	for _, e := range errs {
		if e.(map[string]any)["pointer"] == pointer {
			return true
		}
	}
	return false
}

func TestOversizeBodyIs413(t *testing.T) {
	h := newHarness(t, "")
	big := with(func(b map[string]any) { need(b)["description"] = strings.Repeat("x", 1<<20) })
	if r := h.do("POST", "/v1/referrals", kelaHandler(h), big); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", r.status)
	}
	// Chunked, so no Content-Length tells in advance.
	body, _ := json.Marshal(big)
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/referrals", &chunked{data: body})
	req.Header.Set("Authorization", "Bearer "+kelaHandler(h))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Purpose", "benefit_processing")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("chunked: status %d %q, want 413 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// chunked is a reader without a known length, so the client sends it chunked.
type chunked struct{ data []byte }

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func TestTransitionBadInput(t *testing.T) {
	h := newHarness(t, "")
	hki := hkiWorker(h)
	id := h.create(kelaHandler(h), needBody(pidMatti, "091"))
	cases := []struct {
		name    string
		path    string
		body    any
		headers []string
		want    int
		pointer string
	}{
		{"complete from sent is illegal", "/complete", map[string]any{"outcome": "already_client"}, nil, 409, ""},
		{"unknown outcome", "/receive", nil, nil, 200, ""},
		{"outcome of another kind", "/complete", map[string]any{"outcome": "accepted"}, nil, 422, "/outcome"},
		{"field of another action", "/start", map[string]any{"question": "?"}, nil, 400, "/question"},
		{"return without reason", "/return", map[string]any{"text": "x"}, nil, 422, "/reason"},
		{"forward to Åland", "/forward", map[string]any{"to_municipality": "478"}, nil, 422, "/to_municipality"},
		{"forward to own county", "/forward", map[string]any{"to_municipality": "091"}, nil, 422, "/to_municipality"},
		{"stale If-Match", "/start", nil, []string{"If-Match", `"v1"`}, 412, ""},
		{"garbage If-Match", "/start", nil, []string{"If-Match", `"abc"`}, 412, ""},
		{"If-Match of version 0", "/start", nil, []string{"If-Match", `"v0"`}, 412, ""}, // no such version: not "no precondition"
		{"weak If-Match of version 0", "/start", nil, []string{"If-Match", `W/"v0"`}, 412, ""},
		{"current If-Match", "/start", nil, []string{"If-Match", `"v2"`}, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("POST", "/v1/referrals/"+id+c.path, hki, c.body, c.headers...)
			if r.status != c.want {
				t.Fatalf("status %d, want %d: %s", r.status, c.want, r.body)
			}
			if c.pointer != "" && !hasPointer(r.json(t), c.pointer) {
				t.Errorf("no error for %s in %s", c.pointer, r.body)
			}
			if c.want == 409 {
				if allowed, ok := r.json(t)["allowed"].([]any); !ok || len(allowed) == 0 {
					t.Errorf("409 without allowed actions: %s", r.body)
				}
			}
		})
	}
}

func TestBadQueriesAre400(t *testing.T) {
	h := newHarness(t, "")
	for _, q := range []string{"limit=0", "limit=201", "limit=x", "direction=sideways", "status=lost", "cursor=abc", "cursor=c1.AAAA", "overdue=maybe"} {
		t.Run(q, func(t *testing.T) {
			if r := h.do("GET", "/v1/referrals?"+q, hkiWorker(h), nil); r.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %s", r.status, r.body)
			}
		})
	}
	if r := h.do("GET", "/v1/referrals/not-a-uuid", hkiWorker(h), nil); r.status != http.StatusNotFound && r.status != http.StatusBadRequest {
		t.Errorf("malformed id: %d, want 404 or 400", r.status)
	}
	if r := h.do("GET", "/v1/nothing-here", hkiWorker(h), nil); r.status != http.StatusNotFound {
		t.Errorf("unknown route: %d", r.status)
	}
	if r := h.do("DELETE", "/v1/referrals", hkiWorker(h), nil); r.status != http.StatusMethodNotAllowed && r.status != http.StatusNotFound {
		t.Errorf("wrong method: %d", r.status)
	}
}

func TestClientSearchValidatesTheIdentityCode(t *testing.T) {
	h := newHarness(t, "")
	r := h.do("POST", "/v1/clients/search", kelaHandler(h), map[string]any{"personal_id": "131052-308U"})
	if r.status != http.StatusUnprocessableEntity || !hasPointer(r.json(t), "/personal_id") {
		t.Errorf("status %d: %s", r.status, r.body)
	}
}

// TestStrictDecoderWithoutTheValidator: without the OpenAPI validator (Deps.Validator nil),
// the strict decoder still refuses unknown fields and wrong types, naming the field at fault
// by its JSON pointer, also inside nested objects.
func TestStrictDecoderWithoutTheValidator(t *testing.T) {
	h := newHarnessWith(t, "", harnessOptions{noValidator: true})
	kela := kelaHandler(h)
	for _, tc := range []struct {
		name, pointer string
		edit          func(b map[string]any)
	}{
		{"unknown top-level field", "/nickname", func(b map[string]any) { b["nickname"] = "x" }},
		{"unknown nested field", "/client/nickname", func(b map[string]any) { b["client"].(map[string]any)["nickname"] = "x" }},
		{"wrong type of a nested field", "/client/name", func(b map[string]any) { b["client"].(map[string]any)["name"] = 42 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := needBody(pidMatti, "091")
			tc.edit(b)
			r := h.do("POST", "/v1/referrals", kela, b)
			if r.status != http.StatusBadRequest || !hasPointer(r.json(t), tc.pointer) {
				t.Errorf("status %d, want 400 naming %s: %s", r.status, tc.pointer, r.body)
			}
		})
	}
	if evs, err := h.db.PendingEvents(100); err != nil || len(evs) != 0 {
		t.Errorf("%d events after refused creates (%v), want none", len(evs), err)
	}
}
