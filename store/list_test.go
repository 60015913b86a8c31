package store

import (
	"context"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/kela-hva/referrals/domain"
)

func TestListPagesNewestFirst(t *testing.T) {
	tests := []struct {
		name      string
		n, limit  int
		wantPages []int
	}{
		{"120 by 50", 120, 50, []int{50, 50, 20}},
		{"exact multiple ends without an empty page", 100, 50, []int{50, 50}},
		{"one short of a page", 49, 50, []int{49}},
		{"default limit is 50", 120, 0, []int{50, 50, 20}},
		{"limit is capped at 200", 250, 1000, []int{200, 50}},
		{"one above the cap is capped too", 250, MaxLimit + 1, []int{200, 50}},
		{"limit 1", 3, 1, []int{1, 1, 1}},
		{"empty", 0, 50, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := MustOpen(t)
			ctx := context.Background()
			var want []string // newest first
			var rs []*domain.Referral
			for range tt.n {
				r := newReferral(orgKela, orgHelsin)
				rs = append(rs, r)
				want = append([]string{r.ID}, want...)
			}
			// Noise in other prefixes on both sides of the org's range.
			mustCreate(t, db, newReferral(orgKela, domain.OrgID("hva-01")), newReferral(orgKela, domain.OrgID("hva-99")))
			if len(rs) > 0 {
				mustCreate(t, db, rs...)
			}
			mustCreate(t, db, newReferral(orgKela, domain.OrgID("hva-01")), newReferral(orgKela, domain.OrgID("hva-99")))

			var got []string
			var sizes []int
			f := domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Limit: tt.limit}
			for i := 0; ; i++ {
				if i > len(tt.wantPages)+1 {
					t.Fatal("paging does not end")
				}
				p, err := db.List(ctx, f)
				if err != nil {
					t.Fatalf("List page %d: %v", i, err)
				}
				sizes = append(sizes, len(p.Items))
				got = append(got, ids(p.Items)...)
				if p.Next == "" {
					break
				}
				if p.Next != p.Items[len(p.Items)-1].ID {
					t.Errorf("page %d: Next = %s, want the last item's id", i, p.Next)
				}
				f.After = p.Next
			}
			if !reflect.DeepEqual(sizes, tt.wantPages) {
				t.Errorf("page sizes = %v, want %v", sizes, tt.wantPages)
			}
			if want == nil {
				want = []string{}
			}
			if got == nil {
				got = []string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("paged ids (%d) are not every referral newest first, without duplicates or gaps (%d)", len(got), len(want))
			}
		})
	}
}

func TestListAfterUnknownID(t *testing.T) {
	// A cursor need not be an existing referral: the page starts below it.
	db := MustOpen(t)
	older := newReferral(orgKela, orgHelsin)
	mustCreate(t, db, older)
	cursor := uuid.Must(uuid.NewV7()).String()
	newer := newReferral(orgKela, orgHelsin)
	mustCreate(t, db, newer)
	p, err := db.List(context.Background(), domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, After: cursor})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(p.Items); !reflect.DeepEqual(got, []string{older.ID}) || p.Next != "" {
		t.Errorf("List after %s = %v next %q, want only the older referral", cursor, got, p.Next)
	}
}

func TestListFilters(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	sentNormal := newReferral(orgKela, orgHelsin)
	sentUrgent := newReferral(orgKela, orgHelsin, func(r *domain.Referral) { r.Urgency = domain.Urgent })
	receivedHandoff := newReferral(orgKela, orgHelsin, func(r *domain.Referral) {
		r.Status, r.Kind = domain.StatusReceived, domain.KindSupplementarySupportHandoff
	})
	completedUrgentHandoff := newReferral(orgKela, orgHelsin, func(r *domain.Referral) {
		r.Status, r.Kind, r.Urgency = domain.StatusCompleted, domain.KindSupplementarySupportHandoff, domain.Urgent
	})
	toVantaa := newReferral(orgKela, orgVantaa)
	statement := newReferral(orgHelsin, orgKela, func(r *domain.Referral) {
		r.Kind, r.Direction = domain.KindSocialWorkStatement, domain.CountyToKela
	})
	mustCreate(t, db, sentNormal, sentUrgent, receivedHandoff, completedUrgentHandoff, toVantaa, statement)

	in := func(org domain.OrgID) domain.ListFilter {
		return domain.ListFilter{Org: org, Direction: domain.Incoming}
	}
	out := func(org domain.OrgID) domain.ListFilter {
		return domain.ListFilter{Org: org, Direction: domain.Outgoing}
	}
	with := func(f domain.ListFilter, mod func(*domain.ListFilter)) domain.ListFilter { mod(&f); return f }

	tests := []struct {
		name string
		f    domain.ListFilter
		want []*domain.Referral // newest first
	}{
		{"incoming lists what the org received", in(orgHelsin),
			[]*domain.Referral{completedUrgentHandoff, receivedHandoff, sentUrgent, sentNormal}},
		{"outgoing lists what the org sent", out(orgHelsin), []*domain.Referral{statement}},
		{"kela's outgoing spans recipients", out(orgKela),
			[]*domain.Referral{toVantaa, completedUrgentHandoff, receivedHandoff, sentUrgent, sentNormal}},
		{"kela's incoming", in(orgKela), []*domain.Referral{statement}},
		{"status", with(in(orgHelsin), func(f *domain.ListFilter) { f.Status = domain.StatusSent }),
			[]*domain.Referral{sentUrgent, sentNormal}},
		{"status on the sender's side", with(out(orgKela), func(f *domain.ListFilter) { f.Status = domain.StatusReceived }),
			[]*domain.Referral{receivedHandoff}},
		{"kind", with(in(orgHelsin), func(f *domain.ListFilter) { f.Kind = domain.KindSupplementarySupportHandoff }),
			[]*domain.Referral{completedUrgentHandoff, receivedHandoff}},
		{"urgency", with(in(orgHelsin), func(f *domain.ListFilter) { f.Urgency = domain.Urgent }),
			[]*domain.Referral{completedUrgentHandoff, sentUrgent}},
		{"status, kind and urgency together", with(in(orgHelsin), func(f *domain.ListFilter) {
			f.Status, f.Kind, f.Urgency = domain.StatusCompleted, domain.KindSupplementarySupportHandoff, domain.Urgent
		}), []*domain.Referral{completedUrgentHandoff}},
		{"no match", with(in(orgHelsin), func(f *domain.ListFilter) { f.Status = domain.StatusWithdrawn }), nil},
		{"unknown org", in("hva-42"), nil},
		{"org is not a prefix match", in("hva-9"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := db.List(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ids(p.Items), ids(tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("List = %v, want %v", got, want)
			}
			if p.Next != "" {
				t.Errorf("Next = %q on the only page", p.Next)
			}
		})
	}
}

func TestListFilterPagesThroughNonMatching(t *testing.T) {
	// Filters applied while scanning: pages must stay full and contiguous even when most
	// entries in the range do not match.
	db := MustOpen(t)
	ctx := context.Background()
	var want []string
	var rs []*domain.Referral
	for i := range 60 {
		r := newReferral(orgKela, orgHelsin)
		if i%3 == 0 {
			r.Urgency = domain.Urgent
			want = append([]string{r.ID}, want...)
		}
		rs = append(rs, r)
	}
	mustCreate(t, db, rs...)
	var got []string
	f := domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Urgency: domain.Urgent, Limit: 7}
	for range 10 {
		p, err := db.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if p.Next != "" && len(p.Items) != 7 {
			t.Errorf("a page with more to come has %d items, want 7", len(p.Items))
		}
		got = append(got, ids(p.Items)...)
		if f.After = p.Next; f.After == "" {
			break
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("urgent pages = %v\nwant %v", got, want)
	}
}

func TestListErrors(t *testing.T) {
	db := MustOpen(t)
	tests := []struct {
		name string
		f    domain.ListFilter
	}{
		{"cursor that is not a uuid", domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, After: "abc"}},
		{"cursor of the wrong length", domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, After: "{" + uuid.Must(uuid.NewV7()).String() + "}"}},
		{"missing direction", domain.ListFilter{Org: orgHelsin}},
		{"unknown direction", domain.ListFilter{Org: orgHelsin, Direction: "sideways"}},
		{"missing org", domain.ListFilter{Direction: domain.Incoming}},
		{"org with a NUL", domain.ListFilter{Org: "hva-90\x00s", Direction: domain.Incoming}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.List(context.Background(), tt.f)
			wantCode(t, err, domain.EMalformed)
		})
	}
}

// TestListServesCachedRecordsOnlyWhileUnchanged: a list page decodes a record once; when the
// record changes (a transition, a re-encryption, an erasure) the next page decodes the new
// version, and an erasure drops the cached copy.
func TestListServesCachedRecordsOnlyWhileUnchanged(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	r := newReferral(orgKela, orgHelsin)
	if err := db.Update(ctx, func(domain.Tx) (*domain.Change, error) {
		return &domain.Change{Referrals: []*domain.Referral{r}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	list := func() *domain.Referral {
		t.Helper()
		p, err := db.List(ctx, domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming})
		if err != nil || len(p.Items) != 1 {
			t.Fatalf("List = %v, %v", p.Items, err)
		}
		return p.Items[0]
	}
	first := list()
	if second := list(); second != first {
		t.Error("the second page decoded the unchanged record again")
	}
	if n := db.records.len(); n != 1 {
		t.Errorf("cache holds %d records, want 1", n)
	}
	changed := *r
	changed.Status = domain.StatusReceived
	if err := db.Update(ctx, func(domain.Tx) (*domain.Change, error) {
		return &domain.Change{Referrals: []*domain.Referral{&changed}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := list(); got == first || got.Status != domain.StatusReceived {
		t.Errorf("after a change the page shows status %s (cached copy: %v)", got.Status, got == first)
	}
	id := uuid.MustParse(r.ID)
	// An erasure forgets the record; a read on a snapshot from before the erasure must not
	// put the old record back.
	old, err := db.bolt.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback()
	db.records.forget(id, old.ID()+1)
	if n := db.records.len(); n != 0 {
		t.Errorf("forget left %d records", n)
	}
	if r, err := db.records.load(old, id); err != nil || r == nil {
		t.Fatalf("load on the old snapshot: %v, %v", r, err)
	}
	if n := db.records.len(); n != 0 {
		t.Errorf("a read older than the erasure cached its record (%d cached)", n)
	}
}
