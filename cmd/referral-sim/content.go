package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// weighted picks one of items by weight.
type weighted[T any] struct {
	items   []T
	weights []int
	total   int
}

func newWeighted[T any](pairs ...any) weighted[T] {
	var w weighted[T]
	for i := 0; i+1 < len(pairs); i += 2 {
		w.items = append(w.items, pairs[i].(T))
		n := pairs[i+1].(int)
		w.weights = append(w.weights, n)
		w.total += n
	}
	return w
}

func (w weighted[T]) pick(rng *rand.Rand) T {
	x := rng.IntN(w.total)
	for i, n := range w.weights {
		if x < n {
			return w.items[i]
		}
		x -= n
	}
	return w.items[len(w.items)-1]
}

// What Kela sends: mostly social-work-need notifications and supplementary-support handoffs,
// now and then a joint-meeting request. What the counties send Kela: mostly statements.
var (
	kelaKinds = newWeighted[domain.Kind](
		domain.KindSocialWorkNeed, 55,
		domain.KindSupplementarySupportHandoff, 40,
		domain.KindJointMeetingRequest, 5)
	countyKinds = newWeighted[domain.Kind](
		domain.KindSocialWorkStatement, 45,
		domain.KindDecisionReviewRequest, 20,
		domain.KindDirectPaymentRequest, 20,
		domain.KindContactPersonRequest, 10,
		domain.KindJointMeetingRequest, 5)
	// needFlags are weighted by how often the field reports name them.
	needFlags = newWeighted[string](
		"multiple_needs", 14, "housing_risk", 12, "debt_or_arrears", 12, "no_income", 10,
		"mental_health", 9, "substance_use", 9, "repeated_urgent_applications", 8,
		"youth_without_income", 6, "homelessness", 5, "digital_or_id_barrier", 5,
		"released_from_prison", 3, "language_barrier", 3, "cognitive_impairment", 2,
		"domestic_violence", 1, "basic_amount_reduction", 4, "other", 2)
	expenseTypes = newWeighted[string]("medical", 35, "housing", 25, "furniture", 10,
		"childcare", 8, "travel", 8, "debt", 6, "funeral", 2, "other", 6)
)

var needDescriptions = []string{
	"Asiakas kertoo vuokrarästeistä ja häätöuhasta.",
	"Useita kiireellisiä hakemuksia lyhyen ajan sisällä.",
	"Asiakas vapautunut, ei vielä asuntoa.",
	"Nuori ilman tuloja, ei opiskelupaikkaa.",
	"Asiakas ei pysty asioimaan sähköisesti eikä hänellä ole pankkitunnuksia.",
	"Perustoimeentulotuen perusosan alentamista harkitaan.",
	"Asiakas toivoo yhteydenottoa sosiaalityöstä.",
}

// kelaCaseRef makes up a Kela case reference.
func kelaCaseRef(rng *rand.Rand, year int) string {
	return fmt.Sprintf("TO-%d-%07d", year, rng.IntN(10_000_000))
}

// newKelaRequest builds what a Kela handler sends about p at business time now.
func newKelaRequest(rng *rand.Rand, kind domain.Kind, urgency domain.Urgency, p person, now time.Time) *domain.CreateRequest {
	req := &domain.CreateRequest{Kind: kind, Urgency: urgency, KelaCaseRef: kelaCaseRef(rng, now.Year()), Client: p.client()}
	switch kind {
	case domain.KindSocialWorkNeed:
		n := &domain.SocialWorkNeed{Consent: "given", Description: needDescriptions[rng.IntN(len(needDescriptions))]}
		seen := map[string]bool{}
		for range 1 + rng.IntN(3) {
			f := needFlags.pick(rng)
			if !seen[f] {
				seen[f] = true
				n.NeedFlags = append(n.NeedFlags, f)
			}
		}
		if p.Age < 25 && !seen["youth_without_income"] && rng.IntN(2) == 0 {
			n.NeedFlags = append(n.NeedFlags, "youth_without_income")
		}
		if seen["basic_amount_reduction"] {
			n.ReductionLevel = 1 + rng.IntN(2)
		}
		// SHL §35: without consent only when health, development or safety is at immediate risk.
		if rng.IntN(20) == 0 {
			n.Consent, n.ImmediateNeed = "not_given", true
			n.ConsentJustification = "Asiakkaan terveys ja turvallisuus välittömästi vaarassa."
		}
		req.SocialWorkNeed = n
	case domain.KindSupplementarySupportHandoff:
		received := now.AddDate(0, 0, -(2 + rng.IntN(6)))
		ss := &domain.SupplementarySupport{
			SupportTypes:              []string{"supplementary"},
			ApplicationReceivedAtKela: received.Format(time.DateOnly),
		}
		if rng.IntN(5) == 0 {
			ss.SupportTypes = append(ss.SupportTypes, "preventive")
		}
		if rng.IntN(10) > 0 { // the basic-support decision may still be pending
			ss.BasicDecisionDate = received.AddDate(0, 0, 1+rng.IntN(2)).Format(time.DateOnly)
		}
		for range 1 + rng.IntN(3) {
			ss.ExpenseItems = append(ss.ExpenseItems, domain.ExpenseItem{
				Type: expenseTypes.pick(rng), AmountEUR: fmt.Sprintf("%d.%02d", 20+rng.IntN(900), rng.IntN(100)),
			})
		}
		ss.DocumentRefs = []string{fmt.Sprintf("kela-doc:%d", rng.IntN(1_000_000_000))}
		req.SupplementarySupport = ss
	case domain.KindJointMeetingRequest:
		req.JointMeeting = &domain.JointMeeting{Subject: "Yhteistapaaminen (§14 d)",
			Text: "Ehdotamme asiakkaan, Kelan ja sosiaalityön yhteistä tapaamista."}
	}
	return req
}

// newCountyRequest builds what a county social worker sends Kela about p.
func newCountyRequest(rng *rand.Rand, kind domain.Kind, urgency domain.Urgency, p person, now time.Time) *domain.CreateRequest {
	req := &domain.CreateRequest{Kind: kind, Urgency: urgency, KelaCaseRef: kelaCaseRef(rng, now.Year()), Client: p.client()}
	switch kind {
	case domain.KindSocialWorkStatement:
		topics := []string{[]string{"other_basic_expenses", "basic_amount_reduction", "urgent_processing"}[rng.IntN(3)]}
		req.ToKela = &domain.ToKela{Subject: "Sosiaalihuollon lausunto (§15)", Topics: topics, ClientHeard: true,
			Text: "Asiakasta on kuultu. Sosiaalityön arvion mukaan muut perusmenot ovat perusteltuja."}
	case domain.KindDecisionReviewRequest:
		req.ToKela = &domain.ToKela{Subject: "Oikaisupyyntö", Text: "Pyydämme tarkistamaan päätöksen: asumismenot on huomioitu väärin."}
	case domain.KindContactPersonRequest:
		req.ToKela = &domain.ToKela{Subject: "Asiakkuusvastaava", Text: "Asiakkaalla on monialaisia tarpeita; pyydämme nimettyä yhteyshenkilöä."}
	case domain.KindDirectPaymentRequest:
		req.ToKela = &domain.ToKela{Subject: "Maksusitoumus suoraan laskuttajalle", Text: "Pyydämme maksamaan vuokran suoraan vuokranantajalle."}
		req.DirectPayment = &domain.DirectPayment{
			Bills: []domain.Bill{{Biller: "Vuokranantaja Oy", Reference: fmt.Sprintf("RF%d", 10_000+rng.IntN(90_000)),
				AmountEUR: fmt.Sprintf("%d.00", 450+rng.IntN(500)), Period: "monthly"}},
			ValidFrom: now.AddDate(0, 1, 0).Format("2006-01") + "-01", ValidUntil: now.AddDate(0, 7, 0).Format("2006-01") + "-01",
		}
	case domain.KindJointMeetingRequest:
		req.JointMeeting = &domain.JointMeeting{Subject: "Yhteistapaaminen (§14 d)",
			Text: "Asiakkaan tilanne edellyttää yhteistä tapaamista Kelan kanssa."}
	}
	return req
}
