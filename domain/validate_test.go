package domain

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const validPersonalID = "131052-308T"

func testClient() *Client {
	yes := true
	return &Client{PersonalID: validPersonalID, Name: "Matti Meikäläinen", HomeMunicipality: "091",
		Language: "fi", Phone: "+358401234567", PreferredContactChannel: "phone", CanUseEServices: &yes}
}

// validRequest returns a valid create request of kind k as the side given by fromKela sends it.
func validRequest(t *testing.T, k Kind, fromKela bool) *CreateRequest {
	t.Helper()
	req := &CreateRequest{Kind: k, Urgency: Normal, Client: testClient()}
	if !fromKela {
		req.KelaCaseRef = "TO-2026-0012345"
	}
	switch k {
	case KindSocialWorkNeed:
		req.KelaCaseRef = "TO-2026-0012345"
		req.SocialWorkNeed = &SocialWorkNeed{NeedFlags: []string{"housing_risk", "released_from_prison"},
			Consent: "given", Description: "Released 2026-11-20, no address yet."}
	case KindSupplementarySupportHandoff:
		req.SupplementarySupport = &SupplementarySupport{SupportTypes: []string{"supplementary"},
			ApplicationReceivedAtKela: "2026-11-18", BasicDecisionDate: "2026-11-20",
			ExpenseItems: []ExpenseItem{{Type: "medical", AmountEUR: "84.50", Text: "glasses"}},
			DocumentRefs: []string{"doc:123/abc"}}
	case KindSocialWorkStatement:
		req.ToKela = &ToKela{Subject: "Statement", Text: "The client has extra housing costs.",
			Topics: []string{"other_basic_expenses"}, ClientHeard: true}
	case KindDecisionReviewRequest, KindContactPersonRequest:
		req.ToKela = &ToKela{Subject: "Subject", Text: "Text"}
	case KindDirectPaymentRequest:
		req.ToKela = &ToKela{Subject: "Rent", Text: "Please pay the rent directly."}
		req.DirectPayment = &DirectPayment{Bills: []Bill{{Biller: "Vuokra Oy", Reference: "RF18 1234",
			AmountEUR: "650.00", Period: "monthly"}}, ValidFrom: "2026-12-01", ValidUntil: "2027-05-31"}
	case KindJointMeetingRequest:
		req.JointMeeting = &JointMeeting{Subject: "Meeting", Text: "Let us meet.", ProposedDates: []string{"2026-11-30"}}
	default:
		t.Fatalf("no valid request for kind %s", k)
	}
	return req
}

func testService() *Service { return &Service{Registry: DefaultRegistry()} }

func TestValidateCreateAcceptsEveryKindFromItsSides(t *testing.T) {
	tests := []struct {
		name          string
		org           OrgID
		kind          Kind
		municipality  string
		wantRecipient OrgID
	}{
		{"Kela social_work_need to Helsinki", Kela, KindSocialWorkNeed, "091", "hva-90"},
		{"Kela social_work_need to Tampere's county", Kela, KindSocialWorkNeed, "837", "hva-08"},
		{"Kela supplementary_support_handoff", Kela, KindSupplementarySupportHandoff, "837", "hva-08"},
		{"Kela joint_meeting_request", Kela, KindJointMeetingRequest, "005", "hva-16"},
		{"county social_work_statement", "hva-08", KindSocialWorkStatement, "837", Kela},
		{"county decision_review_request", "hva-08", KindDecisionReviewRequest, "837", Kela},
		{"county direct_payment_request", "hva-90", KindDirectPaymentRequest, "091", Kela},
		{"county contact_person_request", "hva-90", KindContactPersonRequest, "091", Kela},
		{"county joint_meeting_request", "hva-16", KindJointMeetingRequest, "005", Kela},
		{"county request without home municipality goes to Kela", "hva-08", KindDecisionReviewRequest, "", Kela},
		{"county request about a client of another county still goes to Kela", "hva-08", KindContactPersonRequest, "091", Kela},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest(t, tt.kind, tt.org.IsKela())
			req.Client.HomeMunicipality = tt.municipality
			got, err := testService().validateCreate(tt.org, req)
			if err != nil {
				t.Fatalf("validateCreate = %v, want nil", err)
			}
			if got != tt.wantRecipient {
				t.Fatalf("recipient = %q, want %q", got, tt.wantRecipient)
			}
		})
	}
}

func TestValidateCreateAcceptsUrgentAndBoundaries(t *testing.T) {
	req := validRequest(t, KindSocialWorkNeed, true)
	req.Urgency = Urgent
	req.SocialWorkNeed.Description = strings.Repeat("ä", MaxTextLen) // characters, not bytes
	req.SocialWorkNeed.NeedFlags = []string{"basic_amount_reduction"}
	req.SocialWorkNeed.ReductionLevel = 2
	req.SocialWorkNeed.Consent = "not_given"
	req.SocialWorkNeed.ImmediateNeed = true
	req.SocialWorkNeed.ConsentJustification = "Immediate risk to safety."
	if _, err := testService().validateCreate(Kela, req); err != nil {
		t.Fatalf("validateCreate = %v, want nil", err)
	}
	dp := validRequest(t, KindDirectPaymentRequest, false)
	dp.DirectPayment.ValidUntil = dp.DirectPayment.ValidFrom // same day is fine
	dp.DirectPayment.Bills[0].AmountEUR = "1234567.89"
	if _, err := testService().validateCreate("hva-01", dp); err != nil {
		t.Fatalf("validateCreate = %v, want nil", err)
	}
	// An urgent application is decided the day it arrives (§14 b).
	sameDay := validRequest(t, KindSupplementarySupportHandoff, true)
	sameDay.SupplementarySupport.BasicDecisionDate = sameDay.SupplementarySupport.ApplicationReceivedAtKela
	if _, err := testService().validateCreate(Kela, sameDay); err != nil {
		t.Fatalf("decided the day it was received: validateCreate = %v, want nil", err)
	}
	meeting := validRequest(t, KindJointMeetingRequest, true)
	meeting.JointMeeting.ProposedDates = tenDates()
	if _, err := testService().validateCreate(Kela, meeting); err != nil {
		t.Fatalf("ten proposed dates: validateCreate = %v, want nil", err)
	}
}

// tenDates returns the most proposed dates a joint meeting request may carry.
func tenDates() []string {
	var ds []string
	for d := 1; d <= 10; d++ {
		ds = append(ds, "2026-12-"+itoa(d+10))
	}
	return ds
}

// fieldPointers returns the pointers of an EInvalid *Error, failing the test on anything else.
func fieldPointers(t *testing.T, err error) []string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *Error", err, err)
	}
	if e.Code != EInvalid {
		t.Fatalf("code = %s, want %s", e.Code, EInvalid)
	}
	var out []string
	for _, f := range e.Fields {
		if f.Detail == "" {
			t.Errorf("field %s has no detail", f.Pointer)
		}
		out = append(out, f.Pointer)
	}
	return out
}

func TestValidateCreateRejects(t *testing.T) {
	tests := []struct {
		name   string
		org    OrgID
		kind   Kind
		mutate func(r *CreateRequest)
		want   []string // exact pointers, in order
	}{
		{"unknown kind", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Kind = "social_work_needs" }, []string{"/kind"}},
		{"empty kind", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Kind = "" }, []string{"/kind"}},
		{"county sends a Kela kind", "hva-08", KindSocialWorkNeed, func(r *CreateRequest) {}, []string{"/kind"}},
		{"county sends a handoff", "hva-08", KindSupplementarySupportHandoff, func(r *CreateRequest) {}, []string{"/kind"}},
		{"Kela sends a county kind", Kela, KindSocialWorkStatement, func(r *CreateRequest) { r.KelaCaseRef = "TO-1" }, []string{"/kind"}},
		{"bad urgency", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Urgency = "high" }, []string{"/urgency"}},
		{"missing urgency", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Urgency = "" }, []string{"/urgency"}},
		{"bad kela_case_ref", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.KelaCaseRef = "TO 2026" }, []string{"/kela_case_ref"}},
		{"missing client", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client = nil }, []string{"/client"}},
		{"missing identity code", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client.PersonalID = "" }, []string{"/client/personal_id"}},
		{"bad identity code", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client.PersonalID = "131052-308U" }, []string{"/client/personal_id"}},
		{"missing client name", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client.Name = "" }, []string{"/client/name"}},
		{"unknown municipality", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client.HomeMunicipality = "999" }, []string{"/client/home_municipality"}},
		{"Åland municipality", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client.HomeMunicipality = "478" }, []string{"/client/home_municipality"}},
		{"Åland municipality from a county", "hva-08", KindDecisionReviewRequest, func(r *CreateRequest) { r.Client.HomeMunicipality = "478" }, []string{"/client/home_municipality"}},
		{"malformed municipality", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client.HomeMunicipality = "91" }, []string{"/client/home_municipality"}},
		{"missing home municipality Kela to county", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client.HomeMunicipality = "" }, []string{"/client/home_municipality"}},
		{"missing home municipality on a handoff", Kela, KindSupplementarySupportHandoff, func(r *CreateRequest) { r.Client.HomeMunicipality = "" }, []string{"/client/home_municipality"}},
		{"bad language", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client.Language = "fin" }, []string{"/client/language"}},
		{"bad phone", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client.Phone = "call me" }, []string{"/client/phone"}},
		{"bad contact channel", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.Client.PreferredContactChannel = "pigeon" }, []string{"/client/preferred_contact_channel"}},
		{"consent not_given without immediate_need", Kela, KindSocialWorkNeed, func(r *CreateRequest) {
			r.SocialWorkNeed.Consent, r.SocialWorkNeed.ConsentJustification = "not_given", "risk"
		}, []string{"/social_work_need/immediate_need"}},
		{"consent not_given without justification", Kela, KindSocialWorkNeed, func(r *CreateRequest) {
			r.SocialWorkNeed.Consent, r.SocialWorkNeed.ImmediateNeed = "not_given", true
		}, []string{"/social_work_need/consent_justification"}},
		{"consent not_given without either", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.SocialWorkNeed.Consent = "not_given" },
			[]string{"/social_work_need/immediate_need", "/social_work_need/consent_justification"}},
		{"missing consent", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.SocialWorkNeed.Consent = "" }, []string{"/social_work_need/consent"}},
		{"unknown consent", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.SocialWorkNeed.Consent = "maybe" }, []string{"/social_work_need/consent"}},
		{"basic_amount_reduction without level", Kela, KindSocialWorkNeed, func(r *CreateRequest) {
			r.SocialWorkNeed.NeedFlags = append(r.SocialWorkNeed.NeedFlags, "basic_amount_reduction")
		}, []string{"/social_work_need/reduction_level"}},
		{"basic_amount_reduction with level 3", Kela, KindSocialWorkNeed, func(r *CreateRequest) {
			r.SocialWorkNeed.NeedFlags, r.SocialWorkNeed.ReductionLevel = []string{"basic_amount_reduction"}, 3
		}, []string{"/social_work_need/reduction_level"}},
		{"level without basic_amount_reduction", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.SocialWorkNeed.ReductionLevel = 1 },
			[]string{"/social_work_need/reduction_level"}},
		{"unknown need flag", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.SocialWorkNeed.NeedFlags = []string{"housing_risk", "bad_luck"} },
			[]string{"/social_work_need/need_flags/1"}},
		{"duplicate need flag", Kela, KindSocialWorkNeed, func(r *CreateRequest) {
			r.SocialWorkNeed.NeedFlags = []string{"housing_risk", "no_income", "housing_risk"}
		}, []string{"/social_work_need/need_flags/2"}},
		{"no need flags", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.SocialWorkNeed.NeedFlags = nil }, []string{"/social_work_need/need_flags"}},
		{"too many need flags", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.SocialWorkNeed.NeedFlags = make([]string, MaxListLen+1) },
			[]string{"/social_work_need/need_flags"}},
		{"description over 4000 characters", Kela, KindSocialWorkNeed, func(r *CreateRequest) {
			r.SocialWorkNeed.Description = strings.Repeat("a", MaxTextLen+1)
		}, []string{"/social_work_need/description"}},
		{"description not UTF-8", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.SocialWorkNeed.Description = "\xff" },
			[]string{"/social_work_need/description"}},
		{"block of another kind", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.ToKela = &ToKela{Subject: "s", Text: "t"} }, []string{"/to_kela"}},
		{"joint meeting block on a handoff", Kela, KindSupplementarySupportHandoff, func(r *CreateRequest) { r.JointMeeting = &JointMeeting{Text: "t"} },
			[]string{"/joint_meeting"}},
		{"direct payment block on a review request", "hva-01", KindDecisionReviewRequest, func(r *CreateRequest) {
			r.DirectPayment = validRequest(t, KindDirectPaymentRequest, false).DirectPayment
		}, []string{"/direct_payment"}},
		{"missing social_work_need block", Kela, KindSocialWorkNeed, func(r *CreateRequest) { r.SocialWorkNeed = nil }, []string{"/social_work_need"}},
		{"missing supplementary_support block", Kela, KindSupplementarySupportHandoff, func(r *CreateRequest) { r.SupplementarySupport = nil },
			[]string{"/supplementary_support"}},
		{"missing to_kela block", "hva-01", KindContactPersonRequest, func(r *CreateRequest) { r.ToKela = nil }, []string{"/to_kela"}},
		{"missing direct_payment block", "hva-01", KindDirectPaymentRequest, func(r *CreateRequest) { r.DirectPayment = nil }, []string{"/direct_payment"}},
		{"missing joint_meeting block", "hva-01", KindJointMeetingRequest, func(r *CreateRequest) { r.JointMeeting = nil }, []string{"/joint_meeting"}},
		{"statement without client_heard", "hva-01", KindSocialWorkStatement, func(r *CreateRequest) { r.ToKela.ClientHeard = false },
			[]string{"/to_kela/client_heard"}},
		{"statement without topics", "hva-01", KindSocialWorkStatement, func(r *CreateRequest) { r.ToKela.Topics = nil }, []string{"/to_kela/topics"}},
		{"statement with an unknown topic", "hva-01", KindSocialWorkStatement, func(r *CreateRequest) {
			r.ToKela.Topics = []string{"urgent_processing", "weather"}
		}, []string{"/to_kela/topics/1"}},
		{"topics on a review request", "hva-01", KindDecisionReviewRequest, func(r *CreateRequest) { r.ToKela.Topics = []string{"urgent_processing"} },
			[]string{"/to_kela/topics"}},
		{"to_kela without subject", "hva-01", KindDecisionReviewRequest, func(r *CreateRequest) { r.ToKela.Subject = "" }, []string{"/to_kela/subject"}},
		{"to_kela text too long", "hva-01", KindDecisionReviewRequest, func(r *CreateRequest) { r.ToKela.Text = strings.Repeat("x", MaxTextLen+1) },
			[]string{"/to_kela/text"}},
		{"direct payment with a comma amount", "hva-01", KindDirectPaymentRequest, func(r *CreateRequest) { r.DirectPayment.Bills[0].AmountEUR = "650,00" },
			[]string{"/direct_payment/bills/0/amount_eur"}},
		{"direct payment with a negative amount", "hva-01", KindDirectPaymentRequest, func(r *CreateRequest) { r.DirectPayment.Bills[0].AmountEUR = "-5" },
			[]string{"/direct_payment/bills/0/amount_eur"}},
		{"direct payment with three decimals", "hva-01", KindDirectPaymentRequest, func(r *CreateRequest) { r.DirectPayment.Bills[0].AmountEUR = "1.005" },
			[]string{"/direct_payment/bills/0/amount_eur"}},
		{"direct payment without bills", "hva-01", KindDirectPaymentRequest, func(r *CreateRequest) { r.DirectPayment.Bills = nil },
			[]string{"/direct_payment/bills"}},
		{"direct payment bad period", "hva-01", KindDirectPaymentRequest, func(r *CreateRequest) { r.DirectPayment.Bills[0].Period = "weekly" },
			[]string{"/direct_payment/bills/0/period"}},
		{"valid_until before valid_from", "hva-01", KindDirectPaymentRequest, func(r *CreateRequest) { r.DirectPayment.ValidUntil = "2026-11-30" },
			[]string{"/direct_payment/valid_until"}},
		{"missing valid_from", "hva-01", KindDirectPaymentRequest, func(r *CreateRequest) { r.DirectPayment.ValidFrom = "" },
			[]string{"/direct_payment/valid_from"}},
		{"handoff decided before received", Kela, KindSupplementarySupportHandoff, func(r *CreateRequest) {
			r.SupplementarySupport.BasicDecisionDate = "2026-11-17"
		}, []string{"/supplementary_support/basic_decision_date"}},
		{"handoff received date not a date", Kela, KindSupplementarySupportHandoff, func(r *CreateRequest) {
			r.SupplementarySupport.ApplicationReceivedAtKela = "18.11.2026"
		}, []string{"/supplementary_support/application_received_at_kela"}},
		{"handoff unknown support type", Kela, KindSupplementarySupportHandoff, func(r *CreateRequest) {
			r.SupplementarySupport.SupportTypes = []string{"basic"}
		}, []string{"/supplementary_support/support_types/0"}},
		{"handoff document content instead of id", Kela, KindSupplementarySupportHandoff, func(r *CreateRequest) {
			r.SupplementarySupport.DocumentRefs = []string{"Dear Kela, ..."}
		}, []string{"/supplementary_support/document_refs/0"}},
		{"joint meeting without text", Kela, KindJointMeetingRequest, func(r *CreateRequest) { r.JointMeeting.Text = "" }, []string{"/joint_meeting/text"}},
		{"joint meeting with eleven dates", Kela, KindJointMeetingRequest, func(r *CreateRequest) {
			r.JointMeeting.ProposedDates = append(tenDates(), "2026-12-21")
		}, []string{"/joint_meeting/proposed_dates"}},
		{"joint meeting bad date", Kela, KindJointMeetingRequest, func(r *CreateRequest) { r.JointMeeting.ProposedDates = []string{"2026-11-30", "soon"} },
			[]string{"/joint_meeting/proposed_dates/1"}},
		{"statement without kela_case_ref", "hva-01", KindSocialWorkStatement, func(r *CreateRequest) { r.KelaCaseRef = "" }, []string{"/kela_case_ref"}},
		{"review request without kela_case_ref", "hva-01", KindDecisionReviewRequest, func(r *CreateRequest) { r.KelaCaseRef = "" }, []string{"/kela_case_ref"}},
		{"direct payment without kela_case_ref", "hva-01", KindDirectPaymentRequest, func(r *CreateRequest) { r.KelaCaseRef = "" }, []string{"/kela_case_ref"}},
		{"contact person without kela_case_ref", "hva-01", KindContactPersonRequest, func(r *CreateRequest) { r.KelaCaseRef = "" }, []string{"/kela_case_ref"}},
		{"every violation is listed", Kela, KindSocialWorkNeed, func(r *CreateRequest) {
			r.Urgency = "x"
			r.Client.PersonalID = "x"
			r.SocialWorkNeed.NeedFlags = []string{"y"}
		}, []string{"/urgency", "/client/personal_id", "/social_work_need/need_flags/0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest(t, tt.kind, tt.org.IsKela())
			dir := KelaToCounty
			if tt.org.IsCounty() {
				dir = CountyToKela
			}
			if _, err := testService().validateCreate(tt.org, req); tt.kind.AllowedDirection(dir) && err != nil {
				t.Fatalf("base request invalid: %v", err)
			}
			tt.mutate(req)
			_, err := testService().validateCreate(tt.org, req)
			if got := fieldPointers(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("pointers = %v, want %v (error %v)", got, tt.want, err)
			}
		})
	}
}

func TestValidateCreateNeverEchoesTheIdentityCode(t *testing.T) {
	for _, code := range []string{"131052-308U", "310294-002X", "010594-000X", "131052Z308T", "131052-308"} {
		req := validRequest(t, KindSocialWorkNeed, true)
		req.Client.PersonalID = code
		_, err := testService().validateCreate(Kela, req)
		var e *Error
		if !errors.As(err, &e) || len(e.Fields) != 1 || e.Fields[0].Pointer != "/client/personal_id" {
			t.Fatalf("%q: error = %v, want one /client/personal_id violation", code, err)
		}
		for _, s := range []string{e.Error(), e.Message, e.Fields[0].Detail} {
			if strings.Contains(s, code) || strings.Contains(s, code[:6]) {
				t.Fatalf("%q: error text %q contains the code", code, s)
			}
		}
	}
}
