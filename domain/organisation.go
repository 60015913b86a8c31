package domain

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"fmt"
	"sort"
	"strings"
)

// OrgID identifies an organisation: "kela", or "hva-NN" for a wellbeing services county
// (hyvinvointialue) where NN is its Statistics Finland code; Helsinki is "hva-90".
type OrgID string

// Kela is the Social Insurance Institution of Finland.
const Kela OrgID = "kela"

// IsKela reports whether o is Kela.
func (o OrgID) IsKela() bool { return o == Kela }

// IsCounty reports whether o has the form of a county id (hva-NN). It does not check that the
// county exists; Registry.Organisation does.
func (o OrgID) IsCounty() bool {
	s := string(o)
	return len(s) == 6 && strings.HasPrefix(s, "hva-") && isDigits(s[4:])
}

// Organisation is one party of the service.
type Organisation struct {
	ID     OrgID  `json:"id"`
	NameFI string `json:"name_fi"`
	NameSV string `json:"name_sv"`
	Type   string `json:"type"` // "kela" or "county"
}

// Municipality is a Finnish municipality (kunta) and the county that organises its social
// services. Counties are nil for Åland, which is outside the counties' system.
type Municipality struct {
	Code         string `json:"code"`
	NameFI       string `json:"name_fi"`
	NameSV       string `json:"name_sv"`
	County       OrgID  `json:"county,omitempty"`
	CountyNameFI string `json:"county_name_fi"`
	CountyNameSV string `json:"county_name_sv"`
	Aland        bool   `json:"aland,omitempty"`
}

// alandCountyCode is Statistics Finland's code for Åland in the county classification.
const alandCountyCode = "91"

//go:embed refdata/municipalities.csv
var municipalitiesCSV []byte

// Registry is the reference data: organisations and municipalities. It is immutable and safe
// for concurrent use.
type Registry struct {
	orgs           []Organisation
	orgByID        map[OrgID]Organisation
	municipalities []Municipality
	muniByCode     map[string]Municipality
}

// DefaultRegistry returns the registry built from the embedded Statistics Finland 2025
// classification (see refdata/README.md). It panics only if the embedded file is broken,
// which a test rules out.
func DefaultRegistry() *Registry {
	r, err := ParseRegistry(municipalitiesCSV)
	if err != nil {
		panic(err)
	}
	return r
}

// ParseRegistry reads municipalities.csv (code,name_fi,name_sv,county_code,county_name_fi,
// county_name_sv) and derives the organisations. Returns an error on a malformed file.
func ParseRegistry(data []byte) (*Registry, error) {
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("registry: read municipalities: %w", err)
	}
	if len(rows) < 2 || strings.Join(rows[0], ",") != "code,name_fi,name_sv,county_code,county_name_fi,county_name_sv" {
		return nil, fmt.Errorf("registry: unexpected municipalities header")
	}
	r := &Registry{
		orgByID:    map[OrgID]Organisation{},
		muniByCode: map[string]Municipality{},
	}
	kela := Organisation{ID: Kela, NameFI: "Kansaneläkelaitos", NameSV: "Folkpensionsanstalten", Type: "kela"}
	r.orgByID[Kela] = kela
	for i, row := range rows[1:] {
		if len(row[0]) != 3 || !isDigits(row[0]) || len(row[3]) != 2 || !isDigits(row[3]) {
			return nil, fmt.Errorf("registry: municipalities line %d: bad code", i+2)
		}
		m := Municipality{Code: row[0], NameFI: row[1], NameSV: row[2], CountyNameFI: row[4], CountyNameSV: row[5]}
		if row[3] == alandCountyCode {
			m.Aland = true
		} else {
			m.County = OrgID("hva-" + row[3])
			if _, ok := r.orgByID[m.County]; !ok {
				r.orgByID[m.County] = Organisation{ID: m.County, NameFI: row[4], NameSV: row[5], Type: "county"}
			}
		}
		r.municipalities = append(r.municipalities, m)
		r.muniByCode[m.Code] = m
	}
	for _, o := range r.orgByID {
		r.orgs = append(r.orgs, o)
	}
	sort.Slice(r.orgs, func(i, j int) bool {
		if r.orgs[i].ID.IsKela() != r.orgs[j].ID.IsKela() {
			return r.orgs[i].ID.IsKela()
		}
		return r.orgs[i].ID < r.orgs[j].ID
	})
	return r, nil
}

// Organisations returns every organisation, Kela first, then counties by code.
func (r *Registry) Organisations() []Organisation { return r.orgs }

// Municipalities returns every municipality by code.
func (r *Registry) Municipalities() []Municipality { return r.municipalities }

// Organisation returns the organisation with id, and whether it exists.
func (r *Registry) Organisation(id OrgID) (Organisation, bool) {
	o, ok := r.orgByID[id]
	return o, ok
}

// Municipality returns the municipality with the 3-digit code, and whether it exists.
func (r *Registry) Municipality(code string) (Municipality, bool) {
	m, ok := r.muniByCode[code]
	return m, ok
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
