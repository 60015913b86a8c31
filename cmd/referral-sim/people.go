package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// personalIDCheckChars are the check characters of the identity code, indexed by the
// remainder mod 31 (the same table as domain.CheckPersonalID).
const personalIDCheckChars = "0123456789ABCDEFHJKLMNPRSTUVWXY"

// makeBelievePersonalID returns a valid Finnish identity code (henkilötunnus) for someone born
// on birth (1900–2099), with an individual number from 900–999: the range of temporary
// identity codes, which is never anyone's permanent code, so a simulated client can never be
// mistaken for a real resident. The century sign is drawn from the signs valid for the
// century, including those added in 2023.
func makeBelievePersonalID(rng *rand.Rand, birth time.Time) string {
	var signs string
	switch y := birth.Year(); {
	case y >= 1900 && y < 2000:
		signs = "-YXWVU"
	case y >= 2000 && y < 2100:
		signs = "ABCDEF"
	default:
		panic(fmt.Sprintf("makeBelievePersonalID: birth year %d outside 1900–2099", y))
	}
	// The classic signs - and A are by far the most common; the new ones appear now and then.
	sign := signs[0]
	if rng.IntN(10) == 0 {
		sign = signs[1+rng.IntN(len(signs)-1)]
	}
	individual := 900 + rng.IntN(100)
	d, m, y := birth.Day(), int(birth.Month()), birth.Year()%100
	n := (d*10000+m*100+y)*1000 + individual
	return fmt.Sprintf("%02d%02d%02d%c%03d%c", d, m, y, sign, individual, personalIDCheckChars[n%31])
}

// person is a make-believe client.
type person struct {
	PersonalID       string
	Name             string
	HomeMunicipality string
	Language         string
	NeedsInterpreter bool
	Phone            string
	Channel          string
	EServices        bool
	Age              int
}

var (
	firstNames = []string{"Aino", "Eino", "Helmi", "Väinö", "Linnea", "Onni", "Sofia", "Leo",
		"Ella", "Elias", "Olivia", "Oliver", "Venla", "Veeti", "Pirjo", "Jari", "Tuula", "Timo",
		"Sari", "Mika", "Marja", "Kari", "Anneli", "Pekka", "Kaisa", "Juha", "Rasmus", "Ida",
		"Ahmed", "Amina", "Olga", "Dmitri", "Hodan", "Mohamed", "Kristiina", "Erik", "Maja"}
	lastNames = []string{"Korhonen", "Virtanen", "Mäkinen", "Nieminen", "Mäkelä", "Hämäläinen",
		"Laine", "Heikkinen", "Koskinen", "Järvinen", "Lehtonen", "Lehtinen", "Saarinen",
		"Salminen", "Heinonen", "Niemi", "Heikkilä", "Kinnunen", "Salonen", "Turunen", "Salo",
		"Laitinen", "Tuominen", "Rantanen", "Karjalainen", "Lindholm", "Nyström", "Ali", "Ivanova"}
	// otherLanguages are languages of clients who may need an interpreter.
	otherLanguages = []string{"ru", "et", "ar", "so", "en", "uk", "fa", "ku"}
)

// newPerson makes up a client living in municipality muni, as of date now.
func newPerson(rng *rand.Rand, muni string, now time.Time) person {
	// Adults of working age mostly; some young people and some pensioners.
	age := 18 + rng.IntN(50)
	switch rng.IntN(10) {
	case 0:
		age = 18 + rng.IntN(7) // youth without income
	case 1:
		age = 68 + rng.IntN(20)
	}
	birth := time.Date(now.Year()-age, time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC)
	p := person{
		PersonalID:       makeBelievePersonalID(rng, birth),
		Name:             firstNames[rng.IntN(len(firstNames))] + " " + lastNames[rng.IntN(len(lastNames))],
		HomeMunicipality: muni,
		Language:         "fi",
		Age:              age,
		EServices:        rng.IntN(10) < 7,
		Channel:          []string{"phone", "phone", "letter", "eservice", "visit"}[rng.IntN(5)],
		// 0400 000 xxx numbers are make-believe like the people.
		Phone: fmt.Sprintf("+358400000%03d", rng.IntN(1000)),
	}
	switch r := rng.IntN(100); {
	case r < 6:
		p.Language = "sv"
	case r < 16:
		p.Language = otherLanguages[rng.IntN(len(otherLanguages))]
		p.NeedsInterpreter = rng.IntN(2) == 0
	}
	if p.Channel == "eservice" && !p.EServices {
		p.Channel = "phone"
	}
	return p
}

// client returns the client block of a referral about p.
func (p person) client() *domain.Client {
	e := p.EServices
	return &domain.Client{
		PersonalID: p.PersonalID, Name: p.Name, HomeMunicipality: p.HomeMunicipality,
		Language: p.Language, NeedsInterpreter: p.NeedsInterpreter, Phone: p.Phone,
		PreferredContactChannel: p.Channel, CanUseEServices: &e,
	}
}
