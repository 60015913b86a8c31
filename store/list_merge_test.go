package store

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"pgregory.net/rapid"

	"github.com/kela-hva/referrals/domain"
)

// TestListWithoutStatusAgainstAModel: a list without a status filter merges the status ranges
// of the index. Over random referrals in random states (some moved between states after
// creation), every page sequence of every organisation, direction, kind and urgency filter and
// page size is the model's: the matching referrals, newest first, each once.
func TestListWithoutStatusAgainstAModel(t *testing.T) {
	orgs := []domain.OrgID{orgKela, "hva-01", "hva-02"}
	kinds := []domain.Kind{domain.KindSocialWorkNeed, domain.KindSocialWorkStatement}
	urgencies := []domain.Urgency{domain.Normal, domain.Urgent}
	rapid.Check(t, func(rt *rapid.T) {
		db := mustOpenPath(t, filepath.Join(t.TempDir(), "r.db"), Options{})
		var model []*domain.Referral
		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		for range steps {
			if len(model) > 0 && rapid.Bool().Draw(rt, "move") {
				r := rapid.SampledFrom(model).Draw(rt, "referral")
				upd := *r
				upd.Status = rapid.SampledFrom(domain.Statuses).Draw(rt, "to")
				upd.Version++
				mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{&upd}})
				model[slices.Index(model, r)] = &upd
				continue
			}
			var batch []*domain.Referral
			for range rapid.IntRange(1, 6).Draw(rt, "created") {
				from := rapid.SampledFrom(orgs).Draw(rt, "sender")
				to := rapid.SampledFrom(slices.DeleteFunc(slices.Clone(orgs), func(o domain.OrgID) bool { return o == from })).Draw(rt, "recipient")
				batch = append(batch, newReferral(from, to, func(r *domain.Referral) {
					r.Status = rapid.SampledFrom(domain.Statuses).Draw(rt, "status")
					r.Kind = rapid.SampledFrom(kinds).Draw(rt, "kind")
					r.Urgency = rapid.SampledFrom(urgencies).Draw(rt, "urgency")
				}))
			}
			mustCreate(t, db, batch...)
			model = append(model, batch...)
		}

		f := domain.ListFilter{
			Org:       rapid.SampledFrom(orgs).Draw(rt, "org"),
			Direction: rapid.SampledFrom([]string{domain.Incoming, domain.Outgoing}).Draw(rt, "direction"),
			Kind:      rapid.SampledFrom(append([]domain.Kind{""}, kinds...)).Draw(rt, "kind filter"),
			Urgency:   rapid.SampledFrom(append([]domain.Urgency{""}, urgencies...)).Draw(rt, "urgency filter"),
			Limit:     rapid.IntRange(1, 5).Draw(rt, "limit"),
		}
		var want []string
		for _, r := range model {
			party := r.Recipient
			if f.Direction == domain.Outgoing {
				party = r.Sender
			}
			if party == f.Org && (f.Kind == "" || r.Kind == f.Kind) && (f.Urgency == "" || r.Urgency == f.Urgency) {
				want = append(want, r.ID)
			}
		}
		slices.SortFunc(want, func(a, b string) int { return strings.Compare(b, a) })

		got := []string{}
		for page := 0; ; page++ {
			if page > len(model)+1 {
				rt.Fatalf("paging does not end")
			}
			p, err := db.List(context.Background(), f)
			if err != nil {
				rt.Fatalf("List %+v: %v", f, err)
			}
			got = append(got, ids(p.Items)...)
			if p.Next == "" {
				break
			}
			if len(p.Items) != f.Limit {
				rt.Fatalf("page %d has %d items and a next page; limit %d", page, len(p.Items), f.Limit)
			}
			f.After = p.Next
		}
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(got, want) {
			rt.Fatalf("list %+v\n got %v\nwant %v", f, got, want)
		}
	})
}

// TestOpenDropsTheOldOrganisationIndex: a file written before the organisation ranges were
// dropped ("o" entries) loses them at Open, in batches, and only them; lists are the same
// before and after, and the next Open finds nothing to do.
func TestOpenDropsTheOldOrganisationIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rs []*domain.Referral
	for i := range 7 {
		rs = append(rs, newReferral(orgKela, orgHelsin, func(r *domain.Referral) {
			r.Status = domain.Statuses[i%len(domain.Statuses)]
		}))
	}
	mustCreate(t, db, rs...)
	before := indexKeysIn(t, db)
	f := domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming}
	listed := func(db *DB) []string {
		p, err := db.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		return ids(p.Items)
	}
	want := listed(db)
	if len(want) != len(rs) {
		t.Fatalf("listed %d of %d referrals", len(want), len(rs))
	}
	// What the old layout also wrote: "o" org 0x00 dir 0x00 id16 per party.
	var legacy [][]byte
	for _, r := range rs {
		id, _ := parseID(r.ID)
		for _, k := range [][]byte{append([]byte("o"+string(orgHelsin)+"\x00i\x00"), id[:]...),
			append([]byte("o"+string(orgKela)+"\x00o\x00"), id[:]...)} {
			legacy = append(legacy, k)
		}
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, k := range legacy {
			if err := tx.Bucket(bucketIndex).Put(k, indexValue(rs[0])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpenPath(t, path, Options{})
	if n, took := db.LegacyIndexDropped(); n != len(legacy) || took <= 0 {
		t.Errorf("LegacyIndexDropped = %d, %v; want %d and a duration", n, took, len(legacy))
	}
	after := indexKeysIn(t, db)
	if len(after) != len(before) {
		t.Errorf("index has %d entries after Open, %d before the old ones were added", len(after), len(before))
	}
	for k := range after {
		if k[0] == legacyOrgIndex || !before[k] {
			t.Errorf("entry %q left or added", k)
		}
	}
	if got := listed(db); !slices.Equal(got, want) {
		t.Errorf("listed %v after the upgrade, %v before", got, want)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpenPath(t, path, Options{})
	if n, _ := db.LegacyIndexDropped(); n != 0 {
		t.Errorf("the second Open dropped %d entries", n)
	}
}

// TestDropLegacyOrgIndexBatches: more old entries than one transaction takes are all deleted.
func TestDropLegacyOrgIndexBatches(t *testing.T) {
	bdb, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	n := legacyDropBatch + 7
	if err := bdb.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketIndex)
		if err != nil {
			return err
		}
		for _, k := range []string{"c-before", "s-after", "v-after"} {
			if err := b.Put([]byte(k), nil); err != nil {
				return err
			}
		}
		for i := range n {
			if err := b.Put(append([]byte("ohva-01\x00i\x00"), byte(i>>16), byte(i>>8), byte(i)), nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dropped, err := dropLegacyOrgIndex(bdb)
	if err != nil || dropped != n {
		t.Fatalf("dropLegacyOrgIndex = %d, %v; want %d", dropped, err, n)
	}
	var left [][]byte
	_ = bdb.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIndex).ForEach(func(k, _ []byte) error { left = append(left, bytes.Clone(k)); return nil })
	})
	if len(left) != 3 || string(left[0]) != "c-before" || string(left[2]) != "v-after" {
		t.Errorf("left %q, want the three other entries", left)
	}
}
