package domain_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
)

// FuzzParseDeadlineConfig feeds arbitrary files to ParseDeadlineConfig (the
// --deadlines-config file: an operator's file, not a caller's, but a typing error in it
// must be refused with a clear error at start, never panic or give absurd deadlines).
// Seeds are in testdata/fuzz/FuzzParseDeadlineConfig.
//
// An accepted configuration has a rule for every kind and urgency within the documented
// limits, and the policy built from it gives every referral an acknowledge_by no later
// than its respond_by. A refusal is an EMalformed or EInvalid *domain.Error (EInvalid
// naming each field by JSON pointer) and comes with the defaults.
func FuzzParseDeadlineConfig(f *testing.F) {
	cal := calendar.New(calendar.Options{})
	at := time.Date(2026, 12, 23, 15, 0, 0, 0, time.UTC) // before Christmas: eves and holidays ahead
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := domain.ParseDeadlineConfig(data)
		if err != nil {
			var de *domain.Error
			switch {
			case !errors.As(err, &de) || de.Code != domain.EMalformed && de.Code != domain.EInvalid:
				t.Fatalf("error %v is not EMalformed or EInvalid", err)
			case de.Code == domain.EInvalid && len(de.Fields) == 0:
				t.Fatalf("EInvalid names no field: %v", err)
			case !reflect.DeepEqual(c, domain.DefaultDeadlineConfig()):
				t.Fatalf("a refused configuration did not come with the defaults: %+v", c)
			}
			for _, fe := range de.Fields {
				if !strings.HasPrefix(fe.Pointer, "/") {
					t.Fatalf("field error %+v has no JSON pointer", fe)
				}
			}
			return
		}
		if c.WarningLead <= 0 || c.WarningLead > domain.MaxWarningLead {
			t.Fatalf("accepted warning_lead %s", c.WarningLead)
		}
		if c.KelaHandoffDays < 0 || c.KelaHandoffDays > domain.MaxKelaHandoffDays {
			t.Fatalf("accepted kela_handoff_days %d", c.KelaHandoffDays)
		}
		p := c.Policy(cal)
		for _, k := range domain.Kinds {
			for _, u := range []domain.Urgency{domain.Normal, domain.Urgent} {
				r, ok := c.Rules[k][u]
				switch {
				case !ok:
					t.Fatalf("no rule for %s %s", k, u)
				case r.AcknowledgeDays < 0 || r.AcknowledgeDays > r.RespondDays || r.RespondDays > domain.MaxDeadlineDays:
					t.Fatalf("accepted %s %s rule %+v", k, u, r)
				case strings.TrimSpace(r.Basis) == "" || !utf8.ValidString(r.Basis):
					t.Fatalf("accepted %s %s basis %q", k, u, r.Basis)
				}
				ref := &domain.Referral{Kind: k, Urgency: u, SupplementarySupport: &domain.SupplementarySupport{BasicDecisionDate: "2026-12-21"}}
				p.Assign(ref, at)
				d := ref.Deadlines
				if d.AcknowledgeBy == nil || d.RespondBy == nil || d.RespondBy.Before(*d.AcknowledgeBy) || d.AcknowledgeBy.Before(at) {
					t.Fatalf("%s %s under %+v: deadlines %+v from %s", k, u, r, d, at)
				}
			}
		}
	})
}
