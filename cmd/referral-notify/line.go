package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
)

// formatLine renders one event as a line for org, fields separated by two spaces:
//
//	time  type  kind  urgency  what happened  deadline  link
//
// e.g. "2026-11-23T11:12:44+02:00  created  social_work_need  urgent  new referral from kela
// acknowledge_by 2026-11-24  /v1/referrals/0193…". Times are Finnish (loc), deadlines are
// shown as their last day in loc, "-" stands for a missing value. Events carry no personal
// data and neither does the line. It returns an error if ce is not a referral event.
func formatLine(ce broker.CloudEvent, org domain.OrgID, loc *time.Location) (string, error) {
	e, err := ce.Event()
	if err != nil {
		return "", err
	}
	id := e.ReferralID
	if id == "" {
		id = ce.Subject
	}
	deadline := "-"
	if e.Deadline != nil {
		deadline = strings.TrimSpace(e.DeadlineName + " " + day(*e.Deadline, loc))
	}
	fields := []string{
		e.Time.In(loc).Format(time.RFC3339), string(e.Type), orDash(string(e.Kind)), orDash(string(e.Urgency)),
		what(e, org, loc), deadline, "/v1/referrals/" + id,
	}
	for i, f := range fields {
		fields[i] = oneLine(f)
	}
	return strings.Join(fields, "  "), nil
}

// what says what happened, from org's side where that reads better.
func what(e domain.Event, org domain.OrgID, loc *time.Location) string {
	incoming := e.Recipient == org && e.Sender != org
	by := ""
	if e.ActorOrg != "" {
		by = " by " + string(e.ActorOrg)
	}
	switch e.Type {
	case domain.EventCreated:
		var s string
		switch {
		case e.Related != "" && incoming:
			s = fmt.Sprintf("new referral from %s, forwarded%s (was /v1/referrals/%s)", e.Sender, by, e.Related)
		case e.Related != "":
			s = fmt.Sprintf("forwarded%s to %s (was /v1/referrals/%s)", by, e.Recipient, e.Related)
		case incoming:
			s = "new referral from " + string(e.Sender)
		default:
			s = "sent to " + string(e.Recipient)
		}
		return s
	case domain.EventReceived:
		return "received by " + string(e.Recipient)
	case domain.EventStatusChanged:
		s := fmt.Sprintf("status %s → %s%s", orDash(string(e.FromStatus)), orDash(string(e.Status)), by)
		if e.Status == domain.StatusForwarded && e.Related != "" {
			s += " (continues as /v1/referrals/" + e.Related + ")"
		}
		return s
	case domain.EventMessageAdded:
		if e.ActorOrg == "" {
			return "new message"
		}
		return "new message from " + string(e.ActorOrg)
	case domain.EventDeadlineWarning:
		return "deadline near: " + deadlineText(e, loc)
	case domain.EventOverdue:
		return "overdue: " + deadlineText(e, loc)
	}
	return string(e.Type)
}

func deadlineText(e domain.Event, loc *time.Location) string {
	if e.Deadline == nil {
		return orDash(e.DeadlineName)
	}
	return strings.TrimSpace(e.DeadlineName + " " + day(*e.Deadline, loc))
}

// day is the calendar day of t in loc: a deadline ends at the end of its last day.
func day(t time.Time, loc *time.Location) string { return t.In(loc).Format(time.DateOnly) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a field on one line whatever an event carries.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
}
