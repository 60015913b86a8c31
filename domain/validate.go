package domain

import (
	"regexp"
	"time"
	"unicode/utf8"
)

// Length limits of free text, in characters.
const (
	MaxTextLen    = 4000
	MaxSubjectLen = 200
	MaxNameLen    = 200
	MaxListLen    = 50
)

// CreateRequest is the body of POST /v1/referrals.
type CreateRequest struct {
	Kind                 Kind                  `json:"kind"`
	Urgency              Urgency               `json:"urgency"`
	KelaCaseRef          string                `json:"kela_case_ref,omitempty"`
	Client               *Client               `json:"client"`
	SocialWorkNeed       *SocialWorkNeed       `json:"social_work_need,omitempty"`
	SupplementarySupport *SupplementarySupport `json:"supplementary_support,omitempty"`
	ToKela               *ToKela               `json:"to_kela,omitempty"`
	DirectPayment        *DirectPayment        `json:"direct_payment,omitempty"`
	JointMeeting         *JointMeeting         `json:"joint_meeting,omitempty"`
}

// Value sets of DOMAIN §4 and §6.
var (
	NeedFlags = set("multiple_needs", "substance_use", "mental_health", "cognitive_impairment",
		"housing_risk", "homelessness", "debt_or_arrears", "no_income", "youth_without_income",
		"released_from_prison", "digital_or_id_barrier", "language_barrier", "domestic_violence",
		"repeated_urgent_applications", "basic_amount_reduction", "other")
	SupportTypes     = set("supplementary", "preventive")
	StatementTopics  = set("other_basic_expenses", "basic_amount_reduction", "urgent_processing")
	ContactChannels  = set("phone", "letter", "eservice", "visit")
	ExpenseTypes     = set("housing", "medical", "childcare", "debt", "funeral", "furniture", "travel", "other")
	BillPeriods      = set("once", "monthly", "quarterly", "yearly")
	ReturnReasons    = set("wrong_recipient", "insufficient_information", "not_our_client")
	NeedFeedback     = set("useful", "not_needed", "insufficient_information")
	HandoffDecisions = set("granted", "partially_granted", "denied")
	NeedOutcomes     = set("assessment_started", "already_client", "no_social_care_need", "client_not_reached", "client_declined")
	ToKelaOutcomes   = set("accepted", "rejected", "decision_corrected")
	MeetingOutcomes  = set("meeting_held", "meeting_not_needed", "client_not_reached", "client_declined")
	WithdrawReasons  = set("client_request", "resolved_otherwise", "sent_in_error", "duplicate", "other")
)

var (
	reCaseRef   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$`)
	reLanguage  = regexp.MustCompile(`^[a-z]{2}$`)
	rePhone     = regexp.MustCompile(`^\+?[0-9][0-9 ()-]{4,19}$`)
	reAmount    = regexp.MustCompile(`^[0-9]{1,7}(\.[0-9]{1,2})?$`)
	reDocRef    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)
	reMuniCode  = regexp.MustCompile(`^[0-9]{3}$`)
	reReference = regexp.MustCompile(`^[A-Za-z0-9 ._/-]{1,64}$`)
)

func set(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// checkText records a violation if s is required and empty, or longer than max characters,
// or not valid UTF-8.
func checkText(v *Violations, ptr, s string, required bool, max int) {
	switch {
	case s == "" && required:
		v.Add(ptr, "is required")
	case !utf8.ValidString(s):
		v.Add(ptr, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		v.Add(ptr, "must be at most %d characters", max)
	}
}

func checkDate(v *Violations, ptr, s string, required bool) (time.Time, bool) {
	if s == "" {
		if required {
			v.Add(ptr, "is required")
		}
		return time.Time{}, false
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		v.Add(ptr, "must be a date YYYY-MM-DD")
		return time.Time{}, false
	}
	return d, true
}

func checkEnumList(v *Violations, ptr string, xs []string, allowed map[string]bool, required bool) {
	if len(xs) == 0 {
		if required {
			v.Add(ptr, "needs at least one value")
		}
		return
	}
	if len(xs) > MaxListLen {
		v.Add(ptr, "must have at most %d values", MaxListLen)
		return
	}
	seen := map[string]bool{}
	for i, x := range xs {
		p := ptr + "/" + itoa(i)
		switch {
		case !allowed[x]:
			v.Add(p, "unknown value")
		case seen[x]:
			v.Add(p, "duplicate value")
		}
		seen[x] = true
	}
}

// validateCreate checks a create request made by an actor of org and returns the recipient.
func (s *Service) validateCreate(org OrgID, req *CreateRequest) (OrgID, error) {
	var v Violations
	if !req.Kind.Valid() {
		v.Add("/kind", "unknown kind")
		return "", v.Err("the referral is invalid")
	}
	dir := KelaToCounty
	if org.IsCounty() {
		dir = CountyToKela
	}
	if !req.Kind.AllowedDirection(dir) {
		v.Add("/kind", "%s cannot be sent by %s", req.Kind, map[bool]string{true: "Kela", false: "a county"}[org.IsKela()])
	}
	if !req.Urgency.Valid() {
		v.Add("/urgency", "must be normal or urgent")
	}
	if req.KelaCaseRef != "" && !reCaseRef.MatchString(req.KelaCaseRef) {
		v.Add("/kela_case_ref", "must be 1–64 letters, digits or . _ / -")
	}
	if req.Kind.ToKela() && req.KelaCaseRef == "" {
		v.Add("/kela_case_ref", "is required for requests to Kela")
	}

	var recipient OrgID
	if req.Client == nil {
		v.Add("/client", "is required")
	} else {
		recipient = s.validateClient(&v, req.Client, dir)
	}
	if dir == CountyToKela {
		recipient = Kela
	}

	blocks := map[string]bool{
		"social_work_need":      req.SocialWorkNeed != nil,
		"supplementary_support": req.SupplementarySupport != nil,
		"to_kela":               req.ToKela != nil,
		"direct_payment":        req.DirectPayment != nil,
		"joint_meeting":         req.JointMeeting != nil,
	}
	want := map[Kind][]string{
		KindSocialWorkNeed:              {"social_work_need"},
		KindSupplementarySupportHandoff: {"supplementary_support"},
		KindSocialWorkStatement:         {"to_kela"},
		KindDecisionReviewRequest:       {"to_kela"},
		KindContactPersonRequest:        {"to_kela"},
		KindDirectPaymentRequest:        {"to_kela", "direct_payment"},
		KindJointMeetingRequest:         {"joint_meeting"},
	}[req.Kind]
	for _, name := range []string{"social_work_need", "supplementary_support", "to_kela", "direct_payment", "joint_meeting"} {
		needed := contains(want, name)
		switch {
		case needed && !blocks[name]:
			v.Add("/"+name, "is required for kind %s", req.Kind)
		case !needed && blocks[name]:
			v.Add("/"+name, "does not belong to kind %s", req.Kind)
		}
	}
	if n := req.SocialWorkNeed; n != nil {
		validateNeed(&v, n)
	}
	if ss := req.SupplementarySupport; ss != nil {
		validateSupport(&v, ss)
	}
	if t := req.ToKela; t != nil {
		checkText(&v, "/to_kela/subject", t.Subject, true, MaxSubjectLen)
		checkText(&v, "/to_kela/text", t.Text, true, MaxTextLen)
		if req.Kind == KindSocialWorkStatement {
			checkEnumList(&v, "/to_kela/topics", t.Topics, StatementTopics, true)
			if !t.ClientHeard {
				v.Add("/to_kela/client_heard", "must be true: the client must be heard before a statement (§15)")
			}
		} else {
			if len(t.Topics) > 0 {
				v.Add("/to_kela/topics", "belongs only to social_work_statement")
			}
		}
	}
	if dp := req.DirectPayment; dp != nil {
		validateDirectPayment(&v, dp)
	}
	if jm := req.JointMeeting; jm != nil {
		checkText(&v, "/joint_meeting/subject", jm.Subject, false, MaxSubjectLen)
		checkText(&v, "/joint_meeting/text", jm.Text, true, MaxTextLen)
		if len(jm.ProposedDates) > 10 {
			v.Add("/joint_meeting/proposed_dates", "must have at most 10 dates")
		}
		for i, d := range jm.ProposedDates {
			checkDate(&v, "/joint_meeting/proposed_dates/"+itoa(i), d, true)
		}
	}
	return recipient, v.Err("the referral is invalid")
}

func (s *Service) validateClient(v *Violations, c *Client, dir Direction) OrgID {
	if c.PersonalID == "" {
		v.Add("/client/personal_id", "is required")
	} else if err := CheckPersonalID(c.PersonalID); err != nil {
		v.Add("/client/personal_id", "is not a valid Finnish personal identity code: %s", err.Error())
	}
	checkText(v, "/client/name", c.Name, true, MaxNameLen)
	var recipient OrgID
	switch {
	case c.HomeMunicipality == "" && dir == KelaToCounty:
		v.Add("/client/home_municipality", "is required: Kela's referrals are routed by the client's home municipality")
	case c.HomeMunicipality == "":
	case !reMuniCode.MatchString(c.HomeMunicipality):
		v.Add("/client/home_municipality", "must be a 3-digit municipality code")
	default:
		m, ok := s.Registry.Municipality(c.HomeMunicipality)
		switch {
		case !ok:
			v.Add("/client/home_municipality", "unknown municipality code")
		case m.Aland:
			v.Add("/client/home_municipality", "is in Åland, which is outside the wellbeing services counties: contact the municipality directly")
		default:
			recipient = m.County
		}
	}
	if c.Language != "" && !reLanguage.MatchString(c.Language) {
		v.Add("/client/language", "must be an ISO 639-1 code such as fi, sv or en")
	}
	if c.Phone != "" && !rePhone.MatchString(c.Phone) {
		v.Add("/client/phone", "must be a phone number such as +358401234567")
	}
	if c.PreferredContactChannel != "" && !ContactChannels[c.PreferredContactChannel] {
		v.Add("/client/preferred_contact_channel", "must be phone, letter, eservice or visit")
	}
	return recipient
}

func validateNeed(v *Violations, n *SocialWorkNeed) {
	checkEnumList(v, "/social_work_need/need_flags", n.NeedFlags, NeedFlags, true)
	reduction := contains(n.NeedFlags, "basic_amount_reduction")
	switch {
	case reduction && n.ReductionLevel != 1 && n.ReductionLevel != 2:
		v.Add("/social_work_need/reduction_level", "must be 1 or 2 with basic_amount_reduction")
	case !reduction && n.ReductionLevel != 0:
		v.Add("/social_work_need/reduction_level", "belongs only with the basic_amount_reduction flag")
	}
	switch n.Consent {
	case "given":
	case "not_given":
		// SHL §35: without consent only when health, development or safety is at immediate risk.
		if !n.ImmediateNeed {
			v.Add("/social_work_need/immediate_need", "must be true when consent is not_given (SHL §35)")
		}
		if n.ConsentJustification == "" {
			v.Add("/social_work_need/consent_justification", "is required when consent is not_given (SHL §35)")
		}
	case "":
		v.Add("/social_work_need/consent", "is required")
	default:
		v.Add("/social_work_need/consent", "must be given or not_given")
	}
	checkText(v, "/social_work_need/consent_justification", n.ConsentJustification, false, MaxTextLen)
	checkText(v, "/social_work_need/description", n.Description, false, MaxTextLen)
}

func validateSupport(v *Violations, ss *SupplementarySupport) {
	checkEnumList(v, "/supplementary_support/support_types", ss.SupportTypes, SupportTypes, true)
	received, okR := checkDate(v, "/supplementary_support/application_received_at_kela", ss.ApplicationReceivedAtKela, true)
	decided, okD := checkDate(v, "/supplementary_support/basic_decision_date", ss.BasicDecisionDate, false)
	if okR && okD && decided.Before(received) {
		v.Add("/supplementary_support/basic_decision_date", "cannot be before the application was received")
	}
	if len(ss.ExpenseItems) > MaxListLen {
		v.Add("/supplementary_support/expense_items", "must have at most %d items", MaxListLen)
	}
	for i, it := range ss.ExpenseItems {
		p := "/supplementary_support/expense_items/" + itoa(i)
		if !ExpenseTypes[it.Type] {
			v.Add(p+"/type", "unknown expense type")
		}
		if it.AmountEUR != "" && !reAmount.MatchString(it.AmountEUR) {
			v.Add(p+"/amount_eur", "must be a decimal amount such as 84.50")
		}
		checkText(v, p+"/text", it.Text, false, MaxTextLen)
	}
	if len(ss.DocumentRefs) > MaxListLen {
		v.Add("/supplementary_support/document_refs", "must have at most %d references", MaxListLen)
	}
	for i, d := range ss.DocumentRefs {
		if !reDocRef.MatchString(d) {
			v.Add("/supplementary_support/document_refs/"+itoa(i), "must be a document id (letters, digits, . _ : / -), never content")
		}
	}
}

func validateDirectPayment(v *Violations, dp *DirectPayment) {
	if len(dp.Bills) == 0 {
		v.Add("/direct_payment/bills", "needs at least one bill")
	}
	if len(dp.Bills) > MaxListLen {
		v.Add("/direct_payment/bills", "must have at most %d bills", MaxListLen)
	}
	for i, b := range dp.Bills {
		p := "/direct_payment/bills/" + itoa(i)
		checkText(v, p+"/biller", b.Biller, true, MaxSubjectLen)
		if !reReference.MatchString(b.Reference) {
			v.Add(p+"/reference", "must be 1–64 letters, digits, spaces or . _ / -")
		}
		if !reAmount.MatchString(b.AmountEUR) {
			v.Add(p+"/amount_eur", "must be a decimal amount such as 84.50")
		}
		if !BillPeriods[b.Period] {
			v.Add(p+"/period", "must be once, monthly, quarterly or yearly")
		}
	}
	from, okF := checkDate(v, "/direct_payment/valid_from", dp.ValidFrom, true)
	until, okU := checkDate(v, "/direct_payment/valid_until", dp.ValidUntil, false)
	if okF && okU && until.Before(from) {
		v.Add("/direct_payment/valid_until", "cannot be before valid_from")
	}
}

func contains[T comparable](xs []T, x T) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
