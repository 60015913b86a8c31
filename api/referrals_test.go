package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
)

func TestSocialWorkNeedLifecycleThroughHTTP(t *testing.T) {
	h := newHarness(t, "")
	kela, hki := kelaHandler(h), hkiWorker(h)

	r := h.do("POST", "/v1/referrals", kela, needBody(pidMatti, "091"))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := r.json(t)
	id := created["id"].(string)
	if got := r.header.Get("Location"); got != "/v1/referrals/"+id {
		t.Errorf("Location = %q", got)
	}
	if got := r.header.Get("ETag"); got != `"v1"` {
		t.Errorf("ETag = %q, want \"v1\"", got)
	}
	if created["recipient"] != "hva-90" || created["sender"] != "kela" || created["direction"] != "kela_to_county" || created["status"] != "sent" {
		t.Errorf("routing/status wrong: %v", created)
	}
	dl := created["deadlines"].(map[string]any)
	if dl["acknowledge_by"] != "2026-11-24T21:59:59Z" || dl["respond_by"] != "2026-12-02T21:59:59Z" {
		t.Errorf("deadlines = %v", dl)
	}

	// The county's inbox has it; Kela's outgoing list has it; Tampere's inbox does not.
	inbox := h.do("GET", "/v1/referrals?direction=incoming&status=sent", hki, nil).json(t)
	if items := inbox["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != id {
		t.Fatalf("Helsinki inbox = %v", inbox)
	}
	out := h.do("GET", "/v1/referrals?direction=outgoing", kela, nil).json(t)
	if len(out["items"].([]any)) != 1 {
		t.Errorf("Kela outgoing = %v", out)
	}
	if other := h.do("GET", "/v1/referrals", tampere(h), nil).json(t); len(other["items"].([]any)) != 0 {
		t.Errorf("Tampere sees %v", other)
	}

	h.act(hki, id, "receive", nil)
	h.act(hki, id, "start", map[string]any{})
	done := h.act(hki, id, "complete", map[string]any{"outcome": "assessment_started", "feedback": "useful", "text": "Arviointi aloitettu."})
	if done["status"] != "completed" || done["version"].(float64) != 4 {
		t.Errorf("after complete: status %v version %v", done["status"], done["version"])
	}
	if o := done["outcome"].(map[string]any); o["outcome"] != "assessment_started" || o["feedback"] != "useful" {
		t.Errorf("outcome = %v", o)
	}

	tl := h.do("GET", "/v1/referrals/"+id+"/timeline", kela, nil).json(t)["items"].([]any)
	wantActions := []string{"create", "receive", "start", "complete"}
	if len(tl) != len(wantActions) {
		t.Fatalf("timeline has %d entries, want %d", len(tl), len(wantActions))
	}
	for i, e := range tl {
		e := e.(map[string]any)
		if e["action"] != wantActions[i] || e["seq"].(float64) != float64(i+1) {
			t.Errorf("timeline[%d] = %v", i, e)
		}
	}
	// Completed is terminal: a further move is 409 with nothing allowed.
	r = h.do("POST", "/v1/referrals/"+id+"/start", hki, nil)
	if r.status != http.StatusConflict {
		t.Fatalf("start after complete: %d", r.status)
	}
	if allowed, ok := r.json(t)["allowed"].([]any); !ok || len(allowed) != 0 {
		t.Errorf("allowed = %v, want []", r.json(t)["allowed"])
	}

	// Events in the outbox, in order, with no personal data or free text.
	evs, err := h.db.PendingEvents(100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, string(e.Event.Type))
		b, _ := json.Marshal(e.Event)
		for _, secret := range []string{pidMatti, "Meikäläinen", "Released", "Arviointi", "+358"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("event %s carries %q", e.Event.Type, secret)
			}
		}
	}
	if got := strings.Join(types, ","); got != "created,received,status_changed,status_changed" {
		t.Errorf("event types = %s", got)
	}

	// The logs name users, organisations and referral ids, never the client or free text;
	// every read and change of client data left an audit record.
	logs := h.logs.String()
	for _, secret := range []string{pidMatti, "Meikäläinen", "Released", "Arviointi", "+358"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs carry %q", secret)
		}
	}
	if n := strings.Count(logs, `"log":"audit"`); n != 7 {
		t.Errorf("%d audit records, want 7: create, two lists with items, three transitions, the timeline", n)
	}
}

// TestInfoRequestIsAnsweredByTheSendersMessage: the sender's message answers an information
// request, and POST …/messages answers, as a transition does (DOMAIN §9), with the updated
// referral: 200, the status it was asked in, the restarted respond_by, and an ETag of its
// version, so the caller needs no second GET.
func TestInfoRequestIsAnsweredByTheSendersMessage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []string // the recipient's transitions before the request
	}{
		{"asked when received", []string{"receive"}},
		{"asked when in progress", []string{"receive", "start"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "")
			kela, hki := kelaHandler(h), hkiWorker(h)
			id := h.create(kela, needBody(pidMatti, "091")) // Mon 23 Nov: respond_by Wed 2 Dec
			var before map[string]any
			for _, step := range tc.steps {
				before = h.act(hki, id, step, nil)
			}
			h.clock.Advance(24 * 3600e9) // to Tue 24 Nov
			asked := h.act(hki, id, "request-info", map[string]any{"question": "Onko asiakkaalla osoitetta?"})
			if asked["status"] != "info_requested" {
				t.Fatalf("status = %v", asked["status"])
			}

			// Kela's answer returns it to where it was and restarts respond_by from the answer.
			h.clock.Advance(24 * 3600e9) // to Wed 25 Nov
			r := h.do("POST", "/v1/referrals/"+id+"/messages", kela, map[string]any{"text": "Ei ole."})
			if r.status != http.StatusOK {
				t.Fatalf("answer: %d %s, want 200 with the referral", r.status, r.body)
			}
			got := r.json(t)
			if got["id"] != id || got["status"] != before["status"] {
				t.Errorf("answer returned id %v status %v, want %s %v", got["id"], got["status"], id, before["status"])
			}
			if rb := got["deadlines"].(map[string]any)["respond_by"]; rb != "2026-12-04T21:59:59Z" {
				t.Errorf("respond_by after answer on Wed 25 Nov = %v, want 2026-12-04T21:59:59Z", rb)
			}
			version := asked["version"].(float64) + 1
			if got["version"] != version || got["message_count"] != float64(2) {
				t.Errorf("version %v message_count %v, want %v and 2", got["version"], got["message_count"], version)
			}
			if etag := r.header.Get("ETag"); etag != fmt.Sprintf(`"v%v"`, got["version"]) {
				t.Errorf("ETag = %q, returned version %v", etag, got["version"])
			}
			g := h.do("GET", "/v1/referrals/"+id, kela, nil)
			sameJSON(t, "the answer's referral and GET", r.body, g.body)
			if g.header.Get("ETag") != r.header.Get("ETag") {
				t.Errorf("GET ETag %q, answer's %q", g.header.Get("ETag"), r.header.Get("ETag"))
			}

			// Any message answers with the referral; its ETag works as the next If-Match.
			m := h.do("POST", "/v1/referrals/"+id+"/messages", hki, map[string]any{"text": "Kiitos."}, "If-Match", r.header.Get("ETag"))
			if m.status != http.StatusOK {
				t.Fatalf("message with the answer's ETag: %d %s", m.status, m.body)
			}
			if mr := m.json(t); mr["status"] != before["status"] || mr["version"] != version+1 || mr["message_count"] != float64(3) ||
				m.header.Get("ETag") != fmt.Sprintf(`"v%v"`, mr["version"]) {
				t.Errorf("after the recipient's message: status %v version %v message_count %v ETag %q",
					mr["status"], mr["version"], mr["message_count"], m.header.Get("ETag"))
			}
			if stale := h.do("POST", "/v1/referrals/"+id+"/messages", hki, map[string]any{"text": "Vielä."}, "If-Match", r.header.Get("ETag")); stale.status != http.StatusPreconditionFailed {
				t.Errorf("message with a stale If-Match: %d, want 412", stale.status)
			}

			msgs := h.do("GET", "/v1/referrals/"+id+"/messages", hki, nil).json(t)["items"].([]any)
			if len(msgs) != 3 || msgs[0].(map[string]any)["type"] != "question" || msgs[1].(map[string]any)["type"] != "answer" ||
				msgs[2].(map[string]any)["type"] != "message" {
				t.Errorf("thread = %v", msgs)
			}
		})
	}
}

func TestForwardCreatesALinkedReferralAndCountsABounce(t *testing.T) {
	h := newHarness(t, "")
	kela, hki, tre := kelaHandler(h), hkiWorker(h), tampere(h)
	id := h.create(kela, needBody(pidMatti, "091"))
	old := h.act(hki, id, "forward", map[string]any{"to_municipality": "837", "text": "Muuttanut Tampereelle."})
	if old["status"] != "forwarded" || old["bounces"].(float64) != 1 {
		t.Fatalf("old = %v", old)
	}
	newID := old["forwarded_to"].(string)
	fresh := h.do("GET", "/v1/referrals/"+newID, tre, nil)
	if fresh.status != http.StatusOK {
		t.Fatalf("Tampere cannot read the forwarded referral: %d", fresh.status)
	}
	n := fresh.json(t)
	if n["recipient"] != "hva-08" || n["sender"] != "kela" || n["forwarded_from"] != id || n["status"] != "sent" || n["bounces"].(float64) != 1 {
		t.Errorf("new referral = %v", n)
	}
	if st := h.do("GET", "/v1/referrals/"+newID, hki, nil).status; st != http.StatusNotFound {
		t.Errorf("Helsinki reads Tampere's new referral: %d", st)
	}
	// Kela, the sender of both, finds both by client search, with the bounce counted.
	s := h.do("POST", "/v1/clients/search", kela, map[string]any{"personal_id": pidMatti}).json(t)
	if len(s["items"].([]any)) != 2 || s["bounces"].(float64) != 1 {
		t.Errorf("search = %v", s)
	}
}

func TestCountyToKelaStatementIsRoutedToKela(t *testing.T) {
	h := newHarness(t, "")
	id := h.create(hkiWorker(h), statementBody(pidMaija))
	got := h.do("GET", "/v1/referrals/"+id, kelaHandler(h), nil).json(t)
	if got["recipient"] != "kela" || got["direction"] != "county_to_kela" {
		t.Fatalf("statement = %v", got)
	}
	h.act(kelaHandler(h), id, "receive", nil)
	done := h.act(kelaHandler(h), id, "complete", map[string]any{"outcome": "accepted", "text": "Huomioitu."})
	if done["status"] != "completed" {
		t.Errorf("status = %v", done["status"])
	}
}

func TestIdempotencyKeySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	kela := kelaHandler(h)
	first := h.do("POST", "/v1/referrals", kela, needBody(pidMatti, "091"), "Idempotency-Key", "k-1")
	if first.status != http.StatusCreated {
		t.Fatalf("create: %d", first.status)
	}
	id := first.json(t)["id"]
	again := h.do("POST", "/v1/referrals", kela, needBody(pidMatti, "091"), "Idempotency-Key", "k-1")
	if again.status != http.StatusCreated || again.json(t)["id"] != id || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %v %q", again.status, again.json(t)["id"], again.header.Get("Idempotent-Replayed"))
	}
	changed := needBody(pidMatti, "091")
	changed["urgency"] = "urgent"
	if r := h.do("POST", "/v1/referrals", kela, changed, "Idempotency-Key", "k-1"); r.status != http.StatusUnprocessableEntity {
		t.Errorf("same key, other body: %d, want 422", r.status)
	}
	h.close()

	h2 := newHarness(t, dir)
	after := h2.do("POST", "/v1/referrals", kelaHandler(h2), needBody(pidMatti, "091"), "Idempotency-Key", "k-1")
	if after.status != http.StatusCreated || after.json(t)["id"] != id {
		t.Fatalf("after restart: %d %v, want the same referral %v", after.status, after.json(t)["id"], id)
	}
	list := h2.do("GET", "/v1/referrals?direction=outgoing", kelaHandler(h2), nil).json(t)["items"].([]any)
	if len(list) != 1 {
		t.Errorf("%d referrals after retries, want 1", len(list))
	}
	// Another organisation's identical key is its own.
	if r := h2.do("POST", "/v1/referrals", hkiWorker(h2), statementBody(pidMaija), "Idempotency-Key", "k-1"); r.status != http.StatusCreated || r.json(t)["id"] == id {
		t.Errorf("county with the same key: %d", r.status)
	}
}

func TestListPagingWithCursor(t *testing.T) {
	h := newHarness(t, "")
	kela := kelaHandler(h)
	var ids []string
	for i := 0; i < 7; i++ {
		ids = append(ids, h.create(kela, needBody(pidMatti, "091")))
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		path := "/v1/referrals?direction=incoming&limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		page := h.do("GET", path, hkiWorker(h), nil).json(t)
		pages++
		for _, it := range page["items"].([]any) {
			id := it.(map[string]any)["id"].(string)
			if seen[id] {
				t.Fatalf("%s seen twice", id)
			}
			seen[id] = true
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != len(ids) || pages != 3 {
		t.Errorf("saw %d referrals in %d pages, want %d in 3", len(seen), pages, len(ids))
	}
	// Newest first: the first item of the first page is the last created.
	first := h.do("GET", "/v1/referrals?limit=1", hkiWorker(h), nil).json(t)["items"].([]any)[0].(map[string]any)
	if first["id"] != ids[len(ids)-1] {
		t.Errorf("first item %v, want newest %v", first["id"], ids[len(ids)-1])
	}
}

// TestOverdueFilter: overdue=true lists a referral once its overdue alert has fired (the
// watcher step, FireDue, which referrald runs every --watch-interval), newest first with
// paging, on both sides, and no longer once the deadline is met.
func TestOverdueFilter(t *testing.T) {
	h := newHarness(t, "")
	kela, hki := kelaHandler(h), hkiWorker(h)
	late1 := h.create(kela, needBody(pidMatti, "091"))
	late2 := h.create(kela, needBody(pidMatti, "091"))
	acked := h.create(kela, needBody(pidMatti, "091"))
	h.act(hki, acked, "receive", nil)
	// Past acknowledge_by (Tue 24 Nov end of day) but before respond_by.
	h.clock.Advance(3 * 24 * 3600e9)
	list := func(token, query string) ([]string, string) {
		t.Helper()
		r := h.do("GET", "/v1/referrals?overdue=true"+query, token, nil)
		if r.status != http.StatusOK {
			t.Fatalf("overdue list%s: %d %s", query, r.status, r.body)
		}
		m := r.json(t)
		var ids []string
		for _, it := range m["items"].([]any) {
			ids = append(ids, it.(map[string]any)["id"].(string))
		}
		next, _ := m["next_cursor"].(string)
		return ids, next
	}
	if ids, _ := list(hki, ""); len(ids) != 0 {
		t.Errorf("overdue before the watcher fired = %v, want none (listed once the alert fired)", ids)
	}
	watcher := &domain.Service{Store: h.db, Clock: h.clock, Policy: domain.NewDeadlinePolicy(calendar.New(calendar.Options{}))}
	fired, err := watcher.FireDue(context.Background(), h.clock.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Each late referral: the acknowledge_by warning and the overdue alert.
	if len(fired) != 4 {
		t.Errorf("fired %d alerts, want 4: %+v", len(fired), fired)
	}
	page1, next := list(hki, "&limit=1")
	if len(page1) != 1 || page1[0] != late2 || next == "" {
		t.Fatalf("first page = %v next %q, want [%s] and a cursor", page1, next, late2)
	}
	page2, next := list(hki, "&limit=1&cursor="+next)
	if len(page2) != 1 || page2[0] != late1 || next != "" {
		t.Errorf("second page = %v next %q, want [%s] and no cursor", page2, next, late1)
	}
	if ids, _ := list(kela, "&direction=outgoing"); len(ids) != 2 {
		t.Errorf("Kela's outgoing overdue = %v, want both late referrals", ids)
	}
	if ids, _ := list(hki, "&direction=outgoing"); len(ids) != 0 {
		t.Errorf("Helsinki's outgoing overdue = %v, want none", ids)
	}
	if ids, _ := list(hki, "&status=received"); len(ids) != 0 {
		t.Errorf("overdue and received = %v, want none", ids)
	}
	// Acknowledging late meets the deadline: the referral leaves the list.
	h.act(hki, late1, "receive", nil)
	if ids, _ := list(hki, ""); len(ids) != 1 || ids[0] != late2 {
		t.Errorf("overdue after acknowledging %s = %v, want [%s]", late1, ids, late2)
	}
}

func TestRolesGateActions(t *testing.T) {
	h := newHarness(t, "")
	sup := h.token("hva-90", domain.RoleSupervisor)
	if r := h.do("POST", "/v1/referrals", sup, statementBody(pidMaija)); r.status != http.StatusForbidden {
		t.Errorf("supervisor create: %d, want 403", r.status)
	}
	// A county may not send Kela's kinds, nor Kela the county's.
	if r := h.do("POST", "/v1/referrals", hkiWorker(h), needBody(pidMatti, "091")); r.status != http.StatusUnprocessableEntity {
		t.Errorf("county sends social_work_need: %d, want 422", r.status)
	}
	if r := h.do("POST", "/v1/referrals", kelaHandler(h), statementBody(pidMaija)); r.status != http.StatusUnprocessableEntity {
		t.Errorf("Kela sends a statement: %d, want 422", r.status)
	}
	id := h.create(kelaHandler(h), needBody(pidMatti, "091"))
	if r := h.do("GET", "/v1/referrals/"+id, sup, nil); r.status != http.StatusOK {
		t.Errorf("supervisor reads: %d, want 200", r.status)
	}
	if r := h.do("POST", "/v1/referrals/"+id+"/receive", sup, nil); r.status != http.StatusForbidden {
		t.Errorf("supervisor receives: %d, want 403", r.status)
	}
	// The sender may not act as the recipient: 409 with what it may do.
	r := h.do("POST", "/v1/referrals/"+id+"/receive", kelaHandler(h), nil)
	if r.status != http.StatusConflict {
		t.Fatalf("sender receives: %d, want 409", r.status)
	}
	if allowed := r.json(t)["allowed"].([]any); len(allowed) != 1 || allowed[0] != "withdraw" {
		t.Errorf("allowed for the sender = %v, want [withdraw]", allowed)
	}
}
