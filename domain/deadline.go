package domain

import "time"

// BusinessCalendar counts Finnish business days (domain/calendar implements it).
type BusinessCalendar interface {
	// Deadline returns the end of the n-th business day after from's Helsinki date; n == 0
	// means the end of from's date if it is a business day, else of the next one.
	Deadline(from time.Time, n int) time.Time
	// BusinessDaysBetween counts business days after from's date up to and including to's.
	BusinessDaysBetween(from, to time.Time) int
	// IsBusinessDay reports whether t's Helsinki date is a business day.
	IsBusinessDay(t time.Time) bool
	// Location returns the zone (Europe/Helsinki) in which dates are judged.
	Location() *time.Location
}

// DeadlineRule is the number of business days for one kind and urgency, with its legal basis.
type DeadlineRule struct {
	AcknowledgeDays int    `json:"acknowledge_days"`
	RespondDays     int    `json:"respond_days"`
	Basis           string `json:"basis"`
}

// DeadlinePolicy computes a referral's statutory deadlines in business days (DOMAIN §7).
type DeadlinePolicy struct {
	Calendar BusinessCalendar
	// Rules per kind and urgency; DefaultDeadlineRules gives the defaults of DOMAIN §7.
	Rules map[Kind]map[Urgency]DeadlineRule
	// KelaHandoffDays is Kela's target for transferring an application after its basic-support
	// decision (§14 c "without delay"): by default the next business day.
	KelaHandoffDays int
	// WarningLead is how much business time before a deadline its deadline_warning fires (see
	// WarnAt); DefaultWarningLead by default. Zero or less turns warnings off.
	WarningLead time.Duration
}

// DefaultDeadlineRules returns the defaults of DOMAIN §7.
func DefaultDeadlineRules() map[Kind]map[Urgency]DeadlineRule {
	// A new map per kind, so changing one kind's rules cannot change another's.
	toKela := func() map[Urgency]DeadlineRule {
		return map[Urgency]DeadlineRule{
			Normal: {1, 7, "Toimeentulotukilaki 1412/1997 §14 a: 7 business days"},
			Urgent: {1, 1, "Toimeentulotukilaki 1412/1997 §14 b: urgent, next business day"},
		}
	}
	return map[Kind]map[Urgency]DeadlineRule{
		KindSupplementarySupportHandoff: {
			Normal: {1, 7, "Toimeentulotukilaki 1412/1997 §14 a: decision by the 7th business day after receipt"},
			Urgent: {1, 1, "Toimeentulotukilaki 1412/1997 §14 b: urgent, same or next business day"},
		},
		KindSocialWorkNeed: {
			Normal: {1, 7, "Sosiaalihuoltolaki 1301/2014 §36: service-need assessment started within 7 business days"},
			Urgent: {1, 1, "Sosiaalihuoltolaki 1301/2014 §36: urgent need assessed immediately (next business day)"},
		},
		KindJointMeetingRequest: {
			Normal: {1, 7, "Toimeentulotukilaki 1412/1997 §14 d: meeting within 7 business days of the request"},
			Urgent: {1, 7, "Toimeentulotukilaki 1412/1997 §14 d: meeting within 7 business days of the request"},
		},
		KindSocialWorkStatement:   toKela(),
		KindDecisionReviewRequest: toKela(),
		KindDirectPaymentRequest:  toKela(),
		KindContactPersonRequest:  toKela(),
	}
}

// NewDeadlinePolicy returns the policy with the defaults of DOMAIN §7 on cal.
func NewDeadlinePolicy(cal BusinessCalendar) *DeadlinePolicy {
	return &DeadlinePolicy{Calendar: cal, Rules: DefaultDeadlineRules(), KelaHandoffDays: 1, WarningLead: DefaultWarningLead}
}

func (p *DeadlinePolicy) rule(k Kind, u Urgency) DeadlineRule {
	if r, ok := p.Rules[k][u]; ok {
		return r
	}
	return DeadlineRule{AcknowledgeDays: 1, RespondDays: 7, Basis: "default"}
}

// Assign sets r's deadlines for a referral that arrived at at.
func (p *DeadlinePolicy) Assign(r *Referral, at time.Time) {
	rule := p.rule(r.Kind, r.Urgency)
	ack := p.Calendar.Deadline(at, rule.AcknowledgeDays).UTC()
	respond := p.Calendar.Deadline(at, rule.RespondDays).UTC()
	r.Deadlines = Deadlines{AcknowledgeBy: &ack, RespondBy: &respond, Basis: rule.Basis}
	if ss := r.SupplementarySupport; ss != nil && ss.BasicDecisionDate != "" {
		if d, err := time.ParseInLocation(time.DateOnly, ss.BasicDecisionDate, time.UTC); err == nil {
			// Noon UTC is the same date in Helsinki, whatever the offset.
			target := p.Calendar.Deadline(d.Add(12*time.Hour), p.KelaHandoffDays).UTC()
			late := p.Calendar.BusinessDaysBetween(target, at)
			r.Deadlines.KelaHandoffBy, r.Deadlines.KelaHandoffLateDays = &target, &late
		}
	}
}

// Restart moves respond_by to count from at: an answer to an info request completes the
// case, and §14 a counts from the completed application.
func (p *DeadlinePolicy) Restart(r *Referral, at time.Time) {
	respond := p.Calendar.Deadline(at, p.rule(r.Kind, r.Urgency).RespondDays).UTC()
	r.Deadlines.RespondBy = &respond
}

// Overdue reports whether an open referral has missed a deadline at now: not acknowledged by
// acknowledge_by, or not answered by respond_by. A referral waiting for the sender's answer
// (info_requested) is not overdue on respond_by: the clock restarts when the answer comes.
func (r *Referral) Overdue(now time.Time) bool {
	for _, d := range r.OpenDeadlines() {
		if now.After(d.By) {
			return true
		}
	}
	return false
}

// responded reports whether the respond_by clock has stopped: a social-work-need notification
// is answered when the service-need assessment starts; every other kind when it is closed.
func (r *Referral) responded() bool {
	if r.Kind == KindSocialWorkNeed && r.Status == StatusInProgress {
		return true
	}
	return r.Status.Terminal()
}
