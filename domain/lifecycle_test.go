package domain_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/kela-hva/referrals/domain"
)

// allowedMove is one row of DOMAIN §6, written out independently of lifecycle.go.
type allowedMove struct {
	from       []domain.Status
	to         domain.Status // "" for answer: back to ResumeStatus
	side       domain.Side
	countyOnly bool
}

var domainSection6 = map[domain.Action]allowedMove{
	domain.ActionReceive:     {from: []domain.Status{domain.StatusSent}, to: domain.StatusReceived, side: domain.RecipientSide},
	domain.ActionStart:       {from: []domain.Status{domain.StatusReceived}, to: domain.StatusInProgress, side: domain.RecipientSide},
	domain.ActionRequestInfo: {from: []domain.Status{domain.StatusSent, domain.StatusReceived, domain.StatusInProgress}, to: domain.StatusInfoRequested, side: domain.RecipientSide},
	domain.ActionAnswer:      {from: []domain.Status{domain.StatusInfoRequested}, side: domain.SenderSide},
	domain.ActionComplete:    {from: []domain.Status{domain.StatusReceived, domain.StatusInProgress}, to: domain.StatusCompleted, side: domain.RecipientSide},
	domain.ActionReturn:      {from: []domain.Status{domain.StatusSent, domain.StatusReceived}, to: domain.StatusReturned, side: domain.RecipientSide},
	domain.ActionWithdraw:    {from: []domain.Status{domain.StatusSent, domain.StatusReceived, domain.StatusInfoRequested}, to: domain.StatusWithdrawn, side: domain.SenderSide},
	domain.ActionForward:     {from: []domain.Status{domain.StatusSent, domain.StatusReceived}, to: domain.StatusForwarded, side: domain.RecipientSide, countyOnly: true},
}

// actionOrder is the order in which Allowed lists actions.
var actionOrder = []domain.Action{domain.ActionReceive, domain.ActionStart, domain.ActionRequestInfo,
	domain.ActionAnswer, domain.ActionComplete, domain.ActionReturn, domain.ActionWithdraw, domain.ActionForward}

var allSides = []domain.Side{domain.SenderSide, domain.RecipientSide}

// expectedMove returns the state a move leads to per DOMAIN §6, and whether it is allowed.
func expectedMove(r *domain.Referral, a domain.Action, side domain.Side) (domain.Status, bool) {
	m := domainSection6[a]
	if m.side != side || (m.countyOnly && !r.Recipient.IsCounty()) || !slices.Contains(m.from, r.Status) {
		return "", false
	}
	if a == domain.ActionAnswer {
		return r.ResumeStatus, true
	}
	return m.to, true
}

// lifecycleReferral returns a referral in status whose recipient is recipient.
func lifecycleReferral(t *testing.T, status domain.Status, recipient domain.OrgID, resume domain.Status) *domain.Referral {
	t.Helper()
	sender := domain.Kela
	if recipient == domain.Kela {
		sender = "hva-08"
	}
	r := &domain.Referral{ID: "r1", Kind: domain.KindJointMeetingRequest, Status: status, Sender: sender, Recipient: recipient}
	if status == domain.StatusInfoRequested {
		r.ResumeStatus = resume
	}
	return r
}

func TestTransitionActionsAreTheEightOfDomain6(t *testing.T) {
	if got := domain.TransitionActions(); !reflect.DeepEqual(got, actionOrder) {
		t.Fatalf("TransitionActions() = %v, want %v", got, actionOrder)
	}
	// The result is a copy: changing it must not change the next one.
	got := domain.TransitionActions()
	got[0] = "tampered"
	if domain.TransitionActions()[0] != domain.ActionReceive {
		t.Fatalf("TransitionActions returns shared storage")
	}
}

// TestLifecycleEveryStateActionSide walks every (state × action × side) with a county and a Kela
// recipient and, for info_requested, every state an answer can resume to.
func TestLifecycleEveryStateActionSide(t *testing.T) {
	allowedCount := 0
	for _, recipient := range []domain.OrgID{"hva-08", domain.Kela} {
		for _, status := range domain.Statuses {
			resumes := []domain.Status{""}
			if status == domain.StatusInfoRequested {
				resumes = []domain.Status{domain.StatusSent, domain.StatusReceived, domain.StatusInProgress}
			}
			for _, resume := range resumes {
				for _, side := range allSides {
					r := lifecycleReferral(t, status, recipient, resume)
					wantAllowed := []domain.Action{}
					for _, a := range actionOrder {
						if _, ok := expectedMove(r, a, side); ok {
							wantAllowed = append(wantAllowed, a)
						}
					}
					gotAllowed := r.Allowed(side)
					if len(gotAllowed) != len(wantAllowed) || (len(wantAllowed) > 0 && !reflect.DeepEqual(gotAllowed, wantAllowed)) {
						t.Errorf("recipient %s, %s (resume %q), %s: Allowed = %v, want %v", recipient, status, resume, side, gotAllowed, wantAllowed)
					}
					for _, a := range actionOrder {
						name := string(recipient) + "/" + string(status) + "/" + string(resume) + "/" + string(a) + "/" + string(side)
						before := *r
						to, err := r.Next(a, side)
						if !reflect.DeepEqual(before, *r) {
							t.Errorf("%s: Next changed the referral", name)
						}
						wantTo, ok := expectedMove(r, a, side)
						if ok {
							allowedCount++
							if err != nil || to != wantTo {
								t.Errorf("%s: Next = %q, %v; want %q, nil", name, to, err, wantTo)
							}
							continue
						}
						var e *domain.Error
						if !errors.As(err, &e) {
							t.Errorf("%s: Next = %q, %v; want an EConflict *Error", name, to, err)
							continue
						}
						if e.Code != domain.EConflict || to != "" {
							t.Errorf("%s: Next = %q, code %s; want \"\", %s", name, to, e.Code, domain.EConflict)
						}
						if e.Allowed == nil {
							t.Errorf("%s: Allowed is nil, want a (possibly empty) list", name)
						}
						if len(e.Allowed) != len(wantAllowed) || (len(wantAllowed) > 0 && !reflect.DeepEqual(e.Allowed, wantAllowed)) {
							t.Errorf("%s: error Allowed = %v, want r.Allowed(%s) = %v", name, e.Allowed, side, wantAllowed)
						}
						if e.Message == "" {
							t.Errorf("%s: error has no message", name)
						}
					}
				}
			}
		}
	}
	// County recipient: receive 1 + start 1 + request_info 3 + answer 3 resumes + complete 2 +
	// return 2 + withdraw (sent, received, info_requested×3) 5 + forward 2 = 19; Kela: 17.
	if allowedCount != 36 {
		t.Fatalf("allowed moves = %d, want 36", allowedCount)
	}
}

func TestLifecycleSpotChecks(t *testing.T) {
	tests := []struct {
		name      string
		status    domain.Status
		recipient domain.OrgID
		resume    domain.Status
		action    domain.Action
		side      domain.Side
		want      domain.Status // "" means refused
	}{
		{"recipient receives a sent referral", domain.StatusSent, "hva-01", "", domain.ActionReceive, domain.RecipientSide, domain.StatusReceived},
		{"sender cannot receive its own referral", domain.StatusSent, "hva-01", "", domain.ActionReceive, domain.SenderSide, ""},
		{"cannot start before receiving", domain.StatusSent, "hva-01", "", domain.ActionStart, domain.RecipientSide, ""},
		{"cannot complete a sent referral", domain.StatusSent, "hva-01", "", domain.ActionComplete, domain.RecipientSide, ""},
		{"complete from in_progress", domain.StatusInProgress, domain.Kela, "", domain.ActionComplete, domain.RecipientSide, domain.StatusCompleted},
		{"cannot return once in progress", domain.StatusInProgress, "hva-01", "", domain.ActionReturn, domain.RecipientSide, ""},
		{"sender cannot withdraw once in progress", domain.StatusInProgress, "hva-01", "", domain.ActionWithdraw, domain.SenderSide, ""},
		{"sender withdraws while info is requested", domain.StatusInfoRequested, "hva-01", domain.StatusReceived, domain.ActionWithdraw, domain.SenderSide, domain.StatusWithdrawn},
		{"answer resumes sent", domain.StatusInfoRequested, "hva-01", domain.StatusSent, domain.ActionAnswer, domain.SenderSide, domain.StatusSent},
		{"answer resumes in_progress", domain.StatusInfoRequested, domain.Kela, domain.StatusInProgress, domain.ActionAnswer, domain.SenderSide, domain.StatusInProgress},
		{"recipient cannot answer its own question", domain.StatusInfoRequested, "hva-01", domain.StatusSent, domain.ActionAnswer, domain.RecipientSide, ""},
		{"no second question while one is open", domain.StatusInfoRequested, "hva-01", domain.StatusSent, domain.ActionRequestInfo, domain.RecipientSide, ""},
		{"county recipient forwards", domain.StatusReceived, "hva-90", "", domain.ActionForward, domain.RecipientSide, domain.StatusForwarded},
		{"Kela recipient cannot forward", domain.StatusReceived, domain.Kela, "", domain.ActionForward, domain.RecipientSide, ""},
		{"sender cannot forward", domain.StatusSent, "hva-90", "", domain.ActionForward, domain.SenderSide, ""},
		{"terminal completed allows nothing", domain.StatusCompleted, "hva-01", "", domain.ActionRequestInfo, domain.RecipientSide, ""},
		{"terminal forwarded allows nothing", domain.StatusForwarded, "hva-01", "", domain.ActionReceive, domain.RecipientSide, ""},
		{"terminal withdrawn cannot be withdrawn again", domain.StatusWithdrawn, "hva-01", "", domain.ActionWithdraw, domain.SenderSide, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := lifecycleReferral(t, tt.status, tt.recipient, tt.resume)
			got, err := r.Next(tt.action, tt.side)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("Next = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if domain.ErrorCode(err) != domain.EConflict {
				t.Fatalf("Next = %q, %v; want EConflict", got, err)
			}
		})
	}
}

func TestTerminalStatesAllowNothing(t *testing.T) {
	for _, s := range domain.Statuses {
		terminal := s == domain.StatusCompleted || s == domain.StatusReturned || s == domain.StatusWithdrawn || s == domain.StatusForwarded
		if s.Terminal() != terminal {
			t.Errorf("%s.Terminal() = %v, want %v", s, s.Terminal(), terminal)
		}
		if got, want := s.Bounce(), s == domain.StatusReturned || s == domain.StatusForwarded; got != want {
			t.Errorf("%s.Bounce() = %v, want %v", s, got, want)
		}
		if !terminal {
			continue
		}
		for _, recipient := range []domain.OrgID{"hva-02", domain.Kela} {
			r := lifecycleReferral(t, s, recipient, "")
			if r.Open() {
				t.Errorf("%s is Open", s)
			}
			for _, side := range allSides {
				if got := r.Allowed(side); len(got) != 0 {
					t.Errorf("%s, %s: Allowed = %v, want none", s, side, got)
				}
			}
		}
	}
}

func TestNextUnknownActionIsInvalid(t *testing.T) {
	r := lifecycleReferral(t, domain.StatusSent, "hva-01", "")
	for _, a := range []domain.Action{domain.ActionCreate, domain.ActionMessage, "teleport", ""} {
		if _, err := r.Next(a, domain.RecipientSide); domain.ErrorCode(err) != domain.EInvalid {
			t.Errorf("Next(%q) = %v, want EInvalid", a, err)
		}
	}
}

func TestStatusAndKindValueSets(t *testing.T) {
	for _, s := range domain.Statuses {
		if !s.Valid() {
			t.Errorf("%s.Valid() = false", s)
		}
	}
	if domain.Status("open").Valid() || domain.Status("").Valid() {
		t.Errorf("unknown status is valid")
	}
	directions := map[domain.Kind][]domain.Direction{
		domain.KindSocialWorkNeed:              {domain.KelaToCounty},
		domain.KindSupplementarySupportHandoff: {domain.KelaToCounty},
		domain.KindSocialWorkStatement:         {domain.CountyToKela},
		domain.KindDecisionReviewRequest:       {domain.CountyToKela},
		domain.KindDirectPaymentRequest:        {domain.CountyToKela},
		domain.KindContactPersonRequest:        {domain.CountyToKela},
		domain.KindJointMeetingRequest:         {domain.KelaToCounty, domain.CountyToKela},
	}
	if len(domain.Kinds) != len(directions) {
		t.Fatalf("Kinds = %v, want the %d of DOMAIN §4", domain.Kinds, len(directions))
	}
	for _, k := range domain.Kinds {
		want, ok := directions[k]
		if !ok || !k.Valid() {
			t.Fatalf("kind %s unknown", k)
		}
		for _, d := range []domain.Direction{domain.KelaToCounty, domain.CountyToKela, "sideways"} {
			if got := k.AllowedDirection(d); got != slices.Contains(want, d) {
				t.Errorf("%s.AllowedDirection(%s) = %v", k, d, got)
			}
		}
		toKela := len(want) == 1 && want[0] == domain.CountyToKela
		if k.ToKela() != toKela {
			t.Errorf("%s.ToKela() = %v, want %v", k, k.ToKela(), toKela)
		}
	}
	if domain.Kind("other").Valid() || domain.Kind("other").AllowedDirection(domain.KelaToCounty) {
		t.Errorf("unknown kind accepted")
	}
	if !domain.Normal.Valid() || !domain.Urgent.Valid() || domain.Urgency("high").Valid() || domain.Urgency("").Valid() {
		t.Errorf("Urgency.Valid wrong")
	}
}

func TestActorRoles(t *testing.T) {
	tests := []struct {
		name     string
		actor    domain.Actor
		caseRole domain.Role
		handler  bool
		canRead  bool
	}{
		{"Kela handler", domain.Actor{Org: domain.Kela, Roles: []domain.Role{domain.RoleKelaHandler}}, domain.RoleKelaHandler, true, true},
		{"social worker in Kela is not a handler", domain.Actor{Org: domain.Kela, Roles: []domain.Role{domain.RoleSocialWorker}}, domain.RoleKelaHandler, false, false},
		{"county social worker", domain.Actor{Org: "hva-01", Roles: []domain.Role{domain.RoleSocialWorker}}, domain.RoleSocialWorker, true, true},
		{"Kela handler role in a county is not a handler", domain.Actor{Org: "hva-01", Roles: []domain.Role{domain.RoleKelaHandler}}, domain.RoleSocialWorker, false, false},
		{"supervisor reads", domain.Actor{Org: "hva-01", Roles: []domain.Role{domain.RoleSupervisor}}, domain.RoleSocialWorker, false, true},
		{"auditor does not read referrals", domain.Actor{Org: domain.Kela, Roles: []domain.Role{domain.RoleAuditor}}, domain.RoleKelaHandler, false, false},
		{"no roles", domain.Actor{Org: domain.Kela}, domain.RoleKelaHandler, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role, ok := tt.actor.CaseRole()
			if role != tt.caseRole || ok != tt.handler {
				t.Fatalf("CaseRole = %s, %v; want %s, %v", role, ok, tt.caseRole, tt.handler)
			}
			if got := tt.actor.CanRead(); got != tt.canRead {
				t.Fatalf("CanRead = %v, want %v", got, tt.canRead)
			}
		})
	}
	for _, r := range []domain.Role{domain.RoleKelaHandler, domain.RoleSocialWorker, domain.RoleSupervisor, domain.RoleAuditor} {
		if !r.Valid() {
			t.Errorf("%s.Valid() = false", r)
		}
	}
	if domain.Role("admin").Valid() {
		t.Errorf("unknown role valid")
	}
}

func TestSideOf(t *testing.T) {
	r := &domain.Referral{Sender: domain.Kela, Recipient: "hva-08"}
	tests := []struct {
		org  domain.OrgID
		side domain.Side
		ok   bool
	}{
		{domain.Kela, domain.SenderSide, true},
		{"hva-08", domain.RecipientSide, true},
		{"hva-09", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if side, ok := r.SideOf(tt.org); side != tt.side || ok != tt.ok {
			t.Errorf("SideOf(%q) = %q, %v; want %q, %v", tt.org, side, ok, tt.side, tt.ok)
		}
	}
}
