package api_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/openapi"
	"github.com/kela-hva/referrals/store"
)

// testKeyring encrypts every harness's store, as referrald does.
var testKeyring = func() *store.Keyring {
	k := sha256.Sum256([]byte("api test encryption key"))
	kr, err := store.NewKeyring("test-1", map[string][]byte{"test-1": k[:]})
	if err != nil {
		panic(err)
	}
	return kr
}()

// auditEndpoints are the access-log operations, called by an auditor of Helsinki.
var auditEndpoints = []endpoint{
	{name: "audit log", method: "GET", path: "/v1/audit", ownOrg: "hva-90", ownRole: domain.RoleAuditor, want: 200},
	{name: "client extract", method: "POST", path: "/v1/audit/client-extract", body: map[string]any{"personal_id": pidMatti}, ownOrg: "hva-90", ownRole: domain.RoleAuditor, want: 200},
}

// clientDataEndpoints are every operation that returns client data: all of the matrix's
// endpoints but the reference data, and the access log.
func clientDataEndpoints() []endpoint {
	var out []endpoint
	for _, e := range endpoints {
		if !e.anyRole {
			out = append(out, e)
		}
	}
	return append(out, auditEndpoints...)
}

// TestPurposeIsRequiredWhereClientDataIsReturned: every client-data operation refuses a
// missing or unknown X-Purpose with a 400 naming the header, and the spec declares the
// header, required, on exactly those operations.
func TestPurposeIsRequiredWhereClientDataIsReturned(t *testing.T) {
	h := newHarness(t, "")
	var declared, tested []string
	for _, e := range clientDataEndpoints() {
		tested = append(tested, e.method+" "+e.path)
		for _, purpose := range []struct{ name, value string }{{"missing", ""}, {"unknown", "curiosity"}, {"wrong case", "Audit"}} {
			t.Run(e.name+"/"+purpose.name, func(t *testing.T) {
				id := h.create(kelaHandler(h), needBody(pidMatti, "091"))
				if e.prepare != nil {
					e.prepare(h, id)
				}
				r := h.do(e.method, strings.ReplaceAll(e.path, "{id}", id), h.token(e.ownOrg, e.ownRole), e.body, "X-Purpose", purpose.value)
				if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "X-Purpose") {
					t.Errorf("status %d, want 400 naming X-Purpose: %s", r.status, r.body)
				}
			})
		}
	}
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
				if p.Value != nil && p.Value.In == "header" && p.Value.Name == "X-Purpose" {
					if !p.Value.Required {
						t.Errorf("%s %s: X-Purpose is not required", method, path)
					}
					declared = append(declared, method+" "+path)
				}
			}
		}
	}
	sort.Strings(declared)
	sort.Strings(tested)
	if !slices.Equal(declared, tested) {
		t.Errorf("the spec declares X-Purpose on\n%v\nthe tests check\n%v", declared, tested)
	}
}

// TestPurposeIsCheckedWithoutTheValidator: the handler's own check holds when no OpenAPI
// validator runs in front of it.
func TestPurposeIsCheckedWithoutTheValidator(t *testing.T) {
	h := newHarnessWith(t, "", harnessOptions{noValidator: true})
	hki := hkiWorker(h)
	for _, p := range []string{"", "gossip"} {
		if r := h.do("GET", "/v1/referrals", hki, nil, "X-Purpose", p); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "X-Purpose") {
			t.Errorf("purpose %q: status %d, want 400 naming X-Purpose: %s", p, r.status, r.body)
		}
	}
	if r := h.do("GET", "/v1/referrals", hki, nil, "X-Purpose", "service_need_assessment"); r.status != http.StatusOK {
		t.Errorf("valid purpose: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/v1/organisations", hki, nil, "X-Purpose", ""); r.status != http.StatusOK {
		t.Errorf("reference data without a purpose: %d, want 200", r.status)
	}
}

// TestAuditEndpointsAreForAuditorsOnly is the role matrix of the access-log operations.
func TestAuditEndpointsAreForAuditorsOnly(t *testing.T) {
	h := newHarness(t, "")
	h.create(kelaHandler(h), needBody(pidMatti, "091"))
	roles := []struct {
		org  string
		role domain.Role
		want int
	}{
		{"hva-90", domain.RoleAuditor, 200},
		{"kela", domain.RoleAuditor, 200},
		{"kela", domain.RoleKelaHandler, 403},
		{"hva-90", domain.RoleSocialWorker, 403},
		{"hva-90", domain.RoleSupervisor, 403},
		{"kela", domain.RoleSupervisor, 403},
		{"kela", domain.RoleOperator, 403},
	}
	for _, e := range auditEndpoints {
		for _, r := range roles {
			t.Run(e.name+"/"+r.org+"/"+string(r.role), func(t *testing.T) {
				resp := h.do(e.method, e.path, h.token(r.org, r.role), e.body, "X-Purpose", "audit")
				if resp.status != r.want {
					t.Errorf("status %d, want %d: %s", resp.status, r.want, resp.body)
				}
			})
		}
		t.Run(e.name+"/no token", func(t *testing.T) {
			if resp := h.do(e.method, e.path, "", e.body, "X-Purpose", "audit"); resp.status != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", resp.status)
			}
		})
	}
}

// auditItems reads an access-log response's items.
func auditItems(t *testing.T, r response) []map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var out []map[string]any
	for _, it := range r.json(t)["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

func actions(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		out = append(out, it["action"].(string))
	}
	return out
}

// TestAccessLogRecordsEveryUseAndDisclosure follows one referral through reads and changes by
// both organisations and reads its access log back as Helsinki's auditor.
func TestAccessLogRecordsEveryUseAndDisclosure(t *testing.T) {
	h := newHarness(t, "")
	kela, hki := kelaHandler(h), hkiWorker(h)
	id := h.create(kela, needBody(pidMatti, "091"))
	get := func(token string, headers ...string) {
		t.Helper()
		if r := h.do("GET", "/v1/referrals/"+id, token, nil, headers...); r.status != http.StatusOK {
			t.Fatalf("get: %d %s", r.status, r.body)
		}
	}
	get(kela) // the sender's own data: no disclosure yet
	if r := h.do("GET", "/v1/referrals", hki, nil, "X-Purpose", "service_need_assessment"); r.status != http.StatusOK {
		t.Fatal(r.status)
	}
	get(hki, "X-Purpose", "service_need_assessment", "X-Request-Id", "req-read-1")
	h.act(hki, id, "receive", nil)
	get(kela) // now Helsinki's part comes to Kela
	for _, p := range []string{"/messages", "/timeline"} {
		if r := h.do("GET", "/v1/referrals/"+id+p, hki, nil); r.status != http.StatusOK {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
	if r := h.do("POST", "/v1/referrals/"+id+"/messages", hki, map[string]any{"text": "Soitin asiakkaalle."}); r.status != http.StatusOK {
		t.Fatalf("message: %d %s", r.status, r.body)
	}
	// Refused reads are not uses of the data: nothing is logged for them.
	if r := h.do("GET", "/v1/referrals/"+id, tampere(h), nil); r.status != http.StatusNotFound {
		t.Fatalf("Tampere: %d", r.status)
	}

	auditor := h.token("hva-90", domain.RoleAuditor)
	r := h.do("GET", "/v1/audit?referral="+id, auditor, nil, "X-Purpose", "audit")
	items := auditItems(t, r)
	want := "create,read,list,read,receive,read,read_messages,read_timeline,message"
	if got := strings.Join(actions(items), ","); got != want {
		t.Fatalf("actions %s, want %s", got, want)
	}
	disclosure := func(i int) map[string]any {
		d, _ := items[i]["disclosure"].(map[string]any)
		return d
	}
	if d := disclosure(0); d["from"] != "kela" || d["to"] != "hva-90" || d["consent"] != "given" ||
		!strings.Contains(d["legal_basis"].(string), "SHL 1301/2014 §35") {
		t.Errorf("create's disclosure = %v", d)
	}
	if d := disclosure(1); d != nil {
		t.Errorf("Kela reading its own fresh referral is a disclosure: %v", d)
	}
	read := items[3]
	if read["user_id"] != "user-hva-90" || read["user_name"] != "Test User" || read["org"] != "hva-90" ||
		read["purpose"] != "service_need_assessment" || read["request_id"] != "req-read-1" ||
		read["referral_id"] != id || read["kind"] != "social_work_need" ||
		strings.Join(anyStrings(read["roles"]), ",") != "social_worker" {
		t.Errorf("Helsinki's read = %v", read)
	}
	if d := disclosure(3); d["from"] != "kela" || d["to"] != "hva-90" {
		t.Errorf("Helsinki's read: disclosure %v, want kela → hva-90", d)
	}
	for _, i := range []int{4, 5} {
		if d := disclosure(i); d["from"] != "hva-90" || d["to"] != "kela" {
			t.Errorf("%s: disclosure %v, want hva-90 → kela", items[i]["action"], d)
		}
	}
	for i, it := range items {
		if it["request_id"] == "" || it["purpose"] == "" || it["at"] == "" {
			t.Errorf("entry %d lacks request id, purpose or time: %v", i, it)
		}
		if i > 0 && it["seq"].(float64) <= items[i-1]["seq"].(float64) {
			t.Errorf("entry %d out of order", i)
		}
	}
	for _, secret := range []string{pidMatti, "Meikäläinen", "Released", "Soitin", "client_key"} {
		if strings.Contains(string(r.body), secret) {
			t.Errorf("the access log shows %q", secret)
		}
	}
	// Reading the log was logged.
	all := auditItems(t, h.do("GET", "/v1/audit", auditor, nil, "X-Purpose", "audit"))
	last := all[len(all)-1]
	if last["action"] != "audit_query" || last["query"] != "referral="+id || last["purpose"] != "audit" || last["count"].(float64) != 9 {
		t.Errorf("last entry = %v, want the audit query", last)
	}
	// Kela's auditor sees the same referral's entries; the chain verifies.
	if kelaView := auditItems(t, h.do("GET", "/v1/audit?referral="+id, h.token("kela", domain.RoleAuditor), nil, "X-Purpose", "audit")); len(kelaView) != 9 {
		t.Errorf("Kela's auditor sees %d entries of the referral, want 9 (Helsinki's audit query is Helsinki's own)", len(kelaView))
	}
	if _, err := h.db.VerifyAudit(context.Background(), nil); err != nil {
		t.Error(err)
	}
}

func anyStrings(v any) []string {
	var out []string
	xs, _ := v.([]any)
	for _, x := range xs {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestClientExtractListsOnlyThatPersonsData: the §11 extract of one client holds the uses and
// disclosures of that person's referrals and searches, none of another client's, within the
// auditor's organisation's view, and is itself logged.
func TestClientExtractListsOnlyThatPersonsData(t *testing.T) {
	h := newHarness(t, "")
	kela, hki := kelaHandler(h), hkiWorker(h)
	matti := h.create(kela, needBody(pidMatti, "091"))
	maija := h.create(kela, needBody(pidMaija, "091"))
	for _, id := range []string{matti, maija} {
		if r := h.do("GET", "/v1/referrals/"+id, hki, nil); r.status != http.StatusOK {
			t.Fatal(r.status)
		}
	}
	for _, tok := range []string{hki, tampere(h)} { // Tampere finds nothing, but used the code
		if r := h.do("POST", "/v1/clients/search", tok, map[string]any{"personal_id": pidMatti}); r.status != http.StatusOK {
			t.Fatal(r.status)
		}
	}
	extract := func(org string) (map[string]any, []map[string]any, response) {
		t.Helper()
		r := h.do("POST", "/v1/audit/client-extract", h.token(org, domain.RoleAuditor), map[string]any{"personal_id": pidMatti}, "X-Purpose", "data_subject_request")
		return r.json(t), auditItems(t, r), r
	}
	body, items, r := extract("hva-90")
	if refs := anyStrings(body["referrals"]); len(refs) != 1 || refs[0] != matti {
		t.Errorf("referrals = %v, want [%s]", refs, matti)
	}
	if got := strings.Join(actions(items), ","); got != "create,read,client_search" {
		t.Errorf("actions %s, want create,read,client_search", got)
	}
	for _, it := range items {
		if it["referral_id"] != matti || it["org"] == "hva-08" {
			t.Errorf("entry not about this client or outside Helsinki's view: %v", it)
		}
	}
	if d, _ := items[0]["disclosure"].(map[string]any); d["from"] != "kela" || d["to"] != "hva-90" || d["legal_basis"] == "" {
		t.Errorf("the disclosure to Helsinki = %v", d)
	}
	for _, secret := range []string{pidMatti, "Meikäläinen", "client_key"} {
		if strings.Contains(string(r.body), secret) {
			t.Errorf("the extract shows %q", secret)
		}
	}
	// The extract itself is logged, with its purpose and request, and shows in the next one.
	if r := h.do("POST", "/v1/audit/client-extract", h.token("hva-90", domain.RoleAuditor), map[string]any{"personal_id": pidMatti},
		"X-Purpose", "data_subject_request", "X-Request-Id", "req-extract-1"); r.status != http.StatusOK {
		t.Fatal(r.status)
	}
	_, again, _ := extract("hva-90")
	if got := strings.Join(actions(again), ","); got != "create,read,client_search,client_extract,client_extract" {
		t.Errorf("third extract: %s", got)
	}
	if own := again[len(again)-1]; own["purpose"] != "data_subject_request" || own["request_id"] != "req-extract-1" {
		t.Errorf("the extract's own entry: %v, want its purpose and request id", own)
	}
	// Tampere's auditor sees only Tampere's own search.
	body, items, _ = extract("hva-08")
	if refs := anyStrings(body["referrals"]); len(refs) != 0 || len(items) != 1 || items[0]["action"] != "client_search" || items[0]["org"] != "hva-08" {
		t.Errorf("Tampere's extract: referrals %v items %v", refs, items)
	}
	bad := h.do("POST", "/v1/audit/client-extract", h.token("hva-90", domain.RoleAuditor), map[string]any{"personal_id": "131052-308U"}, "X-Purpose", "data_subject_request")
	if bad.status != http.StatusUnprocessableEntity || !hasPointer(bad.json(t), "/personal_id") {
		t.Errorf("invalid identity code: %d %s", bad.status, bad.body)
	}
}

// TestListPageIsOneAccessLogEntry: a page showing several referrals is one entry whose items
// name each referral with its parties and disclosure. Each auditor sees the items in its
// organisation's register only; a referral's log and a client's extract show the page
// narrowed to that referral.
func TestListPageIsOneAccessLogEntry(t *testing.T) {
	h := newHarness(t, "")
	kela := kelaHandler(h)
	matti := h.create(kela, needBody(pidMatti, "091"))
	maija := h.create(kela, needBody(pidMaija, "091"))
	tre := h.create(kela, needBody(pidMaija, "837")) // Tampere: hva-08
	before := len(auditItems(t, h.do("GET", "/v1/audit", h.token("kela", domain.RoleAuditor), nil, "X-Purpose", "audit")))
	if r := h.do("GET", "/v1/referrals?direction=outgoing", kela, nil, "X-Request-Id", "req-page-1"); r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	pageEntry := func(items []map[string]any) (map[string]any, []string) {
		t.Helper()
		for _, it := range items {
			if it["action"] == "list" && it["request_id"] == "req-page-1" {
				var ids []string
				for _, x := range it["items"].([]any) {
					ids = append(ids, x.(map[string]any)["referral_id"].(string))
				}
				slices.Sort(ids)
				return it, ids
			}
		}
		t.Fatalf("no list entry among %v", actions(items))
		return nil, nil
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

	kelaLog := auditItems(t, h.do("GET", "/v1/audit", h.token("kela", domain.RoleAuditor), nil, "X-Purpose", "audit"))
	// Kela's earlier audit query is logged too: the page adds one entry, not three.
	if got := len(kelaLog) - before; got != 2 {
		t.Errorf("the page and the audit query added %d entries, want 2", got)
	}
	e, ids := pageEntry(kelaLog)
	if !slices.Equal(ids, sorted(matti, maija, tre)) || e["referral_id"] != nil || e["org"] != "kela" || e["purpose"] != "benefit_processing" {
		t.Errorf("Kela's view of the page: %v", e)
	}
	for _, x := range e["items"].([]any) {
		it := x.(map[string]any)
		if it["kind"] != "social_work_need" || it["sender"] != "kela" || (it["recipient"] != "hva-90" && it["recipient"] != "hva-08") {
			t.Errorf("item %v", it)
		}
		if it["disclosure"] != nil { // Kela reading what it sent, before anyone acted on it
			t.Errorf("item %v: a disclosure to Kela of its own data", it)
		}
	}
	// Helsinki's auditor sees Helsinki's two referrals of the page, Tampere's its one.
	if _, ids := pageEntry(auditItems(t, h.do("GET", "/v1/audit", h.token("hva-90", domain.RoleAuditor), nil, "X-Purpose", "audit"))); !slices.Equal(ids, sorted(matti, maija)) {
		t.Errorf("Helsinki's auditor sees items %v", ids)
	}
	if _, ids := pageEntry(auditItems(t, h.do("GET", "/v1/audit", h.token("hva-08", domain.RoleAuditor), nil, "X-Purpose", "audit"))); !slices.Equal(ids, []string{tre}) {
		t.Errorf("Tampere's auditor sees items %v", ids)
	}
	// One referral's log: the page narrowed to it, whatever the case of the id asked for.
	for _, q := range []string{maija, strings.ToUpper(maija)} {
		if _, ids := pageEntry(auditItems(t, h.do("GET", "/v1/audit?referral="+q, h.token("kela", domain.RoleAuditor), nil, "X-Purpose", "audit"))); !slices.Equal(ids, []string{maija}) {
			t.Errorf("referral log of %s shows items %v", q, ids)
		}
	}
	// Matti's extract: the page with his referral only.
	r := h.do("POST", "/v1/audit/client-extract", h.token("kela", domain.RoleAuditor), map[string]any{"personal_id": pidMatti}, "X-Purpose", "data_subject_request")
	if _, ids := pageEntry(auditItems(t, r)); !slices.Equal(ids, []string{matti}) {
		t.Errorf("Matti's extract shows items %v", ids)
	}
	// Helsinki's inbox page: each item is Kela's data disclosed to Helsinki, with its legal
	// basis and the client's consent (Act 703/2023 §10).
	if r := h.do("GET", "/v1/referrals", hkiWorker(h), nil, "X-Purpose", "service_need_assessment", "X-Request-Id", "req-page-2"); r.status != http.StatusOK {
		t.Fatalf("inbox: %d %s", r.status, r.body)
	}
	var inbox map[string]any
	for _, it := range auditItems(t, h.do("GET", "/v1/audit", h.token("hva-90", domain.RoleAuditor), nil, "X-Purpose", "audit")) {
		if it["request_id"] == "req-page-2" {
			inbox = it
		}
	}
	if items, _ := inbox["items"].([]any); len(items) != 2 {
		t.Errorf("Helsinki's inbox page entry: %v, want its two referrals", inbox)
	} else {
		for _, x := range items {
			d, _ := x.(map[string]any)["disclosure"].(map[string]any)
			if d["from"] != "kela" || d["to"] != "hva-90" || d["legal_basis"] == "" || d["consent"] != "given" {
				t.Errorf("item %v: want Kela's data disclosed to Helsinki with its basis and consent", x)
			}
		}
	}
	if _, err := h.db.VerifyAudit(context.Background(), nil); err != nil {
		t.Error(err)
	}
}

// failingAudit is a store whose access log cannot be written while fail is set.
type failingAudit struct {
	domain.Store
	fail atomic.Bool
}

func (f *failingAudit) AppendAudit(ctx context.Context, es []domain.AuditEntry) error {
	if f.fail.Load() {
		return errors.New("injected: the access log cannot be written")
	}
	return f.Store.AppendAudit(ctx, es)
}

// TestNoClientDataWithoutItsAccessLogEntry: when a read cannot be logged, the client's data is
// not shown — every use is logged (DOMAIN §5), so the answer is a 500 without it.
func TestNoClientDataWithoutItsAccessLogEntry(t *testing.T) {
	var fa *failingAudit
	h := newHarnessWith(t, "", harnessOptions{store: func(db *store.DB) domain.Store { fa = &failingAudit{Store: db}; return fa }})
	id := h.create(kelaHandler(h), needBody(pidMatti, "091"))
	hki := hkiWorker(h)
	fa.fail.Store(true)
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/v1/referrals/" + id, ""},
		{"GET", "/v1/referrals", ""},
		{"GET", "/v1/referrals/" + id + "/messages", ""},
		{"GET", "/v1/referrals/" + id + "/timeline", ""},
		{"POST", "/v1/clients/search", `{"personal_id":"` + pidMatti + `"}`},
	} {
		var body io.Reader
		if rq.body != "" {
			body = strings.NewReader(rq.body)
		}
		r := roundTrip(t, http.DefaultClient, rq.method, h.srv.URL+rq.path, hki, body)
		if r.status != http.StatusInternalServerError {
			t.Errorf("%s %s with the access log failing: %d, want 500", rq.method, rq.path, r.status)
		}
		for _, secret := range []string{pidMatti, "Meikäläinen", "+35840"} {
			if strings.Contains(string(r.body), secret) {
				t.Errorf("%s %s shows %q though its use could not be logged", rq.method, rq.path, secret)
			}
		}
	}
	fa.fail.Store(false)
	if r := h.do("GET", "/v1/referrals/"+id, hki, nil); r.status != http.StatusOK {
		t.Errorf("once the log works again: %d", r.status)
	}
}
