package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
)

func newPolicy(t *testing.T) *domain.DeadlinePolicy {
	t.Helper()
	return domain.NewDeadlinePolicy(calendar.New(calendar.Options{}))
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return v
}

// checkDeadline fails unless got is set and is the instant want (RFC 3339).
func checkDeadline(t *testing.T, name string, got *time.Time, want string) {
	t.Helper()
	if want == "" {
		if got != nil {
			t.Errorf("%s = %s, want unset", name, got.UTC().Format(time.RFC3339))
		}
		return
	}
	if got == nil {
		t.Errorf("%s unset, want %s", name, want)
		return
	}
	if !got.Equal(mustTime(t, want)) {
		t.Errorf("%s = %s, want %s", name, got.UTC().Format(time.RFC3339), want)
	}
}

func TestDeadlinePolicyAssign(t *testing.T) {
	tests := []struct {
		name        string
		kind        domain.Kind
		urgency     domain.Urgency
		at          string
		wantAck     string
		wantRespond string
		wantBasis   string
	}{
		{"DOMAIN §9 example: normal social_work_need", domain.KindSocialWorkNeed, domain.Normal, "2026-11-23T09:12:44Z",
			"2026-11-24T21:59:59Z", "2026-12-02T21:59:59Z", "§36"},
		{"urgent social_work_need: next business day", domain.KindSocialWorkNeed, domain.Urgent, "2026-11-23T09:12:44Z",
			"2026-11-24T21:59:59Z", "2026-11-24T21:59:59Z", "urgent"},
		{"urgent on a Friday: next business day is Monday", domain.KindSocialWorkNeed, domain.Urgent, "2026-11-27T12:00:00Z",
			"2026-11-30T21:59:59Z", "2026-11-30T21:59:59Z", "urgent"},
		{"arrival late in the UTC evening is the next Helsinki day", domain.KindSocialWorkNeed, domain.Normal, "2026-11-23T22:30:00Z",
			"2026-11-25T21:59:59Z", "2026-12-03T21:59:59Z", "§36"},
		{"arrival on a Saturday counts from Monday", domain.KindDecisionReviewRequest, domain.Normal, "2026-11-28T10:00:00Z",
			"2026-11-30T21:59:59Z", "2026-12-08T21:59:59Z", "§14 a"},
		{"Christmas Eve, Christmas and Boxing Day are skipped", domain.KindSocialWorkStatement, domain.Urgent, "2026-12-23T10:00:00Z",
			"2026-12-28T21:59:59Z", "2026-12-28T21:59:59Z", "§14 b"},
		{"summer time: end of day is 20:59:59Z", domain.KindSupplementarySupportHandoff, domain.Normal, "2026-06-01T10:00:00Z",
			"2026-06-02T20:59:59Z", "2026-06-10T20:59:59Z", "§14 a"},
		{"urgent handoff", domain.KindSupplementarySupportHandoff, domain.Urgent, "2026-11-23T10:00:00Z",
			"2026-11-24T21:59:59Z", "2026-11-24T21:59:59Z", "§14 b"},
		{"urgent joint meeting is still 7 days (§14 d)", domain.KindJointMeetingRequest, domain.Urgent, "2026-11-23T10:00:00Z",
			"2026-11-24T21:59:59Z", "2026-12-02T21:59:59Z", "§14 d"},
		{"direct payment request", domain.KindDirectPaymentRequest, domain.Normal, "2026-11-23T10:00:00Z",
			"2026-11-24T21:59:59Z", "2026-12-02T21:59:59Z", "§14 a"},
		{"contact person request urgent", domain.KindContactPersonRequest, domain.Urgent, "2026-11-23T10:00:00Z",
			"2026-11-24T21:59:59Z", "2026-11-24T21:59:59Z", "§14 b"},
		{"unknown kind falls back to the default rule", "mystery", domain.Normal, "2026-11-23T10:00:00Z",
			"2026-11-24T21:59:59Z", "2026-12-02T21:59:59Z", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &domain.Referral{Kind: tt.kind, Urgency: tt.urgency}
			newPolicy(t).Assign(r, mustTime(t, tt.at))
			checkDeadline(t, "acknowledge_by", r.Deadlines.AcknowledgeBy, tt.wantAck)
			checkDeadline(t, "respond_by", r.Deadlines.RespondBy, tt.wantRespond)
			checkDeadline(t, "kela_handoff_by", r.Deadlines.KelaHandoffBy, "")
			if r.Deadlines.KelaHandoffLateDays != nil {
				t.Errorf("kela_handoff_late_days = %d, want unset", *r.Deadlines.KelaHandoffLateDays)
			}
			if !strings.Contains(r.Deadlines.Basis, tt.wantBasis) {
				t.Errorf("basis = %q, want it to mention %q", r.Deadlines.Basis, tt.wantBasis)
			}
			if r.Deadlines.AcknowledgeBy == r.Deadlines.RespondBy {
				t.Errorf("acknowledge_by and respond_by share one pointer")
			}
		})
	}
}

func TestDeadlineBasisMatchesTheRule(t *testing.T) {
	rules := domain.DefaultDeadlineRules()
	for _, k := range domain.Kinds {
		for _, u := range []domain.Urgency{domain.Normal, domain.Urgent} {
			rule, ok := rules[k][u]
			if !ok {
				t.Fatalf("no default rule for %s/%s", k, u)
			}
			if rule.AcknowledgeDays != 1 {
				t.Errorf("%s/%s acknowledge days = %d, want 1", k, u, rule.AcknowledgeDays)
			}
			wantRespond := 7
			if u == domain.Urgent && k != domain.KindJointMeetingRequest {
				wantRespond = 1
			}
			if rule.RespondDays != wantRespond {
				t.Errorf("%s/%s respond days = %d, want %d", k, u, rule.RespondDays, wantRespond)
			}
			r := &domain.Referral{Kind: k, Urgency: u}
			newPolicy(t).Assign(r, mustTime(t, "2026-11-23T10:00:00Z"))
			if r.Deadlines.Basis == "" || r.Deadlines.Basis != rule.Basis {
				t.Errorf("%s/%s basis = %q, want %q", k, u, r.Deadlines.Basis, rule.Basis)
			}
		}
	}
}

func TestDeadlinePolicyKelaHandoff(t *testing.T) {
	tests := []struct {
		name         string
		decisionDate string
		at           string
		wantBy       string
		wantLateDays int // -1: unset
	}{
		{"decided Friday, sent Monday: on time", "2026-11-20", "2026-11-23T10:00:00Z", "2026-11-23T21:59:59Z", 0},
		{"decided Friday, sent the same Friday: on time", "2026-11-20", "2026-11-20T10:00:00Z", "2026-11-23T21:59:59Z", 0},
		{"decided Friday, sent Saturday: on time", "2026-11-20", "2026-11-21T10:00:00Z", "2026-11-23T21:59:59Z", 0},
		{"decided Friday, sent Tuesday: 1 day late", "2026-11-20", "2026-11-24T10:00:00Z", "2026-11-23T21:59:59Z", 1},
		{"decided Friday, sent Wednesday: 2 days late", "2026-11-20", "2026-11-25T10:00:00Z", "2026-11-23T21:59:59Z", 2},
		{"Monday late evening Helsinki is Tuesday: 1 day late", "2026-11-20", "2026-11-23T22:30:00Z", "2026-11-23T21:59:59Z", 1},
		{"decided before Christmas", "2026-12-23", "2026-12-28T08:00:00Z", "2026-12-28T21:59:59Z", 0},
		{"no decision date yet: no target", "", "2026-11-23T10:00:00Z", "", -1},
		{"unparseable decision date: no target", "20.11.2026", "2026-11-23T10:00:00Z", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &domain.Referral{Kind: domain.KindSupplementarySupportHandoff, Urgency: domain.Normal,
				SupplementarySupport: &domain.SupplementarySupport{SupportTypes: []string{"supplementary"},
					ApplicationReceivedAtKela: "2026-11-18", BasicDecisionDate: tt.decisionDate}}
			newPolicy(t).Assign(r, mustTime(t, tt.at))
			checkDeadline(t, "kela_handoff_by", r.Deadlines.KelaHandoffBy, tt.wantBy)
			switch late := r.Deadlines.KelaHandoffLateDays; {
			case tt.wantLateDays < 0 && late != nil:
				t.Errorf("kela_handoff_late_days = %d, want unset", *late)
			case tt.wantLateDays >= 0 && late == nil:
				t.Errorf("kela_handoff_late_days unset, want %d", tt.wantLateDays)
			case tt.wantLateDays >= 0 && *late != tt.wantLateDays:
				t.Errorf("kela_handoff_late_days = %d, want %d", *late, tt.wantLateDays)
			}
			if r.Deadlines.RespondBy == nil || r.Deadlines.AcknowledgeBy == nil || r.Deadlines.Basis == "" {
				t.Errorf("handoff deadlines incomplete: %+v", r.Deadlines)
			}
		})
	}
}

func TestDeadlinePolicyRestart(t *testing.T) {
	tests := []struct {
		name        string
		urgency     domain.Urgency
		answeredAt  string
		wantRespond string
	}{
		// Thu 26 Nov + 7 business days: 27, 30 Nov, 1, 2, 3, 4, 7 Dec (Sun 6 Dec is Independence Day anyway).
		{"normal: 7 business days from the answer", domain.Normal, "2026-11-26T08:00:00Z", "2026-12-07T21:59:59Z"},
		{"urgent: next business day after the answer", domain.Urgent, "2026-11-26T08:00:00Z", "2026-11-27T21:59:59Z"},
		{"answer on a Sunday counts from Monday", domain.Normal, "2026-11-29T08:00:00Z", "2026-12-08T21:59:59Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPolicy(t)
			r := &domain.Referral{Kind: domain.KindSocialWorkNeed, Urgency: tt.urgency}
			p.Assign(r, mustTime(t, "2026-11-23T09:12:44Z"))
			ack, basis, before := *r.Deadlines.AcknowledgeBy, r.Deadlines.Basis, r.Deadlines.RespondBy
			beforeValue := *before
			p.Restart(r, mustTime(t, tt.answeredAt))
			checkDeadline(t, "respond_by", r.Deadlines.RespondBy, tt.wantRespond)
			if !r.Deadlines.AcknowledgeBy.Equal(ack) || r.Deadlines.Basis != basis {
				t.Errorf("Restart changed acknowledge_by or basis: %+v", r.Deadlines)
			}
			if !before.Equal(beforeValue) {
				t.Errorf("Restart wrote through the old respond_by pointer (shared with copies of the referral)")
			}
		})
	}
}

func TestDeadlinePolicyCustomRules(t *testing.T) {
	p := newPolicy(t)
	p.Rules[domain.KindSocialWorkNeed][domain.Normal] = domain.DeadlineRule{AcknowledgeDays: 2, RespondDays: 3, Basis: "custom"}
	p.KelaHandoffDays = 2
	r := &domain.Referral{Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal}
	p.Assign(r, mustTime(t, "2026-11-23T09:12:44Z"))
	checkDeadline(t, "acknowledge_by", r.Deadlines.AcknowledgeBy, "2026-11-25T21:59:59Z")
	checkDeadline(t, "respond_by", r.Deadlines.RespondBy, "2026-11-26T21:59:59Z")
	if r.Deadlines.Basis != "custom" {
		t.Errorf("basis = %q, want custom", r.Deadlines.Basis)
	}
	h := &domain.Referral{Kind: domain.KindSupplementarySupportHandoff, Urgency: domain.Normal,
		SupplementarySupport: &domain.SupplementarySupport{BasicDecisionDate: "2026-11-20"}}
	p.Assign(h, mustTime(t, "2026-11-25T10:00:00Z"))
	checkDeadline(t, "kela_handoff_by", h.Deadlines.KelaHandoffBy, "2026-11-24T21:59:59Z")
	if l := h.Deadlines.KelaHandoffLateDays; l == nil || *l != 1 {
		t.Errorf("kela_handoff_late_days = %v, want 1", l)
	}
	// Zero days: the decision date itself if it is a business day.
	p.KelaHandoffDays = 0
	p.Assign(h, mustTime(t, "2026-11-20T10:00:00Z"))
	checkDeadline(t, "kela_handoff_by", h.Deadlines.KelaHandoffBy, "2026-11-20T21:59:59Z")
}

func TestReferralOverdue(t *testing.T) {
	ackedAt := mustTime(t, "2026-11-23T12:00:00Z")
	tests := []struct {
		name  string
		kind  domain.Kind
		state domain.Status
		acked bool
		now   string
		want  bool
	}{
		{"sent, before acknowledge_by", domain.KindSocialWorkNeed, domain.StatusSent, false, "2026-11-24T12:00:00Z", false},
		{"sent, at the last second of acknowledge_by", domain.KindSocialWorkNeed, domain.StatusSent, false, "2026-11-24T21:59:59Z", false},
		{"sent, acknowledge_by passed", domain.KindSocialWorkNeed, domain.StatusSent, false, "2026-11-24T22:00:00Z", true},
		{"received in time, before respond_by", domain.KindSocialWorkNeed, domain.StatusReceived, true, "2026-12-02T21:59:59Z", false},
		{"received, respond_by passed", domain.KindSocialWorkNeed, domain.StatusReceived, true, "2026-12-02T22:00:00Z", true},
		{"need: assessment started stops the respond clock", domain.KindSocialWorkNeed, domain.StatusInProgress, true, "2026-12-10T10:00:00Z", false},
		{"handoff: in progress is not a decision", domain.KindSupplementarySupportHandoff, domain.StatusInProgress, true, "2026-12-10T10:00:00Z", true},
		{"review request in progress after respond_by", domain.KindDecisionReviewRequest, domain.StatusInProgress, true, "2026-12-10T10:00:00Z", true},
		{"waiting for the sender's answer", domain.KindSupplementarySupportHandoff, domain.StatusInfoRequested, true, "2026-12-10T10:00:00Z", false},
		{"completed late is closed, not overdue", domain.KindSupplementarySupportHandoff, domain.StatusCompleted, true, "2026-12-10T10:00:00Z", false},
		{"forwarded without acknowledging", domain.KindSocialWorkNeed, domain.StatusForwarded, false, "2026-12-10T10:00:00Z", false},
		{"withdrawn", domain.KindJointMeetingRequest, domain.StatusWithdrawn, false, "2026-12-10T10:00:00Z", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &domain.Referral{Kind: tt.kind, Urgency: domain.Normal, Status: tt.state}
			newPolicy(t).Assign(r, mustTime(t, "2026-11-23T09:12:44Z"))
			if tt.acked {
				r.Times.AcknowledgedAt = &ackedAt
			}
			if tt.state == domain.StatusInfoRequested {
				r.ResumeStatus = domain.StatusReceived
			}
			if got := r.Overdue(mustTime(t, tt.now)); got != tt.want {
				t.Fatalf("Overdue(%s) = %v, want %v (deadlines %+v)", tt.now, got, tt.want, r.Deadlines)
			}
		})
	}
	if (&domain.Referral{Status: domain.StatusSent}).Overdue(mustTime(t, "2030-01-01T00:00:00Z")) {
		t.Fatalf("a referral without deadlines is overdue")
	}
}
