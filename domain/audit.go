package domain

import (
	"context"
	"slices"
	"time"
)

// Purpose is why a caller reads or changes client data (käyttötarkoitus). Act 703/2023 §10
// requires it in the access log; the HTTP layer takes it from the X-Purpose header.
type Purpose string

// Purposes a caller may state.
const (
	// PurposeBenefitProcessing is Kela processing a benefit application or decision
	// (etuuskäsittely).
	PurposeBenefitProcessing Purpose = "benefit_processing"
	// PurposeSocialAssistanceProcessing is a county processing an application for
	// supplementary or preventive social assistance.
	PurposeSocialAssistanceProcessing Purpose = "social_assistance_processing"
	// PurposeServiceNeedAssessment is a county assessing the client's need for social care
	// (palvelutarpeen arviointi, SHL §36).
	PurposeServiceNeedAssessment Purpose = "service_need_assessment"
	// PurposeClientContact is reaching the client or arranging a (joint) meeting.
	PurposeClientContact Purpose = "client_contact"
	// PurposeSupervision is a supervisor following deadlines and the handling of cases.
	PurposeSupervision Purpose = "supervision"
	// PurposeAudit is an auditor or data-protection officer inspecting the access log.
	PurposeAudit Purpose = "audit"
	// PurposeDataSubjectRequest is answering the client's own request: the §11 log extract or
	// the right of access.
	PurposeDataSubjectRequest Purpose = "data_subject_request"
)

// PurposeRetention marks the erasures of the retention job. Callers cannot state it.
const PurposeRetention Purpose = "retention"

// Purposes lists the purposes a caller may state, in a stable order. The OpenAPI spec's
// Purpose enum must list the same codes.
var Purposes = []Purpose{PurposeBenefitProcessing, PurposeSocialAssistanceProcessing,
	PurposeServiceNeedAssessment, PurposeClientContact, PurposeSupervision, PurposeAudit,
	PurposeDataSubjectRequest}

// Valid reports whether a caller may state p.
func (p Purpose) Valid() bool { return slices.Contains(Purposes, p) }

// Access is the request a read or change of client data is made in: the stated purpose and
// the request id, both written to the access log.
type Access struct {
	Purpose   Purpose
	RequestID string
}

type accessKey struct{}

// WithAccess returns ctx carrying a. The store stamps a onto the access-log entries of a
// Change written under ctx (domain commands record who and what; the request says why).
func WithAccess(ctx context.Context, a Access) context.Context {
	return context.WithValue(ctx, accessKey{}, a)
}

// AccessFrom returns the Access of ctx, or the zero Access.
func AccessFrom(ctx context.Context) Access {
	a, _ := ctx.Value(accessKey{}).(Access)
	return a
}

// AuditAction is what an access-log entry records. Changes use the name of their Action
// (create, receive, …, message, answer); reads and the log's own uses have their own.
type AuditAction string

// Access-log actions that are not changes.
const (
	AuditRead          AuditAction = "read"           // GET one referral
	AuditList          AuditAction = "list"           // a referral on a list page
	AuditReadMessages  AuditAction = "read_messages"  // a referral's thread
	AuditReadTimeline  AuditAction = "read_timeline"  // a referral's timeline
	AuditClientSearch  AuditAction = "client_search"  // a referral found by identity code
	AuditCreateReplay  AuditAction = "create_replay"  // an idempotent create returned again
	AuditQuery         AuditAction = "audit_query"    // a page of the access log read
	AuditClientExtract AuditAction = "client_extract" // a client's log extract (§11)
	AuditErase         AuditAction = "erase"          // personal data erased (retention)
)

// RetentionUser is the user id of the retention job's entries.
const RetentionUser = "system:retention"

// AuditEntry is one record of the access log (käyttöloki, Act 703/2023 §10): who (user id
// and name, organisation, roles) did what (action) to which referral, when, why (purpose),
// in which request, and — for a disclosure to the other organisation — on what legal basis
// or consent. It never holds an identity code or free text: the client is named by the
// referral id and, for searches and extracts, by the keyed client hash.
//
// Seq and Prev are set by the store: entries form a hash chain (Prev is the hex SHA-256 of
// the previous entry as stored), so an edited or deleted entry is found by verification.
type AuditEntry struct {
	Seq       uint64      `json:"seq"`
	Prev      string      `json:"prev,omitempty"`
	At        time.Time   `json:"at"`
	Action    AuditAction `json:"action"`
	UserID    string      `json:"user_id"`
	UserName  string      `json:"user_name,omitempty"`
	Org       OrgID       `json:"org,omitempty"`
	Roles     []Role      `json:"roles,omitempty"`
	Purpose   Purpose     `json:"purpose,omitempty"`
	RequestID string      `json:"request_id,omitempty"`
	// The referral whose data was used, with its kind and parties (the registers it is in).
	ReferralID string `json:"referral_id,omitempty"`
	Kind       Kind   `json:"kind,omitempty"`
	Sender     OrgID  `json:"sender,omitempty"`
	Recipient  OrgID  `json:"recipient,omitempty"`
	// Disclosure is set when the data passed between organisations.
	Disclosure *Disclosure `json:"disclosure,omitempty"`
	// ClientKey is the keyed hash of the identity code on client searches and extracts.
	ClientKey string `json:"client_key,omitempty"`
	// Query describes an access-log query (its filter, no personal data) and Count how many
	// entries it returned.
	Query string `json:"query,omitempty"`
	Count int    `json:"count,omitempty"`
	// Items are the referrals one read showed together (a list page), each with its parties
	// and disclosure; the entry's own referral fields are then empty. One entry per page
	// keeps the log a tenth of the size of one entry per referral.
	Items []AuditItem `json:"items,omitempty"`
}

// AuditItem is one referral of a read that showed several.
type AuditItem struct {
	ReferralID string      `json:"referral_id"`
	Kind       Kind        `json:"kind"`
	Sender     OrgID       `json:"sender"`
	Recipient  OrgID       `json:"recipient"`
	Disclosure *Disclosure `json:"disclosure,omitempty"`
}

// Disclosure records data passing from one organisation's register to the other's
// (luovutus): from whom, to whom and on which basis.
type Disclosure struct {
	From       OrgID  `json:"from"`
	To         OrgID  `json:"to"`
	LegalBasis string `json:"legal_basis"`
	// Consent is the client's consent where the basis needs one: "given", or
	// "not_given_immediate_need" (SHL §35: immediate risk to health, development or safety).
	Consent string `json:"consent,omitempty"`
}

// VisibleTo reports whether an auditor of org may see the entry: org is the acting
// organisation or a party to the referral, or to one of its items (the data is in its
// register).
func (e *AuditEntry) VisibleTo(org OrgID) bool {
	if org == "" {
		return false
	}
	if e.Org == org || e.Sender == org || e.Recipient == org {
		return true
	}
	for i := range e.Items {
		if e.Items[i].Sender == org || e.Items[i].Recipient == org {
			return true
		}
	}
	return false
}

// ViewFor returns the entry as an auditor of org sees it, and whether it may see it at all.
// Of a multi-referral entry it keeps the items whose data is in org's register (all of them
// when org did the reading) and, when referrals are given, only those; an entry left with
// none of them is not shown.
func (e AuditEntry) ViewFor(org OrgID, referrals ...string) (AuditEntry, bool) {
	if !e.VisibleTo(org) {
		return e, false
	}
	if len(e.Items) == 0 {
		return e, len(referrals) == 0 || slices.Contains(referrals, e.ReferralID)
	}
	items := make([]AuditItem, 0, len(e.Items))
	for _, it := range e.Items {
		if (e.Org == org || it.Sender == org || it.Recipient == org) &&
			(len(referrals) == 0 || slices.Contains(referrals, it.ReferralID)) {
			items = append(items, it)
		}
	}
	e.Items = items
	return e, len(items) > 0
}

// legalBases is the legal basis of disclosing each kind between Kela and a county (DOMAIN §4).
// DOMAIN §4 names no section for decision_review_request, direct_payment_request and
// contact_person_request; their entry names the act only and must be confirmed by the
// data-protection officer.
var legalBases = map[Kind]string{
	KindSocialWorkNeed:              "SHL 1301/2014 §35, §36; Toimeentulotukilaki 1412/1997 §10 a, §14 e",
	KindSupplementarySupportHandoff: "Toimeentulotukilaki 1412/1997 §14 c (transfer at the client's request)",
	KindSocialWorkStatement:         "Toimeentulotukilaki 1412/1997 §15",
	KindJointMeetingRequest:         "Toimeentulotukilaki 1412/1997 §14 d",
	KindDecisionReviewRequest:       "Toimeentulotukilaki 1412/1997 (Kela–county cooperation)",
	KindDirectPaymentRequest:        "Toimeentulotukilaki 1412/1997 (Kela–county cooperation)",
	KindContactPersonRequest:        "Toimeentulotukilaki 1412/1997 (Kela–county cooperation)",
}

// LegalBasis returns the legal basis of disclosing a referral of kind k, or "" for an
// unknown kind.
func LegalBasis(k Kind) string { return legalBases[k] }

// disclosure returns the disclosure of r's data when org uses it, or nil. change says the
// organisation writes (its data goes to the other party); otherwise it reads (the other
// party's data comes to it). The recipient reading the referral always receives the
// sender's data; the sender receives the recipient's once the recipient has acted on it.
func disclosure(r *Referral, org OrgID, change bool) *Disclosure {
	d := &Disclosure{LegalBasis: LegalBasis(r.Kind)}
	if n := r.SocialWorkNeed; n != nil {
		switch {
		case n.Consent == "given":
			d.Consent = "given"
		case n.Consent == "not_given" && n.ImmediateNeed:
			d.Consent = "not_given_immediate_need"
		}
	}
	switch {
	case change:
		d.From, d.To = org, r.Recipient
		if org == r.Recipient {
			d.To = r.Sender
		}
	case org == r.Recipient:
		d.From, d.To = r.Sender, r.Recipient
	case org == r.Sender && r.Times.AcknowledgedAt != nil:
		d.From, d.To = r.Recipient, r.Sender
	default:
		return nil
	}
	return d
}

// newEntry is the entry of actor's action on r (nil: no referral) at at.
func newEntry(actor Actor, action AuditAction, r *Referral, at time.Time) AuditEntry {
	e := AuditEntry{At: at.UTC(), Action: action, UserID: actor.UserID, UserName: actor.Name,
		Org: actor.Org, Roles: slices.Clone(actor.Roles)}
	if r != nil {
		e.ReferralID, e.Kind, e.Sender, e.Recipient = r.ID, r.Kind, r.Sender, r.Recipient
	}
	return e
}

// changeEntry is the access-log entry of a change a to r: every change is seen by the other
// party, so it is a disclosure. Purpose and request id are stamped by the store from the
// context of the Update (WithAccess).
func changeEntry(r *Referral, actor Actor, a Action, at time.Time) AuditEntry {
	e := newEntry(actor, AuditAction(a), r, at)
	e.Disclosure = disclosure(r, actor.Org, true)
	return e
}

// readEntry is the access-log entry of actor reading r for the purpose in acc.
func readEntry(r *Referral, actor Actor, action AuditAction, acc Access, at time.Time) AuditEntry {
	e := newEntry(actor, action, r, at)
	e.Purpose, e.RequestID = acc.Purpose, acc.RequestID
	e.Disclosure = disclosure(r, actor.Org, false)
	return e
}

// LogAccess appends the access-log entry of the referrals the actor is about to be shown, in
// its own transaction, and returns when it is durable: one referral's entry names it, several
// (a list page) are the items of one entry. Call it before sending the response: an error
// means the data must not be sent. Purpose and request id come from ctx (WithAccess). No
// referrals, nothing to log.
func (s *Service) LogAccess(ctx context.Context, actor Actor, action AuditAction, refs ...*Referral) error {
	if len(refs) == 0 {
		return nil
	}
	acc, now := AccessFrom(ctx), s.Clock.Now()
	if len(refs) == 1 {
		return s.Store.AppendAudit(ctx, []AuditEntry{readEntry(refs[0], actor, action, acc, now)})
	}
	e := newEntry(actor, action, nil, now)
	e.Purpose, e.RequestID = acc.Purpose, acc.RequestID
	e.Items = make([]AuditItem, len(refs))
	for i, r := range refs {
		e.Items[i] = AuditItem{ReferralID: r.ID, Kind: r.Kind, Sender: r.Sender, Recipient: r.Recipient,
			Disclosure: disclosure(r, actor.Org, false)}
	}
	return s.Store.AppendAudit(ctx, []AuditEntry{e})
}

// LogClientSearch logs a client search: one entry per referral found, each with the keyed
// hash of the identity code, or one entry with the hash alone if none was found (the search
// itself used the person's identity code). Call it before sending the response.
func (s *Service) LogClientSearch(ctx context.Context, actor Actor, personalID string, refs []*Referral) error {
	acc, now, key := AccessFrom(ctx), s.Clock.Now(), s.ClientKey(personalID)
	if len(refs) == 0 {
		e := newEntry(actor, AuditClientSearch, nil, now)
		e.Purpose, e.RequestID, e.ClientKey = acc.Purpose, acc.RequestID, key
		return s.Store.AppendAudit(ctx, []AuditEntry{e})
	}
	entries := make([]AuditEntry, len(refs))
	for i, r := range refs {
		entries[i] = readEntry(r, actor, AuditClientSearch, acc, now)
		entries[i].ClientKey = key
	}
	return s.Store.AppendAudit(ctx, entries)
}

// AuditFilter selects access-log entries for an auditor of Org. With ReferralID, that
// referral's entries; else with UserID, that user's; else all of Org's. From and To (zero:
// open) bound the time, To exclusive. After is the cursor of the previous page.
type AuditFilter struct {
	Org        OrgID
	ReferralID string
	UserID     string
	From, To   time.Time
	After      string
	Limit      int
}

// AuditPage is one page of the access log, oldest first. Next is the cursor of the next
// page, "" at the end.
type AuditPage struct {
	Items []AuditEntry
	Next  string
}

// ExtractFilter selects an auditor's view of one client's log: the entries of the
// referrals and those holding the client key, visible to Org, in log order.
type ExtractFilter struct {
	Org         OrgID
	ReferralIDs []string
	ClientKey   string
}

// ClientExtract is a client's access-log extract (Act 703/2023 §11): who used or received
// the person's data, when, why and on what basis.
type ClientExtract struct {
	Referrals []string
	Entries   []AuditEntry
}

// AuditLog returns one page of the access log for an auditor, scoped to entries the
// auditor's organisation may see, and logs the query itself before returning. Returns
// EForbidden for anyone but an auditor.
func (s *Service) AuditLog(ctx context.Context, actor Actor, f AuditFilter) (AuditPage, error) {
	if !actor.Has(RoleAuditor) {
		return AuditPage{}, Errorf(EForbidden, "only auditors may read the access log")
	}
	f.Org = actor.Org
	page, err := s.Store.Audit(ctx, f)
	if err != nil {
		return AuditPage{}, err
	}
	acc := AccessFrom(ctx)
	e := newEntry(actor, AuditQuery, nil, s.Clock.Now())
	e.Purpose, e.RequestID, e.Count = acc.Purpose, acc.RequestID, len(page.Items)
	e.ReferralID, e.Query = f.ReferralID, describeFilter(f)
	if err := s.Store.AppendAudit(ctx, []AuditEntry{e}); err != nil {
		return AuditPage{}, err
	}
	return page, nil
}

func describeFilter(f AuditFilter) string {
	q := ""
	add := func(k, v string) {
		if v == "" {
			return
		}
		if q != "" {
			q += "&"
		}
		q += k + "=" + v
	}
	add("referral", f.ReferralID)
	add("user", f.UserID)
	if !f.From.IsZero() {
		add("from", f.From.UTC().Format(time.RFC3339))
	}
	if !f.To.IsZero() {
		add("to", f.To.UTC().Format(time.RFC3339))
	}
	return q
}

// ClientExtract returns the §11 extract of the person with the identity code, as far as the
// auditor's organisation may see it: the person's referrals that organisation is party to
// (found through the keyed client index) and every log entry about them or holding the
// person's client key. The extract is itself logged before it is returned. Returns
// EForbidden for anyone but an auditor and EInvalid for an invalid identity code.
func (s *Service) ClientExtract(ctx context.Context, actor Actor, personalID string) (*ClientExtract, error) {
	if !actor.Has(RoleAuditor) {
		return nil, Errorf(EForbidden, "only auditors may produce a client's log extract")
	}
	if err := CheckPersonalID(personalID); err != nil {
		var v Violations
		v.Add("/personal_id", "is not a valid Finnish personal identity code: %s", err.Error())
		return nil, v.Err("the request is invalid")
	}
	key := s.ClientKey(personalID)
	refs, err := s.Store.ClientReferrals(ctx, key)
	if err != nil {
		return nil, err
	}
	out := &ClientExtract{Referrals: []string{}}
	for _, r := range refs {
		if _, ok := r.SideOf(actor.Org); ok {
			out.Referrals = append(out.Referrals, r.ID)
		}
	}
	out.Entries, err = s.Store.AuditOf(ctx, ExtractFilter{Org: actor.Org, ReferralIDs: out.Referrals, ClientKey: key})
	if err != nil {
		return nil, err
	}
	acc := AccessFrom(ctx)
	e := newEntry(actor, AuditClientExtract, nil, s.Clock.Now())
	e.Purpose, e.RequestID, e.ClientKey, e.Count = acc.Purpose, acc.RequestID, key, len(out.Entries)
	if err := s.Store.AppendAudit(ctx, []AuditEntry{e}); err != nil {
		return nil, err
	}
	return out, nil
}

// ErasedText replaces free text and names erased under the retention policy.
const ErasedText = "[erased]"

// EraseReferral replaces the personal data of r with tombstones: the client block, every
// free text, the Kela case reference, need flags, expense items, document references and
// bills. Codes, states, dates, deadlines, milestones and staff user ids stay: they are what
// the response-time figures and the access log need, and without the client block and the
// client index entry (the caller clears ClientKey) they no longer name the person here.
func EraseReferral(r *Referral) {
	r.Client = Client{Name: ErasedText}
	r.ClientKey = ""
	r.KelaCaseRef = ""
	erase := func(s *string) {
		if *s != "" {
			*s = ErasedText
		}
	}
	if n := r.SocialWorkNeed; n != nil {
		n.NeedFlags, n.ReductionLevel = []string{}, 0
		erase(&n.Description)
		erase(&n.ConsentJustification)
	}
	if s := r.SupplementarySupport; s != nil {
		s.ExpenseItems, s.DocumentRefs = nil, nil
	}
	if k := r.ToKela; k != nil {
		erase(&k.Subject)
		erase(&k.Text)
	}
	if d := r.DirectPayment; d != nil {
		d.Bills = []Bill{}
	}
	if m := r.JointMeeting; m != nil {
		erase(&m.Subject)
		erase(&m.Text)
	}
	if o := r.Outcome; o != nil {
		erase(&o.Text)
	}
	if c := r.Closure; c != nil {
		erase(&c.Text)
	}
}

// EraseMessage replaces a message's text with a tombstone; who wrote it and when stay.
func EraseMessage(m *Message) {
	if m.Text != "" {
		m.Text = ErasedText
	}
}

// ErasureEntry is the access-log entry of the retention job erasing r's personal data.
func ErasureEntry(r *Referral, at time.Time) AuditEntry {
	e := newEntry(Actor{UserID: RetentionUser}, AuditErase, r, at)
	e.Purpose = PurposeRetention
	return e
}
