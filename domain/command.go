package domain

import (
	"context"
	"time"
)

// validateCommand checks the input of a command against the referral's kind.
func validateCommand(r *Referral, c *Command) error {
	var v Violations
	switch c.Action {
	case ActionRequestInfo:
		checkText(&v, "/question", c.Question, true, MaxTextLen)
	case ActionComplete:
		validateOutcome(&v, r.Kind, c)
		checkText(&v, "/text", c.Text, false, MaxTextLen)
	case ActionReturn:
		if !ReturnReasons[c.Reason] {
			v.Add("/reason", "must be wrong_recipient, insufficient_information or not_our_client")
		}
		checkText(&v, "/text", c.Text, true, MaxTextLen)
	case ActionWithdraw:
		if !WithdrawReasons[c.Reason] {
			v.Add("/reason", "must be client_request, resolved_otherwise, sent_in_error, duplicate or other")
		}
		checkText(&v, "/text", c.Text, false, MaxTextLen)
	case ActionForward:
		if !reMuniCode.MatchString(c.ToMunicipality) {
			v.Add("/to_municipality", "must be a 3-digit municipality code")
		}
		checkText(&v, "/text", c.Text, false, MaxTextLen)
	}
	return v.Err("the request is invalid")
}

func validateOutcome(v *Violations, k Kind, c *Command) {
	switch {
	case k == KindSocialWorkNeed:
		if !NeedOutcomes[c.Outcome] {
			v.Add("/outcome", "must be one of assessment_started, already_client, no_social_care_need, client_not_reached, client_declined")
		}
		if c.Feedback != "" && !NeedFeedback[c.Feedback] {
			v.Add("/feedback", "must be useful, not_needed or insufficient_information")
		}
	case k == KindSupplementarySupportHandoff:
		if c.Outcome != "decided" {
			v.Add("/outcome", "must be decided")
		}
		if !HandoffDecisions[c.Decision] {
			v.Add("/decision", "must be granted, partially_granted or denied")
		}
		checkDate(v, "/decision_date", c.DecisionDate, true)
	case k == KindJointMeetingRequest:
		if !MeetingOutcomes[c.Outcome] {
			v.Add("/outcome", "must be one of meeting_held, meeting_not_needed, client_not_reached, client_declined")
		}
	default:
		if !ToKelaOutcomes[c.Outcome] {
			v.Add("/outcome", "must be accepted, rejected or decision_corrected")
		}
		checkText(v, "/text", c.Text, true, MaxTextLen)
	}
	if k != KindSocialWorkNeed && c.Feedback != "" {
		v.Add("/feedback", "belongs only to social_work_need")
	}
	if k != KindSupplementarySupportHandoff && (c.Decision != "" || c.DecisionDate != "") {
		v.Add("/decision", "belongs only to supplementary_support_handoff")
	}
}

// Act applies a state-changing command to a referral. Returns ENotFound for a referral the
// actor's organisation is not party to, EForbidden for a role that may not act, EPrecondition
// if IfVersion does not match, EConflict (with the allowed actions) for an illegal move and
// EInvalid for bad input.
func (s *Service) Act(ctx context.Context, actor Actor, id string, c Command) (*Referral, error) {
	if c.Action == ActionAnswer || c.Action == ActionMessage || c.Action == ActionCreate {
		return nil, Errorf(EInvalid, "%s is not a transition", c.Action)
	}
	if _, ok := lifecycle[c.Action]; !ok {
		return nil, Errorf(EInvalid, "unknown action %q", c.Action)
	}
	if _, ok := actor.CaseRole(); !ok {
		return nil, Errorf(EForbidden, "only Kela handlers and social workers act on referrals")
	}
	var out *Referral
	err := s.Store.Update(ctx, func(tx Tx) (*Change, error) {
		cur, err := tx.Referral(id)
		cur, side, err := visible(cur, err, actor)
		if err != nil {
			return nil, err
		}
		if c.IfVersion != 0 && c.IfVersion != cur.Version {
			return nil, Errorf(EPrecondition, "the referral has changed (version %d)", cur.Version)
		}
		to, err := cur.Next(c.Action, side)
		if err != nil {
			return nil, err
		}
		if err := validateCommand(cur, &c); err != nil {
			return nil, err
		}
		now := s.Clock.Now().UTC()
		r := *cur
		from := r.Status
		r.Status, r.Version, r.UpdatedAt = to, r.Version+1, now
		ch := &Change{Referrals: []*Referral{&r}}
		reason, related := c.Reason, ""
		var followUp []Event // events of a referral created by this command, after r's own
		if side == RecipientSide {
			if r.Times.AcknowledgedAt == nil {
				r.Times.AcknowledgedAt = &now
			}
			if c.Action != ActionReceive && r.Times.FirstResponseAt == nil {
				r.Times.FirstResponseAt = &now
			}
		}
		switch c.Action {
		case ActionRequestInfo:
			r.ResumeStatus = from
			r.Messages++
			ch.Messages = append(ch.Messages, Message{ID: s.newID(), ReferralID: r.ID, Type: "question",
				Text: c.Question, AuthorID: actor.UserID, AuthorName: actor.Name, Org: actor.Org, At: now})
		case ActionComplete:
			r.Outcome = &Outcome{Outcome: c.Outcome, Feedback: c.Feedback, Decision: c.Decision,
				DecisionDate: c.DecisionDate, Text: c.Text, At: now, By: actor.UserID}
			reason = c.Outcome
		case ActionReturn, ActionWithdraw:
			r.Closure = &Closure{Action: c.Action, Reason: c.Reason, Text: c.Text, At: now, By: actor.UserID}
		case ActionForward:
			next, err := s.forward(&r, actor, c, now)
			if err != nil {
				return nil, err
			}
			r.Closure = &Closure{Action: c.Action, Reason: "client_moved", Text: c.Text, At: now, By: actor.UserID}
			r.ForwardedTo, related, reason = next.ID, next.ID, "client_moved"
			ch.Referrals = append(ch.Referrals, next)
			s.record(ch, next, actor, ActionCreate, "", "forwarded", r.ID, now)
			e := newEvent(s.newID(), EventCreated, next, now)
			e.Related, e.ActorOrg = r.ID, actor.Org
			followUp = append(followUp, e)
		}
		if to.Bounce() {
			r.Bounces++
		}
		if to.Terminal() {
			r.Times.ClosedAt = &now
			r.ResumeStatus = ""
		}
		s.record(ch, &r, actor, c.Action, from, reason, related, now)
		typ := EventStatusChanged
		if c.Action == ActionReceive {
			typ = EventReceived
		}
		e := newEvent(s.newID(), typ, &r, now)
		e.FromStatus, e.Action, e.ActorOrg, e.Related = from, c.Action, actor.Org, related
		ch.Events = append(append(ch.Events, e), followUp...)
		out = &r
		return ch, nil
	})
	return out, err
}

// forward builds the referral that continues r at the county of the client's new home
// municipality.
func (s *Service) forward(r *Referral, actor Actor, c Command, now time.Time) (*Referral, error) {
	var v Violations
	m, ok := s.Registry.Municipality(c.ToMunicipality)
	switch {
	case !ok:
		v.Add("/to_municipality", "unknown municipality code")
	case m.Aland:
		v.Add("/to_municipality", "is in Åland, which is outside the wellbeing services counties")
	case m.County == r.Recipient:
		v.Add("/to_municipality", "belongs to your own county: nothing to forward")
	}
	if err := v.Err("the request is invalid"); err != nil {
		return nil, err
	}
	next := *r
	next.ID, next.Recipient, next.Status = s.newID(), m.County, StatusSent
	next.CreatedAt, next.UpdatedAt, next.CreatedBy, next.Version = now, now, actor.UserID, 1
	next.Client.HomeMunicipality = m.Code
	next.ForwardedOf, next.ForwardedTo = r.ID, ""
	next.Bounces = r.Bounces + 1
	next.Times, next.Outcome, next.Closure, next.ResumeStatus = Milestones{}, nil, nil, ""
	next.Messages, next.Timeline = 0, 0
	s.Policy.Assign(&next, now)
	// Kela's §14 c handoff clock measured Kela's transfer, not the forward between counties.
	next.Deadlines.KelaHandoffBy, next.Deadlines.KelaHandoffLateDays = r.Deadlines.KelaHandoffBy, r.Deadlines.KelaHandoffLateDays
	return &next, nil
}

// AddMessage adds a message to an open referral's thread. A message from the sender to an
// info_requested referral is the answer: it returns the referral to the state it was in and
// restarts the response clock. Returns the message and the updated referral.
func (s *Service) AddMessage(ctx context.Context, actor Actor, id string, text string, ifVersion int) (*Message, *Referral, error) {
	if _, ok := actor.CaseRole(); !ok {
		return nil, nil, Errorf(EForbidden, "only Kela handlers and social workers write messages")
	}
	var v Violations
	checkText(&v, "/text", text, true, MaxTextLen)
	if err := v.Err("the message is invalid"); err != nil {
		return nil, nil, err
	}
	var msg *Message
	var out *Referral
	err := s.Store.Update(ctx, func(tx Tx) (*Change, error) {
		cur, err := tx.Referral(id)
		cur, side, err := visible(cur, err, actor)
		if err != nil {
			return nil, err
		}
		if ifVersion != 0 && ifVersion != cur.Version {
			return nil, Errorf(EPrecondition, "the referral has changed (version %d)", cur.Version)
		}
		if !cur.Open() {
			return nil, &Error{Code: EConflict, Message: "cannot add a message to a referral in state " + string(cur.Status), Allowed: []Action{}}
		}
		now := s.Clock.Now().UTC()
		r := *cur
		r.Version, r.UpdatedAt = r.Version+1, now
		r.Messages++
		m := Message{ID: s.newID(), ReferralID: r.ID, Type: "message", Text: text,
			AuthorID: actor.UserID, AuthorName: actor.Name, Org: actor.Org, At: now}
		ch := &Change{Referrals: []*Referral{&r}}
		from := r.Status
		action := ActionMessage
		if r.Status == StatusInfoRequested && side == SenderSide {
			to, err := r.Next(ActionAnswer, side)
			if err != nil {
				return nil, err
			}
			m.Type, action = "answer", ActionAnswer
			r.Status, r.ResumeStatus = to, ""
			s.Policy.Restart(&r, now)
		}
		ch.Messages = append(ch.Messages, m)
		s.record(ch, &r, actor, action, from, "", "", now)
		e := newEvent(s.newID(), EventMessageAdded, &r, now)
		e.ActorOrg = actor.Org
		ch.Events = append(ch.Events, e)
		if action == ActionAnswer {
			e := newEvent(s.newID(), EventStatusChanged, &r, now)
			e.FromStatus, e.Action, e.ActorOrg = from, ActionAnswer, actor.Org
			ch.Events = append(ch.Events, e)
		}
		msg, out = &m, &r
		return ch, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return msg, out, nil
}
