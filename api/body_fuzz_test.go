package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"testing"

	"github.com/kela-hva/referrals/domain"
)

// The request body decoders, fuzzed through the HTTP stack (stack_fuzz_test.go). Seeds are
// in testdata/fuzz/<FuzzName>/ (valid and near-valid bodies) and run with every go test;
// .ci/fuzz runs each target for a bounded time.

// FuzzCreate posts arbitrary bodies to POST /v1/referrals as a Kela handler, a county
// social worker or an auditor (who may not send). A 201 must have stored exactly what was
// sent, what GET then returns, with one created event and one access-log entry; anything
// else must be a 4xx problem that stored nothing.
func FuzzCreate(f *testing.F) {
	s := newFuzzStack(f)
	senders := []fuzzActor{fzKela, fzHki, fzHkiAuditor}
	f.Fuzz(func(t *testing.T, sender uint8, body []byte) {
		a := senders[int(sender)%len(senders)]
		before := s.mark(t)
		r := s.send(t, "POST", "/v1/referrals", a, body, body)
		wantStatus(t, r, http.StatusCreated, http.StatusBadRequest, http.StatusForbidden,
			http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
		if r.status != http.StatusCreated {
			s.unchanged(t, before, r)
			return
		}
		var ref domain.Referral
		if err := json.Unmarshal(r.body, &ref); err != nil || ref.ID == "" {
			t.Fatalf("201 without a referral: %v: %s", err, r.body)
		}
		if loc := r.header.Get("Location"); loc != "/v1/referrals/"+ref.ID {
			t.Fatalf("Location %q for referral %s", loc, ref.ID)
		}
		if ref.Sender != a.org || ref.Status != domain.StatusSent || ref.Version != 1 {
			t.Fatalf("created referral has sender %s, status %s, version %d", ref.Sender, ref.Status, ref.Version)
		}
		if ev := s.drain(t, body, ref.ID); len(ev) != 1 || ev[0].Type != domain.EventCreated {
			t.Fatalf("create wrote events %+v, want one %s", ev, domain.EventCreated)
		}
		if after := s.mark(t); after.audit != before.audit+1 {
			t.Fatalf("create wrote %d access-log entries, want 1", after.audit-before.audit)
		}

		// What was sent is what was stored: the body as encoding/json reads it equals the
		// request fields of the referral returned.
		var sent domain.CreateRequest
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("the service accepted a body encoding/json refuses: %v", err)
		}
		stored := domain.CreateRequest{Kind: ref.Kind, Urgency: ref.Urgency, KelaCaseRef: ref.KelaCaseRef,
			Client: &ref.Client, SocialWorkNeed: ref.SocialWorkNeed, SupplementarySupport: ref.SupplementarySupport,
			ToKela: ref.ToKela, DirectPayment: ref.DirectPayment, JointMeeting: ref.JointMeeting}
		sentJS, _ := json.Marshal(sent)
		storedJS, _ := json.Marshal(stored)
		sameJSON(t, "the request sent and the referral created", sentJS, storedJS)

		g := s.send(t, "GET", "/v1/referrals/"+ref.ID, a, nil, body)
		if g.status != http.StatusOK {
			t.Fatalf("GET the created referral: status %d: %s", g.status, g.body)
		}
		sameJSON(t, "the created referral and GET", r.body, g.body)
		if r.header.Get("ETag") != g.header.Get("ETag") {
			t.Fatalf("ETag %q on create, %q on GET", r.header.Get("ETag"), g.header.Get("ETag"))
		}
	})
}

// fuzzKinds are the referrals the transition and message targets act on: three Kela →
// county kinds (whose outcomes differ) received by Helsinki, and a county → Kela one.
var fuzzKinds = []struct {
	name              string
	sender, recipient fuzzActor
	body              func() map[string]any
}{
	{"social_work_need", fzKela, fzHki, func() map[string]any { return needBody(pidMatti, "091") }},
	{"supplementary_support_handoff", fzKela, fzHki, func() map[string]any {
		return map[string]any{"kind": "supplementary_support_handoff", "urgency": "urgent",
			"client": map[string]any{"personal_id": pidMatti, "name": "Matti Meikäläinen", "home_municipality": "091"},
			"supplementary_support": map[string]any{"support_types": []string{"supplementary"},
				"application_received_at_kela": "2026-11-18", "basic_decision_date": "2026-11-20"}}
	}},
	{"joint_meeting_request", fzKela, fzHki, func() map[string]any {
		return map[string]any{"kind": "joint_meeting_request", "urgency": "normal",
			"client":        map[string]any{"personal_id": pidMaija, "name": "Maija Mallikas", "home_municipality": "091"},
			"joint_meeting": map[string]any{"text": "Tavataan asiakkaan kanssa."}}
	}},
	{"social_work_statement", fzHki, fzKela, func() map[string]any { return statementBody(pidMaija) }},
}

// fuzzTransitions are the transition routes with who takes them and the state they need:
// sent, or received when fromReceived.
var fuzzTransitions = []struct {
	path         string
	bySender     bool
	fromReceived bool
}{
	{"receive", false, false},
	{"start", false, true},
	{"request-info", false, false},
	{"complete", false, true},
	{"return", false, false},
	{"withdraw", true, false},
	{"forward", false, false},
}

// transitionBody is every field any transition body has; the target reads the input with
// it to check that what was sent is what the referral now records.
type transitionBody struct {
	Question       string `json:"question"`
	Outcome        string `json:"outcome"`
	Feedback       string `json:"feedback"`
	Decision       string `json:"decision"`
	DecisionDate   string `json:"decision_date"`
	Text           string `json:"text"`
	Reason         string `json:"reason"`
	ToMunicipality string `json:"to_municipality"`
}

// FuzzTransition posts arbitrary bodies and If-Match headers to each transition of each
// kind, always on a referral in a state where the transition is allowed, so the body
// reaches the domain's validation. A 200 must record what was sent and be what GET
// returns; anything else must be a 4xx problem that changed nothing.
func FuzzTransition(f *testing.F) {
	s := newFuzzStack(f)
	pool := map[[2]int]string{} // kind, transition → a referral ready for it
	ready := func(t *testing.T, k, tr int) string {
		if id, ok := pool[[2]int{k, tr}]; ok {
			return id
		}
		kind := fuzzKinds[k]
		id := s.mustCreate(t, kind.sender, kind.body())
		if fuzzTransitions[tr].fromReceived {
			s.mustAct(t, kind.recipient, id, "receive")
		}
		pool[[2]int{k, tr}] = id
		return id
	}
	f.Fuzz(func(t *testing.T, kind, transition uint8, ifMatch string, body []byte) {
		if !headerValue(ifMatch) {
			return // not sendable over HTTP
		}
		// Events a failed run left behind (the fuzzer re-runs inputs in this process while
		// it minimises a failure) must not be blamed on this one.
		s.drain(t, nil)
		k, tr := int(kind)%len(fuzzKinds), int(transition)%len(fuzzTransitions)
		id := ready(t, k, tr)
		a := fuzzKinds[k].recipient
		if fuzzTransitions[tr].bySender {
			a = fuzzKinds[k].sender
		}
		var headers []string
		if ifMatch != "" {
			headers = []string{"If-Match", ifMatch}
		}
		before, old := s.mark(t), s.referral(t, id)
		r := s.send(t, "POST", "/v1/referrals/"+id+"/"+fuzzTransitions[tr].path, a, body, body, headers...)
		wantStatus(t, r, http.StatusOK, http.StatusBadRequest, http.StatusConflict, http.StatusPreconditionFailed,
			http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
		if r.status != http.StatusOK {
			s.unchanged(t, before, r)
			oldJS, _ := json.Marshal(old)
			nowJS, _ := json.Marshal(s.referral(t, id))
			sameJSON(t, "the referral before and after a refused transition", oldJS, nowJS)
			return
		}
		delete(pool, [2]int{k, tr}) // it has moved on

		var ref domain.Referral
		if err := json.Unmarshal(r.body, &ref); err != nil || ref.ID != id {
			t.Fatalf("200 without referral %s: %v: %s", id, err, r.body)
		}
		if ref.Version != old.Version+1 {
			t.Fatalf("version %d after a transition from version %d", ref.Version, old.Version)
		}
		var b transitionBody
		// A body of nothing but white space is an empty body: {} for these transitions.
		if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &b) != nil {
			t.Fatalf("the service accepted a body encoding/json refuses: %s", body)
		}
		checkRecorded(t, fuzzTransitions[tr].path, b, &ref)
		if ev := s.drain(t, body, id, ref.ForwardedTo); len(ev) == 0 {
			t.Fatal("a transition wrote no event")
		}
		if s.mark(t).audit <= before.audit {
			t.Fatal("a transition wrote no access-log entry")
		}
		g := s.send(t, "GET", "/v1/referrals/"+id, a, nil, body)
		if g.status != http.StatusOK {
			t.Fatalf("GET after the transition: status %d: %s", g.status, g.body)
		}
		sameJSON(t, "the transition's referral and GET", r.body, g.body)
	})
}

// checkRecorded fails t unless ref records the input b of the transition at path.
func checkRecorded(t *testing.T, path string, b transitionBody, ref *domain.Referral) {
	t.Helper()
	want := map[string]domain.Status{"receive": domain.StatusReceived, "start": domain.StatusInProgress,
		"request-info": domain.StatusInfoRequested, "complete": domain.StatusCompleted, "return": domain.StatusReturned,
		"withdraw": domain.StatusWithdrawn, "forward": domain.StatusForwarded}[path]
	if ref.Status != want {
		t.Fatalf("%s led to state %s, want %s", path, ref.Status, want)
	}
	switch path {
	case "complete":
		o := ref.Outcome
		if o == nil || o.Outcome != b.Outcome || o.Feedback != b.Feedback || o.Decision != b.Decision ||
			o.DecisionDate != b.DecisionDate || o.Text != b.Text {
			t.Fatalf("outcome %+v does not record the body %+v", o, b)
		}
	case "return", "withdraw":
		if c := ref.Closure; c == nil || c.Reason != b.Reason || c.Text != b.Text {
			t.Fatalf("closure %+v does not record the body %+v", c, b)
		}
	case "forward":
		if c := ref.Closure; c == nil || c.Text != b.Text || ref.ForwardedTo == "" {
			t.Fatalf("closure %+v, forwarded_to %q do not record the body %+v", c, ref.ForwardedTo, b)
		}
	}
}

// headerValue reports whether s can be sent as an HTTP header value as it is.
func headerValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return len(s) == 0 || s[0] != ' ' && s[0] != '\t' && s[len(s)-1] != ' ' && s[len(s)-1] != '\t'
}

// FuzzMessage posts arbitrary bodies to POST /v1/referrals/{id}/messages as the sender or
// the recipient of an open referral. A 200 must have stored the message as sent and answer
// with the updated referral, as GET shows it, under its ETag; anything else must be a 4xx
// problem that changed nothing.
func FuzzMessage(f *testing.F) {
	s := newFuzzStack(f)
	var id string
	var count int
	f.Fuzz(func(t *testing.T, fromSender bool, body []byte) {
		if id == "" || count >= 50 { // a fresh thread now and then keeps the reads short
			id, count = s.mustCreate(t, fzKela, needBody(pidMatti, "091")), 0
		}
		a := fzHki
		if fromSender {
			a = fzKela
		}
		before, old := s.mark(t), s.referral(t, id)
		r := s.send(t, "POST", "/v1/referrals/"+id+"/messages", a, body, body)
		wantStatus(t, r, http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
		if r.status != http.StatusOK {
			s.unchanged(t, before, r)
			oldJS, _ := json.Marshal(old)
			nowJS, _ := json.Marshal(s.referral(t, id))
			sameJSON(t, "the referral before and after a refused message", oldJS, nowJS)
			return
		}
		count++
		var sent struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("the service accepted a body encoding/json refuses: %v", err)
		}
		var ref domain.Referral
		if err := json.Unmarshal(r.body, &ref); err != nil || ref.ID != id {
			t.Fatalf("200 without referral %s: %v: %s", id, err, r.body)
		}
		if ref.Version != old.Version+1 || ref.Messages != old.Messages+1 {
			t.Fatalf("after a message: version %d → %d, message_count %d → %d", old.Version, ref.Version, old.Messages, ref.Messages)
		}
		if etag := r.header.Get("ETag"); etag != `"v`+strconv.Itoa(ref.Version)+`"` {
			t.Fatalf("ETag %q for version %d", etag, ref.Version)
		}
		ms, err := s.db.Messages(context.Background(), id)
		if err != nil || len(ms) != ref.Messages {
			t.Fatalf("store holds %d messages (%v), want %d", len(ms), err, ref.Messages)
		}
		if m := ms[len(ms)-1]; m.Text != sent.Text || m.ReferralID != id || m.Org != a.org {
			t.Fatalf("message %+v does not record text %q by %s", m, sent.Text, a.org)
		}
		if ev := s.drain(t, body, id); len(ev) != 1 || ev[0].Type != domain.EventMessageAdded {
			t.Fatalf("a message wrote events %+v, want one %s", ev, domain.EventMessageAdded)
		}
		if after := s.mark(t); after.audit != before.audit+1 {
			t.Fatalf("a message wrote %d access-log entries, want 1", after.audit-before.audit)
		}
		g := s.send(t, "GET", "/v1/referrals/"+id, a, nil, body)
		if g.status != http.StatusOK {
			t.Fatalf("GET after the message: status %d: %s", g.status, g.body)
		}
		sameJSON(t, "the message's referral and GET", r.body, g.body)
	})
}

// clientFixture is the referrals the client search and extract targets look for:
//
//	matti:     social_work_need, Kela → Helsinki (hva-90), about pidMatti
//	maijaTre:  social_work_need, Kela → Tampere (hva-08), about pidMaija
//	maijaStmt: social_work_statement, Helsinki → Kela, about pidMaija
type clientFixture struct {
	matti, maijaTre, maijaStmt string
}

func newClientFixture(tb testing.TB, s *fuzzStack) clientFixture {
	tb.Helper()
	return clientFixture{
		matti:     s.mustCreate(tb, fzKela, needBody(pidMatti, "091")),
		maijaTre:  s.mustCreate(tb, fzKela, needBody(pidMaija, "837")),
		maijaStmt: s.mustCreate(tb, fzHki, statementBody(pidMaija)),
	}
}

// of returns the ids of the referrals about pid that org is party to, sorted.
func (c clientFixture) of(org domain.OrgID, pid string) []string {
	var out []string
	switch {
	case pid == pidMatti && (org == "kela" || org == "hva-90"):
		out = []string{c.matti}
	case pid == pidMaija && org == "kela":
		out = []string{c.maijaTre, c.maijaStmt}
	case pid == pidMaija && org == "hva-08":
		out = []string{c.maijaTre}
	case pid == pidMaija && org == "hva-90":
		out = []string{c.maijaStmt}
	}
	sort.Strings(out)
	return out
}

// FuzzClientSearch posts arbitrary bodies to POST /v1/clients/search as case workers of
// three organisations and an auditor (who may not search). A 200 must list exactly the
// referrals about that person the caller's organisation is party to, and log the search;
// anything else must be a 4xx problem that logged nothing.
func FuzzClientSearch(f *testing.F) {
	s := newFuzzStack(f)
	fx := newClientFixture(f, s)
	actors := []fuzzActor{fzHki, fzTre, fzKela, fzHkiAuditor}
	f.Fuzz(func(t *testing.T, who uint8, body []byte) {
		a := actors[int(who)%len(actors)]
		r, before, q, ok := s.postPersonalID(t, "/v1/clients/search", a, body)
		if !ok {
			return
		}
		var res struct {
			Items []domain.Referral `json:"items"`
		}
		if err := json.Unmarshal(r.body, &res); err != nil {
			t.Fatalf("search result: %v: %s", err, r.body)
		}
		var got []string
		for _, ref := range res.Items {
			if ref.Client.PersonalID != q.PersonalID {
				t.Fatalf("a search for one person returned referral %s about another", ref.ID)
			}
			got = append(got, ref.ID)
		}
		sort.Strings(got)
		if want := fx.of(a.org, q.PersonalID); !equalIDs(got, want) {
			t.Fatalf("%s searching: got referrals %v, want %v", a.org, got, want)
		}
		after := s.mark(t)
		if want := before.audit + uint64(max(1, len(got))); after.audit != want || after.outbox != before.outbox {
			t.Fatalf("a search moved the access log %d → %d (want %d) and the outbox %d → %d",
				before.audit, after.audit, want, before.outbox, after.outbox)
		}
	})
}

// FuzzClientExtract posts arbitrary bodies to POST /v1/audit/client-extract as auditors
// of Helsinki and Kela and as a social worker (who may not). A 200 must name exactly the
// person's referrals the auditor's organisation is party to, show only entries it may
// see, without client keys, and be logged itself; anything else must be a 4xx problem
// that logged nothing.
func FuzzClientExtract(f *testing.F) {
	s := newFuzzStack(f)
	fx := newClientFixture(f, s)
	actors := []fuzzActor{fzHkiAuditor, fzKelaAuditor, fzHki}
	f.Fuzz(func(t *testing.T, who uint8, body []byte) {
		a := actors[int(who)%len(actors)]
		r, before, q, ok := s.postPersonalID(t, "/v1/audit/client-extract", a, body)
		if !ok {
			return
		}
		var ex struct {
			Referrals []string            `json:"referrals"`
			Items     []domain.AuditEntry `json:"items"`
		}
		if err := json.Unmarshal(r.body, &ex); err != nil {
			t.Fatalf("extract: %v: %s", err, r.body)
		}
		sort.Strings(ex.Referrals)
		if want := fx.of(a.org, q.PersonalID); !equalIDs(ex.Referrals, want) {
			t.Fatalf("%s extract: referrals %v, want %v", a.org, ex.Referrals, want)
		}
		for _, e := range ex.Items {
			if !e.VisibleTo(a.org) || e.ClientKey != "" {
				t.Fatalf("extract for %s shows entry %d of %s/%s→%s with client key %q", a.org, e.Seq, e.Org, e.Sender, e.Recipient, e.ClientKey)
			}
		}
		after := s.mark(t)
		if after.audit != before.audit+1 || after.outbox != before.outbox {
			t.Fatalf("an extract moved the access log %d → %d (want +1) and the outbox %d → %d",
				before.audit, after.audit, before.outbox, after.outbox)
		}
	})
}

// personalIDQuery is the body of a client search or extract.
type personalIDQuery struct {
	PersonalID string `json:"personal_id"`
}

// postPersonalID posts body to path as a and checks the status is one such a body may get.
// A refusal must have changed nothing; then ok is false. On 200 it returns what the store
// held before and the query the body made (which encoding/json must also accept).
func (s *fuzzStack) postPersonalID(t *testing.T, path string, a fuzzActor, body []byte) (r fuzzResponse, before storeMark, q personalIDQuery, ok bool) {
	t.Helper()
	before = s.mark(t)
	r = s.send(t, "POST", path, a, body, body)
	wantStatus(t, r, http.StatusOK, http.StatusBadRequest, http.StatusForbidden,
		http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
	if r.status != http.StatusOK {
		s.unchanged(t, before, r)
		return r, before, q, false
	}
	if err := json.Unmarshal(body, &q); err != nil {
		t.Fatalf("the service accepted a body encoding/json refuses: %v", err)
	}
	return r, before, q, true
}

func equalIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestClientFixtureOracle pins the oracle the search and extract targets check against,
// through the real search endpoint.
func TestClientFixtureOracle(t *testing.T) {
	s := newFuzzStack(t)
	fx := newClientFixture(t, s)
	for _, a := range []fuzzActor{fzHki, fzTre, fzKela} {
		for _, pid := range []string{pidMatti, pidMaija} {
			body := []byte(`{"personal_id":` + strconv.Quote(pid) + `}`)
			r := s.send(t, "POST", "/v1/clients/search", a, body, body)
			var res struct {
				Items []domain.Referral `json:"items"`
			}
			if r.status != http.StatusOK || json.Unmarshal(r.body, &res) != nil {
				t.Fatalf("search: %d: %s", r.status, r.body)
			}
			var got []string
			for _, ref := range res.Items {
				got = append(got, ref.ID)
			}
			sort.Strings(got)
			if want := fx.of(a.org, pid); !equalIDs(got, want) || len(want) == 0 && a.org != "hva-08" {
				t.Errorf("%s searching %s: %v, want %v", a.org, pid, got, want)
			}
		}
	}
}
