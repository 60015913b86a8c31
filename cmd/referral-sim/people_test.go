package main

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
)

func TestMakeBelievePersonalIDsAreValidTemporaryCodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	signs := map[byte]bool{}
	for i := range 20_000 {
		birth := time.Date(1900+rng.IntN(200), time.Month(1+rng.IntN(12)), 1+rng.IntN(31), 0, 0, 0, 0, time.UTC)
		id := makeBelievePersonalID(rng, birth)
		if err := domain.CheckPersonalID(id); err != nil {
			t.Fatalf("%d: %s (born %s): %v", i, id, birth.Format(time.DateOnly), err)
		}
		if n := atoi3(id[7:10]); n < 900 || n > 999 {
			t.Fatalf("%s: individual number %d outside the temporary range 900–999", id, n)
		}
		if want := birth.Format("020106"); id[:6] != want {
			t.Fatalf("%s: date part, want %s", id, want)
		}
		signs[id[6]] = true
	}
	for _, s := range []byte("-YXWVUABCDEF") {
		if !signs[s] {
			t.Errorf("century sign %q never drawn", s)
		}
	}
}

func atoi3(s string) int { return int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0') }

func TestNewPersonIsAValidClient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for range 1000 {
		p := newPerson(rng, "091", now)
		if err := domain.CheckPersonalID(p.PersonalID); err != nil {
			t.Fatalf("%s: %v", p.PersonalID, err)
		}
		if p.Age < 18 || p.Age > 90 || p.Name == "" || p.HomeMunicipality != "091" {
			t.Fatalf("implausible client %+v", p)
		}
		if p.Channel == "eservice" && !p.EServices {
			t.Fatalf("prefers e-services it cannot use: %+v", p)
		}
	}
}

func TestMunicipalitiesAreWeightedByPopulation(t *testing.T) {
	reg := domain.DefaultRegistry()
	for code := range largestMunicipalities {
		if m, ok := reg.Municipality(code); !ok || m.Aland {
			t.Errorf("population table: %s is not a mainland municipality", code)
		}
	}
	mp := newMunicipalityPicker(reg, nil)
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 200_000
	counts := map[string]int{}
	counties := map[domain.OrgID]bool{}
	for range n {
		c := mp.Pick(rng)
		m, ok := reg.Municipality(c)
		if !ok || m.Aland {
			t.Fatalf("picked %q, not a mainland municipality", c)
		}
		counts[c]++
		counties[m.County] = true
	}
	// Helsinki is about 12 % of the mainland population; a small municipality far less.
	if share := float64(counts["091"]) / n; share < 0.11 || share > 0.135 {
		t.Errorf("Helsinki's share %.3f, want about 0.122", share)
	}
	if counts["091"] < 10*counts["005"] {
		t.Errorf("Helsinki %d vs Alajärvi %d: not weighted by population", counts["091"], counts["005"])
	}
	if len(counties) != 22 {
		t.Errorf("%d counties drawn, want all 22 (21 and Helsinki)", len(counties))
	}
	only := newMunicipalityPicker(reg, func(o domain.OrgID) bool { return o == "hva-08" })
	for range 1000 {
		if c := only.Pick(rng); only.County(c) != "hva-08" {
			t.Fatalf("picked %s outside the only county taking part", c)
		}
	}
	if c := only.PickOutside(rng, "hva-08"); c != "" {
		t.Errorf("PickOutside found %s although only one county takes part", c)
	}
}
