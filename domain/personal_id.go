package domain

import (
	"errors"
	"time"
)

// Errors returned by CheckPersonalID. None of them echoes the code itself.
var (
	ErrPersonalIDFormat     = errors.New("must be 11 characters: DDMMYY, a century sign, a 3-digit individual number and a check character")
	ErrPersonalIDCentury    = errors.New("unknown century sign (allowed: + - Y X W V U A B C D E F)")
	ErrPersonalIDDate       = errors.New("date part is not a real date")
	ErrPersonalIDIndividual = errors.New("individual number must be 002–999")
	ErrPersonalIDCheck      = errors.New("check character does not match")
)

const personalIDCheckChars = "0123456789ABCDEFHJKLMNPRSTUVWXY"

// CheckPersonalID validates a Finnish personal identity code (henkilötunnus): the date part,
// the century sign (including the signs added in 2023: Y X W V U for the 1900s and B C D E F
// for the 2000s), the individual number (002–899, 900–999 for temporary codes) and the check
// character. It returns one of the ErrPersonalID* errors, or nil.
func CheckPersonalID(s string) error {
	if len(s) != 11 {
		return ErrPersonalIDFormat
	}
	for _, i := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9} {
		if s[i] < '0' || s[i] > '9' {
			return ErrPersonalIDFormat
		}
	}
	var century int
	switch s[6] {
	case '+':
		century = 1800
	case '-', 'Y', 'X', 'W', 'V', 'U':
		century = 1900
	case 'A', 'B', 'C', 'D', 'E', 'F':
		century = 2000
	default:
		return ErrPersonalIDCentury
	}
	day := atoi2(s[0:2])
	month := atoi2(s[2:4])
	year := century + atoi2(s[4:6])
	if month < 1 || month > 12 || day < 1 {
		return ErrPersonalIDDate
	}
	if t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC); t.Day() != day {
		return ErrPersonalIDDate
	}
	if individual := atoi2(s[7:9])*10 + int(s[9]-'0'); individual < 2 {
		return ErrPersonalIDIndividual
	}
	n := 0
	for _, i := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9} {
		n = n*10 + int(s[i]-'0')
	}
	if personalIDCheckChars[n%31] != s[10] {
		return ErrPersonalIDCheck
	}
	return nil
}

func atoi2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }
