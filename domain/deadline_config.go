package domain

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// DeadlineConfig is the deadline configuration the service loads at start
// (--deadlines-config): the business days of each kind and urgency with their legal basis,
// whether the two eves count as business days, the warning lead and Kela's handoff target.
// DefaultDeadlineConfig gives the defaults of DOMAIN §7; deadlines.example.json at the
// repository root holds exactly them.
type DeadlineConfig struct {
	Rules map[Kind]map[Urgency]DeadlineRule
	// CountEvesAsBusinessDays counts Midsummer Eve and Christmas Eve as business days inside
	// a deadline period (default false: they are not, like the public offices that close on
	// them). Either way a deadline never ends on one (Act 150/1930 §5).
	CountEvesAsBusinessDays bool
	// WarningLead is the business time between a deadline_warning and its deadline
	// (DeadlinePolicy.WarnAt): DefaultWarningLead, half a business day.
	WarningLead time.Duration
	// KelaHandoffDays is Kela's §14 c target in business days after its basic-support decision.
	KelaHandoffDays int
}

// Limits of the deadline configuration: wider values are surely typing errors.
const (
	MaxDeadlineDays    = 100
	MaxKelaHandoffDays = 30
	MaxWarningLead     = 7 * 24 * time.Hour
	maxBasisLen        = 300
)

// DefaultDeadlineConfig returns the defaults of DOMAIN §7.
func DefaultDeadlineConfig() DeadlineConfig {
	return DeadlineConfig{Rules: DefaultDeadlineRules(), WarningLead: DefaultWarningLead, KelaHandoffDays: 1}
}

// Policy returns the deadline policy of the configuration on cal, which the caller builds
// with CountEvesAsBusinessDays (the domain does not construct calendars). The policy has its
// own copy of the rules.
func (c DeadlineConfig) Policy(cal BusinessCalendar) *DeadlinePolicy {
	rules := make(map[Kind]map[Urgency]DeadlineRule, len(c.Rules))
	for k, us := range c.Rules {
		rules[k] = make(map[Urgency]DeadlineRule, len(us))
		for u, r := range us {
			rules[k][u] = r
		}
	}
	return &DeadlinePolicy{Calendar: cal, Rules: rules, KelaHandoffDays: c.KelaHandoffDays, WarningLead: c.WarningLead}
}

// The JSON keys of a deadline configuration.
const (
	cfgRules          = "rules"
	cfgCountEves      = "count_eves_as_business_days"
	cfgWarningLead    = "warning_lead"
	cfgKelaHandoff    = "kela_handoff_days"
	cfgAcknowledgeDay = "acknowledge_days"
	cfgRespondDays    = "respond_days"
	cfgBasis          = "basis"
)

// ParseDeadlineConfig reads a deadline configuration (JSON):
//
//	{
//	  "count_eves_as_business_days": false,
//	  "warning_lead": "12h",
//	  "kela_handoff_days": 1,
//	  "rules": {
//	    "social_work_need": {
//	      "normal": {"acknowledge_days": 1, "respond_days": 7, "basis": "Sosiaalihuoltolaki 1301/2014 §36: …"},
//	      "urgent": {"acknowledge_days": 1, "respond_days": 1, "basis": "…"}
//	    }
//	  }
//	}
//
// Every setting is optional; what is left out keeps its default (DefaultDeadlineConfig), a
// kind or urgency left out of rules included. A rule that is given must have all three
// fields. warning_lead is a Go duration of business time ("12h", "1h30m"), more than zero and
// at most MaxWarningLead. Days are whole numbers: acknowledge_days and respond_days 0 to
// MaxDeadlineDays (0 means the end of the arrival day, or of the next business day), with
// acknowledge_days not above respond_days; kela_handoff_days 0 to MaxKelaHandoffDays. basis
// is required text. Unknown keys, kinds and urgencies are refused.
//
// It returns EMalformed if data is not a JSON object, and EInvalid naming every field at
// fault by its JSON pointer (/rules/social_work_need/urgent/respond_days) otherwise.
func ParseDeadlineConfig(data []byte) (DeadlineConfig, error) {
	c := DefaultDeadlineConfig()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		msg := "the deadline configuration must be a JSON object"
		if err != nil {
			msg += ": " + err.Error()
		}
		return c, &Error{Code: EMalformed, Message: msg}
	}
	var v Violations
	for _, key := range sortedKeys(top) {
		raw, ptr := top[key], "/"+pointerToken(key)
		if isNull(raw) {
			v.Add(ptr, "must not be null")
			continue
		}
		switch key {
		case cfgCountEves:
			if json.Unmarshal(raw, &c.CountEvesAsBusinessDays) != nil {
				v.Add(ptr, "must be true or false")
			}
		case cfgWarningLead:
			var s string
			if json.Unmarshal(raw, &s) != nil {
				v.Add(ptr, `must be a duration string such as "12h"`)
				continue
			}
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				v.Add(ptr, `must be a duration such as "12h" or "1h30m"`)
			case d <= 0 || d > MaxWarningLead:
				v.Add(ptr, "must be more than 0 and at most %s of business time", MaxWarningLead)
			default:
				c.WarningLead = d
			}
		case cfgKelaHandoff:
			if n, ok := parseDays(&v, ptr, raw, MaxKelaHandoffDays); ok {
				c.KelaHandoffDays = n
			}
		case cfgRules:
			parseRules(&v, ptr, raw, c.Rules)
		default:
			v.Add(ptr, "unknown setting; known: %s, %s, %s, %s", cfgRules, cfgCountEves, cfgWarningLead, cfgKelaHandoff)
		}
	}
	if err := v.Err("the deadline configuration is invalid"); err != nil {
		return DefaultDeadlineConfig(), err
	}
	return c, nil
}

// parseRules reads the rules object into rules, over the defaults it holds.
func parseRules(v *Violations, ptr string, raw json.RawMessage, rules map[Kind]map[Urgency]DeadlineRule) {
	var kinds map[string]json.RawMessage
	if json.Unmarshal(raw, &kinds) != nil {
		v.Add(ptr, "must be an object of kinds")
		return
	}
	for _, k := range sortedKeys(kinds) {
		kptr := ptr + "/" + pointerToken(k)
		if !Kind(k).Valid() {
			v.Add(kptr, "unknown kind; known: %s", kindList())
			continue
		}
		var urgencies map[string]json.RawMessage
		if json.Unmarshal(kinds[k], &urgencies) != nil || urgencies == nil {
			v.Add(kptr, "must be an object with normal and/or urgent")
			continue
		}
		for _, u := range sortedKeys(urgencies) {
			uptr := kptr + "/" + pointerToken(u)
			if !Urgency(u).Valid() {
				v.Add(uptr, "unknown urgency; must be normal or urgent")
				continue
			}
			if r, ok := parseRule(v, uptr, urgencies[u]); ok {
				rules[Kind(k)][Urgency(u)] = r
			}
		}
	}
}

// parseRule reads one {acknowledge_days, respond_days, basis} object.
func parseRule(v *Violations, ptr string, raw json.RawMessage) (DeadlineRule, bool) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		v.Add(ptr, "must be an object with acknowledge_days, respond_days and basis")
		return DeadlineRule{}, false
	}
	before := len(*v)
	var r DeadlineRule
	for _, key := range sortedKeys(fields) {
		fptr := ptr + "/" + pointerToken(key)
		switch key {
		case cfgAcknowledgeDay:
			r.AcknowledgeDays, _ = parseDays(v, fptr, fields[key], MaxDeadlineDays)
		case cfgRespondDays:
			r.RespondDays, _ = parseDays(v, fptr, fields[key], MaxDeadlineDays)
		case cfgBasis:
			if json.Unmarshal(fields[key], &r.Basis) != nil {
				v.Add(fptr, "must be a string")
				continue
			}
			switch b := strings.TrimSpace(r.Basis); {
			case b == "":
				v.Add(fptr, "must name the legal basis")
			case !utf8.ValidString(b) || utf8.RuneCountInString(b) > maxBasisLen:
				v.Add(fptr, "must be valid text of at most %d characters", maxBasisLen)
			}
		default:
			v.Add(fptr, "unknown field; known: %s, %s, %s", cfgAcknowledgeDay, cfgRespondDays, cfgBasis)
		}
	}
	for _, key := range []string{cfgAcknowledgeDay, cfgRespondDays, cfgBasis} {
		if _, ok := fields[key]; !ok {
			v.Add(ptr+"/"+key, "is required")
		}
	}
	if len(*v) > before {
		return DeadlineRule{}, false
	}
	if r.AcknowledgeDays > r.RespondDays {
		v.Add(ptr+"/"+cfgAcknowledgeDay, "must not be more than respond_days (%d)", r.RespondDays)
		return DeadlineRule{}, false
	}
	return r, true
}

// parseDays reads a whole number of business days from 0 to max.
func parseDays(v *Violations, ptr string, raw json.RawMessage, max int) (int, bool) {
	var f float64
	if isNull(raw) || json.Unmarshal(raw, &f) != nil || f != float64(int(f)) || f < 0 || f > float64(max) {
		v.Add(ptr, "must be a whole number of business days from 0 to %d", max)
		return 0, false
	}
	return int(f), true
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// pointerToken escapes a key for a JSON pointer (RFC 6901).
func pointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
