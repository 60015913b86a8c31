package domain_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kela-hva/referrals/domain"
)

func TestDefaultRegistryCounts(t *testing.T) {
	reg := domain.DefaultRegistry()
	if got := len(reg.Municipalities()); got != 308 {
		t.Fatalf("municipalities = %d, want 308", got)
	}
	orgs := reg.Organisations()
	want := []domain.OrgID{domain.Kela}
	for i := 1; i <= 21; i++ {
		want = append(want, domain.OrgID(fmt.Sprintf("hva-%02d", i)))
	}
	want = append(want, "hva-90")
	if len(orgs) != len(want) {
		t.Fatalf("organisations = %d, want %d (kela, hva-01..hva-21, hva-90)", len(orgs), len(want))
	}
	for i, o := range orgs {
		if o.ID != want[i] {
			t.Fatalf("organisation %d = %s, want %s (Kela first, then counties by code)", i, o.ID, want[i])
		}
		wantType := "county"
		if o.ID == domain.Kela {
			wantType = "kela"
		}
		if o.Type != wantType {
			t.Errorf("organisation %s type = %q, want %q", o.ID, o.Type, wantType)
		}
		if o.NameFI == "" || o.NameSV == "" {
			t.Errorf("organisation %s lacks a name: %+v", o.ID, o)
		}
		if got, ok := reg.Organisation(o.ID); !ok || got != o {
			t.Errorf("Organisation(%s) = %+v, %v; want %+v, true", o.ID, got, ok, o)
		}
	}
	for _, id := range []domain.OrgID{"hva-91", "hva-00", "hva-22", "kela2", ""} {
		if _, ok := reg.Organisation(id); ok {
			t.Errorf("Organisation(%q) exists, want not", id)
		}
	}
}

func TestDefaultRegistryMunicipalitiesSortedAndRouted(t *testing.T) {
	reg := domain.DefaultRegistry()
	ms := reg.Municipalities()
	aland := 0
	for i, m := range ms {
		if i > 0 && ms[i-1].Code >= m.Code {
			t.Fatalf("municipalities not sorted by code at %d: %s then %s", i, ms[i-1].Code, m.Code)
		}
		if m.Aland {
			aland++
			if m.County != "" {
				t.Errorf("Åland municipality %s has county %s", m.Code, m.County)
			}
			continue
		}
		if _, ok := reg.Organisation(m.County); !ok || !m.County.IsCounty() {
			t.Errorf("municipality %s routes to %q, which is not a county of the registry", m.Code, m.County)
		}
	}
	if aland != 16 {
		t.Errorf("Åland municipalities = %d, want 16", aland)
	}
}

func TestRegistryMunicipalityLookup(t *testing.T) {
	reg := domain.DefaultRegistry()
	tests := []struct {
		name       string
		code       string
		wantName   string
		wantCounty domain.OrgID
		wantAland  bool
	}{
		{"Helsinki organises its own services", "091", "Helsinki", "hva-90", false},
		{"Tampere is in Pirkanmaa", "837", "Tampere", "hva-08", false},
		{"Alajärvi is in Etelä-Pohjanmaa", "005", "Alajärvi", "hva-16", false},
		{"Maarianhamina is in Åland, no county", "478", "Maarianhamina - Mariehamn", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := reg.Municipality(tt.code)
			if !ok {
				t.Fatalf("Municipality(%s) not found", tt.code)
			}
			if m.Code != tt.code || m.NameFI != tt.wantName || m.County != tt.wantCounty || m.Aland != tt.wantAland {
				t.Fatalf("Municipality(%s) = %+v, want name %q county %q aland %v", tt.code, m, tt.wantName, tt.wantCounty, tt.wantAland)
			}
		})
	}
	for _, code := range []string{"999", "000", "91", "0091", ""} {
		if m, ok := reg.Municipality(code); ok {
			t.Errorf("Municipality(%q) = %+v, want not found", code, m)
		}
	}
}

func TestOrgIDForms(t *testing.T) {
	tests := []struct {
		id       domain.OrgID
		isCounty bool
		isKela   bool
	}{
		{"kela", false, true},
		{"KELA", false, false},
		{"hva-01", true, false},
		{"hva-21", true, false},
		{"hva-90", true, false},
		{"hva-00", true, false}, // form only; existence is the registry's business
		{"hva-1", false, false},
		{"hva-001", false, false},
		{"hva-0a", false, false},
		{"HVA-01", false, false},
		{"hva_01", false, false},
		{"xhva-01", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if got := tt.id.IsCounty(); got != tt.isCounty {
			t.Errorf("OrgID(%q).IsCounty() = %v, want %v", tt.id, got, tt.isCounty)
		}
		if got := tt.id.IsKela(); got != tt.isKela {
			t.Errorf("OrgID(%q).IsKela() = %v, want %v", tt.id, got, tt.isKela)
		}
	}
}

func TestParseRegistry(t *testing.T) {
	const header = "code,name_fi,name_sv,county_code,county_name_fi,county_name_sv\n"
	tests := []struct {
		name    string
		data    string
		wantErr string
	}{
		{"bad header", "kunta,name_fi,name_sv,county_code,county_name_fi,county_name_sv\n091,Helsinki,Helsingfors,90,Helsingin kaupunki,Helsingfors stad\n", "header"},
		{"header only", header, "header"},
		{"empty file", "", "header"},
		{"two-digit municipality code", header + "91,Helsinki,Helsingfors,90,Helsingin kaupunki,Helsingfors stad\n", "line 2: bad code"},
		{"letters in municipality code", header + "09A,Helsinki,Helsingfors,90,Helsingin kaupunki,Helsingfors stad\n", "line 2: bad code"},
		{"one-digit county code", header + "091,Helsinki,Helsingfors,9,Helsingin kaupunki,Helsingfors stad\n", "line 2: bad code"},
		{"bad code on a later line", header + "091,Helsinki,Helsingfors,90,Helsingin kaupunki,Helsingfors stad\n837,Tampere,Tammerfors,0x,Pirkanmaa,Birkaland\n", "line 3: bad code"},
		{"short row", header + "091,Helsinki\n", "read municipalities"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := domain.ParseRegistry([]byte(tt.data))
			if err == nil {
				t.Fatalf("ParseRegistry = %v, nil; want an error containing %q", r, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseRegistry error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseRegistryDerivesOrganisations(t *testing.T) {
	data := "code,name_fi,name_sv,county_code,county_name_fi,county_name_sv\n" +
		"837,Tampere,Tammerfors,08,Pirkanmaan hyvinvointialue,Birkalands välfärdsområde\n" +
		"091,Helsinki,Helsingfors,90,Helsingin kaupunki,Helsingfors stad\n" +
		"478,Maarianhamina - Mariehamn,Mariehamn,91,Ahvenanmaa,Åland\n"
	r, err := domain.ParseRegistry([]byte(data))
	if err != nil {
		t.Fatalf("ParseRegistry: %v", err)
	}
	var ids []domain.OrgID
	for _, o := range r.Organisations() {
		ids = append(ids, o.ID)
	}
	if got, want := fmt.Sprint(ids), "[kela hva-08 hva-90]"; got != want {
		t.Fatalf("organisations = %s, want %s (Åland makes none)", got, want)
	}
	if o, _ := r.Organisation("hva-08"); o.NameFI != "Pirkanmaan hyvinvointialue" || o.NameSV != "Birkalands välfärdsområde" {
		t.Fatalf("hva-08 = %+v, want the county names of the file", o)
	}
	if m, ok := r.Municipality("478"); !ok || !m.Aland || m.County != "" {
		t.Fatalf("478 = %+v, %v; want Åland without county", m, ok)
	}
	if got := len(r.Municipalities()); got != 3 {
		t.Fatalf("municipalities = %d, want 3", got)
	}
}
