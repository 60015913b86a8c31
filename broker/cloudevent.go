package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// CloudEvents attribute values used by Encode.
const (
	SpecVersion     = "1.0"
	DataContentType = "application/json"
	// ContentType is the NATS Content-Type header of a structured-mode CloudEvent.
	ContentType = "application/cloudevents+json"
)

// CloudEvent is the structured-mode JSON envelope of a referral event (CloudEvents 1.0), as
// published to JetStream. Data holds an EventData object.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time,omitzero"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// EventData is the data of a referral CloudEvent: the event's pseudonymous metadata, never
// personal data or free text. Empty fields are omitted.
type EventData struct {
	ReferralID   string         `json:"referral_id,omitempty"`
	Kind         domain.Kind    `json:"kind,omitempty"`
	Urgency      domain.Urgency `json:"urgency,omitempty"`
	Status       domain.Status  `json:"status,omitempty"`
	FromStatus   domain.Status  `json:"from_status,omitempty"`
	Action       domain.Action  `json:"action,omitempty"`
	ActorOrg     domain.OrgID   `json:"actor_org,omitempty"`
	Sender       domain.OrgID   `json:"sender,omitempty"`
	Recipient    domain.OrgID   `json:"recipient,omitempty"`
	Deadline     *time.Time     `json:"deadline,omitempty"`
	DeadlineName string         `json:"deadline_name,omitempty"`
	Related      string         `json:"related_referral,omitempty"`
}

// Encode returns e as a CloudEvents 1.0 structured JSON document with the given source (a
// URI reference such as "/referrals/<instance>"): id is e.ID, type e.CloudEventType(), subject
// the referral id, time e.Time in UTC, data an EventData. It returns an error if e has no id
// or type or source is empty.
func Encode(e domain.Event, source string) ([]byte, error) {
	switch {
	case e.ID == "":
		return nil, errors.New("broker: encode event: empty id")
	case e.Type == "":
		return nil, fmt.Errorf("broker: encode event %s: empty type", e.ID)
	case source == "":
		return nil, fmt.Errorf("broker: encode event %s: empty source", e.ID)
	}
	d := EventData{
		ReferralID: e.ReferralID, Kind: e.Kind, Urgency: e.Urgency, Status: e.Status,
		FromStatus: e.FromStatus, Action: e.Action, ActorOrg: e.ActorOrg,
		Sender: e.Sender, Recipient: e.Recipient, DeadlineName: e.DeadlineName, Related: e.Related,
	}
	if e.Deadline != nil {
		t := e.Deadline.UTC()
		d.Deadline = &t
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("broker: encode event %s: %w", e.ID, err)
	}
	b, err := json.Marshal(CloudEvent{
		SpecVersion: SpecVersion, ID: e.ID, Source: source, Type: e.CloudEventType(),
		Subject: e.ReferralID, Time: e.Time.UTC(), DataContentType: DataContentType, Data: data,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: encode event %s: %w", e.ID, err)
	}
	return b, nil
}

// Decode parses a CloudEvents 1.0 structured JSON document. It returns an error if b is not a
// JSON object, specversion is not "1.0", id, source or type is missing, or the content type is
// not JSON, or time is outside years 0 to 9999 in UTC. Unknown attributes are ignored.
func Decode(b []byte) (CloudEvent, error) {
	var c CloudEvent
	if err := json.Unmarshal(b, &c); err != nil {
		return CloudEvent{}, fmt.Errorf("broker: decode cloudevent: %w", err)
	}
	switch {
	case c.SpecVersion != SpecVersion:
		return CloudEvent{}, fmt.Errorf("broker: decode cloudevent: specversion %q, want %q", c.SpecVersion, SpecVersion)
	case c.ID == "", c.Source == "", c.Type == "":
		return CloudEvent{}, errors.New("broker: decode cloudevent: id, source and type are required")
	case c.DataContentType != "" && c.DataContentType != DataContentType:
		return CloudEvent{}, fmt.Errorf("broker: decode cloudevent %s: datacontenttype %q, want %q", c.ID, c.DataContentType, DataContentType)
	case !encodable(c.Time):
		return CloudEvent{}, fmt.Errorf("broker: decode cloudevent %s: time %s out of range", c.ID, c.Time)
	}
	// "data": null is no data.
	if bytes.Equal(bytes.TrimSpace(c.Data), []byte("null")) {
		c.Data = nil
	}
	return c, nil
}

// EventData decodes the data of c. It returns an error if c has no data, it is not an
// EventData object or its deadline is outside years 0 to 9999 in UTC.
func (c CloudEvent) EventData() (EventData, error) {
	if len(c.Data) == 0 {
		return EventData{}, fmt.Errorf("broker: cloudevent %s: no data", c.ID)
	}
	var d EventData
	if err := json.Unmarshal(c.Data, &d); err != nil {
		return EventData{}, fmt.Errorf("broker: cloudevent %s: decode data: %w", c.ID, err)
	}
	if d.Deadline != nil && !encodable(*d.Deadline) {
		return EventData{}, fmt.Errorf("broker: cloudevent %s: deadline %s out of range", c.ID, d.Deadline)
	}
	return d, nil
}

// encodable reports whether t can be written as an RFC 3339 UTC time: years 0 to 9999.
func encodable(t time.Time) bool {
	y := t.UTC().Year()
	return 0 <= y && y <= 9999
}

// Event rebuilds the domain event carried by c, the inverse of Encode. It returns an error if
// c's type is not a referral event type (domain.EventTypePrefix) or its data cannot be decoded.
func (c CloudEvent) Event() (domain.Event, error) {
	t, ok := strings.CutPrefix(c.Type, domain.EventTypePrefix)
	if !ok || t == "" {
		return domain.Event{}, fmt.Errorf("broker: cloudevent %s: type %q is not a referral event", c.ID, c.Type)
	}
	d, err := c.EventData()
	if err != nil {
		return domain.Event{}, err
	}
	return domain.Event{
		ID: c.ID, Type: domain.EventType(t), ReferralID: d.ReferralID, Sender: d.Sender,
		Recipient: d.Recipient, Time: c.Time, Kind: d.Kind, Urgency: d.Urgency, Status: d.Status,
		FromStatus: d.FromStatus, Action: d.Action, ActorOrg: d.ActorOrg, Deadline: d.Deadline,
		DeadlineName: d.DeadlineName, Related: d.Related,
	}, nil
}
