package domain

// Kind is what a referral is about. Every kind but joint_meeting_request has a fixed direction.
type Kind string

// Kela → county kinds.
const (
	// KindSocialWorkNeed is Kela's notification of a possible social-care need (ilmoitus
	// sosiaalihuollon tarpeesta, SHL 1301/2014 §35, §36; Toimeentulotukilaki §10 a, §14 e).
	KindSocialWorkNeed Kind = "social_work_need"
	// KindSupplementarySupportHandoff is the transfer of an application for supplementary or
	// preventive social assistance to the county (hakemuksen siirto, Toimeentulotukilaki §14 c).
	KindSupplementarySupportHandoff Kind = "supplementary_support_handoff"
)

// County → Kela kinds.
const (
	// KindSocialWorkStatement is a social-care statement to Kela (sosiaalihuollon lausunto, §15).
	KindSocialWorkStatement Kind = "social_work_statement"
	// KindDecisionReviewRequest asks Kela to review or correct a decision.
	KindDecisionReviewRequest Kind = "decision_review_request"
	// KindDirectPaymentRequest asks Kela to pay named bills straight to the biller.
	KindDirectPaymentRequest Kind = "direct_payment_request"
	// KindContactPersonRequest asks for a named Kela contact person (asiakkuusvastaava).
	KindContactPersonRequest Kind = "contact_person_request"
)

// KindJointMeetingRequest asks for a joint meeting of the client, Kela and social work
// (Toimeentulotukilaki §14 d). Either side may send it.
const KindJointMeetingRequest Kind = "joint_meeting_request"

// Kinds lists every kind in a stable order.
var Kinds = []Kind{
	KindSocialWorkNeed, KindSupplementarySupportHandoff,
	KindSocialWorkStatement, KindDecisionReviewRequest, KindDirectPaymentRequest, KindContactPersonRequest,
	KindJointMeetingRequest,
}

// Direction says which way a referral goes.
type Direction string

// Directions.
const (
	KelaToCounty Direction = "kela_to_county"
	CountyToKela Direction = "county_to_kela"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// AllowedDirection reports whether referrals of kind k may go in direction d.
func (k Kind) AllowedDirection(d Direction) bool {
	switch k {
	case KindSocialWorkNeed, KindSupplementarySupportHandoff:
		return d == KelaToCounty
	case KindSocialWorkStatement, KindDecisionReviewRequest, KindDirectPaymentRequest, KindContactPersonRequest:
		return d == CountyToKela
	case KindJointMeetingRequest:
		return d == KelaToCounty || d == CountyToKela
	}
	return false
}

// ToKela reports whether k is one of the county → Kela kinds.
func (k Kind) ToKela() bool {
	switch k {
	case KindSocialWorkStatement, KindDecisionReviewRequest, KindDirectPaymentRequest, KindContactPersonRequest:
		return true
	}
	return false
}

// Urgency of a referral.
type Urgency string

// Urgencies.
const (
	Normal Urgency = "normal"
	Urgent Urgency = "urgent"
)

// Valid reports whether u is known.
func (u Urgency) Valid() bool { return u == Normal || u == Urgent }
