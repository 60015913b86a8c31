package domain

import "time"

// Referral is one case passed from Kela to a county or back: who sent it to whom, about which
// client, in which state, with which deadlines. It is the unit of authorization: only the
// sender and the recipient organisation may see or act on it.
type Referral struct {
	ID          string    `json:"id"`
	Kind        Kind      `json:"kind"`
	Direction   Direction `json:"direction"`
	Status      Status    `json:"status"`
	Urgency     Urgency   `json:"urgency"`
	Sender      OrgID     `json:"sender"`
	Recipient   OrgID     `json:"recipient"`
	KelaCaseRef string    `json:"kela_case_ref,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Version grows by one with every change; the HTTP layer uses it as the ETag.
	Version   int       `json:"version"`
	Deadlines Deadlines `json:"deadlines"`

	Client               Client                `json:"client"`
	SocialWorkNeed       *SocialWorkNeed       `json:"social_work_need,omitempty"`
	SupplementarySupport *SupplementarySupport `json:"supplementary_support,omitempty"`
	ToKela               *ToKela               `json:"to_kela,omitempty"`
	DirectPayment        *DirectPayment        `json:"direct_payment,omitempty"`
	JointMeeting         *JointMeeting         `json:"joint_meeting,omitempty"`

	// ResumeStatus is the state an info_requested referral returns to when the sender answers.
	ResumeStatus Status     `json:"resume_status,omitempty"`
	Outcome      *Outcome   `json:"outcome,omitempty"`
	Closure      *Closure   `json:"closure,omitempty"`
	ForwardedTo  string     `json:"forwarded_to,omitempty"`
	ForwardedOf  string     `json:"forwarded_from,omitempty"`
	Bounces      int        `json:"bounces"`
	Times        Milestones `json:"milestones"`
	Messages     int        `json:"message_count"`
	Timeline     int        `json:"timeline_count"`
	ClientKey    string     `json:"-"` // keyed hash of the identity code, for client search
}

// Deadlines are the statutory clocks of a referral (DOMAIN §7), each the end of its last day.
type Deadlines struct {
	AcknowledgeBy *time.Time `json:"acknowledge_by,omitempty"`
	RespondBy     *time.Time `json:"respond_by,omitempty"`
	// KelaHandoffBy is Kela's own target for transferring a supplementary-support application
	// (§14 c, "without delay" after the basic-support decision).
	KelaHandoffBy *time.Time `json:"kela_handoff_by,omitempty"`
	// KelaHandoffLateDays is how many business days after KelaHandoffBy Kela sent it.
	KelaHandoffLateDays *int `json:"kela_handoff_late_days,omitempty"`
	// Basis names the rule the deadlines come from, for people reading them.
	Basis string `json:"basis,omitempty"`
}

// Milestones record when the clocks stopped: the raw material of response-time figures.
type Milestones struct {
	AcknowledgedAt  *time.Time `json:"acknowledged_at,omitempty"`
	FirstResponseAt *time.Time `json:"first_response_at,omitempty"`
	ClosedAt        *time.Time `json:"closed_at,omitempty"`
}

// Open reports whether the referral is not in a terminal state.
func (r *Referral) Open() bool { return !r.Status.Terminal() }

// SideOf returns the side org is on in this referral, and false if it is on neither.
func (r *Referral) SideOf(org OrgID) (Side, bool) {
	switch org {
	case r.Sender:
		return SenderSide, true
	case r.Recipient:
		return RecipientSide, true
	}
	return "", false
}

// Client is the person the referral is about: special-category personal data. It never
// appears in URLs, logs, metric labels or events.
type Client struct {
	PersonalID       string `json:"personal_id"`
	Name             string `json:"name"`
	HomeMunicipality string `json:"home_municipality,omitempty"`
	Language         string `json:"language,omitempty"`
	NeedsInterpreter bool   `json:"needs_interpreter"`
	Phone            string `json:"phone,omitempty"`
	// PreferredContactChannel is how the client prefers to be reached: phone, letter,
	// eservice, visit.
	PreferredContactChannel string `json:"preferred_contact_channel,omitempty"`
	CanUseEServices         *bool  `json:"can_use_eservices,omitempty"`
}

// SocialWorkNeed is the content of a social_work_need notification (ilmoitus
// sosiaalihuollon tarpeesta, SHL §35).
type SocialWorkNeed struct {
	NeedFlags []string `json:"need_flags"`
	// ReductionLevel is 1 or 2 with the basic_amount_reduction flag; at level 2 the referral
	// is mandatory (Toimeentulotukilaki §10 a).
	ReductionLevel int    `json:"reduction_level,omitempty"`
	Consent        string `json:"consent"`
	ImmediateNeed  bool   `json:"immediate_need"`
	// ConsentJustification says why the client's health, development or safety is at
	// immediate risk when notifying without consent.
	ConsentJustification string `json:"consent_justification,omitempty"`
	Description          string `json:"description,omitempty"`
}

// SupplementarySupport is the content of a supplementary_support_handoff (§14 c).
type SupplementarySupport struct {
	SupportTypes              []string      `json:"support_types"`
	ApplicationReceivedAtKela string        `json:"application_received_at_kela"`
	BasicDecisionDate         string        `json:"basic_decision_date,omitempty"`
	ExpenseItems              []ExpenseItem `json:"expense_items,omitempty"`
	DocumentRefs              []string      `json:"document_refs,omitempty"`
}

// ExpenseItem is one expense the client asks supplementary or preventive support for.
type ExpenseItem struct {
	Type      string `json:"type"`
	AmountEUR string `json:"amount_eur,omitempty"`
	Text      string `json:"text,omitempty"`
}

// ToKela is the content of the county → Kela kinds.
type ToKela struct {
	Subject string `json:"subject"`
	Text    string `json:"text"`
	// Topics of a social_work_statement: the three of §15.
	Topics []string `json:"topics,omitempty"`
	// ClientHeard must be true on a social_work_statement: the client was heard first.
	ClientHeard bool `json:"client_heard,omitempty"`
}

// DirectPayment is the content of a direct_payment_request.
type DirectPayment struct {
	Bills      []Bill `json:"bills"`
	ValidFrom  string `json:"valid_from"`
	ValidUntil string `json:"valid_until,omitempty"`
}

// Bill is one bill Kela is asked to pay straight to the biller.
type Bill struct {
	Biller    string `json:"biller"`
	Reference string `json:"reference"`
	AmountEUR string `json:"amount_eur"`
	Period    string `json:"period"`
}

// JointMeeting is the content of a joint_meeting_request (§14 d).
type JointMeeting struct {
	Subject       string   `json:"subject,omitempty"`
	Text          string   `json:"text"`
	ProposedDates []string `json:"proposed_dates,omitempty"`
}

// Outcome is what the recipient reports when completing a referral.
type Outcome struct {
	Outcome      string    `json:"outcome"`
	Feedback     string    `json:"feedback,omitempty"`
	Decision     string    `json:"decision,omitempty"`
	DecisionDate string    `json:"decision_date,omitempty"`
	Text         string    `json:"text,omitempty"`
	At           time.Time `json:"at"`
	By           string    `json:"by"`
}

// Closure records why a referral was returned, withdrawn or forwarded.
type Closure struct {
	Action Action    `json:"action"`
	Reason string    `json:"reason,omitempty"`
	Text   string    `json:"text,omitempty"`
	At     time.Time `json:"at"`
	By     string    `json:"by"`
}

// Message is one entry of a referral's two-way thread.
type Message struct {
	ID         string    `json:"id"`
	ReferralID string    `json:"referral_id"`
	Type       string    `json:"type"` // message, question (request-info), answer
	Text       string    `json:"text"`
	AuthorID   string    `json:"author"`
	AuthorName string    `json:"author_name,omitempty"`
	Org        OrgID     `json:"org"`
	At         time.Time `json:"at"`
}

// TimelineEntry records one change of a referral: who, from which organisation, when, from
// which state to which, and why. Seq starts at 1 and grows by one per change.
type TimelineEntry struct {
	ReferralID string    `json:"referral_id"`
	Seq        int       `json:"seq"`
	At         time.Time `json:"at"`
	Action     Action    `json:"action"`
	From       Status    `json:"from,omitempty"`
	To         Status    `json:"to"`
	ActorID    string    `json:"actor"`
	ActorOrg   OrgID     `json:"actor_org"`
	ActorRole  Role      `json:"actor_role,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Related    string    `json:"related_referral,omitempty"`
}
