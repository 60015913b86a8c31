package domain_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/testkit"
	"github.com/kela-hva/referrals/store"
)

// fakeClock is a business clock the test moves by hand.
type fakeClock = testkit.Clock

// testClientKey is a deterministic keyed hash of an identity code.
func testClientKey(personalID string) string {
	sum := sha256.Sum256([]byte("test-client-key\x00" + personalID))
	return hex.EncodeToString(sum[:16])
}

type fixture struct {
	svc   *domain.Service
	db    *store.DB
	clock *fakeClock
}

// openFixture builds a Service on a bbolt file in dir. The caller closes db.
func openFixture(path string, opts store.Options) (*fixture, error) {
	db, err := store.Open(path, opts)
	if err != nil {
		return nil, err
	}
	clock := testkit.NewClock(time.Date(2026, 11, 23, 9, 12, 44, 0, time.UTC))
	svc := &domain.Service{
		Store:     db,
		Registry:  domain.DefaultRegistry(),
		Clock:     clock,
		Policy:    domain.NewDeadlinePolicy(calendar.New(calendar.Options{})),
		ClientKey: testClientKey,
	}
	return &fixture{svc: svc, db: db, clock: clock}, nil
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f, err := openFixture(filepath.Join(t.TempDir(), "r.db"), store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := f.db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return f
}

var (
	kelaHandler  = domain.Actor{UserID: "kela-user-1", Name: "Kaisa Käsittelijä", Org: domain.Kela, Roles: []domain.Role{domain.RoleKelaHandler}}
	tampereSW    = domain.Actor{UserID: "hva08-user-1", Name: "Sanna Sosiaalityöntekijä", Org: "hva-08", Roles: []domain.Role{domain.RoleSocialWorker}}
	helsinkiSW   = domain.Actor{UserID: "hva90-user-1", Name: "Heikki Helsinki", Org: "hva-90", Roles: []domain.Role{domain.RoleSocialWorker}}
	eplSW        = domain.Actor{UserID: "hva16-user-1", Name: "Eeva Pohjanmaa", Org: "hva-16", Roles: []domain.Role{domain.RoleSocialWorker}}
	outsiderSW   = domain.Actor{UserID: "hva01-user-1", Name: "Otto Ulkopuolinen", Org: "hva-01", Roles: []domain.Role{domain.RoleSocialWorker}}
	tampereSuper = domain.Actor{UserID: "hva08-super", Name: "Seija Esimies", Org: "hva-08", Roles: []domain.Role{domain.RoleSupervisor}}
	kelaAuditor  = domain.Actor{UserID: "kela-audit", Name: "Aino Auditoija", Org: domain.Kela, Roles: []domain.Role{domain.RoleAuditor}}
)

// Personal data used in requests; none of it may reach an event.
const (
	clientA      = "131052-308T"
	clientB      = "010594Y9021"
	clientName   = "Matti Meikäläinen"
	clientPhone  = "+358401234567"
	freeTextNeed = "Released 2026-11-20, no address yet."
)

func serviceClient(personalID, municipality string) *domain.Client {
	return &domain.Client{PersonalID: personalID, Name: clientName, HomeMunicipality: municipality,
		Language: "fi", Phone: clientPhone}
}

// needRequest is Kela's social_work_need about the client living in municipality.
func needRequest(personalID, municipality string) *domain.CreateRequest {
	return &domain.CreateRequest{Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal, KelaCaseRef: "TO-2026-0012345",
		Client: serviceClient(personalID, municipality),
		SocialWorkNeed: &domain.SocialWorkNeed{NeedFlags: []string{"housing_risk", "released_from_prison"},
			Consent: "given", Description: freeTextNeed}}
}

// handoffRequest is Kela's supplementary_support_handoff decided on Friday 20 Nov 2026.
func handoffRequest(personalID, municipality string) *domain.CreateRequest {
	return &domain.CreateRequest{Kind: domain.KindSupplementarySupportHandoff, Urgency: domain.Normal,
		Client: serviceClient(personalID, municipality),
		SupplementarySupport: &domain.SupplementarySupport{SupportTypes: []string{"supplementary"},
			ApplicationReceivedAtKela: "2026-11-18", BasicDecisionDate: "2026-11-20"}}
}

// reviewRequest is a county's decision_review_request to Kela.
func reviewRequest(personalID string) *domain.CreateRequest {
	return &domain.CreateRequest{Kind: domain.KindDecisionReviewRequest, Urgency: domain.Urgent, KelaCaseRef: "TO-2026-77",
		Client: serviceClient(personalID, "837"),
		ToKela: &domain.ToKela{Subject: "Housing costs", Text: "Rent was left out of the calculation."}}
}

// meetingRequest is a joint_meeting_request; Kela's is routed by municipality.
func meetingRequest(personalID, municipality string) *domain.CreateRequest {
	return &domain.CreateRequest{Kind: domain.KindJointMeetingRequest, Urgency: domain.Normal,
		Client:       serviceClient(personalID, municipality),
		JointMeeting: &domain.JointMeeting{Text: "Let us meet with the client."}}
}

func mustCreate(t *testing.T, f *fixture, actor domain.Actor, req *domain.CreateRequest) *domain.Referral {
	t.Helper()
	r, created, err := f.svc.Create(context.Background(), actor, req, "")
	if err != nil || !created || r == nil {
		t.Fatalf("Create(%s) = %v, %v, %v", req.Kind, r, created, err)
	}
	return r
}

func mustAct(t *testing.T, f *fixture, actor domain.Actor, id string, c domain.Command) *domain.Referral {
	t.Helper()
	r, err := f.svc.Act(context.Background(), actor, id, c)
	if err != nil {
		t.Fatalf("Act(%s by %s) = %v", c.Action, actor.Org, err)
	}
	return r
}

func mustGet(t *testing.T, f *fixture, actor domain.Actor, id string) *domain.Referral {
	t.Helper()
	r, err := f.svc.Get(context.Background(), actor, id)
	if err != nil {
		t.Fatalf("Get by %s = %v", actor.Org, err)
	}
	return r
}

func mustTimeline(t *testing.T, f *fixture, actor domain.Actor, id string) []domain.TimelineEntry {
	t.Helper()
	tl, err := f.svc.Timeline(context.Background(), actor, id)
	if err != nil {
		t.Fatalf("Timeline by %s = %v", actor.Org, err)
	}
	return tl
}

func wantCode(t *testing.T, what string, err error, code domain.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: err = nil, want %s", what, code)
	}
	if got := domain.ErrorCode(err); got != code {
		t.Fatalf("%s: err = %v (code %s), want %s", what, err, got, code)
	}
}

func pendingEvents(t *testing.T, f *fixture) []domain.Event {
	t.Helper()
	entries, err := f.db.PendingEvents(1000)
	if err != nil {
		t.Fatalf("PendingEvents: %v", err)
	}
	out := make([]domain.Event, len(entries))
	for i, e := range entries {
		if i > 0 && e.Seq <= entries[i-1].Seq {
			t.Fatalf("outbox not in seq order: %d after %d", e.Seq, entries[i-1].Seq)
		}
		out[i] = e.Event
	}
	return out
}

func eventTypes(evs []domain.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Type)+":"+string(e.Action))
	}
	return out
}

// assertNoPersonalData fails if any event, marshalled, contains personal data or free text.
func assertNoPersonalData(t *testing.T, evs []domain.Event, secrets ...string) {
	t.Helper()
	for _, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("marshal event: %v", err)
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Fatalf("event %s contains %q: %s", e.Type, s, b)
			}
		}
	}
}

func utc(t *testing.T, s string) time.Time {
	t.Helper()
	return mustTime(t, s)
}

func TestServiceHappyPath(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	created := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	if created.Status != domain.StatusSent || created.Version != 1 || created.Timeline != 1 || created.Bounces != 0 ||
		created.Sender != domain.Kela || created.Recipient != "hva-08" || created.Direction != domain.KelaToCounty ||
		created.CreatedBy != kelaHandler.UserID || !created.CreatedAt.Equal(utc(t, "2026-11-23T09:12:44Z")) {
		t.Fatalf("created = %+v", created)
	}
	checkDeadline(t, "acknowledge_by", created.Deadlines.AcknowledgeBy, "2026-11-24T21:59:59Z")
	checkDeadline(t, "respond_by", created.Deadlines.RespondBy, "2026-12-02T21:59:59Z")
	if created.ClientKey != testClientKey(clientA) {
		t.Fatalf("ClientKey = %q, want the keyed hash", created.ClientKey)
	}
	id := created.ID

	steps := []struct {
		advance time.Duration
		cmd     domain.Command
		want    domain.Status
	}{
		{time.Hour, domain.Command{Action: domain.ActionReceive, IfVersion: 1}, domain.StatusReceived},
		{26 * time.Hour, domain.Command{Action: domain.ActionStart, IfVersion: 2}, domain.StatusInProgress},
		{48 * time.Hour, domain.Command{Action: domain.ActionComplete, Outcome: "assessment_started", Feedback: "useful", Text: "Client met."}, domain.StatusCompleted},
	}
	var times []time.Time
	for i, st := range steps {
		f.clock.Advance(st.advance)
		times = append(times, f.clock.Now())
		r := mustAct(t, f, tampereSW, id, st.cmd)
		if r.Status != st.want || r.Version != i+2 || r.Timeline != i+2 || !r.UpdatedAt.Equal(f.clock.Now()) {
			t.Fatalf("after %s: status %s version %d timeline %d updated %s", st.cmd.Action, r.Status, r.Version, r.Timeline, r.UpdatedAt)
		}
		got := mustGet(t, f, kelaHandler, id)
		if got.Status != r.Status || got.Version != r.Version {
			t.Fatalf("stored referral %s v%d, want %s v%d", got.Status, got.Version, r.Status, r.Version)
		}
	}
	final := mustGet(t, f, tampereSW, id)
	if final.Times.AcknowledgedAt == nil || !final.Times.AcknowledgedAt.Equal(times[0]) {
		t.Errorf("acknowledged_at = %v, want %s", final.Times.AcknowledgedAt, times[0])
	}
	if final.Times.FirstResponseAt == nil || !final.Times.FirstResponseAt.Equal(times[1]) {
		t.Errorf("first_response_at = %v, want %s", final.Times.FirstResponseAt, times[1])
	}
	if final.Times.ClosedAt == nil || !final.Times.ClosedAt.Equal(times[2]) {
		t.Errorf("closed_at = %v, want %s", final.Times.ClosedAt, times[2])
	}
	if o := final.Outcome; o == nil || o.Outcome != "assessment_started" || o.Feedback != "useful" || o.By != tampereSW.UserID || !o.At.Equal(times[2]) {
		t.Errorf("outcome = %+v", final.Outcome)
	}

	tl := mustTimeline(t, f, kelaHandler, id)
	wantTL := []struct {
		action   domain.Action
		from, to domain.Status
		org      domain.OrgID
		role     domain.Role
	}{
		{domain.ActionCreate, "", domain.StatusSent, domain.Kela, domain.RoleKelaHandler},
		{domain.ActionReceive, domain.StatusSent, domain.StatusReceived, "hva-08", domain.RoleSocialWorker},
		{domain.ActionStart, domain.StatusReceived, domain.StatusInProgress, "hva-08", domain.RoleSocialWorker},
		{domain.ActionComplete, domain.StatusInProgress, domain.StatusCompleted, "hva-08", domain.RoleSocialWorker},
	}
	if len(tl) != len(wantTL) {
		t.Fatalf("timeline has %d entries, want %d: %+v", len(tl), len(wantTL), tl)
	}
	for i, w := range wantTL {
		e := tl[i]
		if e.Seq != i+1 || e.ReferralID != id || e.Action != w.action || e.From != w.from || e.To != w.to || e.ActorOrg != w.org || e.ActorRole != w.role {
			t.Errorf("timeline[%d] = %+v, want seq %d %s %s→%s by %s (%s)", i, e, i+1, w.action, w.from, w.to, w.org, w.role)
		}
		if i > 0 && !e.At.Equal(times[i-1]) {
			t.Errorf("timeline[%d].At = %s, want %s", i, e.At, times[i-1])
		}
	}
	if tl[3].Reason != "assessment_started" {
		t.Errorf("complete reason = %q, want the outcome", tl[3].Reason)
	}

	// Completed is terminal: nothing more, and the 409 lists no moves.
	for _, c := range []domain.Command{{Action: domain.ActionReceive}, {Action: domain.ActionRequestInfo, Question: "q"},
		{Action: domain.ActionReturn, Reason: "wrong_recipient", Text: "t"}} {
		_, err := f.svc.Act(ctx, tampereSW, id, c)
		var e *domain.Error
		if !errors.As(err, &e) || e.Code != domain.EConflict || e.Allowed == nil || len(e.Allowed) != 0 {
			t.Fatalf("Act(%s) on completed = %v, want EConflict with no allowed moves", c.Action, err)
		}
	}
	if _, err := f.svc.Act(ctx, kelaHandler, id, domain.Command{Action: domain.ActionWithdraw, Reason: "other"}); domain.ErrorCode(err) != domain.EConflict {
		t.Fatalf("withdraw completed = %v, want EConflict", err)
	}
	_, _, err := f.svc.AddMessage(ctx, kelaHandler, id, "still there?", 0)
	wantCode(t, "message on completed", err, domain.EConflict)
	if got := mustGet(t, f, kelaHandler, id); got.Version != 4 || got.Status != domain.StatusCompleted {
		t.Fatalf("refused commands changed the referral: %+v", got)
	}

	evs := pendingEvents(t, f)
	if got, want := eventTypes(evs), []string{"created:", "received:receive", "status_changed:start", "status_changed:complete"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	seen := map[string]bool{}
	for i, e := range evs {
		if e.ReferralID != id || e.Sender != domain.Kela || e.Recipient != "hva-08" || e.Kind != domain.KindSocialWorkNeed || e.ID == "" || seen[e.ID] {
			t.Errorf("event %d = %+v", i, e)
		}
		seen[e.ID] = true
		if want := "referrals.v1.kela.hva-08." + string(e.Type); e.Subject() != want {
			t.Errorf("subject = %s, want %s", e.Subject(), want)
		}
	}
	if evs[0].DeadlineName != "acknowledge_by" || evs[1].DeadlineName != "respond_by" || evs[3].Deadline != nil {
		t.Errorf("event deadlines = %q, %q, %v", evs[0].DeadlineName, evs[1].DeadlineName, evs[3].Deadline)
	}
	if evs[3].FromStatus != domain.StatusInProgress || evs[3].Status != domain.StatusCompleted || evs[3].ActorOrg != "hva-08" {
		t.Errorf("complete event = %+v", evs[3])
	}
	assertNoPersonalData(t, evs, clientA, clientA[:6], clientName, "Meikäläinen", clientPhone, freeTextNeed, "Client met.",
		kelaHandler.Name, tampereSW.Name, testClientKey(clientA))
}

func TestServiceRequestInfoAnsweredBySenderMessage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	f.clock.Advance(time.Hour)
	mustAct(t, f, tampereSW, r.ID, domain.Command{Action: domain.ActionReceive})
	f.clock.Advance(time.Hour)
	q := mustAct(t, f, tampereSW, r.ID, domain.Command{Action: domain.ActionRequestInfo, Question: "Where does the client live now?"})
	if q.Status != domain.StatusInfoRequested || q.ResumeStatus != domain.StatusReceived || q.Messages != 1 || q.Version != 3 {
		t.Fatalf("after request_info: %+v", q)
	}
	if q.Times.FirstResponseAt == nil {
		t.Errorf("request_info is a response but first_response_at is unset")
	}

	// The recipient's own message does not answer.
	f.clock.Advance(time.Minute)
	m, after, err := f.svc.AddMessage(ctx, tampereSW, r.ID, "Also: phone number?", 3)
	if err != nil || m.Type != "message" || after.Status != domain.StatusInfoRequested || after.Version != 4 {
		t.Fatalf("recipient message = %+v, %+v, %v", m, after, err)
	}
	respondBefore := *after.Deadlines.RespondBy

	// Thursday 26 Nov: the sender answers; the clock restarts: 7 business days from Thursday.
	f.clock.Set(utc(t, "2026-11-26T08:00:00Z"))
	m, ans, err := f.svc.AddMessage(ctx, kelaHandler, r.ID, "He lives in Tampere, phone unknown.", 4)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	if m.Type != "answer" || m.Org != domain.Kela || m.AuthorID != kelaHandler.UserID || m.ReferralID != r.ID {
		t.Fatalf("answer message = %+v", m)
	}
	if ans.Status != domain.StatusReceived || ans.ResumeStatus != "" || ans.Version != 5 || ans.Messages != 3 {
		t.Fatalf("after answer: status %s resume %q version %d messages %d", ans.Status, ans.ResumeStatus, ans.Version, ans.Messages)
	}
	checkDeadline(t, "respond_by", ans.Deadlines.RespondBy, "2026-12-07T21:59:59Z")
	if respondBefore.Equal(*ans.Deadlines.RespondBy) {
		t.Fatalf("respond_by did not move")
	}
	checkDeadline(t, "acknowledge_by", ans.Deadlines.AcknowledgeBy, "2026-11-24T21:59:59Z")
	stored := mustGet(t, f, tampereSW, r.ID)
	checkDeadline(t, "stored respond_by", stored.Deadlines.RespondBy, "2026-12-07T21:59:59Z")

	tl := mustTimeline(t, f, tampereSW, r.ID)
	var acts []string
	for i, e := range tl {
		if e.Seq != i+1 {
			t.Fatalf("timeline seq %d at %d", e.Seq, i)
		}
		acts = append(acts, string(e.Action)+":"+string(e.From)+">"+string(e.To))
	}
	want := []string{"create:>sent", "receive:sent>received", "request_info:received>info_requested",
		"message:info_requested>info_requested", "answer:info_requested>received"}
	if !reflect.DeepEqual(acts, want) {
		t.Fatalf("timeline = %v, want %v", acts, want)
	}
	if len(tl) != stored.Version {
		t.Fatalf("timeline %d entries, version %d", len(tl), stored.Version)
	}

	msgs, err := f.svc.Messages(ctx, kelaHandler, r.ID)
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	var types []string
	for _, m := range msgs {
		types = append(types, m.Type+"@"+string(m.Org))
	}
	if want := []string{"question@hva-08", "message@hva-08", "answer@kela"}; !reflect.DeepEqual(types, want) {
		t.Fatalf("messages = %v, want %v", types, want)
	}

	// A second message from the sender is an ordinary one now.
	m, plain, err := f.svc.AddMessage(ctx, kelaHandler, r.ID, "One more thing.", 0)
	if err != nil || m.Type != "message" || plain.Status != domain.StatusReceived {
		t.Fatalf("second sender message = %+v, %+v, %v", m, plain, err)
	}

	evs := pendingEvents(t, f)
	if got, want := eventTypes(evs), []string{"created:", "received:receive", "status_changed:request_info",
		"message_added:", "message_added:", "status_changed:answer", "message_added:"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if e := evs[5]; e.FromStatus != domain.StatusInfoRequested || e.Status != domain.StatusReceived || e.ActorOrg != domain.Kela {
		t.Fatalf("answer event = %+v", e)
	}
	assertNoPersonalData(t, evs, clientA, clientName, "Where does the client live", "He lives in Tampere", "One more thing", "phone number")
}

func TestServiceRequestInfoFromSentResumesSent(t *testing.T) {
	f := newFixture(t)
	r := mustCreate(t, f, tampereSW, reviewRequest(clientA))
	if r.Recipient != domain.Kela || r.Direction != domain.CountyToKela {
		t.Fatalf("review request routed to %s (%s)", r.Recipient, r.Direction)
	}
	q := mustAct(t, f, kelaHandler, r.ID, domain.Command{Action: domain.ActionRequestInfo, Question: "Which decision?"})
	if q.ResumeStatus != domain.StatusSent || q.Times.AcknowledgedAt == nil {
		t.Fatalf("after request_info from sent: %+v", q)
	}
	// The sender may withdraw while the question is open.
	_, ans, err := f.svc.AddMessage(context.Background(), tampereSW, r.ID, "Decision of 2026-11-01.", 0)
	if err != nil || ans.Status != domain.StatusSent {
		t.Fatalf("answer = %+v, %v; want back to sent", ans, err)
	}
	mustAct(t, f, kelaHandler, r.ID, domain.Command{Action: domain.ActionRequestInfo, Question: "And the date of the application?"})
	w := mustAct(t, f, tampereSW, r.ID, domain.Command{Action: domain.ActionWithdraw, Reason: "resolved_otherwise"})
	if w.Status != domain.StatusWithdrawn || w.ResumeStatus != "" || w.Closure == nil || w.Closure.Reason != "resolved_otherwise" || w.Bounces != 0 {
		t.Fatalf("after withdraw: %+v", w)
	}
}

func TestServiceForward(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	mustAct(t, f, tampereSW, old.ID, domain.Command{Action: domain.ActionReceive})

	// Refused forwards change nothing.
	for _, tt := range []struct {
		name string
		to   string
		code domain.Code
	}{
		{"own county", "837", domain.EInvalid},
		{"Åland", "478", domain.EInvalid},
		{"unknown municipality", "999", domain.EInvalid},
		{"malformed municipality", "91", domain.EInvalid},
	} {
		_, err := f.svc.Act(ctx, tampereSW, old.ID, domain.Command{Action: domain.ActionForward, ToMunicipality: tt.to})
		wantCode(t, "forward to "+tt.name, err, tt.code)
	}
	if got := mustGet(t, f, tampereSW, old.ID); got.Version != 2 || got.Status != domain.StatusReceived || got.Bounces != 0 {
		t.Fatalf("refused forwards changed the referral: %+v", got)
	}
	_, err := f.svc.Act(ctx, kelaHandler, old.ID, domain.Command{Action: domain.ActionForward, ToMunicipality: "091"})
	wantCode(t, "sender forwards", err, domain.EConflict)

	f.clock.Advance(2 * time.Hour)
	fwd := mustAct(t, f, tampereSW, old.ID, domain.Command{Action: domain.ActionForward, ToMunicipality: "091", Text: "Moved to Helsinki."})
	if fwd.Status != domain.StatusForwarded || fwd.Bounces != 1 || fwd.ForwardedTo == "" || fwd.Version != 3 ||
		fwd.Closure == nil || fwd.Closure.Reason != "client_moved" || fwd.Times.ClosedAt == nil {
		t.Fatalf("old after forward: %+v", fwd)
	}
	newID := fwd.ForwardedTo
	nr := mustGet(t, f, helsinkiSW, newID)
	if nr.Status != domain.StatusSent || nr.Sender != domain.Kela || nr.Recipient != "hva-90" || nr.Bounces != 1 ||
		nr.ForwardedOf != old.ID || nr.Version != 1 || nr.Timeline != 1 || nr.Client.HomeMunicipality != "091" ||
		nr.Kind != old.Kind || nr.Times.AcknowledgedAt != nil || nr.Closure != nil || nr.ClientKey != old.ClientKey {
		t.Fatalf("new referral: %+v", nr)
	}
	// Deadlines count from the forward (Monday 11:12 UTC).
	checkDeadline(t, "new acknowledge_by", nr.Deadlines.AcknowledgeBy, "2026-11-24T21:59:59Z")
	checkDeadline(t, "new respond_by", nr.Deadlines.RespondBy, "2026-12-02T21:59:59Z")

	ntl := mustTimeline(t, f, helsinkiSW, newID)
	if len(ntl) != 1 || ntl[0].Seq != 1 || ntl[0].Action != domain.ActionCreate || ntl[0].To != domain.StatusSent || ntl[0].Related != old.ID {
		t.Fatalf("new timeline = %+v", ntl)
	}
	otl := mustTimeline(t, f, tampereSW, old.ID)
	if last := otl[len(otl)-1]; len(otl) != 3 || last.Action != domain.ActionForward || last.Related != newID || last.Reason != "client_moved" {
		t.Fatalf("old timeline = %+v", otl)
	}

	// The old county no longer sees the new one; the new county cannot see the old one.
	_, err = f.svc.Get(ctx, tampereSW, newID)
	wantCode(t, "old county gets new", err, domain.ENotFound)
	_, err = f.svc.Get(ctx, helsinkiSW, old.ID)
	wantCode(t, "new county gets old", err, domain.ENotFound)
	_, err = f.svc.Timeline(ctx, tampereSW, newID)
	wantCode(t, "old county timeline of new", err, domain.ENotFound)
	mustGet(t, f, kelaHandler, old.ID)
	mustGet(t, f, kelaHandler, newID)

	// Forwarded again: bounces keep counting.
	again := mustAct(t, f, helsinkiSW, newID, domain.Command{Action: domain.ActionForward, ToMunicipality: "005"})
	third := mustGet(t, f, eplSW, again.ForwardedTo)
	if again.Bounces != 2 || third.Bounces != 2 || third.Recipient != "hva-16" || third.ForwardedOf != newID {
		t.Fatalf("second forward: old bounces %d, new %+v", again.Bounces, third)
	}
	if got := mustGet(t, f, tampereSW, old.ID); got.Bounces != 1 || got.Version != 3 {
		t.Fatalf("the first referral changed: %+v", got)
	}

	// Client search follows the same scope.
	for _, tt := range []struct {
		actor domain.Actor
		want  []string
	}{
		{kelaHandler, []string{third.ID, newID, old.ID}},
		{tampereSW, []string{old.ID}},
		{helsinkiSW, []string{newID}},
		{eplSW, []string{third.ID}},
		{outsiderSW, nil},
	} {
		rs, err := f.svc.SearchClient(ctx, tt.actor, clientA)
		if err != nil {
			t.Fatalf("SearchClient by %s: %v", tt.actor.Org, err)
		}
		if rs == nil {
			t.Fatalf("SearchClient by %s returned nil, want an empty list", tt.actor.Org)
		}
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		if !reflect.DeepEqual(ids, tt.want) {
			t.Errorf("SearchClient by %s = %v, want %v", tt.actor.Org, ids, tt.want)
		}
	}

	evs := pendingEvents(t, f)
	if got, want := eventTypes(evs), []string{"created:", "received:receive", "status_changed:forward", "created:",
		"status_changed:forward", "created:"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if e := evs[2]; e.ReferralID != old.ID || e.Related != newID || e.Status != domain.StatusForwarded || e.Recipient != "hva-08" {
		t.Errorf("forward event = %+v", e)
	}
	if e := evs[3]; e.ReferralID != newID || e.Related != old.ID || e.Recipient != "hva-90" || e.Subject() != "referrals.v1.kela.hva-90.created" {
		t.Errorf("created-by-forward event = %+v", e)
	}
	assertNoPersonalData(t, evs, clientA, clientName, "Moved to Helsinki", clientPhone)
}

func TestServiceOtherOrganisationSeesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	before := pendingEvents(t, f)

	_, err := f.svc.Get(ctx, outsiderSW, r.ID)
	wantCode(t, "Get", err, domain.ENotFound)
	_, err = f.svc.Act(ctx, outsiderSW, r.ID, domain.Command{Action: domain.ActionReceive})
	wantCode(t, "Act receive", err, domain.ENotFound)
	_, err = f.svc.Act(ctx, outsiderSW, r.ID, domain.Command{Action: domain.ActionForward, ToMunicipality: "091"})
	wantCode(t, "Act forward", err, domain.ENotFound)
	_, err = f.svc.Act(ctx, outsiderSW, r.ID, domain.Command{Action: domain.ActionReceive, IfVersion: 99})
	wantCode(t, "Act with a stale If-Match", err, domain.ENotFound)
	_, _, err = f.svc.AddMessage(ctx, outsiderSW, r.ID, "hello", 0)
	wantCode(t, "AddMessage", err, domain.ENotFound)
	_, err = f.svc.Timeline(ctx, outsiderSW, r.ID)
	wantCode(t, "Timeline", err, domain.ENotFound)
	_, err = f.svc.Messages(ctx, outsiderSW, r.ID)
	wantCode(t, "Messages", err, domain.ENotFound)
	// A supervisor of another county is just as blind.
	_, err = f.svc.Get(ctx, domain.Actor{UserID: "x", Org: "hva-01", Roles: []domain.Role{domain.RoleSupervisor}}, r.ID)
	wantCode(t, "Get by another supervisor", err, domain.ENotFound)
	// Unknown ids look the same.
	_, err = f.svc.Get(ctx, tampereSW, "0193a0e0-0000-7000-8000-000000000000")
	wantCode(t, "Get unknown", err, domain.ENotFound)
	_, err = f.svc.Get(ctx, tampereSW, "not-a-uuid")
	wantCode(t, "Get malformed id", err, domain.ENotFound)

	page, err := f.svc.List(ctx, outsiderSW, domain.ListFilter{Direction: domain.Incoming})
	if err != nil || len(page.Items) != 0 {
		t.Fatalf("outsider incoming = %v, %v", page.Items, err)
	}
	if got := mustGet(t, f, tampereSW, r.ID); got.Version != 1 || got.Status != domain.StatusSent {
		t.Fatalf("outsider changed the referral: %+v", got)
	}
	if after := pendingEvents(t, f); len(after) != len(before) {
		t.Fatalf("outsider produced events: %d → %d", len(before), len(after))
	}
}

func TestServiceRoles(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))

	_, _, err := f.svc.Create(ctx, tampereSuper, reviewRequest(clientA), "")
	wantCode(t, "supervisor creates", err, domain.EForbidden)
	_, _, err = f.svc.Create(ctx, domain.Actor{UserID: "x", Org: domain.Kela, Roles: []domain.Role{domain.RoleSocialWorker}}, needRequest(clientA, "837"), "")
	wantCode(t, "social worker role at Kela creates", err, domain.EForbidden)
	if got := mustGet(t, f, tampereSuper, r.ID); got.ID != r.ID {
		t.Fatalf("supervisor Get = %+v", got)
	}
	_, err = f.svc.Act(ctx, tampereSuper, r.ID, domain.Command{Action: domain.ActionReceive})
	wantCode(t, "supervisor acts", err, domain.EForbidden)
	_, _, err = f.svc.AddMessage(ctx, tampereSuper, r.ID, "hi", 0)
	wantCode(t, "supervisor writes", err, domain.EForbidden)
	_, err = f.svc.Get(ctx, kelaAuditor, r.ID)
	wantCode(t, "auditor Get", err, domain.EForbidden)
	_, err = f.svc.SearchClient(ctx, kelaAuditor, clientA)
	wantCode(t, "auditor search", err, domain.EForbidden)
	_, err = f.svc.List(ctx, kelaAuditor, domain.ListFilter{Direction: domain.Outgoing})
	wantCode(t, "auditor List", err, domain.EForbidden)
	if got := mustGet(t, f, kelaHandler, r.ID); got.Version != 1 {
		t.Fatalf("refused commands changed the referral: %+v", got)
	}
}

func TestServiceIfMatch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	_, err := f.svc.Act(ctx, tampereSW, r.ID, domain.Command{Action: domain.ActionReceive, IfVersion: 2})
	wantCode(t, "receive with If-Match 2 at version 1", err, domain.EPrecondition)
	// Precondition is checked before the lifecycle.
	_, err = f.svc.Act(ctx, tampereSW, r.ID, domain.Command{Action: domain.ActionComplete, IfVersion: 7})
	wantCode(t, "illegal move with a stale If-Match", err, domain.EPrecondition)
	_, _, err = f.svc.AddMessage(ctx, kelaHandler, r.ID, "hello", 5)
	wantCode(t, "message with a stale If-Match", err, domain.EPrecondition)
	if got := mustGet(t, f, kelaHandler, r.ID); got.Version != 1 || got.Messages != 0 {
		t.Fatalf("refused commands changed the referral: %+v", got)
	}
	got := mustAct(t, f, tampereSW, r.ID, domain.Command{Action: domain.ActionReceive, IfVersion: 1})
	if got.Version != 2 {
		t.Fatalf("version = %d, want 2", got.Version)
	}
	_, err = f.svc.Act(ctx, tampereSW, r.ID, domain.Command{Action: domain.ActionStart, IfVersion: 1})
	wantCode(t, "start with the old version", err, domain.EPrecondition)
	if _, _, err := f.svc.AddMessage(ctx, kelaHandler, r.ID, "hello", 2); err != nil {
		t.Fatalf("message with the right version: %v", err)
	}
}

func TestServiceCommandValidation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	need := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	mustAct(t, f, tampereSW, need.ID, domain.Command{Action: domain.ActionReceive})
	handoff := mustCreate(t, f, kelaHandler, handoffRequest(clientA, "837"))
	mustAct(t, f, tampereSW, handoff.ID, domain.Command{Action: domain.ActionReceive})
	review := mustCreate(t, f, tampereSW, reviewRequest(clientA))
	mustAct(t, f, kelaHandler, review.ID, domain.Command{Action: domain.ActionReceive})
	tests := []struct {
		name  string
		actor domain.Actor
		id    string
		cmd   domain.Command
		code  domain.Code
	}{
		{"answer is not a command", kelaHandler, need.ID, domain.Command{Action: domain.ActionAnswer}, domain.EInvalid},
		{"message is not a command", kelaHandler, need.ID, domain.Command{Action: domain.ActionMessage}, domain.EInvalid},
		{"unknown action", tampereSW, need.ID, domain.Command{Action: "close"}, domain.EInvalid},
		{"request_info without question", tampereSW, need.ID, domain.Command{Action: domain.ActionRequestInfo}, domain.EInvalid},
		{"need outcome unknown", tampereSW, need.ID, domain.Command{Action: domain.ActionComplete, Outcome: "decided"}, domain.EInvalid},
		{"need feedback unknown", tampereSW, need.ID, domain.Command{Action: domain.ActionComplete, Outcome: "already_client", Feedback: "meh"}, domain.EInvalid},
		{"decision on a need", tampereSW, need.ID, domain.Command{Action: domain.ActionComplete, Outcome: "already_client", Decision: "granted"}, domain.EInvalid},
		{"handoff without decision", tampereSW, handoff.ID, domain.Command{Action: domain.ActionComplete, Outcome: "decided", DecisionDate: "2026-11-25"}, domain.EInvalid},
		{"handoff without decision date", tampereSW, handoff.ID, domain.Command{Action: domain.ActionComplete, Outcome: "decided", Decision: "granted"}, domain.EInvalid},
		{"handoff feedback", tampereSW, handoff.ID, domain.Command{Action: domain.ActionComplete, Outcome: "decided", Decision: "granted", DecisionDate: "2026-11-25", Feedback: "useful"}, domain.EInvalid},
		{"review outcome without text", kelaHandler, review.ID, domain.Command{Action: domain.ActionComplete, Outcome: "accepted"}, domain.EInvalid},
		{"return without reason", tampereSW, need.ID, domain.Command{Action: domain.ActionReturn, Text: "t"}, domain.EInvalid},
		{"return without text", tampereSW, need.ID, domain.Command{Action: domain.ActionReturn, Reason: "wrong_recipient"}, domain.EInvalid},
		{"withdraw with unknown reason", kelaHandler, need.ID, domain.Command{Action: domain.ActionWithdraw, Reason: "bored"}, domain.EInvalid},
		{"illegal move is a conflict even with bad input", tampereSW, need.ID, domain.Command{Action: domain.ActionReceive}, domain.EConflict},
		{"recipient withdraws", tampereSW, need.ID, domain.Command{Action: domain.ActionWithdraw, Reason: "other"}, domain.EConflict},
		{"Kela recipient forwards", kelaHandler, review.ID, domain.Command{Action: domain.ActionForward, ToMunicipality: "091"}, domain.EConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := mustGet(t, f, tt.actor, tt.id)
			_, err := f.svc.Act(ctx, tt.actor, tt.id, tt.cmd)
			wantCode(t, string(tt.cmd.Action), err, tt.code)
			if after := mustGet(t, f, tt.actor, tt.id); !reflect.DeepEqual(before, after) {
				t.Fatalf("refused command changed the referral:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	// Well-formed completions per kind succeed.
	if r := mustAct(t, f, tampereSW, handoff.ID, domain.Command{Action: domain.ActionComplete, Outcome: "decided", Decision: "partially_granted", DecisionDate: "2026-11-25"}); r.Outcome.Decision != "partially_granted" {
		t.Fatalf("handoff outcome = %+v", r.Outcome)
	}
	if r := mustAct(t, f, kelaHandler, review.ID, domain.Command{Action: domain.ActionComplete, Outcome: "decision_corrected", Text: "Corrected."}); r.Status != domain.StatusCompleted {
		t.Fatalf("review = %+v", r)
	}
	if r := mustAct(t, f, tampereSW, need.ID, domain.Command{Action: domain.ActionReturn, Reason: "not_our_client", Text: "Not ours."}); r.Bounces != 1 || r.Closure.Reason != "not_our_client" {
		t.Fatalf("return = %+v", r)
	}
	_, _, err := f.svc.AddMessage(ctx, kelaHandler, review.ID, "", 0)
	wantCode(t, "empty message", err, domain.EInvalid)
}

func TestServiceCreateRoutingAndValidation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		actor     domain.Actor
		req       *domain.CreateRequest
		recipient domain.OrgID
		direction domain.Direction
	}{
		{"need to Helsinki", kelaHandler, needRequest(clientA, "091"), "hva-90", domain.KelaToCounty},
		{"handoff to Pirkanmaa", kelaHandler, handoffRequest(clientA, "837"), "hva-08", domain.KelaToCounty},
		{"Kela meeting to Etelä-Pohjanmaa", kelaHandler, meetingRequest(clientA, "005"), "hva-16", domain.KelaToCounty},
		{"county meeting to Kela", helsinkiSW, meetingRequest(clientA, "091"), domain.Kela, domain.CountyToKela},
		{"review to Kela", tampereSW, reviewRequest(clientA), domain.Kela, domain.CountyToKela},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustCreate(t, f, tt.actor, tt.req)
			if r.Recipient != tt.recipient || r.Direction != tt.direction || r.Sender != tt.actor.Org {
				t.Fatalf("created %s→%s (%s), want %s→%s (%s)", r.Sender, r.Recipient, r.Direction, tt.actor.Org, tt.recipient, tt.direction)
			}
			if r.Deadlines.Basis == "" || r.Deadlines.AcknowledgeBy == nil || r.Deadlines.RespondBy == nil {
				t.Fatalf("deadlines = %+v", r.Deadlines)
			}
			if got := mustGet(t, f, tt.actor, r.ID); got.Recipient != tt.recipient {
				t.Fatalf("stored recipient %s", got.Recipient)
			}
		})
	}
	evsBefore := len(pendingEvents(t, f))
	bad := needRequest(clientA, "478")
	_, _, err := f.svc.Create(ctx, kelaHandler, bad, "k-bad")
	var e *domain.Error
	if !errors.As(err, &e) || e.Code != domain.EInvalid || len(e.Fields) != 1 || e.Fields[0].Pointer != "/client/home_municipality" {
		t.Fatalf("create to Åland = %v", err)
	}
	_, _, err = f.svc.Create(ctx, kelaHandler, needRequest(clientA, "837"), strings.Repeat("k", 129))
	wantCode(t, "idempotency key too long", err, domain.EInvalid)
	if got := len(pendingEvents(t, f)); got != evsBefore {
		t.Fatalf("refused creates wrote events: %d → %d", evsBefore, got)
	}
	// The handoff's Kela clock: decided Fri 20 Nov, sent Mon 23 Nov → on time.
	h := mustCreate(t, f, kelaHandler, handoffRequest(clientB, "837"))
	checkDeadline(t, "kela_handoff_by", h.Deadlines.KelaHandoffBy, "2026-11-23T21:59:59Z")
	if h.Deadlines.KelaHandoffLateDays == nil || *h.Deadlines.KelaHandoffLateDays != 0 {
		t.Fatalf("kela_handoff_late_days = %v, want 0", h.Deadlines.KelaHandoffLateDays)
	}
}

func TestServiceIdempotency(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := needRequest(clientA, "837")
	first, created, err := f.svc.Create(ctx, kelaHandler, req, "key-1")
	if err != nil || !created {
		t.Fatalf("first create = %v, %v", created, err)
	}
	f.clock.Advance(time.Minute)
	again, created, err := f.svc.Create(ctx, kelaHandler, needRequest(clientA, "837"), "key-1")
	if err != nil || created || again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("repeat = %+v, created %v, %v; want the first referral", again, created, err)
	}
	other := needRequest(clientA, "837")
	other.Urgency = domain.Urgent
	_, _, err = f.svc.Create(ctx, kelaHandler, other, "key-1")
	wantCode(t, "same key, other request", err, domain.EInvalid)

	// Keys are per organisation.
	county, created, err := f.svc.Create(ctx, tampereSW, reviewRequest(clientA), "key-1")
	if err != nil || !created || county.ID == first.ID {
		t.Fatalf("another organisation's key-1 = %+v, %v, %v", county, created, err)
	}

	page, err := f.svc.List(ctx, kelaHandler, domain.ListFilter{Direction: domain.Outgoing})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != first.ID {
		t.Fatalf("Kela outgoing = %v, %v; want exactly the first referral", page.Items, err)
	}
	if evs := pendingEvents(t, f); len(evs) != 2 {
		t.Fatalf("events = %v, want one created per referral", eventTypes(evs))
	}

	// A repeat after the referral moved on returns it as it is now, still not created.
	mustAct(t, f, tampereSW, first.ID, domain.Command{Action: domain.ActionReceive})
	again, created, err = f.svc.Create(ctx, kelaHandler, needRequest(clientA, "837"), "key-1")
	if err != nil || created || again.ID != first.ID || again.Status != domain.StatusReceived {
		t.Fatalf("repeat after receive = %+v, %v, %v", again, created, err)
	}
}

func TestServiceIdempotencyConcurrent(t *testing.T) {
	f := newFixture(t)
	const n = 8
	var wg sync.WaitGroup
	ids := make([]string, n)
	createdFlags := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r, created, err := f.svc.Create(context.Background(), kelaHandler, needRequest(clientA, "837"), "same-key")
			errs[i], createdFlags[i] = err, created
			if r != nil {
				ids[i] = r.ID
			}
		})
	}
	wg.Wait()
	createdCount := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("create %d made %s, create 0 made %s", i, ids[i], ids[0])
		}
		if createdFlags[i] {
			createdCount++
		}
	}
	if createdCount != 1 {
		t.Fatalf("%d creates report created, want 1", createdCount)
	}
	page, err := f.svc.List(context.Background(), tampereSW, domain.ListFilter{Direction: domain.Incoming})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("incoming = %d items, %v; want 1", len(page.Items), err)
	}
}

func TestServiceSearchClient(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a1 := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	a2 := mustCreate(t, f, kelaHandler, needRequest(clientA, "091"))
	a3 := mustCreate(t, f, tampereSW, reviewRequest(clientA))
	b1 := mustCreate(t, f, kelaHandler, needRequest(clientB, "837"))
	tests := []struct {
		actor domain.Actor
		code  string
		want  []string // newest first
	}{
		{kelaHandler, clientA, []string{a3.ID, a2.ID, a1.ID}},
		{tampereSW, clientA, []string{a3.ID, a1.ID}},
		{tampereSuper, clientA, []string{a3.ID, a1.ID}},
		{helsinkiSW, clientA, []string{a2.ID}},
		{outsiderSW, clientA, []string{}},
		{tampereSW, clientB, []string{b1.ID}},
		{helsinkiSW, clientB, []string{}},
		{kelaHandler, "010594Y9032", []string{}},
	}
	for _, tt := range tests {
		rs, err := f.svc.SearchClient(ctx, tt.actor, tt.code)
		if err != nil {
			t.Fatalf("SearchClient(%s) by %s: %v", tt.code, tt.actor.Org, err)
		}
		ids := []string{}
		for _, r := range rs {
			if _, ok := r.SideOf(tt.actor.Org); !ok {
				t.Fatalf("SearchClient by %s returned %s→%s", tt.actor.Org, r.Sender, r.Recipient)
			}
			ids = append(ids, r.ID)
		}
		if !reflect.DeepEqual(ids, tt.want) {
			t.Errorf("SearchClient(%s) by %s = %v, want %v", tt.code, tt.actor.Org, ids, tt.want)
		}
	}
	_, err := f.svc.SearchClient(ctx, kelaHandler, "131052-308U")
	var e *domain.Error
	if !errors.As(err, &e) || e.Code != domain.EInvalid || len(e.Fields) != 1 || e.Fields[0].Pointer != "/personal_id" {
		t.Fatalf("search with a bad code = %v", err)
	}
	if strings.Contains(e.Error(), "131052") {
		t.Fatalf("search error echoes the code: %v", e)
	}
}

func TestServiceList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	n1 := mustCreate(t, f, kelaHandler, needRequest(clientA, "837"))
	n2 := mustCreate(t, f, kelaHandler, needRequest(clientB, "837"))
	rv := mustCreate(t, f, tampereSW, reviewRequest(clientA))
	mustAct(t, f, tampereSW, n1.ID, domain.Command{Action: domain.ActionReceive})
	list := func(actor domain.Actor, lf domain.ListFilter) []string {
		t.Helper()
		lf.Org = "somebody-else" // the service overrides it with the caller's org
		p, err := f.svc.List(ctx, actor, lf)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		ids := []string{}
		for _, r := range p.Items {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got, want := list(tampereSW, domain.ListFilter{Direction: domain.Incoming}), []string{n2.ID, n1.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("hva-08 incoming = %v, want %v", got, want)
	}
	if got, want := list(tampereSW, domain.ListFilter{Direction: domain.Outgoing}), []string{rv.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("hva-08 outgoing = %v, want %v", got, want)
	}
	if got, want := list(tampereSW, domain.ListFilter{Direction: domain.Incoming, Status: domain.StatusReceived}), []string{n1.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("hva-08 incoming received = %v, want %v", got, want)
	}
	if got, want := list(kelaHandler, domain.ListFilter{Direction: domain.Incoming}), []string{rv.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("Kela incoming = %v, want %v", got, want)
	}
	if got := list(helsinkiSW, domain.ListFilter{Direction: domain.Incoming}); len(got) != 0 {
		t.Errorf("hva-90 incoming = %v, want none", got)
	}
}

// A county forwarding a handoff must not make Kela's §14 c handoff look late.
func TestServiceForwardKeepsKelasHandoffClock(t *testing.T) {
	f := newFixture(t)
	f.clock.Set(utc(t, "2026-11-23T09:12:44Z"))
	req := handoffRequest(clientA, "837")
	req.SupplementarySupport.BasicDecisionDate = "2026-11-20"
	old := mustCreate(t, f, kelaHandler, req)
	if old.Deadlines.KelaHandoffLateDays == nil || *old.Deadlines.KelaHandoffLateDays != 0 {
		t.Fatalf("handoff on Monday after a Friday decision: late days %v, want 0", old.Deadlines.KelaHandoffLateDays)
	}
	f.clock.Set(utc(t, "2026-11-26T10:00:00Z"))
	fwd := mustAct(t, f, tampereSW, old.ID, domain.Command{Action: domain.ActionForward, ToMunicipality: "091"})
	nr := mustGet(t, f, helsinkiSW, fwd.ForwardedTo)
	if nr.Deadlines.KelaHandoffLateDays == nil || *nr.Deadlines.KelaHandoffLateDays != 0 ||
		!nr.Deadlines.KelaHandoffBy.Equal(*old.Deadlines.KelaHandoffBy) {
		t.Errorf("forwarded handoff: by %v late %v, want Kela's original (0 days late)", nr.Deadlines.KelaHandoffBy, nr.Deadlines.KelaHandoffLateDays)
	}
	if !nr.Deadlines.RespondBy.After(*old.Deadlines.RespondBy) {
		t.Errorf("the new county's respond_by %v should count from the forward", nr.Deadlines.RespondBy)
	}
}
