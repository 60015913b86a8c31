package api_test

import (
	"net/http"
	"testing"
)

// TestCursorsAreTamperEvident: a cursor works only for the list it was issued for.
func TestCursorsAreTamperEvident(t *testing.T) {
	h := newHarness(t, "")
	for i := 0; i < 3; i++ {
		h.create(kelaHandler(h), needBody(pidMatti, "091"))
	}
	page := h.do("GET", "/v1/referrals?limit=1", hkiWorker(h), nil).json(t)
	cursor, _ := page["next_cursor"].(string)
	if cursor == "" {
		t.Fatal("no next_cursor on a partial page")
	}
	if r := h.do("GET", "/v1/referrals?limit=1&cursor="+cursor, hkiWorker(h), nil); r.status != http.StatusOK {
		t.Fatalf("own cursor: %d", r.status)
	}
	edited := []byte(cursor)
	edited[len(edited)-3] ^= 1
	for name, c := range map[string]struct {
		cursor, token, direction string
	}{
		"edited":                 {string(edited), hkiWorker(h), "incoming"},
		"other organisation":     {cursor, tampere(h), "incoming"},
		"other direction":        {cursor, hkiWorker(h), "outgoing"},
		"truncated":              {cursor[:len(cursor)-4], hkiWorker(h), "incoming"},
		"another format version": {"c2." + cursor[3:], hkiWorker(h), "incoming"},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.do("GET", "/v1/referrals?limit=1&direction="+c.direction+"&cursor="+c.cursor, c.token, nil)
			if r.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", r.status)
			}
		})
	}
}
