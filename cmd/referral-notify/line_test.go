package main

import (
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
)

func TestLineSaysWhatHappenedFromTheOrganisationsSide(t *testing.T) {
	loc := calendar.New(calendar.Options{}).Location()
	base := func(typ domain.EventType) domain.Event { return ev(1, typ, 1, "kela", "hva-90") }
	cases := []struct {
		name string
		org  domain.OrgID
		e    func() domain.Event
		want string
	}{
		{"created, as sender", "kela", func() domain.Event { return base(domain.EventCreated) }, "sent to hva-90"},
		{"received, as sender", "kela", func() domain.Event { return base(domain.EventReceived) }, "received by hva-90"},
		{"forwarded, as the old recipient", "hva-90", func() domain.Event {
			e := base(domain.EventStatusChanged)
			e.FromStatus, e.Status, e.ActorOrg, e.Related = "received", "forwarded", "hva-90", refID(2)
			return e
		}, "status received → forwarded by hva-90 (continues as /v1/referrals/" + refID(2) + ")"},
		{"forwarded, as the new recipient", "hva-08", func() domain.Event {
			e := ev(2, domain.EventCreated, 2, "kela", "hva-08")
			e.ActorOrg, e.Related = "hva-90", refID(1)
			return e
		}, "new referral from kela, forwarded by hva-90 (was /v1/referrals/" + refID(1) + ")"},
		{"forwarded, as the sender", "kela", func() domain.Event {
			e := ev(2, domain.EventCreated, 2, "kela", "hva-08")
			e.ActorOrg, e.Related = "hva-90", refID(1)
			return e
		}, "forwarded by hva-90 to hva-08 (was /v1/referrals/" + refID(1) + ")"},
		{"message", "kela", func() domain.Event {
			e := base(domain.EventMessageAdded)
			e.ActorOrg = "hva-90"
			return e
		}, "new message from hva-90"},
		{"warning", "hva-90", func() domain.Event {
			e := base(domain.EventDeadlineWarning)
			e.Deadline, e.DeadlineName = &ackBy, "acknowledge_by"
			return e
		}, "deadline near: acknowledge_by 2026-11-24"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.e()
			b, err := broker.Encode(e, "/referrals/test")
			if err != nil {
				t.Fatal(err)
			}
			ce, err := broker.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			line, err := formatLine(ce, c.org, loc)
			if err != nil {
				t.Fatal(err)
			}
			fields := strings.Split(line, "  ")
			if len(fields) != 7 {
				t.Fatalf("%d fields in %q", len(fields), line)
			}
			if fields[4] != c.want {
				t.Errorf("what happened: %q, want %q", fields[4], c.want)
			}
			if fields[6] != "/v1/referrals/"+e.ReferralID {
				t.Errorf("link %q", fields[6])
			}
			if _, err := time.Parse(time.RFC3339, fields[0]); err != nil {
				t.Errorf("time %q: %v", fields[0], err)
			}
		})
	}
}

func TestLineRefusesForeignEvents(t *testing.T) {
	ce := broker.CloudEvent{SpecVersion: "1.0", ID: "x", Source: "/elsewhere", Type: "com.example.thing", Data: []byte(`{}`)}
	if _, err := formatLine(ce, "kela", time.UTC); err == nil {
		t.Error("formatted an event of another type")
	}
}
