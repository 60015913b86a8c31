package api_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kela-hva/referrals/domain"
)

// issuedCursor reports whether s is a page cursor this service issues for org's list in
// direction dir under fuzzCursorKey, and the referral id it names. It restates the
// format of api.cursorCodec ("c1." and base64url of the id and the first 16 bytes of
// HMAC-SHA-256 over org, 0, dir, 0, id) so the cursor target can tell a genuine cursor
// from a forged one.
func issuedCursor(org domain.OrgID, dir, s string) (uuid.UUID, bool) {
	raw, ok := strings.CutPrefix(s, "c1.")
	if !ok || len(raw) > 64 {
		return uuid.UUID{}, false
	}
	// Strict, as the service decodes: it issues only cursors whose unused bits are zero.
	b, err := base64.RawURLEncoding.Strict().DecodeString(raw)
	if err != nil || len(b) != 32 {
		return uuid.UUID{}, false
	}
	m := hmac.New(sha256.New, fuzzCursorKey)
	m.Write([]byte(org))
	m.Write([]byte{0})
	m.Write([]byte(dir))
	m.Write([]byte{0})
	m.Write(b[:16])
	if !hmac.Equal(b[16:], m.Sum(nil)[:16]) {
		return uuid.UUID{}, false
	}
	return uuid.UUID(b[:16]), true
}

// FuzzListCursor lists referrals (GET /v1/referrals) with arbitrary cursor, direction and
// limit parameters as users of three organisations and an auditor (who may not list).
// Only a cursor the service issued for that organisation and direction may decode (a
// plain request with one must answer 200, any other cursor 400); a 200 page holds only
// the caller's referrals on the asked side, all older than the cursor, no more than the
// limit, with a next cursor that is itself genuine. Nothing is stored for a 4xx.
func FuzzListCursor(f *testing.F) {
	s := newFuzzStack(f)
	for i := 0; i < 5; i++ {
		s.mustCreate(f, fzKela, needBody(pidMatti, "091"))
	}
	for i := 0; i < 3; i++ {
		s.mustCreate(f, fzKela, needBody(pidMaija, "837"))
	}
	for i := 0; i < 2; i++ {
		s.mustCreate(f, fzHki, statementBody(pidMaija))
	}
	// Every page boundary of every list is a seed too (cursors of this run's referrals), for
	// its own organisation and for the next one.
	actors := []fuzzActor{fzHki, fzTre, fzKela, fzHkiAuditor}
	for i, a := range actors[:3] {
		for _, dir := range []string{"incoming", "outgoing"} {
			cursor := ""
			for {
				q := url.Values{"direction": {dir}, "limit": {"2"}}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				r := s.send(f, "GET", "/v1/referrals?"+q.Encode(), a, nil, nil)
				var page struct {
					NextCursor string `json:"next_cursor"`
				}
				if r.status != http.StatusOK || json.Unmarshal(r.body, &page) != nil {
					f.Fatalf("list %s %s: status %d: %s", a.org, dir, r.status, r.body)
				}
				if page.NextCursor == "" {
					break
				}
				cursor = page.NextCursor
				f.Add(uint8(i), dir, "2", cursor)
				f.Add(uint8(i+1), dir, "", cursor)
			}
		}
	}
	f.Fuzz(func(t *testing.T, who uint8, direction, limit, cursor string) {
		a := actors[int(who)%len(actors)]
		q := url.Values{}
		for name, v := range map[string]string{"direction": direction, "limit": limit, "cursor": cursor} {
			if v != "" {
				q.Set(name, v)
			}
		}
		before := s.mark(t)
		r := s.send(t, "GET", "/v1/referrals?"+q.Encode(), a, nil, []byte(cursor))
		wantStatus(t, r, http.StatusOK, http.StatusBadRequest, http.StatusForbidden)

		dir := direction
		if dir == "" {
			dir = domain.Incoming
		}
		after, genuine := issuedCursor(a.org, dir, cursor)
		n, err := strconv.Atoi(limit)
		plainLimit := limit == "" || err == nil && n >= 1 && n <= 200 && strconv.Itoa(n) == limit
		plain := (dir == domain.Incoming || dir == domain.Outgoing) && plainLimit && a.role != domain.RoleAuditor
		if plain && (cursor == "" || genuine) && r.status != http.StatusOK {
			t.Fatalf("a cursor the service issued for %s %s was refused: status %d: %s", a.org, dir, r.status, r.body)
		}
		if r.status != http.StatusOK {
			s.unchanged(t, before, r)
			return
		}
		if cursor != "" && !genuine {
			t.Fatalf("cursor %q, not issued for %s %s, was accepted", cursor, a.org, dir)
		}
		var page struct {
			Items      []domain.Referral `json:"items"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatalf("list: %v: %s", err, r.body)
		}
		if limit == "" {
			n = 50
		}
		if len(page.Items) > n {
			t.Fatalf("%d items on a page of %d", len(page.Items), n)
		}
		for _, ref := range page.Items {
			if dir == domain.Incoming && ref.Recipient != a.org || dir == domain.Outgoing && ref.Sender != a.org {
				t.Fatalf("%s's %s list shows referral %s from %s to %s", a.org, dir, ref.ID, ref.Sender, ref.Recipient)
			}
			id := uuid.MustParse(ref.ID)
			if cursor != "" && bytes.Compare(id[:], after[:]) >= 0 {
				t.Fatalf("page after %s holds %s, which is not older", after, id)
			}
		}
		if page.NextCursor != "" {
			next, ok := issuedCursor(a.org, dir, page.NextCursor)
			if !ok || len(page.Items) == 0 || next.String() != page.Items[len(page.Items)-1].ID {
				t.Fatalf("next_cursor %q does not name the last item of %s %s", page.NextCursor, a.org, dir)
			}
		}
		// One entry for a page that showed anything, naming its referrals (LogAccess).
		if got, want := s.mark(t).audit-before.audit, uint64(min(len(page.Items), 1)); got != want {
			t.Fatalf("a page of %d referrals wrote %d access-log entries, want %d", len(page.Items), got, want)
		}
	})
}

// fuzzClock is the time of every access-log entry the fuzz stack writes (its business clock
// does not move).
var fuzzClock = time.Date(2026, 11, 23, 9, 12, 44, 0, time.UTC)

// FuzzAuditQuery reads the access log (GET /v1/audit) with arbitrary referral, user, from,
// to, cursor and limit parameters as auditors of Helsinki and Kela and a social worker
// (who may not). A 200 holds only entries the auditor's organisation may see, without
// client keys, in log order, matching the filter, and is logged itself; a filter whose
// time range holds every entry of the organisation's log must find some. Nothing is
// stored for a 4xx.
func FuzzAuditQuery(f *testing.F) {
	s := newFuzzStack(f)
	newClientFixture(f, s)
	actors := []fuzzActor{fzHkiAuditor, fzKelaAuditor, fzHki}
	f.Fuzz(func(t *testing.T, who uint8, referral, user, from, to, cursor, limit string) {
		a := actors[int(who)%len(actors)]
		q := url.Values{}
		for name, v := range map[string]string{"referral": referral, "user": user, "from": from, "to": to, "cursor": cursor, "limit": limit} {
			if v != "" {
				q.Set(name, v)
			}
		}
		before := s.mark(t)
		r := s.send(t, "GET", "/v1/audit?"+q.Encode(), a, nil, []byte(referral+" "+user+" "+cursor))
		wantStatus(t, r, http.StatusOK, http.StatusBadRequest, http.StatusForbidden)
		if r.status == http.StatusOK && cursor != "" {
			t.Fatalf("a cursor the service did not issue was accepted: %q", cursor)
		}
		if r.status != http.StatusOK {
			s.unchanged(t, before, r)
			return
		}
		var page struct {
			Items      []domain.AuditEntry `json:"items"`
			NextCursor string              `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatalf("audit page: %v: %s", err, r.body)
		}
		fromT, _ := time.Parse(time.RFC3339, from)
		toT, _ := time.Parse(time.RFC3339, to)
		for i, e := range page.Items {
			switch {
			case !e.VisibleTo(a.org):
				t.Fatalf("%s's auditor sees entry %d of %s about %s→%s", a.org, e.Seq, e.Org, e.Sender, e.Recipient)
			case e.ClientKey != "":
				t.Fatalf("entry %d shows a client key", e.Seq)
			case i > 0 && e.Seq <= page.Items[i-1].Seq:
				t.Fatalf("entries out of log order: %d after %d", e.Seq, page.Items[i-1].Seq)
			case referral != "" && !sameUUID(e.ReferralID, referral), user != "" && e.UserID != user:
				t.Fatalf("entry %d (referral %s, user %s) does not match referral=%q user=%q", e.Seq, e.ReferralID, e.UserID, referral, user)
			case from != "" && e.At.Before(fromT), to != "" && !e.At.Before(toT):
				t.Fatalf("entry %d at %s is outside [%s, %s)", e.Seq, e.At, from, to)
			}
		}
		// Completeness: every entry of this log is at fuzzClock, and the organisation's log
		// is not empty, so an unfiltered page whose range holds fuzzClock finds entries.
		whole := referral == "" && user == "" && cursor == "" &&
			(from == "" || !fuzzClock.Before(fromT)) && (to == "" || fuzzClock.Before(toT))
		if whole && len(page.Items) == 0 {
			t.Fatalf("from=%q to=%q found nothing, but %s's log has entries at %s", from, to, a.org, fuzzClock.Format(time.RFC3339))
		}
		if after := s.mark(t); after.audit != before.audit+1 || after.outbox != before.outbox {
			t.Fatalf("an audit query moved the access log %d → %d (want +1) and the outbox %d → %d",
				before.audit, after.audit, before.outbox, after.outbox)
		}
	})
}

// sameUUID reports whether a and b are the same UUID, whatever their case.
func sameUUID(a, b string) bool {
	x, errX := uuid.Parse(a)
	y, errY := uuid.Parse(b)
	return errX == nil && errY == nil && x == y
}
