package api_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/testkit"
	"github.com/kela-hva/referrals/openapi"
	"github.com/kela-hva/referrals/store"
)

// reportStack is the service on a real bbolt file with its metrics wired as in referrald:
// referrals are made and moved through the domain Service (its clock stepped by hand), the
// report and /metrics are read over HTTP.
type reportStack struct {
	t       *testing.T
	db      *store.DB
	svc     *domain.Service
	clock   *stepClock
	metrics *api.Metrics
	srv     *httptest.Server
}

// stepClock is a business clock set by hand.
type stepClock = testkit.Clock

var reportCal = calendar.New(calendar.Options{})

// hki is a Helsinki wall-clock time (EET in November, EEST in July).
func hki(y int, m time.Month, d, h int) time.Time {
	return time.Date(y, m, d, h, 0, 0, 0, reportCal.Location())
}

func newReportStack(t *testing.T) *reportStack {
	t.Helper()
	m := api.NewMetrics()
	db, err := store.Open(filepath.Join(t.TempDir(), "referrals.db"),
		store.Options{MaxBatchDelay: time.Millisecond, Calendar: reportCal, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	reg := domain.DefaultRegistry()
	clock := testkit.NewClock(hki(2026, 11, 2, 10))
	svc := &domain.Service{Store: db, Registry: reg, Clock: clock, Policy: domain.NewDeadlinePolicy(reportCal),
		ClientKey: func(pid string) string {
			s := sha256.Sum256([]byte("report-test:" + pid))
			return hex.EncodeToString(s[:])
		}}
	auth, err := api.NewAuthenticator(api.AuthConfig{Keys: []crypto.PublicKey{testKey.Public()}, Issuer: api.DevIssuer, Audience: api.Audience}, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchAggregates(db.StatsInconsistencies); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(api.NewServer(api.Deps{Service: svc, Auth: auth, Validator: mustValidator(t), Logger: log,
		Spec: openapi.YAML(), Registry: reg, Metrics: m}))
	s := &reportStack{t: t, db: db, svc: svc, clock: clock, metrics: m, srv: srv}
	t.Cleanup(func() {
		srv.Close()
		if n := db.StatsInconsistencies(); n != 0 {
			t.Errorf("report aggregates were repaired %d times", n)
		}
		if err := db.Check(); err != nil {
			t.Errorf("bbolt check: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

var (
	repKela      = domain.Actor{UserID: "kela-h", Org: domain.Kela, Roles: []domain.Role{domain.RoleKelaHandler}}
	repHelsinki  = domain.Actor{UserID: "hki-sw", Org: "hva-90", Roles: []domain.Role{domain.RoleSocialWorker}}
	repTampere   = domain.Actor{UserID: "tre-sw", Org: "hva-08", Roles: []domain.Role{domain.RoleSocialWorker}}
	clientXPID   = "131052-308T" // passed on twice
	clientOther  = "010101A123N"
	reportClient = func(pid, muni string) *domain.Client {
		return &domain.Client{PersonalID: pid, Name: "Matti Meikäläinen", HomeMunicipality: muni, Language: "fi"}
	}
)

func needReq(pid, muni string, u domain.Urgency) *domain.CreateRequest {
	return &domain.CreateRequest{Kind: domain.KindSocialWorkNeed, Urgency: u, Client: reportClient(pid, muni),
		SocialWorkNeed: &domain.SocialWorkNeed{NeedFlags: []string{"housing_risk"}, Consent: "given", Description: "x"}}
}

func handoffReq(pid, muni string, u domain.Urgency) *domain.CreateRequest {
	return &domain.CreateRequest{Kind: domain.KindSupplementarySupportHandoff, Urgency: u, Client: reportClient(pid, muni),
		SupplementarySupport: &domain.SupplementarySupport{SupportTypes: []string{"supplementary"}, ApplicationReceivedAtKela: "2026-06-01"}}
}

func meetingReq(pid, muni string) *domain.CreateRequest {
	return &domain.CreateRequest{Kind: domain.KindJointMeetingRequest, Urgency: domain.Normal, KelaCaseRef: "TO-1",
		Client: reportClient(pid, muni), JointMeeting: &domain.JointMeeting{Text: "Let us meet."}}
}

func reviewReq(pid string) *domain.CreateRequest {
	return &domain.CreateRequest{Kind: domain.KindDecisionReviewRequest, Urgency: domain.Urgent, KelaCaseRef: "TO-2026-77",
		Client: reportClient(pid, "091"), ToKela: &domain.ToKela{Subject: "Housing costs", Text: "Rent was left out."}}
}

// at sets the clock; the next command happens then.
func (s *reportStack) at(t time.Time) *reportStack { s.clock.Set(t); return s }

func (s *reportStack) create(actor domain.Actor, req *domain.CreateRequest) string {
	s.t.Helper()
	r, _, err := s.svc.Create(context.Background(), actor, req, "")
	if err != nil {
		s.t.Fatalf("create %s: %v", req.Kind, err)
	}
	return r.ID
}

func (s *reportStack) act(actor domain.Actor, id string, c domain.Command) *domain.Referral {
	s.t.Helper()
	r, err := s.svc.Act(context.Background(), actor, id, c)
	if err != nil {
		s.t.Fatalf("%s: %v", c.Action, err)
	}
	return r
}

func (s *reportStack) token(org domain.OrgID, roles ...domain.Role) string {
	s.t.Helper()
	tok, err := api.MintToken(testKey, "user-"+string(org), org, roles, "Esimies", time.Now(), time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// get sends a GET with the token ("" for none) and returns the status and body.
func (s *reportStack) get(path, token string, headers ...string) (int, []byte) {
	s.t.Helper()
	r := roundTrip(s.t, http.DefaultClient, http.MethodGet, s.srv.URL+path, token, nil, headers...)
	return r.status, r.body
}

func (s *reportStack) report(path, token string) domain.ResponseTimeReport {
	s.t.Helper()
	status, body := s.get(path, token)
	if status != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	var rep domain.ResponseTimeReport
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		s.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return rep
}

// seedNovember makes the hand-computed data set of TestResponseTimeReportFigures. Times are
// Helsinki; November 2026 has no holidays, so business time only skips weekends.
//
//	A social_work_need, normal, Kela → hva-90. Mon 2 Nov 10:00; received Tue 3 12:00 (26 h);
//	  started Wed 4 10:00 (first response 48 h; respond_by Wed 11 met); completed Fri 6 10:00 (96 h).
//	B supplementary_support_handoff, normal, Kela → hva-90. Thu 5 Nov 14:00; received Mon 9 09:00
//	  (10 + 24 + 9 = 43 h, acknowledge_by Fri 6 missed); completed Tue 17 10:00 (188 h; respond_by
//	  Mon 16 missed).
//	C social_work_need, urgent, Kela → hva-08, client X. Fri 6 Nov 15:00; returned Mon 9 11:00
//	  (9 + 11 = 20 h; both deadlines Mon 9 met). Client X's first bounce.
//	D social_work_need, normal, Kela → hva-90, client X. Mon 9 Nov 12:00; forwarded Tue 10 12:00
//	  to Tampere (24 h, met). Client X's second bounce.
//	D' the forward's new referral Kela → hva-08, created Tue 10 Nov 12:00, never acknowledged:
//	  overdue since Wed 11.
//	E decision_review_request, urgent, hva-90 → Kela. Wed 11 Nov 10:00; withdrawn Fri 13 10:00
//	  unacknowledged, after both deadlines (Thu 12): two misses.
//	F joint_meeting_request, normal, Kela → hva-08. Thu 12 Nov 10:00; received Fri 13 10:00 (24 h);
//	  info requested Mon 16 10:00 (first response 14 + 24 + 10 = 48 h); answered Tue 17 10:00
//	  (respond_by restarts: Thu 26); completed Mon 30 10:00 (288 h; late).
//	G supplementary_support_handoff, urgent, Kela → hva-90. Tue 1 Dec 10:00, open (due Wed 2 Dec).
//
// The report is read at Wed 2 Dec 12:00.
func (s *reportStack) seedNovember() {
	a := s.at(hki(2026, 11, 2, 10)).create(repKela, needReq(clientOther, "091", domain.Normal))
	s.at(hki(2026, 11, 3, 12)).act(repHelsinki, a, domain.Command{Action: domain.ActionReceive})
	s.at(hki(2026, 11, 4, 10)).act(repHelsinki, a, domain.Command{Action: domain.ActionStart})
	b := s.at(hki(2026, 11, 5, 14)).create(repKela, handoffReq(clientOther, "091", domain.Normal))
	s.at(hki(2026, 11, 6, 10)).act(repHelsinki, a, domain.Command{Action: domain.ActionComplete, Outcome: "assessment_started"})
	c := s.at(hki(2026, 11, 6, 15)).create(repKela, needReq(clientXPID, "837", domain.Urgent))
	s.at(hki(2026, 11, 9, 9)).act(repHelsinki, b, domain.Command{Action: domain.ActionReceive})
	s.at(hki(2026, 11, 9, 11)).act(repTampere, c, domain.Command{Action: domain.ActionReturn, Reason: "wrong_recipient", Text: "Not ours."})
	d := s.at(hki(2026, 11, 9, 12)).create(repKela, needReq(clientXPID, "091", domain.Normal))
	s.at(hki(2026, 11, 10, 12)).act(repHelsinki, d, domain.Command{Action: domain.ActionForward, ToMunicipality: "837"})
	e := s.at(hki(2026, 11, 11, 10)).create(repHelsinki, reviewReq(clientOther))
	f := s.at(hki(2026, 11, 12, 10)).create(repKela, meetingReq(clientOther, "837"))
	s.at(hki(2026, 11, 13, 10)).act(repHelsinki, e, domain.Command{Action: domain.ActionWithdraw, Reason: "resolved_otherwise"})
	s.act(repTampere, f, domain.Command{Action: domain.ActionReceive})
	s.at(hki(2026, 11, 16, 10)).act(repTampere, f, domain.Command{Action: domain.ActionRequestInfo, Question: "When?"})
	s.at(hki(2026, 11, 17, 10))
	if _, _, err := s.svc.AddMessage(context.Background(), repKela, f, "Next week.", 0); err != nil {
		s.t.Fatal(err)
	}
	s.act(repHelsinki, b, domain.Command{Action: domain.ActionComplete, Outcome: "decided", Decision: "granted", DecisionDate: "2026-11-17"})
	s.at(hki(2026, 11, 30, 10)).act(repTampere, f, domain.Command{Action: domain.ActionComplete, Outcome: "meeting_held"})
	s.at(hki(2026, 12, 1, 10)).create(repKela, handoffReq(clientOther, "091", domain.Urgent))
	s.at(hki(2026, 12, 2, 12))
}

// Helpers to write expected figures.
func bt(hours float64) *domain.BusinessTime {
	return &domain.BusinessTime{Hours: hours, Days: float64(int(hours/24*100+0.5)) / 100}
}

func sh(f float64) *float64 { return &f }

func dur(n int64, p50, p90 float64) domain.DurationFigures {
	return domain.DurationFigures{Count: n, P50: bt(p50), P90: bt(p90)}
}

func dl(met, missed int64, share *float64) domain.DeadlineFigures {
	return domain.DeadlineFigures{Met: met, Missed: missed, Share: share}
}

// TestResponseTimeReportFigures checks every figure of the report against the hand-computed
// values of seedNovember, for a Kela supervisor and for two county supervisors.
func TestResponseTimeReportFigures(t *testing.T) {
	s := newReportStack(t)
	s.seedNovember()
	asOf := hki(2026, 12, 2, 12).UTC()
	none := domain.DurationFigures{}

	total := domain.ReportFigures{
		Counts:              domain.ReportCounts{Created: 7, Acknowledged: 5, Responded: 5, Completed: 3, Returned: 1, Forwarded: 1, Withdrawn: 1},
		TimeToAcknowledge:   dur(5, 24, 43),   // 20 24 24 26 43
		TimeToFirstResponse: dur(5, 48, 188),  // 20 24 48 48 188
		TimeToCompletion:    dur(3, 188, 288), // 96 188 288
		WithinDeadline:      domain.WithinDeadline{AcknowledgeBy: dl(4, 2, sh(0.6667)), RespondBy: dl(3, 3, sh(0.5))},
		OpenOverdue:         1,
		Bounces:             domain.BounceFigures{Total: 2, ClientsBouncedMoreThanOnce: 1},
	}
	tampere := domain.ReportFigures{ // C, D', F
		Counts:              domain.ReportCounts{Created: 3, Acknowledged: 2, Responded: 2, Completed: 1, Returned: 1},
		TimeToAcknowledge:   dur(2, 20, 24),
		TimeToFirstResponse: dur(2, 20, 48),
		TimeToCompletion:    dur(1, 288, 288),
		WithinDeadline:      domain.WithinDeadline{AcknowledgeBy: dl(2, 0, sh(1)), RespondBy: dl(1, 1, sh(0.5))},
		OpenOverdue:         1,
		Bounces:             domain.BounceFigures{Total: 1},
	}
	helsinki := domain.ReportFigures{ // A, B, D as recipient
		Counts:              domain.ReportCounts{Created: 3, Acknowledged: 3, Responded: 3, Completed: 2, Forwarded: 1},
		TimeToAcknowledge:   dur(3, 26, 43),
		TimeToFirstResponse: dur(3, 48, 188),
		TimeToCompletion:    dur(2, 96, 188),
		WithinDeadline:      domain.WithinDeadline{AcknowledgeBy: dl(2, 1, sh(0.6667)), RespondBy: dl(2, 1, sh(0.6667))},
		Bounces:             domain.BounceFigures{Total: 1, ClientsBouncedMoreThanOnce: 1},
	}
	kela := domain.ReportFigures{ // E
		Counts:         domain.ReportCounts{Created: 1, Withdrawn: 1},
		WithinDeadline: domain.WithinDeadline{AcknowledgeBy: dl(0, 1, sh(0)), RespondBy: dl(0, 1, sh(0))},
	}
	kela.TimeToAcknowledge, kela.TimeToFirstResponse, kela.TimeToCompletion = none, none, none
	november := "/v1/reports/response-times?from=2026-11-01&to=2026-11-30"
	base := domain.ResponseTimeReport{From: "2026-11-01", To: "2026-11-30", PeriodBasis: "created_at", AsOf: asOf}

	t.Run("kela supervisor, all organisations", func(t *testing.T) {
		want := base
		want.GroupBy, want.Scope, want.Total = []domain.ReportDimension{domain.ByOrganisation}, "all", total
		want.Groups = []domain.ReportGroup{
			{Organisation: "hva-08", Figures: tampere},
			{Organisation: "hva-90", Figures: helsinki},
			{Organisation: "kela", Figures: kela},
		}
		got := s.report(november+"&group_by=organisation", s.token(domain.Kela, domain.RoleSupervisor))
		checkReport(t, got, want)
		plain := s.report(november, s.token(domain.Kela, domain.RoleSupervisor))
		want.GroupBy, want.Groups = []domain.ReportDimension{}, []domain.ReportGroup{}
		checkReport(t, plain, want)
	})
	t.Run("Helsinki supervisor: sent or received by hva-90", func(t *testing.T) {
		own := domain.ReportFigures{ // A, B, D received; E sent
			Counts:              domain.ReportCounts{Created: 4, Acknowledged: 3, Responded: 3, Completed: 2, Forwarded: 1, Withdrawn: 1},
			TimeToAcknowledge:   dur(3, 26, 43),
			TimeToFirstResponse: dur(3, 48, 188),
			TimeToCompletion:    dur(2, 96, 188),
			WithinDeadline:      domain.WithinDeadline{AcknowledgeBy: dl(2, 2, sh(0.5)), RespondBy: dl(2, 2, sh(0.5))},
			Bounces:             domain.BounceFigures{Total: 1, ClientsBouncedMoreThanOnce: 1},
		}
		want := base
		want.GroupBy, want.Scope, want.Total = []domain.ReportDimension{domain.ByOrganisation}, "hva-90", own
		want.Groups = []domain.ReportGroup{{Organisation: "hva-90", Figures: helsinki}, {Organisation: "kela", Figures: kela}}
		checkReport(t, s.report(november+"&group_by=organisation", s.token("hva-90", domain.RoleSupervisor)), want)
	})
	t.Run("Tampere supervisor", func(t *testing.T) {
		want := base
		want.GroupBy, want.Scope, want.Total, want.Groups = []domain.ReportDimension{}, "hva-08", tampere, []domain.ReportGroup{}
		checkReport(t, s.report(november, s.token("hva-08", domain.RoleSupervisor)), want)
	})
	t.Run("by month and urgency across November and December", func(t *testing.T) {
		got := s.report("/v1/reports/response-times?from=2026-11-01&to=2026-12-31&group_by=month,urgency", s.token(domain.Kela, domain.RoleSupervisor))
		var keys []string
		for _, g := range got.Groups {
			keys = append(keys, g.Month+"/"+string(g.Urgency)+"/"+string(g.Organisation)+string(g.Kind))
		}
		if want := []string{"2026-11/normal/", "2026-11/urgent/", "2026-12/urgent/"}; !reflect.DeepEqual(keys, want) {
			t.Fatalf("groups %v, want %v", keys, want)
		}
		dec := got.Groups[2].Figures // G: created, open, not yet overdue at noon on its due day
		if dec.Counts != (domain.ReportCounts{Created: 1}) || dec.OpenOverdue != 0 {
			t.Errorf("December: %+v", dec)
		}
		urgentNov := got.Groups[1].Figures // C and E
		if urgentNov.Counts != (domain.ReportCounts{Created: 2, Acknowledged: 1, Responded: 1, Returned: 1, Withdrawn: 1}) ||
			!reflect.DeepEqual(urgentNov.TimeToAcknowledge, dur(1, 20, 20)) {
			t.Errorf("urgent November: %+v", urgentNov)
		}
		if got.Total.Counts.Created != 8 || got.Total.OpenOverdue != 1 {
			t.Errorf("total: %+v", got.Total)
		}
	})
	t.Run("open overdue follows the clock", func(t *testing.T) {
		s.clock.Set(hki(2026, 12, 3, 0).Add(time.Second)) // G's deadlines (end of Wed 2 Dec) have passed
		got := s.report("/v1/reports/response-times?period=2026H2", s.token(domain.Kela, domain.RoleSupervisor))
		if got.Total.OpenOverdue != 2 || got.From != "2026-07-01" || got.To != "2026-12-31" {
			t.Errorf("open overdue %d (%s..%s), want 2", got.Total.OpenOverdue, got.From, got.To)
		}
		page, err := s.svc.List(context.Background(), domain.Actor{Org: "hva-90", Roles: []domain.Role{domain.RoleSupervisor}},
			domain.ListFilter{Org: "hva-90", Direction: domain.Incoming, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range page.Items {
			if r.Overdue(s.clock.Now()) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("Helsinki has %d overdue referrals by Referral.Overdue, want 1 (G)", n)
		}
	})
}

func checkReport(t *testing.T, got, want domain.ResponseTimeReport) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("report differs:\ngot  %s\nwant %s", g, w)
	}
}

// TestReportRoleMatrix: supervisors only; a county's supervisor sees only its own figures.
func TestReportRoleMatrix(t *testing.T) {
	s := newReportStack(t)
	a := s.at(hki(2026, 11, 2, 10)).create(repKela, needReq(clientOther, "091", domain.Normal)) // → hva-90
	s.create(repKela, needReq(clientOther, "837", domain.Normal))                               // → hva-08
	s.at(hki(2026, 11, 3, 10)).act(repHelsinki, a, domain.Command{Action: domain.ActionReceive})
	path := "/v1/reports/response-times?from=2026-11-01&to=2026-11-30"
	thl := "/v1/reports/response-times?period=2026H2&format=thl"
	tests := []struct {
		name    string
		token   string
		status  int
		scope   string
		created int64
	}{
		{"Kela supervisor: every organisation", s.token(domain.Kela, domain.RoleSupervisor), 200, "all", 2},
		{"Helsinki supervisor: its own", s.token("hva-90", domain.RoleSupervisor), 200, "hva-90", 1},
		{"Tampere supervisor who is also a social worker", s.token("hva-08", domain.RoleSocialWorker, domain.RoleSupervisor), 200, "hva-08", 1},
		{"county with no referrals", s.token("hva-01", domain.RoleSupervisor), 200, "hva-01", 0},
		{"social worker", s.token("hva-90", domain.RoleSocialWorker), 403, "", 0},
		{"Kela handler", s.token(domain.Kela, domain.RoleKelaHandler), 403, "", 0},
		{"Kela auditor", s.token(domain.Kela, domain.RoleAuditor), 403, "", 0},
		{"county auditor", s.token("hva-90", domain.RoleAuditor), 403, "", 0},
		{"no token", "", 401, "", 0},
		{"token signed by another key", otherKeyToken(t), 401, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := s.get(path, tt.token)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if st, _ := s.get(thl, tt.token); st != tt.status {
				t.Errorf("THL: status %d, want %d", st, tt.status)
			}
			// Who may not see reports learns nothing about the query either: 403 before 400.
			if st, _ := s.get("/v1/reports/response-times?from=2026-12-01&to=2026-11-01", tt.token); tt.status != 200 && st != tt.status {
				t.Errorf("a bad query: status %d, want %d", st, tt.status)
			}
			if tt.status != 200 {
				return
			}
			var rep domain.ResponseTimeReport
			if err := json.Unmarshal(body, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Scope != tt.scope || rep.Total.Counts.Created != tt.created {
				t.Errorf("scope %q created %d, want %q %d", rep.Scope, rep.Total.Counts.Created, tt.scope, tt.created)
			}
		})
	}
}

// otherKeyToken is a Kela supervisor's token signed by a key the service does not trust.
func otherKeyToken(t *testing.T) string {
	t.Helper()
	tok, err := api.MintToken(otherKey, "u", domain.Kela, []domain.Role{domain.RoleSupervisor}, "Esimies", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTHLReport checks the §27 c half-year figures, with referrals on both sides of the
// 30 June / 1 July boundary in Helsinki time.
func TestTHLReport(t *testing.T) {
	s := newReportStack(t)
	complete := domain.Command{Action: domain.ActionComplete, Outcome: "decided", Decision: "granted", DecisionDate: "2026-07-01"}
	receive := domain.Command{Action: domain.ActionReceive}
	// 2026H1: a handoff arriving Tue 30 June 23:30, decided the next day.
	s.clock.Set(time.Date(2026, 6, 30, 23, 30, 0, 0, reportCal.Location()))
	h1 := s.create(repKela, handoffReq(clientOther, "091", domain.Normal))
	s.at(hki(2026, 7, 1, 10)).act(repHelsinki, h1, receive)
	s.act(repHelsinki, h1, complete)
	// 2026H2: Wed 1 July 00:30 in Helsinki is still 30 June in UTC. respond_by Fri 10 July;
	// decided Mon 13 July: late.
	s.clock.Set(time.Date(2026, 6, 30, 21, 30, 0, 0, time.UTC))
	late := s.create(repKela, handoffReq(clientOther, "091", domain.Normal))
	s.at(hki(2026, 7, 2, 10))
	inTime := s.create(repKela, handoffReq(clientOther, "091", domain.Normal))
	urgent := s.create(repKela, handoffReq(clientOther, "091", domain.Urgent))
	returned := s.create(repKela, handoffReq(clientOther, "837", domain.Urgent))
	meeting := s.create(repKela, meetingReq(clientOther, "837"))
	s.clock.Set(hki(2026, 7, 2, 11))
	toKela, _, err := s.svc.Create(context.Background(), repHelsinki, meetingReq(clientOther, "091"), "")
	if err != nil {
		t.Fatal(err)
	}
	// County → Kela kinds bind Kela under §14 a (normal) and §14 b (urgent): a statement
	// answered in time, an urgent review request answered late.
	statementReq := reviewReq(clientOther)
	statementReq.Kind, statementReq.Urgency = domain.KindSocialWorkStatement, domain.Normal
	statementReq.ToKela.Topics, statementReq.ToKela.ClientHeard = []string{"other_basic_expenses"}, true
	statement, _, err := s.svc.Create(context.Background(), repHelsinki, statementReq, "")
	if err != nil {
		t.Fatal(err)
	}
	review, _, err := s.svc.Create(context.Background(), repHelsinki, reviewReq(clientOther), "") // urgent: due Fri 3 July
	if err != nil {
		t.Fatal(err)
	}
	s.at(hki(2026, 7, 3, 9))
	for _, id := range []string{urgent, inTime, late} {
		s.act(repHelsinki, id, receive)
	}
	s.act(repTampere, meeting, receive)
	s.act(repKela, toKela.ID, receive)
	s.act(repKela, statement.ID, receive)
	s.act(repKela, review.ID, receive)
	s.act(repKela, statement.ID, domain.Command{Action: domain.ActionComplete, Outcome: "accepted", Text: "Taken into account."})
	s.act(repHelsinki, urgent, complete) // by the next business day
	s.act(repHelsinki, inTime, complete)
	s.act(repTampere, returned, domain.Command{Action: domain.ActionReturn, Reason: "not_our_client", Text: "No."})
	s.at(hki(2026, 7, 6, 10)).act(repTampere, meeting, domain.Command{Action: domain.ActionComplete, Outcome: "meeting_held"})
	s.at(hki(2026, 7, 13, 10)).act(repHelsinki, late, complete)
	s.at(hki(2026, 7, 14, 10)).act(repKela, toKela.ID, domain.Command{Action: domain.ActionComplete, Outcome: "meeting_held"}) // due Mon 13
	s.act(repKela, review.ID, domain.Command{Action: domain.ActionComplete, Outcome: "decision_corrected", Text: "Corrected."})
	s.at(hki(2026, 8, 1, 10))

	fig := func(handled, within int64, share *float64) domain.THLFigure {
		return domain.THLFigure{Handled: handled, WithinDeadline: within, Share: share}
	}
	get := func(path, token string) domain.THLReport {
		t.Helper()
		status, body := s.get(path, token)
		if status != 200 {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		var rep domain.THLReport
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rep); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{clientOther, "Meikäläinen", late, toKela.ID, statement.ID, review.ID} {
			if strings.Contains(string(body), bad) {
				t.Errorf("THL report contains %q", bad)
			}
		}
		return rep
	}
	kelaSup := s.token(domain.Kela, domain.RoleSupervisor)
	h2 := get("/v1/reports/response-times?format=thl&period=2026H2", kelaSup)
	if h2.Period != "2026H2" || h2.From != "2026-07-01" || h2.To != "2026-12-31" || h2.PeriodBasis != "created_at" ||
		h2.Basis != "Toimeentulotukilaki 1412/1997 §27 c" {
		t.Errorf("header %+v", h2)
	}
	want := map[domain.OrgID]domain.THLOrganisation{
		"hva-90": {Organisation: "hva-90", Section14a: fig(2, 1, sh(0.5)), Section14b: fig(1, 1, sh(1)), Section14d: fig(0, 0, nil)},
		"hva-08": {Organisation: "hva-08", Section14a: fig(0, 0, nil), Section14b: fig(0, 0, nil), Section14d: fig(1, 1, sh(1))},
		"kela":   {Organisation: "kela", Section14a: fig(1, 1, sh(1)), Section14b: fig(1, 0, sh(0)), Section14d: fig(1, 0, sh(0))},
	}
	orgs := domain.DefaultRegistry().Organisations()
	if len(h2.Organisations) != len(orgs) {
		t.Fatalf("%d rows, want one per organisation (%d)", len(h2.Organisations), len(orgs))
	}
	for i, row := range h2.Organisations {
		w, ok := want[row.Organisation]
		if !ok {
			w = domain.THLOrganisation{Organisation: row.Organisation, Section14a: fig(0, 0, nil), Section14b: fig(0, 0, nil), Section14d: fig(0, 0, nil)}
		}
		if !reflect.DeepEqual(row, w) {
			t.Errorf("%s: %+v, want %+v", row.Organisation, row, w)
		}
		if i > 0 && row.Organisation <= h2.Organisations[i-1].Organisation {
			t.Errorf("rows not sorted at %s", row.Organisation)
		}
	}
	// The same half-year by dates.
	byDates := get("/v1/reports/response-times?format=thl&from=2026-07-01&to=2026-12-31", kelaSup)
	if !reflect.DeepEqual(byDates, h2) {
		t.Errorf("from/to differs from period:\n%+v\n%+v", byDates, h2)
	}
	// 2026H1 holds only the handoff of 30 June.
	h1rep := get("/v1/reports/response-times?format=thl&period=2026H1", kelaSup)
	for _, row := range h1rep.Organisations {
		w := fig(0, 0, nil)
		if row.Organisation == "hva-90" {
			w = fig(1, 1, sh(1))
		}
		if !reflect.DeepEqual(row.Section14a, w) || row.Section14b.Handled != 0 || row.Section14d.Handled != 0 {
			t.Errorf("2026H1 %s: %+v", row.Organisation, row)
		}
	}
	// A county supervisor gets its own row only.
	own := get("/v1/reports/response-times?format=thl&period=2026H2", s.token("hva-90", domain.RoleSupervisor))
	if len(own.Organisations) != 1 || !reflect.DeepEqual(own.Organisations[0], want["hva-90"]) {
		t.Errorf("Helsinki's THL rows: %+v", own.Organisations)
	}
}

// TestReportBadParameters: each bad query is a 400 problem naming the parameter.
func TestReportBadParameters(t *testing.T) {
	s := newReportStack(t)
	tok := s.token(domain.Kela, domain.RoleSupervisor)
	tests := []struct{ query, param string }{
		{"", "from"},
		{"from=2026-11-01", "to"},
		{"to=2026-11-30", "from"},
		{"from=2026-11-02&to=2026-11-30", "from"},
		{"from=2026-11-01&to=2026-11-29", "to"},
		{"from=2026-11-01&to=2026-02-30", "to"},
		{"from=01.11.2026&to=2026-11-30", "from"},
		{"from=2026-12-01&to=2026-11-30", "to"},
		{"from=2026-11-01&to=2026-11-30&group_by=county", "group_by"},
		{"from=2026-11-01&to=2026-11-30&group_by=kind,kind", "group_by"},
		{"from=2026-11-01&to=2026-11-30&group_by=kind&group_by=month", "group_by"},
		{"from=2026-11-01&to=2026-11-30&format=csv", "format"},
		{"period=2026H3", "period"},
		{"period=2026-H1", "period"},
		{"period=2026H1&from=2026-01-01", "period"},
		{"format=thl&from=2026-07-01&to=2026-11-30", "from"},
		{"format=thl&from=2026-02-01&to=2026-07-31", "from"},
		{"format=thl&period=2026H2&group_by=kind", "group_by"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, body := s.get("/v1/reports/response-times?"+tt.query, tok)
			if status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", status, body)
			}
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			named := false
			for _, f := range p.Errors {
				named = named || strings.Contains(f.Detail, "parameter "+tt.param)
			}
			if !named {
				t.Errorf("no error names %s: %s", tt.param, body)
			}
		})
	}
}

// TestMetricsExposition drives a few requests and milestones and scrapes /metrics: the
// families are there with the right labels, and no referral id, identity code, name or raw
// path shows up anywhere.
func TestMetricsExposition(t *testing.T) {
	s := newReportStack(t)
	id := s.at(hki(2026, 11, 2, 10)).create(repKela, needReq(clientXPID, "091", domain.Normal))
	s.at(hki(2026, 11, 3, 12)).act(repHelsinki, id, domain.Command{Action: domain.ActionReceive})
	s.at(hki(2026, 11, 4, 10)).act(repHelsinki, id, domain.Command{Action: domain.ActionStart})
	s.metrics.EventPublished(domain.Event{ID: "e1", Type: domain.EventOverdue, ReferralID: id, Sender: domain.Kela,
		Recipient: "hva-90", Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal, DeadlineName: "respond_by"})
	s.metrics.EventPublished(domain.Event{ID: "e2", Type: domain.EventCreated, ReferralID: id, Recipient: "hva-90"}) // not counted
	backlog := 3
	if err := s.metrics.WatchOutbox(api.OutboxProbe{
		Backlog: func() (int, error) { return backlog, nil },
		Oldest:  func() (time.Time, bool, error) { return hki(2026, 11, 4, 9), true, nil },
		Now:     s.clock.Now,
		Relay:   func() api.RelayHealth { return api.RelayHealth{Healthy: true, Published: 7} },
	}); err != nil {
		t.Fatal(err)
	}
	handler := s.token(domain.Kela, domain.RoleKelaHandler)
	if st, body := s.get("/v1/referrals/"+id, handler, "X-Purpose", "benefit_processing"); st != 200 {
		t.Fatalf("get referral: %d %s", st, body)
	}
	s.get("/v1/referrals/"+id+"/no-such-thing?personal_id="+clientXPID, handler)
	s.get("/no/such/path/"+id, "")
	s.get("/v1/reports/response-times?from=2026-11-01&to=2026-11-30", s.token(domain.Kela, domain.RoleSupervisor))

	status, body := s.get("/metrics", "")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	text := string(body)
	for _, want := range []string{
		`referrals_time_to_acknowledge_business_seconds_bucket{kind="social_work_need",organisation="hva-90",urgency="normal",le="172800"} 1`,
		`referrals_time_to_acknowledge_business_seconds_sum{kind="social_work_need",organisation="hva-90",urgency="normal"} 93600`,
		`referrals_time_to_first_response_business_seconds_count{kind="social_work_need",organisation="hva-90",urgency="normal"} 1`,
		`referrals_time_to_first_response_business_seconds_sum{kind="social_work_need",organisation="hva-90",urgency="normal"} 172800`,
		`referrals_deadline_events_published_total{deadline="respond_by",event="overdue",kind="social_work_need",organisation="hva-90",urgency="normal"} 1`,
		`referrals_outbox_backlog_events 3`,
		`referrals_relay_lag_seconds 3600`,
		`referrals_relay_healthy 1`,
		`referrals_relay_published_events_total 7`,
		`referrals_report_aggregate_repairs_total 0`,
		`referrals_http_requests_total{method="GET",route="/v1/referrals/:id",status="200"} 1`,
		`referrals_http_requests_total{method="GET",route="/v1/reports/response-times",status="200"} 1`,
		`referrals_http_request_duration_seconds_count{method="GET",route="/v1/referrals/:id",status="200"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, `event="created"`) {
		t.Error("a created event was counted as a deadline event")
	}
	for _, secret := range []string{id, clientXPID, "Meikäläinen", "no-such-thing", "/no/such/path", "personal_id"} {
		if strings.Contains(text, secret) {
			t.Errorf("/metrics contains %q", secret)
		}
	}
	// Every route label is a registered route template (or "unmatched").
	routes := map[string]bool{"unmatched": true}
	e := api.NewServer(api.Deps{Service: &domain.Service{Registry: domain.DefaultRegistry()}, Registry: domain.DefaultRegistry()})
	for _, r := range e.Routes() {
		routes[r.Path] = true
	}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "referrals_http_requests_total{") {
			continue
		}
		i := strings.Index(line, `route="`)
		route := line[i+7:]
		route = route[:strings.IndexByte(route, '"')]
		if !routes[route] {
			t.Errorf("route label %q is not a route template", route)
		}
	}
}
