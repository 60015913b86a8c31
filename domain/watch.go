package domain

import (
	"context"
	"sort"
	"time"
)

// The deadline watcher (DOMAIN §7): a deadline_warning event before each open deadline and an
// overdue event when it passes unmet, each exactly once per deadline value.
//
// Timing. Business time is the time on Helsinki calendar days that are business days (each
// such day counts whole, midnight to midnight; weekends, holidays and by default the two eves
// count nothing), as in calendar.BusinessDurationBetween. The warning for a deadline D is due
// from WarnAt(D): the earliest instant at which at most WarningLead of business time is left
// before D. Deadlines end at 23:59:59 on a business day, so with the default lead of 12h the
// warning is due at 11:59:59 Helsinki time on the deadline's own day; a lead of 36h before a
// Monday deadline reaches back over the weekend to Friday 11:59:59. The overdue alert is due
// as soon as business time is after D (the moment Referral.Overdue turns true).
//
// Exactly once. The store keeps a time-ordered index of the alerts each referral still wants
// (derived from OpenDeadlines in the same transaction as every change of the referral) and a
// fired marker per referral, deadline, alert type and deadline value. FireDue reads the due
// entries, checks each against the referral, and in the same transaction writes the events to
// the outbox, the fired markers and removes the entries: a crash loses or doubles nothing,
// re-saving a referral never re-arms an alert that fired for the same deadline value, and a
// deadline that moves (respond_by restarting after an info answer) is armed anew.
//
// Alerts never change a referral: not its version, not its timeline (which lists the
// parties' actions). Their events carry no actor organisation (the system raised them).
// Event time is the business time at which the watcher fired them; the deadline itself is in
// the event's deadline field. A warning is still sent when the watcher only gets to it after
// the deadline has passed (the service was down): the warning, then the overdue alert.

// Deadline names, as events carry them in deadline_name.
const (
	DeadlineAcknowledge = "acknowledge_by"
	DeadlineRespond     = "respond_by"
)

// DefaultWarningLead is the default business time between a deadline_warning and its
// deadline: half a business day.
const DefaultWarningLead = 12 * time.Hour

// DefaultFireBatch is how many alerts FireDue handles in one transaction when asked for limit <= 0.
const DefaultFireBatch = 100

// OpenDeadline is a deadline a referral has still to meet.
type OpenDeadline struct {
	Name string // DeadlineAcknowledge or DeadlineRespond
	By   time.Time
}

// OpenDeadlines returns the deadlines r has still to meet, acknowledge_by first:
// acknowledge_by until the recipient acknowledges; respond_by until the referral is answered
// (a social_work_need when the service-need assessment starts, any other kind when it closes),
// except while it waits for the sender's answer (info_requested pauses respond_by, which
// restarts from the answer). A closed referral has none. Referral.Overdue is true while one of
// them has passed.
func (r *Referral) OpenDeadlines() []OpenDeadline {
	if !r.Open() {
		return nil
	}
	var out []OpenDeadline
	d := r.Deadlines
	if d.AcknowledgeBy != nil && r.Times.AcknowledgedAt == nil {
		out = append(out, OpenDeadline{DeadlineAcknowledge, *d.AcknowledgeBy})
	}
	if d.RespondBy != nil && !r.responded() && r.Status != StatusInfoRequested {
		out = append(out, OpenDeadline{DeadlineRespond, *d.RespondBy})
	}
	return out
}

// openDeadline reports whether r has the deadline name open with the value by.
func (r *Referral) openDeadline(name string, by time.Time) bool {
	for _, d := range r.OpenDeadlines() {
		if d.Name == name && d.By.Equal(by) {
			return true
		}
	}
	return false
}

// Alert is one deadline alert of a referral: the warning before (Type EventDeadlineWarning)
// or the overdue notice after (EventOverdue) one value of one of its deadlines.
type Alert struct {
	ReferralID string
	Type       EventType // EventDeadlineWarning or EventOverdue
	Deadline   string    // DeadlineAcknowledge or DeadlineRespond
	By         time.Time // the deadline's value
	// Stale marks a due entry whose deadline no longer stands as it was (the store keeps its
	// entries in step with the referral, so this is a repair): the store drops it without
	// recording it as fired, and no event is sent.
	Stale bool
}

// DueFilter selects the alerts that are due: warnings of deadlines at or before WarnBy (none
// when WarnBy is zero) and overdue alerts of deadlines before OverdueBefore; at most Max of
// each, each in deadline order.
type DueFilter struct {
	WarnBy        time.Time
	OverdueBefore time.Time
	Max           int
}

// WarnAt returns when the warning of a deadline at by is due: the earliest instant at which at
// most p.WarningLead of business time is left before by (business time as defined in the
// notes at the top of this file). With warnings off (WarningLead <= 0) it returns by.
func (p *DeadlinePolicy) WarnAt(by time.Time) time.Time {
	lead := p.WarningLead
	if lead <= 0 {
		return by
	}
	cal, loc := p.Calendar, p.Calendar.Location()
	end, start := by, dayStart(by, loc)
	for range maxWalkDays {
		if cal.IsBusinessDay(start) {
			avail := end.Sub(start)
			if lead < avail {
				return end.Add(-lead)
			}
			lead -= avail
			if lead == 0 {
				// Exactly lead is left from start; it is also left on the non-business days
				// before it, back to the end of the previous business day.
				for range maxWalkDays {
					prev := addDays(start, -1, loc)
					if cal.IsBusinessDay(prev) {
						return start
					}
					start = prev
				}
				return start
			}
		}
		end, start = start, addDays(start, -1, loc)
	}
	return end // a calendar without business days: unreachable with a real one
}

// WarningHorizon returns the latest deadline whose warning is due at now (WarnAt(d) <= now
// exactly when d <= the horizon), and false when warnings are off.
func (p *DeadlinePolicy) WarningHorizon(now time.Time) (time.Time, bool) {
	lead := p.WarningLead
	if lead <= 0 {
		return time.Time{}, false
	}
	cal, loc := p.Calendar, p.Calendar.Location()
	start := now
	end := addDays(dayStart(now, loc), 1, loc)
	for range maxWalkDays {
		if cal.IsBusinessDay(start) {
			avail := end.Sub(start)
			if lead < avail {
				return start.Add(lead), true
			}
			lead -= avail
			if lead == 0 {
				// Deadlines on the non-business days that follow add no business time.
				for range maxWalkDays {
					if cal.IsBusinessDay(end) {
						break
					}
					end = addDays(end, 1, loc)
				}
				return end, true
			}
		}
		start, end = end, addDays(end, 1, loc)
	}
	return start, true
}

// maxWalkDays bounds the day-by-day walks of WarnAt and WarningHorizon (ten years).
const maxWalkDays = 3653

// dayStart returns the midnight that starts t's date in loc. Finnish clocks change at 03:00
// and 04:00, so midnight always exists.
func dayStart(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// addDays returns the midnight n dates after the midnight t in loc.
func addDays(t time.Time, n int, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d+n, 0, 0, 0, 0, loc)
}

// alertFireTime is when a due alert became due, for ordering a batch.
func (p *DeadlinePolicy) alertFireTime(a Alert) time.Time {
	if a.Type == EventDeadlineWarning {
		return p.WarnAt(a.By)
	}
	return a.By
}

// orderAlerts sorts alerts by when they became due (a deadline's warning before its overdue
// alert, acknowledge_by before respond_by) and keeps the first limit.
func (p *DeadlinePolicy) orderAlerts(alerts []Alert, limit int) []Alert {
	type keyed struct {
		at time.Time
		a  Alert
	}
	ks := make([]keyed, len(alerts))
	for i, a := range alerts {
		ks[i] = keyed{p.alertFireTime(a), a}
	}
	rank := func(a Alert) int {
		n := 0
		if a.Deadline == DeadlineRespond {
			n += 2
		}
		if a.Type == EventOverdue {
			n++
		}
		return n
	}
	sort.SliceStable(ks, func(i, j int) bool {
		x, y := ks[i], ks[j]
		switch {
		case !x.at.Equal(y.at):
			return x.at.Before(y.at)
		case x.a.ReferralID != y.a.ReferralID:
			return x.a.ReferralID < y.a.ReferralID
		}
		return rank(x.a) < rank(y.a)
	})
	out := make([]Alert, 0, min(len(ks), limit))
	for _, k := range ks[:min(len(ks), limit)] {
		out = append(out, k.a)
	}
	return out
}

// dueFilter returns the filter of the alerts due at now.
func (s *Service) dueFilter(now time.Time, limit int) DueFilter {
	f := DueFilter{OverdueBefore: now, Max: limit}
	if h, ok := s.Policy.WarningHorizon(now); ok {
		f.WarnBy = h
	}
	return f
}

// FireDue is one step of the deadline watcher: it fires up to limit alerts due at now (the
// business time), in the order they became due, in one store transaction: each alert's event
// goes to the outbox, the alert is recorded as fired and leaves the due index, and an overdue
// referral enters the overdue list (ListOverdue). limit <= 0 means DefaultFireBatch.
//
// It returns the alerts it handled, stale repairs included (Alert.Stale); fewer than limit means
// nothing else is due at now. When nothing is due it writes nothing. Concurrent calls never
// fire an alert twice: each re-reads the due index in its own write transaction. Errors are
// the store's (or ctx's); nothing is fired then.
func (s *Service) FireDue(ctx context.Context, now time.Time, limit int) ([]Alert, error) {
	if limit <= 0 {
		limit = DefaultFireBatch
	}
	f := s.dueFilter(now, limit)
	// A read-only look first, so an idle tick costs no write transaction (and no fsync).
	peek := f
	peek.Max = 1
	if due, err := s.Store.DueAlerts(ctx, peek); err != nil || len(due) == 0 {
		return nil, err
	}
	var done []Alert
	err := s.Store.Update(ctx, func(tx Tx) (*Change, error) {
		done = nil // fn may run more than once
		due, err := tx.DueAlerts(f)
		if err != nil {
			return nil, err
		}
		ch := &Change{}
		refs := map[string]*Referral{}
		for _, a := range s.Policy.orderAlerts(due, limit) {
			r, seen := refs[a.ReferralID]
			if !seen {
				if r, err = tx.Referral(a.ReferralID); err != nil && ErrorCode(err) != ENotFound {
					return nil, err
				}
				refs[a.ReferralID] = r
			}
			if r == nil || !r.openDeadline(a.Deadline, a.By) {
				a.Stale = true
			} else {
				ch.Events = append(ch.Events, alertEvent(s.newID(), a, r, now.UTC()))
			}
			ch.Alerts = append(ch.Alerts, a)
			done = append(done, a)
		}
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	return done, nil
}

// alertEvent is the event of a fired alert: the referral's pseudonymous metadata, the
// deadline it is about and no actor (the system raised it).
func alertEvent(id string, a Alert, r *Referral, at time.Time) Event {
	e := newEvent(id, a.Type, r, at)
	by := a.By.UTC()
	e.Deadline, e.DeadlineName, e.ActorOrg = &by, a.Deadline, ""
	return e
}

// ListOverdue returns one page of the actor's organisation's overdue referrals in
// f.Direction, newest first: those whose overdue alert has fired (FireDue) for a deadline
// that is still unmet. A referral leaves the list when that deadline is met, when it closes
// and when respond_by restarts after an info answer (or pauses while info is requested).
// Listing is tied to the fired alert, so the list and the overdue events agree. Returns
// EForbidden for a role that may not read referrals.
func (s *Service) ListOverdue(ctx context.Context, actor Actor, f ListFilter) (Page, error) {
	if !actor.CanRead() {
		return Page{}, Errorf(EForbidden, "your role may not read referrals")
	}
	f.Org = actor.Org
	return s.Store.ListOverdue(ctx, f)
}
