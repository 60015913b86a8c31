package api_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/kela-hva/referrals/domain"
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
		"edited in unused bits":  {lastCharTwin(t, cursor), hkiWorker(h), "incoming"},
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

// TestAuditCursorsAreTamperEvident: the access log's cursors are signed like the lists' and
// bound to the organisation and the query they were issued for (DOMAIN §5 / issue 4: "a
// forged or edited cursor → 400"); an auditor is never handed another position's page.
func TestAuditCursorsAreTamperEvident(t *testing.T) {
	h := newHarness(t, "")
	id := h.create(kelaHandler(h), needBody(pidMatti, "091"))
	for i := 0; i < 3; i++ {
		h.do("GET", "/v1/referrals/"+id, hkiWorker(h), nil)
	}
	auditor := h.token("hva-90", domain.RoleAuditor)
	get := func(query, token string) response {
		return h.do("GET", "/v1/audit?limit=1&"+query, token, nil, "X-Purpose", "audit")
	}
	first := get("referral="+id, auditor).json(t)
	cursor, _ := first["next_cursor"].(string)
	if !strings.HasPrefix(cursor, "a1.") {
		t.Fatalf("next_cursor %q, want a signed cursor", cursor)
	}
	second := get("referral="+id+"&cursor="+cursor, auditor)
	if second.status != http.StatusOK {
		t.Fatalf("own cursor: %d %s", second.status, second.body)
	}
	firstItems, _ := first["items"].([]any)
	secondItems, _ := second.json(t)["items"].([]any)
	if len(firstItems) != 1 || len(secondItems) != 1 ||
		firstItems[0].(map[string]any)["seq"] == secondItems[0].(map[string]any)["seq"] {
		t.Fatalf("the cursor did not move on: %v then %v", firstItems, secondItems)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(cursor, "a1."))
	if err != nil || len(raw) <= 16 {
		t.Fatalf("cursor %q: %v", cursor, err)
	}
	edited := []byte(cursor)
	edited[len(edited)-3] ^= 1
	for name, c := range map[string]struct{ query, cursor, token string }{
		"edited":             {"referral=" + id, string(edited), auditor},
		"the bare position":  {"referral=" + id, base64.RawURLEncoding.EncodeToString(raw[:len(raw)-16]), auditor},
		"other organisation": {"referral=" + id, cursor, h.token("kela", domain.RoleAuditor)},
		"other query":        {"user=dev", cursor, auditor},
		"every entry":        {"", cursor, auditor},
		"truncated":          {"referral=" + id, cursor[:len(cursor)-4], auditor},
		"another version":    {"referral=" + id, "a2." + cursor[3:], auditor},
		"a list's cursor":    {"referral=" + id, "c1." + cursor[3:], auditor},
	} {
		t.Run(name, func(t *testing.T) {
			if r := get(c.query+"&cursor="+c.cursor, c.token); r.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", r.status)
			}
		})
	}
}

// lastCharTwin returns cursor with its last base64 character changed only in the bits that
// character does not use (a 32-byte payload leaves two): a lax decoder reads the same bytes.
func lastCharTwin(t *testing.T, cursor string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, cursor[len(cursor)-1])
	if i < 0 || i&3 != 0 {
		t.Fatalf("cursor %q does not end in a character with two zero unused bits", cursor)
	}
	return cursor[:len(cursor)-1] + string(alphabet[i|1])
}
