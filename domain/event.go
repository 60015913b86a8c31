package domain

import "time"

// EventType names what happened to a referral. On the wire it is prefixed with
// EventTypePrefix; in the NATS subject it is the last token.
type EventType string

// Event types (DOMAIN §8).
const (
	EventCreated         EventType = "created"
	EventReceived        EventType = "received"
	EventStatusChanged   EventType = "status_changed"
	EventMessageAdded    EventType = "message_added"
	EventDeadlineWarning EventType = "deadline_warning"
	EventOverdue         EventType = "overdue"
)

// EventTypePrefix is the reverse-DNS namespace and version of CloudEvents types:
// "fi.kela.referrals.v1.referral.created" and so on.
const EventTypePrefix = "fi.kela.referrals.v1.referral."

// Event is a change notification. It carries the referral id and pseudonymous metadata
// (kind, urgency, states, deadlines) and never personal data or free text: consumers fetch
// details over authorised REST.
type Event struct {
	ID         string    `json:"id"`
	Type       EventType `json:"type"`
	ReferralID string    `json:"referral_id"`
	Sender     OrgID     `json:"sender"`
	Recipient  OrgID     `json:"recipient"`
	Time       time.Time `json:"time"`
	Kind       Kind      `json:"kind"`
	Urgency    Urgency   `json:"urgency"`
	Status     Status    `json:"status"`
	FromStatus Status    `json:"from_status,omitempty"`
	Action     Action    `json:"action,omitempty"`
	ActorOrg   OrgID     `json:"actor_org,omitempty"`
	// Deadline is the clock the event is about (warning, overdue) or the next one to watch.
	Deadline     *time.Time `json:"deadline,omitempty"`
	DeadlineName string     `json:"deadline_name,omitempty"`
	// Related is the other referral of a forward: the new one on the old, the old on the new.
	Related string `json:"related_referral,omitempty"`
}

// Subject is the NATS subject of the event: referrals.v1.<sender>.<recipient>.<type>, so an
// organisation subscribes to referrals.v1.*.<org>.> (incoming) and referrals.v1.<org>.>
// (outgoing).
func (e Event) Subject() string {
	return "referrals.v1." + string(e.Sender) + "." + string(e.Recipient) + "." + string(e.Type)
}

// CloudEventType is the CloudEvents type attribute of the event.
func (e Event) CloudEventType() string { return EventTypePrefix + string(e.Type) }

// OutboxEntry is an event waiting in the store for delivery, with its commit-order sequence.
type OutboxEntry struct {
	Seq   uint64
	Event Event
}

// newEvent builds the event for r's current state.
func newEvent(id string, t EventType, r *Referral, at time.Time) Event {
	e := Event{ID: id, Type: t, ReferralID: r.ID, Sender: r.Sender, Recipient: r.Recipient, Time: at,
		Kind: r.Kind, Urgency: r.Urgency, Status: r.Status}
	switch {
	case r.Deadlines.AcknowledgeBy != nil && r.Times.AcknowledgedAt == nil:
		e.Deadline, e.DeadlineName = r.Deadlines.AcknowledgeBy, "acknowledge_by"
	case r.Deadlines.RespondBy != nil && r.Open():
		e.Deadline, e.DeadlineName = r.Deadlines.RespondBy, "respond_by"
	}
	return e
}
