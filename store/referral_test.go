package store

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/kela-hva/referrals/domain"
)

func TestReferralCreateAndRead(t *testing.T) {
	db := MustOpen(t)
	r := newReferral(orgKela, orgHelsin, func(r *domain.Referral) { r.ClientKey = "hmac:abc123" })
	mustCreate(t, db, r)

	got := mustReferral(t, db, r.ID)
	if !reflect.DeepEqual(got, r) {
		t.Errorf("Referral = %+v\nwant %+v", got, r)
	}
	if got.ClientKey != "hmac:abc123" {
		t.Errorf("ClientKey = %q, want it to survive the store", got.ClientKey)
	}
	if got == r {
		t.Error("Referral returned the caller's pointer, not a decoded copy")
	}
}

func TestReferralNotFound(t *testing.T) {
	db := MustOpen(t)
	mustCreate(t, db, newReferral(orgKela, orgHelsin))
	known := uuid.Must(uuid.NewV7()).String()
	tests := []struct {
		name string
		id   string
	}{
		{"unknown uuid", known},
		{"empty id", ""},
		{"not a uuid", "../../etc/passwd"},
		{"uuid without dashes", strings.ReplaceAll(known, "-", "")},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.Referral(ctx, tt.id)
			wantCode(t, err, domain.ENotFound)
			_, err = db.Timeline(ctx, tt.id)
			wantCode(t, err, domain.ENotFound)
			_, err = db.Messages(ctx, tt.id)
			wantCode(t, err, domain.ENotFound)
		})
	}
}

func TestReplaceMovesIndexEntries(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	r := newReferral(orgKela, orgHelsin)
	other := newReferral(orgKela, orgHelsin) // stays in sent: its entries must survive
	mustCreate(t, db, r, other)
	before := indexKeysIn(t, db)

	upd := *r
	upd.Status, upd.Version, upd.Urgency, upd.ClientKey = domain.StatusReceived, 2, domain.Urgent, "client-key-b"
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{&upd}})

	after := indexKeysIn(t, db)
	if len(after) != len(before) {
		t.Errorf("index has %d entries after replace, %d before; want the same", len(after), len(before))
	}
	id, _ := parseID(r.ID)
	gone := [][]byte{
		withID(statusPrefix(orgHelsin, dirIncoming, domain.StatusSent), id),
		withID(statusPrefix(orgKela, dirOutgoing, domain.StatusSent), id),
		withID(clientPrefix("client-key-a"), id),
	}
	for _, k := range gone {
		if after[string(k)] {
			t.Errorf("old index entry %q still there", k)
		}
	}
	added := [][]byte{
		withID(statusPrefix(orgHelsin, dirIncoming, domain.StatusReceived), id),
		withID(statusPrefix(orgKela, dirOutgoing, domain.StatusReceived), id),
		withID(clientPrefix("client-key-b"), id),
	}
	for _, k := range added {
		if !after[string(k)] {
			t.Errorf("new index entry %q missing", k)
		}
	}

	list := func(f domain.ListFilter) []string {
		t.Helper()
		p, err := db.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return ids(p.Items)
	}
	tests := []struct {
		name string
		f    domain.ListFilter
		want []string
	}{
		{"old status no longer lists it", domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Status: domain.StatusSent}, []string{other.ID}},
		{"new status lists it", domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Status: domain.StatusReceived}, []string{r.ID}},
		{"sender's status index moved too", domain.ListFilter{Org: orgKela, Direction: domain.Outgoing, Status: domain.StatusReceived}, []string{r.ID}},
		{"all-states list holds it once", domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming}, []string{other.ID, r.ID}},
		{"urgency filter sees the new urgency", domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Urgency: domain.Urgent}, []string{r.ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := list(tt.f); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("List = %v, want %v", got, tt.want)
			}
		})
	}

	crs, err := db.ClientReferrals(ctx, "client-key-a")
	if err != nil || len(crs) != 1 || crs[0].ID != other.ID {
		t.Errorf("old client key lists %v, %v; want only the other referral", ids(crs), err)
	}
	crs, err = db.ClientReferrals(ctx, "client-key-b")
	if err != nil || len(crs) != 1 || crs[0].ID != r.ID {
		t.Errorf("new client key lists %v, %v; want the replaced referral", ids(crs), err)
	}
}

func TestReplaceTwiceInOneChange(t *testing.T) {
	// A forward writes two referrals; a command may also write one twice. The second write
	// must see the first (same transaction) and leave no stale index entry.
	db := MustOpen(t)
	r := newReferral(orgKela, orgHelsin)
	mustCreate(t, db, r)
	a, b := *r, *r
	a.Status, b.Status = domain.StatusReceived, domain.StatusInProgress
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{&a, &b}})
	id, _ := parseID(r.ID)
	keys := indexKeysIn(t, db)
	for _, st := range []domain.Status{domain.StatusSent, domain.StatusReceived} {
		if keys[string(withID(statusPrefix(orgHelsin, dirIncoming, st), id))] {
			t.Errorf("stale %s entry left", st)
		}
	}
	if !keys[string(withID(statusPrefix(orgHelsin, dirIncoming, domain.StatusInProgress), id))] {
		t.Error("in_progress entry missing")
	}
}

func TestClientReferrals(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	first := newReferral(orgKela, orgHelsin, func(r *domain.Referral) { r.ClientKey = "k1" })
	second := newReferral(orgKela, orgVantaa, func(r *domain.Referral) { r.ClientKey = "k1" })
	otherClient := newReferral(orgKela, orgHelsin, func(r *domain.Referral) { r.ClientKey = "k2" })
	prefixClient := newReferral(orgKela, orgHelsin, func(r *domain.Referral) { r.ClientKey = "k1x" })
	noKey := newReferral(orgKela, orgHelsin, func(r *domain.Referral) { r.ClientKey = "" })
	mustCreate(t, db, first, second, otherClient, prefixClient, noKey)

	tests := []struct {
		name string
		key  string
		want []string
	}{
		{"newest first across organisations", "k1", []string{second.ID, first.ID}},
		{"another client", "k2", []string{otherClient.ID}},
		{"unknown key", "k3", []string{}},
		{"empty key matches nothing", "", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.ClientReferrals(ctx, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), tt.want) {
				t.Errorf("ClientReferrals(%q) = %v, want %v", tt.key, ids(got), tt.want)
			}
		})
	}
	for k := range indexKeysIn(t, db) {
		if k[0] == 'c' && k[1] == 0 {
			t.Errorf("a referral without ClientKey was indexed: %q", k)
		}
	}
}

func TestTimelineAndMessages(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	r := newReferral(orgKela, orgHelsin)
	other := newReferral(orgKela, orgHelsin)
	mustCreate(t, db, r, other)

	// Seqs 2..12 written in reverse: stored order must be numeric (2 < 10), not insertion
	// or text order.
	var entries []domain.TimelineEntry
	for seq := 12; seq >= 2; seq-- {
		entries = append(entries, domain.TimelineEntry{ReferralID: r.ID, Seq: seq, Action: domain.ActionMessage, To: domain.StatusSent})
	}
	var msgs []domain.Message
	for i := range 3 {
		msgs = append(msgs, domain.Message{ID: uuid.Must(uuid.NewV7()).String(), ReferralID: r.ID,
			Type: "message", Text: "viesti " + string(rune('a'+i)), Org: orgKela})
	}
	// Stored in reverse too: order comes from the UUIDv7 keys.
	mustPut(t, db, &domain.Change{Timeline: entries, Messages: []domain.Message{msgs[2], msgs[0], msgs[1]}})

	tl, err := db.Timeline(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(tl) != 12 {
		t.Fatalf("Timeline has %d entries, want 12", len(tl))
	}
	for i, e := range tl {
		if e.Seq != i+1 || e.ReferralID != r.ID {
			t.Errorf("Timeline[%d] = seq %d of %s, want seq %d of %s", i, e.Seq, e.ReferralID, i+1, r.ID)
		}
	}
	got, err := db.Messages(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, msgs) {
		t.Errorf("Messages = %+v, want %+v", got, msgs)
	}

	tl, err = db.Timeline(ctx, other.ID)
	if err != nil || len(tl) != 1 {
		t.Errorf("other referral's timeline = %+v, %v; want its one entry", tl, err)
	}
	m, err := db.Messages(ctx, other.ID)
	if err != nil || m == nil || len(m) != 0 {
		t.Errorf("other referral's messages = %#v, %v; want an empty non-nil slice", m, err)
	}
}

func ids(rs []*domain.Referral) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}
