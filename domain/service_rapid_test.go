package domain_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/store"
)

// serviceMachine drives a Service on a real store with random commands by random parties and
// checks every outcome against the lifecycle of DOMAIN §6 (domainSection6 in lifecycle_test.go).
type serviceMachine struct {
	f   *fixture
	ctx context.Context
	ids []string
	// last is every referral as last observed, with its timeline.
	last map[string]observed
	// closed is every referral as first observed in a terminal state.
	closed map[string]*domain.Referral
	// bounces is the highest bounce count Check has seen per referral.
	bounces map[string]int
	events  int
}

type observed struct {
	r  *domain.Referral
	tl []domain.TimelineEntry
}

var (
	machineActors = []domain.Actor{kelaHandler, tampereSW, helsinkiSW, eplSW, outsiderSW}
	// forwardTargets: Helsinki (hva-90), Tampere (hva-08), Alajärvi (hva-16), Åland, unknown.
	forwardTargets = []string{"091", "837", "005", "478", "999"}
)

type createTemplate struct {
	actor domain.Actor
	req   func(personalID string) *domain.CreateRequest
}

var createTemplates = []createTemplate{
	{kelaHandler, func(p string) *domain.CreateRequest { return needRequest(p, "837") }},
	{kelaHandler, func(p string) *domain.CreateRequest { return handoffRequest(p, "091") }},
	{kelaHandler, func(p string) *domain.CreateRequest { return meetingRequest(p, "005") }},
	{tampereSW, func(p string) *domain.CreateRequest { return reviewRequest(p) }},
	{helsinkiSW, func(p string) *domain.CreateRequest { return meetingRequest(p, "091") }},
}

func (m *serviceMachine) load(t *rapid.T, id string) observed {
	t.Helper()
	r, err := m.f.db.Referral(m.ctx, id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	tl, err := m.f.db.Timeline(m.ctx, id)
	if err != nil {
		t.Fatalf("timeline %s: %v", id, err)
	}
	return observed{r, tl}
}

func (m *serviceMachine) outboxLen(t *rapid.T) int {
	t.Helper()
	n, err := m.f.db.OutboxLen()
	if err != nil {
		t.Fatalf("OutboxLen: %v", err)
	}
	return n
}

// settle checks that every referral but the changed ones is as last observed, records the new
// observations and the outbox growth.
func (m *serviceMachine) settle(t *rapid.T, changed map[string]bool, wantEvents int) {
	t.Helper()
	for _, id := range m.ids {
		now := m.load(t, id)
		if prev, ok := m.last[id]; ok && !changed[id] {
			if !reflect.DeepEqual(prev, now) {
				t.Fatalf("referral %s changed although the command did not touch it:\nbefore %+v\nafter  %+v", id, prev.r, now.r)
			}
		}
		m.last[id] = now
	}
	if got := m.outboxLen(t); got != m.events+wantEvents {
		t.Fatalf("outbox grew by %d, want %d", got-m.events, wantEvents)
	}
	m.events += wantEvents
}

// Check holds after every step.
func (m *serviceMachine) Check(t *rapid.T) {
	for _, id := range m.ids {
		o := m.load(t, id)
		r := o.r
		if r.Version != len(o.tl) || r.Timeline != len(o.tl) {
			t.Fatalf("%s: version %d, timeline_count %d, timeline entries %d", id, r.Version, r.Timeline, len(o.tl))
		}
		for i, e := range o.tl {
			if e.Seq != i+1 || e.ReferralID != id {
				t.Fatalf("%s: timeline[%d] = seq %d of %s", id, i, e.Seq, e.ReferralID)
			}
			if i > 0 && e.From != o.tl[i-1].To {
				t.Fatalf("%s: timeline[%d] from %s, previous to %s", id, i, e.From, o.tl[i-1].To)
			}
		}
		if last := o.tl[len(o.tl)-1]; last.To != r.Status {
			t.Fatalf("%s: last timeline entry to %s, status %s", id, last.To, r.Status)
		}
		if r.Bounces < m.bounces[id] {
			t.Fatalf("%s: bounces went down %d → %d", id, m.bounces[id], r.Bounces)
		}
		m.bounces[id] = r.Bounces
		if c, ok := m.closed[id]; ok {
			if !reflect.DeepEqual(c, r) {
				t.Fatalf("%s: terminal referral changed:\nthen %+v\nnow  %+v", id, c, r)
			}
		} else if r.Status.Terminal() {
			m.closed[id] = r
			if r.Times.ClosedAt == nil || r.ResumeStatus != "" {
				t.Fatalf("%s: terminal without closed_at or with resume status: %+v", id, r)
			}
		}
		if (r.Status == domain.StatusInfoRequested) != (r.ResumeStatus != "") {
			t.Fatalf("%s: status %s with resume status %q", id, r.Status, r.ResumeStatus)
		}
	}
}

func (m *serviceMachine) Create(t *rapid.T) {
	if len(m.ids) >= 6 {
		t.Skip("enough referrals")
	}
	tpl := rapid.SampledFrom(createTemplates).Draw(t, "template")
	pid := rapid.SampledFrom([]string{clientA, clientB}).Draw(t, "client")
	r, created, err := m.f.svc.Create(m.ctx, tpl.actor, tpl.req(pid), "")
	if err != nil || !created {
		t.Fatalf("Create: %v, %v", created, err)
	}
	if r.Version != 1 || r.Timeline != 1 || r.Status != domain.StatusSent || r.Bounces != 0 {
		t.Fatalf("created %+v", r)
	}
	m.ids = append(m.ids, r.ID)
	m.settle(t, map[string]bool{r.ID: true}, 1)
}

func (m *serviceMachine) Advance(t *rapid.T) {
	m.f.clock.Advance(time.Duration(rapid.IntRange(1, 4*24*60).Draw(t, "minutes")) * time.Minute)
}

// drawActor mostly returns a party of r, sometimes anyone (an outsider included).
func drawActor(t *rapid.T, r *domain.Referral) domain.Actor {
	if rapid.IntRange(0, 4).Draw(t, "any_actor") == 0 {
		return rapid.SampledFrom(machineActors).Draw(t, "actor")
	}
	org := rapid.SampledFrom([]domain.OrgID{r.Sender, r.Recipient}).Draw(t, "party")
	for _, a := range machineActors {
		if a.Org == org {
			return a
		}
	}
	t.Fatalf("no actor for %s", org)
	return domain.Actor{}
}

// drawAction mostly returns a move DOMAIN §6 allows the actor, sometimes any action.
func drawAction(t *rapid.T, r *domain.Referral, actor domain.Actor) domain.Action {
	side, _ := r.SideOf(actor.Org)
	var allowed []domain.Action
	for _, a := range actionOrder {
		if _, ok := expectedMove(r, a, side); ok && a != domain.ActionAnswer {
			allowed = append(allowed, a)
		}
	}
	if len(allowed) == 0 || rapid.IntRange(0, 2).Draw(t, "any_action") == 0 {
		return rapid.SampledFrom(actionOrder).Draw(t, "action")
	}
	return rapid.SampledFrom(allowed).Draw(t, "allowed_action")
}

// drawVersion returns 0 (no If-Match), the current version, or a stale one, and whether it
// is stale.
func drawVersion(t *rapid.T, current int) (int, bool) {
	switch rapid.IntRange(0, 5).Draw(t, "if_match") {
	case 0:
		return current, false
	case 1:
		v := current + rapid.SampledFrom([]int{-1, 1, 2}).Draw(t, "stale_by")
		if v <= 0 { // 0 would mean no If-Match
			v = current + 1
		}
		return v, true
	}
	return 0, false
}

func (m *serviceMachine) Act(t *rapid.T) {
	if len(m.ids) == 0 {
		t.Skip("no referral yet")
	}
	id := rapid.SampledFrom(m.ids).Draw(t, "referral")
	before := m.last[id]
	r := before.r
	actor := drawActor(t, r)
	action := drawAction(t, r, actor)
	ifVersion, stale := drawVersion(t, r.Version)
	bad := rapid.IntRange(0, 6).Draw(t, "bad_input") == 0
	c := domain.Command{Action: action, IfVersion: ifVersion}
	badInput := false
	switch action {
	case domain.ActionRequestInfo:
		c.Question = "Question?"
		if bad {
			c.Question, badInput = "", true
		}
	case domain.ActionComplete:
		switch r.Kind {
		case domain.KindSocialWorkNeed:
			c.Outcome, c.Feedback = "already_client", "useful"
		case domain.KindSupplementarySupportHandoff:
			c.Outcome, c.Decision, c.DecisionDate = "decided", "granted", "2026-11-30"
		case domain.KindJointMeetingRequest:
			c.Outcome = "meeting_held"
		default:
			c.Outcome, c.Text = "accepted", "Accepted."
		}
		if bad {
			c.Outcome, badInput = "nonsense", true
		}
	case domain.ActionReturn:
		c.Reason, c.Text = "wrong_recipient", "Not ours."
		if bad {
			c.Text, badInput = "", true
		}
	case domain.ActionWithdraw:
		c.Reason = "client_request"
		if bad {
			c.Reason, badInput = "bored", true
		}
	case domain.ActionForward:
		c.ToMunicipality = rapid.SampledFrom(forwardTargets).Draw(t, "to_municipality")
		if bad {
			c.ToMunicipality, badInput = "12", true
		}
	}

	// What DOMAIN §6 says should happen, in the order Act checks.
	var wantCode domain.Code
	side, party := r.SideOf(actor.Org)
	wantTo, allowed := expectedMove(r, action, side)
	switch {
	case action == domain.ActionAnswer:
		wantCode = domain.EInvalid // answers are messages, not commands
	case !party:
		wantCode = domain.ENotFound
	case stale:
		wantCode = domain.EPrecondition
	case !allowed:
		wantCode = domain.EConflict
	case badInput:
		wantCode = domain.EInvalid
	case action == domain.ActionForward:
		mun, ok := m.f.svc.Registry.Municipality(c.ToMunicipality)
		if !ok || mun.Aland || mun.County == r.Recipient {
			wantCode = domain.EInvalid
		}
	}

	got, err := m.f.svc.Act(m.ctx, actor, id, c)
	if wantCode != "" {
		if code := domain.ErrorCode(err); err == nil || code != wantCode {
			t.Fatalf("Act(%s by %s on %s, %s, if-match %d) = %v; want %s", action, actor.Org, r.Status, r.Kind, ifVersion, err, wantCode)
		}
		if wantCode == domain.EConflict {
			e := err.(*domain.Error)
			if want := r.Allowed(side); e.Allowed == nil || fmt.Sprint(e.Allowed) != fmt.Sprint(nilToEmpty(want)) {
				t.Fatalf("conflict Allowed = %v, want %v", e.Allowed, want)
			}
		}
		m.settle(t, nil, 0)
		return
	}
	if err != nil {
		t.Fatalf("Act(%s by %s on %s, %s, %+v) = %v; want %s", action, actor.Org, r.Status, r.Kind, c, err, wantTo)
	}
	if got.Status != wantTo || got.Version != r.Version+1 {
		t.Fatalf("Act(%s) → %s v%d, want %s v%d", action, got.Status, got.Version, wantTo, r.Version+1)
	}
	changed := map[string]bool{id: true}
	wantEvents := 1
	var newID string
	if action == domain.ActionForward {
		newID = got.ForwardedTo
		if newID == "" || m.last[newID].r != nil {
			t.Fatalf("forward made %q, which is not a new referral", newID)
		}
		changed[newID], wantEvents = true, 2
		m.ids = append(m.ids, newID)
	}
	m.settle(t, changed, wantEvents)

	after := m.last[id]
	if after.r.Status != wantTo || after.r.Version != r.Version+1 || len(after.tl) != len(before.tl)+1 {
		t.Fatalf("stored after %s: %s v%d with %d timeline entries (before v%d, %d)", action, after.r.Status, after.r.Version, len(after.tl), r.Version, len(before.tl))
	}
	e := after.tl[len(after.tl)-1]
	if e.Action != action || e.From != r.Status || e.To != wantTo || e.ActorOrg != actor.Org || !e.At.Equal(m.f.clock.Now()) {
		t.Fatalf("timeline entry %+v, want %s %s→%s by %s", e, action, r.Status, wantTo, actor.Org)
	}
	wantBounces := r.Bounces
	if wantTo == domain.StatusReturned || wantTo == domain.StatusForwarded {
		wantBounces++
	}
	if after.r.Bounces != wantBounces {
		t.Fatalf("bounces %d after %s, want %d", after.r.Bounces, action, wantBounces)
	}
	if action == domain.ActionRequestInfo && after.r.ResumeStatus != r.Status {
		t.Fatalf("resume status %q, want %q", after.r.ResumeStatus, r.Status)
	}
	if newID != "" {
		n := m.last[newID]
		mun, _ := m.f.svc.Registry.Municipality(c.ToMunicipality)
		if n.r.Status != domain.StatusSent || n.r.Version != 1 || len(n.tl) != 1 || n.tl[0].Action != domain.ActionCreate ||
			n.r.Bounces != after.r.Bounces || n.r.ForwardedOf != id || n.r.Sender != r.Sender || n.r.Recipient != mun.County {
			t.Fatalf("forwarded referral %+v (timeline %+v)", n.r, n.tl)
		}
		if _, err := m.f.svc.Get(m.ctx, actor, newID); domain.ErrorCode(err) != domain.ENotFound {
			t.Fatalf("the forwarding county can read the new referral: %v", err)
		}
	}
}

func nilToEmpty(a []domain.Action) []domain.Action {
	if a == nil {
		return []domain.Action{}
	}
	return a
}

func (m *serviceMachine) Message(t *rapid.T) {
	if len(m.ids) == 0 {
		t.Skip("no referral yet")
	}
	id := rapid.SampledFrom(m.ids).Draw(t, "referral")
	before := m.last[id]
	r := before.r
	actor := drawActor(t, r)
	ifVersion, stale := drawVersion(t, r.Version)
	text := rapid.SampledFrom([]string{"Hello.", "Answer: the client moved.", ""}).Draw(t, "text")

	var wantCode domain.Code
	side, party := r.SideOf(actor.Org)
	switch {
	case text == "":
		wantCode = domain.EInvalid
	case !party:
		wantCode = domain.ENotFound
	case stale:
		wantCode = domain.EPrecondition
	case r.Status.Terminal():
		wantCode = domain.EConflict
	}
	msg, got, err := m.f.svc.AddMessage(m.ctx, actor, id, text, ifVersion)
	if wantCode != "" {
		if code := domain.ErrorCode(err); err == nil || code != wantCode {
			t.Fatalf("AddMessage(by %s on %s, if-match %d, %q) = %v; want %s", actor.Org, r.Status, ifVersion, text, err, wantCode)
		}
		m.settle(t, nil, 0)
		return
	}
	if err != nil {
		t.Fatalf("AddMessage(by %s on %s) = %v", actor.Org, r.Status, err)
	}
	answer := r.Status == domain.StatusInfoRequested && side == domain.SenderSide
	wantStatus, wantType, wantAction, wantEvents := r.Status, "message", domain.ActionMessage, 1
	if answer {
		wantStatus, wantType, wantAction, wantEvents = r.ResumeStatus, "answer", domain.ActionAnswer, 2
	}
	if msg.Type != wantType || msg.Org != actor.Org || got.Status != wantStatus || got.Messages != r.Messages+1 {
		t.Fatalf("AddMessage = %+v, status %s; want type %s, status %s", msg, got.Status, wantType, wantStatus)
	}
	m.settle(t, map[string]bool{id: true}, wantEvents)
	after := m.last[id]
	e := after.tl[len(after.tl)-1]
	if len(after.tl) != len(before.tl)+1 || after.r.Version != r.Version+1 || e.Action != wantAction || e.From != r.Status || e.To != wantStatus {
		t.Fatalf("after message: v%d, timeline %d (+%+v); before v%d, %d", after.r.Version, len(after.tl), e, r.Version, len(before.tl))
	}
	if answer {
		wantRespond := m.f.svc.Policy.Calendar.Deadline(m.f.clock.Now(), m.f.svc.Policy.Rules[r.Kind][r.Urgency].RespondDays)
		if after.r.Deadlines.RespondBy == nil || !after.r.Deadlines.RespondBy.Equal(wantRespond) {
			t.Fatalf("respond_by after answer = %v, want %s", after.r.Deadlines.RespondBy, wantRespond)
		}
	} else if !reflect.DeepEqual(after.r.Deadlines, r.Deadlines) || after.r.Status != r.Status {
		t.Fatalf("a plain message changed deadlines or status: %+v → %+v", r, after.r)
	}
}

var machineDB atomic.Int64

func TestServiceStateMachine(t *testing.T) {
	dir := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		// MaxBatchSize 1: a lone writer commits at once instead of waiting for company.
		f, err := openFixture(filepath.Join(dir, fmt.Sprintf("r%d.db", machineDB.Add(1))), store.Options{MaxBatchSize: 1})
		if err != nil {
			rt.Fatalf("open store: %v", err)
		}
		defer func() {
			if err := f.db.Close(); err != nil {
				rt.Errorf("close store: %v", err)
			}
		}()
		m := &serviceMachine{f: f, ctx: context.Background(), last: map[string]observed{}, closed: map[string]*domain.Referral{}, bounces: map[string]int{}}
		rt.Repeat(rapid.StateMachineActions(m))
	})
}
