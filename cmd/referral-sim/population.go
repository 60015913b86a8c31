package main

import (
	"math/rand/v2"
	"sort"

	"github.com/kela-hva/referrals/domain"
)

// largestMunicipalities are the populations of the largest municipalities (and Kajaani, so
// that every county has one), approximately, rounded to the thousand, from Statistics
// Finland's population figures for the end of 2024. They only weight where simulated clients
// live, so rounding does not matter. Every other mainland municipality gets an equal share of
// the rest of the population.
var largestMunicipalities = map[string]int{
	"091": 684_000, // Helsinki
	"049": 320_000, // Espoo
	"837": 258_000, // Tampere
	"092": 249_000, // Vantaa
	"564": 216_000, // Oulu
	"853": 205_000, // Turku
	"179": 148_000, // Jyväskylä
	"297": 125_000, // Kuopio
	"398": 121_000, // Lahti
	"609": 83_000,  // Pori
	"286": 79_000,  // Kouvola
	"167": 78_000,  // Joensuu
	"405": 73_000,  // Lappeenranta
	"109": 68_000,  // Hämeenlinna
	"905": 68_000,  // Vaasa
	"743": 66_000,  // Seinäjoki
	"698": 65_000,  // Rovaniemi
	"491": 52_000,  // Mikkeli
	"285": 51_000,  // Kotka
	"734": 51_000,  // Salo
	"638": 51_000,  // Porvoo
	"272": 48_000,  // Kokkola
	"106": 47_000,  // Hyvinkää
	"186": 46_000,  // Järvenpää
	"444": 45_000,  // Lohja
	"205": 36_000,  // Kajaani
}

// mainlandPopulation is Finland's population at the end of 2024 (about 5,636,000) less Åland
// (about 31,000), whose municipalities are outside the counties' system.
const mainlandPopulation = 5_605_000

// municipalityPicker draws home municipalities weighted by population.
type municipalityPicker struct {
	codes  []string
	cumul  []int // cumulative weights
	total  int
	county map[string]domain.OrgID
}

// newMunicipalityPicker weights the mainland municipalities of reg whose county keep accepts
// (nil: all) by population.
func newMunicipalityPicker(reg *domain.Registry, keep func(domain.OrgID) bool) *municipalityPicker {
	var others []string
	rest := mainlandPopulation
	for _, n := range largestMunicipalities {
		rest -= n
	}
	mp := &municipalityPicker{county: map[string]domain.OrgID{}}
	ms := reg.Municipalities()
	sort.Slice(ms, func(i, j int) bool { return ms[i].Code < ms[j].Code })
	for _, m := range ms {
		if !m.Aland {
			if _, big := largestMunicipalities[m.Code]; !big {
				others = append(others, m.Code)
			}
		}
	}
	each := rest / max(len(others), 1)
	for _, m := range ms {
		if m.Aland || (keep != nil && !keep(m.County)) {
			continue
		}
		w, ok := largestMunicipalities[m.Code]
		if !ok {
			w = each
		}
		mp.total += w
		mp.codes = append(mp.codes, m.Code)
		mp.cumul = append(mp.cumul, mp.total)
		mp.county[m.Code] = m.County
	}
	return mp
}

// Pick returns a municipality code; "" if no municipality is eligible.
func (mp *municipalityPicker) Pick(rng *rand.Rand) string {
	if mp.total == 0 {
		return ""
	}
	x := rng.IntN(mp.total)
	i := sort.SearchInts(mp.cumul, x+1)
	return mp.codes[i]
}

// PickOutside returns a municipality whose county is not county ("" if there is none).
func (mp *municipalityPicker) PickOutside(rng *rand.Rand, county domain.OrgID) string {
	for range 100 {
		if c := mp.Pick(rng); mp.county[c] != county {
			return c
		}
	}
	return ""
}

// County returns the county of a municipality the picker knows.
func (mp *municipalityPicker) County(code string) domain.OrgID { return mp.county[code] }
