package domain_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
)

// exampleConfig is the example shipped at the repository root.
const exampleConfig = "../deadlines.example.json"

func TestExampleDeadlineConfigHoldsExactlyTheDefaults(t *testing.T) {
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	got, err := domain.ParseDeadlineConfig(data)
	if err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	if want := domain.DefaultDeadlineConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("example = %+v\nwant the defaults %+v", got, want)
	}
	if got.Rules == nil || !reflect.DeepEqual(got.Rules, domain.DefaultDeadlineRules()) {
		t.Errorf("example rules differ from DefaultDeadlineRules")
	}
	// Spelled out, not defaulted: every setting, kind and urgency is in the file.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"rules", "count_eves_as_business_days", "warning_lead", "kela_handoff_days"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("the example leaves out %s", key)
		}
	}
	var rules map[domain.Kind]map[domain.Urgency]map[string]any
	if err := json.Unmarshal(raw["rules"], &rules); err != nil {
		t.Fatal(err)
	}
	for _, k := range domain.Kinds {
		for _, u := range []domain.Urgency{domain.Normal, domain.Urgent} {
			r, ok := rules[k][u]
			if !ok {
				t.Errorf("the example leaves out %s/%s", k, u)
				continue
			}
			if b, _ := r["basis"].(string); !strings.Contains(b, "§") {
				t.Errorf("%s/%s basis %q names no section of law", k, u, b)
			}
		}
	}
}

func TestParseDeadlineConfigOverridesOnlyWhatItNames(t *testing.T) {
	c, err := domain.ParseDeadlineConfig([]byte(`{
		"count_eves_as_business_days": true,
		"warning_lead": "1h30m",
		"kela_handoff_days": 0,
		"rules": {"decision_review_request": {"urgent": {"acknowledge_days": 0, "respond_days": 2, "basis": "local agreement"}}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.CountEvesAsBusinessDays || c.WarningLead != 90*time.Minute || c.KelaHandoffDays != 0 {
		t.Errorf("settings = %+v", c)
	}
	want := domain.DefaultDeadlineRules()
	want[domain.KindDecisionReviewRequest][domain.Urgent] = domain.DeadlineRule{AcknowledgeDays: 0, RespondDays: 2, Basis: "local agreement"}
	if !reflect.DeepEqual(c.Rules, want) {
		t.Errorf("rules = %+v\nwant the defaults with one urgent rule changed", c.Rules)
	}
	// The other county → Kela kinds keep their own default (no shared maps).
	if r := c.Rules[domain.KindSocialWorkStatement][domain.Urgent]; r.RespondDays != 1 {
		t.Errorf("social_work_statement urgent changed too: %+v", r)
	}

	empty, err := domain.ParseDeadlineConfig([]byte(" {} "))
	if err != nil || !reflect.DeepEqual(empty, domain.DefaultDeadlineConfig()) {
		t.Errorf("{} = %+v, %v; want the defaults", empty, err)
	}
}

func TestParseDeadlineConfigRefusals(t *testing.T) {
	rule := func(fields string) string {
		return `{"rules": {"social_work_need": {"urgent": {` + fields + `}}}}`
	}
	const okRule = `"acknowledge_days": 1, "respond_days": 1, "basis": "SHL §36"`
	tests := []struct {
		name, config string
		code         domain.Code
		pointers     []string // every field the error must name
	}{
		{"not JSON", `{"rules":`, domain.EMalformed, nil},
		{"an array", `[]`, domain.EMalformed, nil},
		{"null", `null`, domain.EMalformed, nil},
		{"trailing garbage", `{} {}`, domain.EMalformed, nil},
		{"unknown setting", `{"warning_leed": "12h"}`, domain.EInvalid, []string{"/warning_leed"}},
		{"unknown kind", `{"rules": {"social_work_needs": {}}}`, domain.EInvalid, []string{"/rules/social_work_needs"}},
		{"unknown urgency", `{"rules": {"social_work_need": {"critical": {` + okRule + `}}}}`, domain.EInvalid, []string{"/rules/social_work_need/critical"}},
		{"kind not an object", `{"rules": {"social_work_need": 7}}`, domain.EInvalid, []string{"/rules/social_work_need"}},
		{"rules not an object", `{"rules": []}`, domain.EInvalid, []string{"/rules"}},
		{"unknown rule field", rule(okRule + `, "respond_hours": 3`), domain.EInvalid, []string{"/rules/social_work_need/urgent/respond_hours"}},
		{"missing basis", rule(`"acknowledge_days": 1, "respond_days": 1`), domain.EInvalid, []string{"/rules/social_work_need/urgent/basis"}},
		{"missing days", rule(`"basis": "x"`), domain.EInvalid, []string{"/rules/social_work_need/urgent/acknowledge_days", "/rules/social_work_need/urgent/respond_days"}},
		{"blank basis", rule(`"acknowledge_days": 1, "respond_days": 1, "basis": "  "`), domain.EInvalid, []string{"/rules/social_work_need/urgent/basis"}},
		{"negative days", rule(`"acknowledge_days": -1, "respond_days": 1, "basis": "x"`), domain.EInvalid, []string{"/rules/social_work_need/urgent/acknowledge_days"}},
		{"fractional days", rule(`"acknowledge_days": 1, "respond_days": 1.5, "basis": "x"`), domain.EInvalid, []string{"/rules/social_work_need/urgent/respond_days"}},
		{"days as a string", rule(`"acknowledge_days": "1", "respond_days": 1, "basis": "x"`), domain.EInvalid, []string{"/rules/social_work_need/urgent/acknowledge_days"}},
		{"too many days", rule(`"acknowledge_days": 1, "respond_days": 700, "basis": "x"`), domain.EInvalid, []string{"/rules/social_work_need/urgent/respond_days"}},
		{"acknowledge after respond", rule(`"acknowledge_days": 3, "respond_days": 2, "basis": "x"`), domain.EInvalid, []string{"/rules/social_work_need/urgent/acknowledge_days"}},
		{"lead without a unit", `{"warning_lead": "12"}`, domain.EInvalid, []string{"/warning_lead"}},
		{"lead as a number", `{"warning_lead": 12}`, domain.EInvalid, []string{"/warning_lead"}},
		{"zero lead", `{"warning_lead": "0s"}`, domain.EInvalid, []string{"/warning_lead"}},
		{"negative lead", `{"warning_lead": "-1h"}`, domain.EInvalid, []string{"/warning_lead"}},
		{"lead beyond a week", `{"warning_lead": "200h"}`, domain.EInvalid, []string{"/warning_lead"}},
		{"eves not a bool", `{"count_eves_as_business_days": "yes"}`, domain.EInvalid, []string{"/count_eves_as_business_days"}},
		{"null setting", `{"count_eves_as_business_days": null}`, domain.EInvalid, []string{"/count_eves_as_business_days"}},
		{"handoff days negative", `{"kela_handoff_days": -1}`, domain.EInvalid, []string{"/kela_handoff_days"}},
		{"handoff days too many", `{"kela_handoff_days": 31}`, domain.EInvalid, []string{"/kela_handoff_days"}},
		{"key with a slash is escaped", `{"a/b~c": 1}`, domain.EInvalid, []string{"/a~1b~0c"}},
		{"every fault is named", `{"warning_lead": "soon", "kela_handoff_days": 99, "rules": {"mystery": {}}}`, domain.EInvalid,
			[]string{"/warning_lead", "/kela_handoff_days", "/rules/mystery"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := domain.ParseDeadlineConfig([]byte(tt.config))
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != tt.code {
				t.Fatalf("err = %v, want a %s *domain.Error", err, tt.code)
			}
			named := map[string]bool{}
			for _, f := range de.Fields {
				named[f.Pointer] = true
				if f.Detail == "" {
					t.Errorf("%s: no detail", f.Pointer)
				}
			}
			for _, p := range tt.pointers {
				if !named[p] {
					t.Errorf("error does not name %s: %+v", p, de.Fields)
				}
			}
			if len(de.Fields) != len(tt.pointers) {
				t.Errorf("error names %d fields, want %d: %+v", len(de.Fields), len(tt.pointers), de.Fields)
			}
		})
	}
}

func TestDeadlineConfigPolicyOwnsItsRules(t *testing.T) {
	c := domain.DefaultDeadlineConfig()
	c.WarningLead, c.KelaHandoffDays = 3*time.Hour, 2
	p := c.Policy(calendar.New(calendar.Options{}))
	c.Rules[domain.KindSocialWorkNeed][domain.Normal] = domain.DeadlineRule{AcknowledgeDays: 9, RespondDays: 9, Basis: "later"}
	if r := p.Rules[domain.KindSocialWorkNeed][domain.Normal]; r.RespondDays != 7 {
		t.Errorf("changing the config after Policy changed the policy: %+v", r)
	}
	if p.WarningLead != 3*time.Hour || p.KelaHandoffDays != 2 || p.Calendar == nil {
		t.Errorf("policy = %+v", p)
	}
	if d := domain.NewDeadlinePolicy(calendar.New(calendar.Options{})); d.WarningLead != 12*time.Hour || domain.DefaultWarningLead != 12*time.Hour {
		t.Errorf("NewDeadlinePolicy lead = %v, want 12h", d.WarningLead)
	}
}

// holidayArrival is one arrival and its hand-computed deadlines (RFC 3339, UTC): acknowledge_by
// (1 business day), and respond_by for 1 and for 7 business days.
type holidayArrival struct {
	name, at          string
	ack, resp1, resp7 string
}

// Christmas 2026 – New Year – Epiphany 2027. Thu 24 Dec (Christmas Eve), Fri 25 Dec,
// Sat 26 Dec, Fri 1 Jan and Wed 6 Jan are not business days; Thu 31 Dec is. Winter time:
// the end of a day is 21:59:59Z.
var christmasArrivals = []holidayArrival{
	{"Wed 23 Dec: the eve and Christmas are skipped", "2026-12-23T08:00:00Z",
		"2026-12-28T21:59:59Z", "2026-12-28T21:59:59Z", "2027-01-07T21:59:59Z"},
	{"on Christmas Eve", "2026-12-24T10:00:00Z",
		"2026-12-28T21:59:59Z", "2026-12-28T21:59:59Z", "2027-01-07T21:59:59Z"},
	{"late evening UTC of 23 Dec is Christmas Eve in Helsinki", "2026-12-23T22:30:00Z",
		"2026-12-28T21:59:59Z", "2026-12-28T21:59:59Z", "2027-01-07T21:59:59Z"},
	{"on Saturday 26 Dec (Boxing Day)", "2026-12-26T10:00:00Z",
		"2026-12-28T21:59:59Z", "2026-12-28T21:59:59Z", "2027-01-07T21:59:59Z"},
	{"New Year's Eve: New Year's Day is skipped", "2026-12-31T13:00:00Z",
		"2027-01-04T21:59:59Z", "2027-01-04T21:59:59Z", "2027-01-13T21:59:59Z"},
	{"on New Year's Day", "2027-01-01T10:00:00Z",
		"2027-01-04T21:59:59Z", "2027-01-04T21:59:59Z", "2027-01-13T21:59:59Z"},
	{"Tue 5 Jan: Epiphany is skipped", "2027-01-05T08:00:00Z",
		"2027-01-07T21:59:59Z", "2027-01-07T21:59:59Z", "2027-01-15T21:59:59Z"},
	{"on Epiphany", "2027-01-06T10:00:00Z",
		"2027-01-07T21:59:59Z", "2027-01-07T21:59:59Z", "2027-01-15T21:59:59Z"},
}

// Midsummer 2026: Fri 19 Jun is Midsummer Eve, Sat 20 Jun Midsummer Day. Summer time: the end
// of a day is 20:59:59Z.
var midsummerArrivals = []holidayArrival{
	{"Thu 18 Jun: Midsummer Eve is skipped", "2026-06-18T07:00:00Z",
		"2026-06-22T20:59:59Z", "2026-06-22T20:59:59Z", "2026-06-30T20:59:59Z"},
	{"on Midsummer Eve", "2026-06-19T07:00:00Z",
		"2026-06-22T20:59:59Z", "2026-06-22T20:59:59Z", "2026-06-30T20:59:59Z"},
	{"on Midsummer Day (a Saturday)", "2026-06-20T09:00:00Z",
		"2026-06-22T20:59:59Z", "2026-06-22T20:59:59Z", "2026-06-30T20:59:59Z"},
}

// Easter 2027: Good Friday 26 Mar, Easter Monday 29 Mar; summer time starts on Easter Day,
// Sun 28 Mar (end of day 21:59:59Z before, 20:59:59Z after).
var easterArrivals = []holidayArrival{
	{"Wed 24 Mar: 1 day stays in winter time, 7 cross Easter and the clock change", "2027-03-24T08:00:00Z",
		"2027-03-25T21:59:59Z", "2027-03-25T21:59:59Z", "2027-04-06T20:59:59Z"},
	{"Wed 24 Mar 23:30 in Helsinki is still Wednesday", "2027-03-24T21:30:00Z",
		"2027-03-25T21:59:59Z", "2027-03-25T21:59:59Z", "2027-04-06T20:59:59Z"},
	{"22:30Z on 24 Mar is Thursday in Helsinki", "2027-03-24T22:30:00Z",
		"2027-03-30T20:59:59Z", "2027-03-30T20:59:59Z", "2027-04-07T20:59:59Z"},
	{"Thu 25 Mar: Good Friday to Easter Monday are skipped", "2027-03-25T08:00:00Z",
		"2027-03-30T20:59:59Z", "2027-03-30T20:59:59Z", "2027-04-07T20:59:59Z"},
	{"on Good Friday", "2027-03-26T10:00:00Z",
		"2027-03-30T20:59:59Z", "2027-03-30T20:59:59Z", "2027-04-07T20:59:59Z"},
	{"Easter Saturday 23:30, just before the clocks go forward", "2027-03-27T21:30:00Z",
		"2027-03-30T20:59:59Z", "2027-03-30T20:59:59Z", "2027-04-07T20:59:59Z"},
	{"on Easter Monday, in summer time", "2027-03-29T06:00:00Z",
		"2027-03-30T20:59:59Z", "2027-03-30T20:59:59Z", "2027-04-07T20:59:59Z"},
}

// An ordinary Saturday: Independence Day, Sun 6 Dec 2026, changes nothing.
var saturdayArrivals = []holidayArrival{
	{"on an ordinary Saturday", "2026-11-28T10:00:00Z",
		"2026-11-30T21:59:59Z", "2026-11-30T21:59:59Z", "2026-12-08T21:59:59Z"},
}

// With count_eves_as_business_days, Christmas Eve and Midsummer Eve are business days.
var evesCountedArrivals = []holidayArrival{
	// The eves count inside a period, but a deadline ending on one moves to the next
	// business day (Act 150/1930 §5).
	{"Wed 23 Dec: Christmas Eve is day 1, a deadline on it moves to Mon 28 Dec", "2026-12-23T08:00:00Z",
		"2026-12-28T21:59:59Z", "2026-12-28T21:59:59Z", "2027-01-05T21:59:59Z"},
	{"on Christmas Eve, a business day that is not counted", "2026-12-24T10:00:00Z",
		"2026-12-28T21:59:59Z", "2026-12-28T21:59:59Z", "2027-01-07T21:59:59Z"},
	{"Thu 18 Jun: Midsummer Eve is day 1, a deadline on it moves to Mon 22 Jun", "2026-06-18T07:00:00Z",
		"2026-06-22T20:59:59Z", "2026-06-22T20:59:59Z", "2026-06-29T20:59:59Z"},
	{"on Midsummer Eve, not counted", "2026-06-19T07:00:00Z",
		"2026-06-22T20:59:59Z", "2026-06-22T20:59:59Z", "2026-06-30T20:59:59Z"},
}

// TestDeadlineTablesAcrossHolidays checks the policy of the default configuration (and of one
// counting the eves) for every kind and urgency against hand-computed deadlines, and the
// default warning time (12 business hours before: 11:59:59 Helsinki time on the last day).
func TestDeadlineTablesAcrossHolidays(t *testing.T) {
	evesCounted := domain.DefaultDeadlineConfig()
	evesCounted.CountEvesAsBusinessDays = true
	configs := []struct {
		name     string
		c        domain.DeadlineConfig
		arrivals [][]holidayArrival
	}{
		{"default", domain.DefaultDeadlineConfig(), [][]holidayArrival{christmasArrivals, midsummerArrivals, easterArrivals, saturdayArrivals}},
		{"eves counted", evesCounted, [][]holidayArrival{evesCountedArrivals}},
	}
	for _, cfg := range configs {
		p := cfg.c.Policy(calendar.New(calendar.Options{CountEvesAsBusinessDays: cfg.c.CountEvesAsBusinessDays}))
		for _, group := range cfg.arrivals {
			for _, a := range group {
				for _, k := range domain.Kinds {
					for _, u := range []domain.Urgency{domain.Normal, domain.Urgent} {
						t.Run(cfg.name+"/"+a.name+"/"+string(k)+"/"+string(u), func(t *testing.T) {
							// §14 b urgent: next business day; §14 d meetings stay at 7 days.
							wantRespond := a.resp7
							if u == domain.Urgent && k != domain.KindJointMeetingRequest {
								wantRespond = a.resp1
							}
							r := &domain.Referral{Kind: k, Urgency: u, Status: domain.StatusSent}
							p.Assign(r, mustTime(t, a.at))
							checkDeadline(t, "acknowledge_by", r.Deadlines.AcknowledgeBy, a.ack)
							checkDeadline(t, "respond_by", r.Deadlines.RespondBy, wantRespond)
							if r.Deadlines.AcknowledgeBy == nil || r.Deadlines.RespondBy == nil {
								return
							}
							for _, by := range []time.Time{*r.Deadlines.AcknowledgeBy, *r.Deadlines.RespondBy} {
								if got, want := p.WarnAt(by), by.Add(-12*time.Hour); !got.Equal(want) {
									t.Errorf("WarnAt(%s) = %s, want %s", by, got, want)
								}
								if h := by.In(p.Calendar.Location()); h.Hour() != 23 || h.Minute() != 59 || !p.Calendar.IsBusinessDay(h) {
									t.Errorf("deadline %s is not the end of a Helsinki business day", h)
								}
							}
						})
					}
				}
			}
		}
	}
}

func TestWarnAtCountsBusinessTime(t *testing.T) {
	tests := []struct {
		name string
		lead time.Duration
		by   string
		want string
	}{
		{"12h: noon of the deadline day", 12 * time.Hour, "2026-12-28T21:59:59Z", "2026-12-28T09:59:59Z"},
		{"12h in summer time", 12 * time.Hour, "2026-06-22T20:59:59Z", "2026-06-22T08:59:59Z"},
		{"36h before Monday 28 Dec reaches back over Christmas to Wednesday noon", 36 * time.Hour, "2026-12-28T21:59:59Z", "2026-12-23T09:59:59Z"},
		{"24h before Monday 28 Dec: the last second of Wednesday 23 Dec", 24 * time.Hour, "2026-12-28T21:59:59Z", "2026-12-23T21:59:59Z"},
		{"exactly the whole last day: the end of the previous business day", 24*time.Hour - time.Second, "2026-12-28T21:59:59Z", "2026-12-23T22:00:00Z"},
		{"36h before Tuesday after Easter, across the clock change", 36 * time.Hour, "2027-03-30T20:59:59Z", "2027-03-25T09:59:59Z"},
		{"1h", time.Hour, "2027-01-07T21:59:59Z", "2027-01-07T20:59:59Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPolicy(t)
			p.WarningLead = tt.lead
			if got := p.WarnAt(mustTime(t, tt.by)); !got.Equal(mustTime(t, tt.want)) {
				t.Errorf("WarnAt = %s, want %s", got.UTC().Format(time.RFC3339), tt.want)
			}
		})
	}
	p := newPolicy(t)
	p.WarningLead = 0
	if _, ok := p.WarningHorizon(mustTime(t, "2026-12-28T10:00:00Z")); ok {
		t.Errorf("warnings off, yet a warning horizon")
	}
}

// TestWarnAtAndWarningHorizonAgree checks both against the calendar's own business-time
// measure (calendar.BusinessDurationBetween) at random instants: WarnAt(d) is the earliest
// instant with at most the lead left before d, WarningHorizon(now) the latest deadline with at
// most the lead left after now, and a warning is due at now exactly when its deadline is at
// or before the horizon.
func TestWarnAtAndWarningHorizonAgree(t *testing.T) {
	cal := calendar.New(calendar.Options{})
	rng := rand.New(rand.NewPCG(3, 14))
	from := mustTime(t, "2026-03-01T00:00:00Z")
	span := int64(400 * 24 * time.Hour)
	randomTime := func() time.Time {
		tm := from.Add(time.Duration(rng.Int64N(span)))
		if rng.IntN(3) == 0 { // often a real deadline: the end of a business day
			tm = cal.Deadline(tm, 0)
		}
		return tm
	}
	for _, lead := range []time.Duration{time.Hour, 12 * time.Hour, 24*time.Hour - time.Second, 36 * time.Hour, 72 * time.Hour} {
		p := domain.NewDeadlinePolicy(cal)
		p.WarningLead = lead
		for range 2000 {
			d, now := randomTime(), randomTime()
			w := p.WarnAt(d)
			if got := cal.BusinessDurationBetween(w, d); got > lead {
				t.Fatalf("lead %v: WarnAt(%s) = %s leaves %v", lead, d, w, got)
			}
			if got := cal.BusinessDurationBetween(w.Add(-time.Nanosecond), d); got <= lead {
				t.Fatalf("lead %v: WarnAt(%s) = %s is not the earliest (a nanosecond before leaves %v)", lead, d, w, got)
			}
			h, ok := p.WarningHorizon(now)
			if !ok {
				t.Fatal("no horizon")
			}
			if got := cal.BusinessDurationBetween(now, h); got > lead {
				t.Fatalf("lead %v: horizon(%s) = %s is %v ahead", lead, now, h, got)
			}
			if got := cal.BusinessDurationBetween(now, h.Add(time.Nanosecond)); got <= lead {
				t.Fatalf("lead %v: horizon(%s) = %s is not the latest", lead, now, h)
			}
			if due, inside := !w.After(now), !d.After(h); due != inside {
				t.Fatalf("lead %v, now %s, deadline %s: warning due %v (WarnAt %s) but within horizon %v (%s)", lead, now, d, due, w, inside, h)
			}
		}
	}
}
