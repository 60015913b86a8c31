package domain_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// checkChars is the alphabet of the check character, indexed by DDMMYYZZZ mod 31.
const checkChars = "0123456789ABCDEFHJKLMNPRSTUVWXY"

// expectedCheckChar recomputes the check character of an 11-byte code independently of the
// code under test: the 9 digits DDMMYYZZZ as one number, mod 31.
func expectedCheckChar(t testing.TB, s string) byte {
	t.Helper()
	n, err := strconv.Atoi(s[0:6] + s[7:10])
	if err != nil {
		t.Fatalf("digits of %q: %v", s, err)
	}
	return checkChars[n%31]
}

func TestCheckPersonalIDAcceptsValidCodes(t *testing.T) {
	// Check characters computed by hand (python: C[int("DDMMYYZZZ") % 31]).
	tests := []struct {
		name string
		code string
	}{
		{"DOMAIN example 1900s hyphen", "131052-308T"},
		{"1900s sign Y", "010594Y9021"},
		{"1900s sign Y second individual number", "010594Y9032"},
		{"1900s sign X", "010594X9021"},
		{"1900s sign W", "010594W9021"},
		{"1900s sign V", "010594V9021"},
		{"1900s sign U", "010594U9021"},
		{"1900s sign hyphen", "010594-9021"},
		{"1800s sign plus", "010594+9021"},
		{"1800s sign plus other date", "150388+345X"},
		{"2000s sign A lowest individual number", "010106A0022"},
		{"2000s sign B", "010106B123Y"},
		{"2000s sign C", "010106C456P"},
		{"2000s sign D", "010106D789E"},
		{"2000s sign E highest permanent individual number", "010106E8990"},
		{"2000s sign F temporary individual number 999", "010106F9997"},
		{"29 Feb 2000 is a leap day", "290200A002C"},
		{"29 Feb 1996 is a leap day", "290296-1232"},
		{"31 Dec last day of year", "311299-0029"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := expectedCheckChar(t, tt.code); got != tt.code[10] {
				t.Fatalf("test vector %q is wrong: check char should be %c", tt.code, got)
			}
			if err := domain.CheckPersonalID(tt.code); err != nil {
				t.Fatalf("CheckPersonalID(%q) = %v, want nil", tt.code, err)
			}
		})
	}
}

func TestCheckPersonalIDRejectsInvalidCodes(t *testing.T) {
	tests := []struct {
		name string
		code string
		want error
	}{
		{"empty", "", domain.ErrPersonalIDFormat},
		{"too short", "131052-308", domain.ErrPersonalIDFormat},
		{"too long", "131052-308TT", domain.ErrPersonalIDFormat},
		{"surrounding space", " 131052-308T", domain.ErrPersonalIDFormat},
		{"letter in date", "13105A-308T", domain.ErrPersonalIDFormat},
		{"letter in individual number", "131052-3O8T", domain.ErrPersonalIDFormat},
		{"unknown century sign Z", "131052Z308T", domain.ErrPersonalIDCentury},
		{"unknown century sign G", "131052G308T", domain.ErrPersonalIDCentury},
		{"digit as century sign", "13105213081", domain.ErrPersonalIDCentury},
		{"lowercase century sign a", "010106a0022", domain.ErrPersonalIDCentury},
		{"lowercase century sign y", "010594y9021", domain.ErrPersonalIDCentury},
		{"31 February", "310294-002X", domain.ErrPersonalIDDate},
		{"29 Feb 1900 is not a leap day", "290200-002C", domain.ErrPersonalIDDate},
		{"29 Feb 2001 is not a leap day", "290201A002M", domain.ErrPersonalIDDate},
		{"month 13", "011394-002E", domain.ErrPersonalIDDate},
		{"month 00", "010094-0020", domain.ErrPersonalIDDate},
		{"day 00", "000194-1231", domain.ErrPersonalIDDate},
		{"day 32", "320194-1231", domain.ErrPersonalIDDate},
		{"31 April", "310494-0020", domain.ErrPersonalIDDate},
		{"individual number 000", "010594-000X", domain.ErrPersonalIDIndividual},
		{"individual number 001", "010594-001Y", domain.ErrPersonalIDIndividual},
		{"wrong check character", "131052-308U", domain.ErrPersonalIDCheck},
		{"check character of another code", "010594Y9022", domain.ErrPersonalIDCheck},
		{"lowercase check character", "131052-308t", domain.ErrPersonalIDCheck},
		{"check character G is not in the alphabet", "131052-308G", domain.ErrPersonalIDCheck},
		{"non-ASCII check character, 11 bytes", "131052-308\xc3", domain.ErrPersonalIDCheck},
		{"non-ASCII century sign (Ä, 12 bytes)", "131052Ä308T", domain.ErrPersonalIDFormat},
		{"non-ASCII digit lookalike (fullwidth 1)", "１31052-308T", domain.ErrPersonalIDFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := domain.CheckPersonalID(tt.code)
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckPersonalID(%q) = %v, want %v", tt.code, err, tt.want)
			}
		})
	}
}

func TestCheckPersonalIDErrorsNeverEchoTheCode(t *testing.T) {
	for _, code := range []string{"131052-308U", "310294-002X", "010594-000X", "131052Z308T", "13105"} {
		err := domain.CheckPersonalID(code)
		if err == nil {
			t.Fatalf("CheckPersonalID(%q) = nil, want an error", code)
		}
		if msg := err.Error(); len(code) >= 5 && containsSub(msg, code[:5]) {
			t.Fatalf("error %q echoes part of the code %q", msg, code)
		}
	}
}

func containsSub(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// FuzzCheckPersonalID checks that CheckPersonalID never panics and that whatever it accepts
// is a well-formed code: 11 bytes, a real date in the century of the sign, an individual
// number of at least 002 and the right check character.
func FuzzCheckPersonalID(f *testing.F) {
	for _, s := range []string{"131052-308T", "010594Y9021", "290200A002C", "290200-002C", "010594-000X", "", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := domain.CheckPersonalID(s); err != nil {
			return
		}
		if len(s) != 11 {
			t.Fatalf("accepted %q of %d bytes", s, len(s))
		}
		for _, i := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9} {
			if s[i] < '0' || s[i] > '9' {
				t.Fatalf("accepted %q with a non-digit at %d", s, i)
			}
		}
		if got := expectedCheckChar(t, s); got != s[10] {
			t.Fatalf("accepted %q but the check character should be %c", s, got)
		}
		century := map[byte]int{'+': 1800, '-': 1900, 'Y': 1900, 'X': 1900, 'W': 1900, 'V': 1900, 'U': 1900,
			'A': 2000, 'B': 2000, 'C': 2000, 'D': 2000, 'E': 2000, 'F': 2000}
		c, ok := century[s[6]]
		if !ok {
			t.Fatalf("accepted %q with century sign %q", s, s[6])
		}
		year, _ := strconv.Atoi(s[4:6])
		day, _ := strconv.Atoi(s[0:2])
		month, _ := strconv.Atoi(s[2:4])
		if got := time.Date(c+year, time.Month(month), day, 0, 0, 0, 0, time.UTC); month < 1 || month > 12 || got.Day() != day || int(got.Month()) != month {
			t.Fatalf("accepted %q with an impossible date", s)
		}
		if ind, _ := strconv.Atoi(s[7:10]); ind < 2 {
			t.Fatalf("accepted %q with individual number %03d", s, ind)
		}
	})
}

// TestCheckPersonalIDEveryCheckCharacter: each of the 31 check characters is accepted where
// it belongs and refused everywhere else (a swapped pair in the alphabet, such as H and J,
// would refuse two codes in 31 and accept their wrong twins).
func TestCheckPersonalIDEveryCheckCharacter(t *testing.T) {
	seen := map[byte]bool{}
	for ind := 2; len(seen) < len(checkChars); ind++ {
		base := "010594-" + strconv.Itoa(1000 + ind)[1:]
		want := expectedCheckChar(t, base+"?")
		seen[want] = true
		for i := range len(checkChars) {
			c := checkChars[i]
			err := domain.CheckPersonalID(base + string(c))
			switch {
			case c == want && err != nil:
				t.Errorf("%s%c refused: %v", base, c, err)
			case c != want && !errors.Is(err, domain.ErrPersonalIDCheck):
				t.Errorf("%s%c: %v, want ErrPersonalIDCheck (the check character is %c)", base, c, err, want)
			}
		}
	}
}
