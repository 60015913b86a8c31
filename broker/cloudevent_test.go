package broker_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
)

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestEncodeWritesCloudEventsAttributes(t *testing.T) {
	helsinki := time.FixedZone("EET", 2*3600)
	deadline := time.Date(2026, 3, 9, 16, 0, 0, 0, helsinki)
	e := domain.Event{
		ID: "0195f3c2-7b1e-7c3a-9d2e-1a2b3c4d5e6f", Type: domain.EventStatusChanged,
		ReferralID: "0195f3c2-0000-7000-8000-000000000042", Sender: domain.Kela, Recipient: "hva-90",
		Time: time.Date(2026, 3, 2, 11, 30, 0, 123456789, helsinki), Kind: domain.KindSocialWorkNeed,
		Urgency: "urgent", Status: "in_progress", FromStatus: "received", Action: "start",
		ActorOrg: "hva-90", Deadline: &deadline, DeadlineName: "respond_by", Related: "0195f3c2-0000-7000-8000-000000000041",
	}
	b, err := broker.Encode(e, "/referrals/test-1")
	if err != nil {
		t.Fatal(err)
	}

	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatalf("not a JSON object: %v", err)
	}
	if got, want := keys(top), []string{"data", "datacontenttype", "id", "source", "specversion", "subject", "time", "type"}; !slices.Equal(got, want) {
		t.Errorf("attributes %v, want %v", got, want)
	}
	var attrs map[string]any
	_ = json.Unmarshal(b, &attrs)
	for k, want := range map[string]string{
		"specversion": "1.0", "id": e.ID, "source": "/referrals/test-1",
		"type": "fi.kela.referrals.v1.referral.status_changed", "subject": e.ReferralID,
		"time": "2026-03-02T09:30:00.123456789Z", "datacontenttype": "application/json",
	} {
		if attrs[k] != want {
			t.Errorf("%s = %v, want %q", k, attrs[k], want)
		}
	}

	var data map[string]json.RawMessage
	if err := json.Unmarshal(top["data"], &data); err != nil {
		t.Fatalf("data is not an object: %v", err)
	}
	allowed := []string{"action", "actor_org", "deadline", "deadline_name", "from_status", "kind",
		"recipient", "referral_id", "related_referral", "sender", "status", "urgency"}
	if got := keys(data); !slices.Equal(got, allowed) {
		t.Errorf("data fields %v, want %v", got, allowed)
	}
	if got := string(data["deadline"]); got != `"2026-03-09T14:00:00Z"` {
		t.Errorf("deadline %s, want UTC", got)
	}

	ce, err := broker.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ce.Event()
	if err != nil {
		t.Fatal(err)
	}
	if !back.Time.Equal(e.Time) || !back.Deadline.Equal(*e.Deadline) {
		t.Errorf("times changed: %v %v", back.Time, back.Deadline)
	}
	back.Time, back.Deadline = e.Time, e.Deadline
	if !reflect.DeepEqual(back, e) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, e)
	}
}

func TestEncodeOmitsEmptyDataFields(t *testing.T) {
	e := event(1, "ref-1")
	e.FromStatus, e.Urgency = "", ""
	b, err := broker.Encode(e, "/referrals/x")
	if err != nil {
		t.Fatal(err)
	}
	ce, err := broker.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(ce.Data, &data); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(data), []string{"kind", "recipient", "referral_id", "sender", "status"}; !slices.Equal(got, want) {
		t.Errorf("data fields %v, want %v", got, want)
	}
}

func TestEncodeRejectsIncompleteEvents(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*domain.Event)
		source string
	}{
		"no id":     {func(e *domain.Event) { e.ID = "" }, "/r"},
		"no type":   {func(e *domain.Event) { e.Type = "" }, "/r"},
		"no source": {func(*domain.Event) {}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			e := event(1, "ref-1")
			tc.mutate(&e)
			if _, err := broker.Encode(e, tc.source); err == nil {
				t.Error("Encode succeeded")
			}
		})
	}
}

func TestDecodeRejectsInvalidEnvelopes(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":                  `{`,
		"array":                     `[]`,
		"wrong specversion":         `{"specversion":"0.3","id":"1","source":"/s","type":"t"}`,
		"no id":                     `{"specversion":"1.0","source":"/s","type":"t"}`,
		"no source":                 `{"specversion":"1.0","id":"1","type":"t"}`,
		"no type":                   `{"specversion":"1.0","id":"1","source":"/s"}`,
		"xml data":                  `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/xml"}`,
		"bad time":                  `{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"yesterday"}`,
		"time before year 0 in UTC": `{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"0000-01-01T00:00:00+01:00"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := broker.Decode([]byte(doc)); err == nil {
				t.Error("Decode succeeded")
			}
		})
	}
}

func TestEventRejectsForeignTypes(t *testing.T) {
	ce, err := broker.Decode([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"com.example.other","data":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ce.Event(); err == nil || !strings.Contains(err.Error(), "not a referral event") {
		t.Errorf("Event() error = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := broker.Encode(event(1, "ref-1"), "/referrals/fuzz")
	f.Add(b)
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"fi.kela.referrals.v1.referral.created","data":null}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"fi.kela.referrals.v1.referral.overdue","data":{"deadline":"9999-12-31T23:59:59-01:00"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ce, err := broker.Decode(b)
		if err != nil {
			return
		}
		if ce.SpecVersion != "1.0" || ce.ID == "" || ce.Source == "" || ce.Type == "" {
			t.Fatalf("Decode accepted %+v", ce)
		}
		e, err := ce.Event()
		if err != nil {
			return
		}
		// A decodable referral event re-encodes and decodes to the same event.
		b2, err := broker.Encode(e, ce.Source)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		ce2, err := broker.Decode(b2)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		e2, err := ce2.Event()
		if err != nil {
			t.Fatal(err)
		}
		if e2.ID != e.ID || e2.Type != e.Type || e2.ReferralID != e.ReferralID || !e2.Time.Equal(e.Time) {
			t.Fatalf("round trip changed %+v to %+v", e, e2)
		}
	})
}
