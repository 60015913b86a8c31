package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
)

func TestOutboxOrderUnderConcurrentUpdates(t *testing.T) {
	db := mustOpenPath(t, t.TempDir()+"/r.db", Options{}) // bbolt's default batching
	ctx := context.Background()
	const goroutines, updates = 32, 20
	refs := make([]*domain.Referral, goroutines)
	for g := range refs {
		refs[g] = newReferral(orgKela, orgHelsin)
	}
	mustPut(t, db, &domain.Change{Referrals: refs}) // no events

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			id := refs[g].ID
			for i := range updates {
				err := db.Update(ctx, func(tx domain.Tx) (*domain.Change, error) {
					cur, err := tx.Referral(id)
					if err != nil {
						return nil, err
					}
					// The version read in the transaction numbers the event: it proves the
					// event order matches the order of the state changes, not just the calls.
					n := cur.Version
					cur.Version++
					return &domain.Change{Referrals: []*domain.Referral{cur}, Events: []domain.Event{{
						ID: fmt.Sprintf("%s/%03d/%03d", id, n, i), Type: domain.EventStatusChanged, ReferralID: id,
						Sender: cur.Sender, Recipient: cur.Recipient}}}, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	pending, err := db.PendingEvents(goroutines*updates + 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != goroutines*updates {
		t.Fatalf("%d pending events, want %d", len(pending), goroutines*updates)
	}
	next := map[string]int{} // per referral: the next loop index expected
	for i, e := range pending {
		if i > 0 && e.Seq <= pending[i-1].Seq {
			t.Fatalf("Seq %d follows %d: not strictly increasing", e.Seq, pending[i-1].Seq)
		}
		var id string
		var version, loop int
		if _, err := fmt.Sscanf(e.Event.ID, "%36s/%03d/%03d", &id, &version, &loop); err != nil {
			t.Fatalf("event id %q: %v", e.Event.ID, err)
		}
		if loop != next[id] || version != loop+1 {
			t.Fatalf("referral %s: event of update %d (version %d) where update %d was due", id, loop, version, next[id])
		}
		next[id]++
	}
	if len(next) != goroutines {
		t.Errorf("events of %d referrals, want %d", len(next), goroutines)
	}
}

func TestDeleteEvents(t *testing.T) {
	db := MustOpen(t)
	var rs []*domain.Referral
	for range 10 {
		rs = append(rs, newReferral(orgKela, orgHelsin))
	}
	mustCreate(t, db, rs...)

	all, err := db.PendingEvents(100)
	if err != nil || len(all) != 10 {
		t.Fatalf("PendingEvents = %d, %v; want 10", len(all), err)
	}
	for i, e := range all {
		if e.Event.ReferralID != rs[i].ID {
			t.Errorf("event %d is of %s, want %s (the order of the Change)", i, e.Event.ReferralID, rs[i].ID)
		}
	}
	first3, err := db.PendingEvents(3)
	if err != nil || len(first3) != 3 || first3[0].Seq != all[0].Seq || first3[2].Seq != all[2].Seq {
		t.Errorf("PendingEvents(3) = %+v, %v; want the 3 oldest", first3, err)
	}

	tests := []struct {
		name    string
		del     []uint64
		wantLen int
		first   uint64
	}{
		{"delete the acknowledged head", []uint64{all[0].Seq, all[1].Seq, all[2].Seq}, 7, all[3].Seq},
		{"repeat delete is harmless", []uint64{all[0].Seq}, 7, all[3].Seq},
		{"unknown seq is ignored", []uint64{all[9].Seq + 1000}, 7, all[3].Seq},
		{"delete out of order leaves a gap", []uint64{all[4].Seq}, 6, all[3].Seq},
		{"empty list", nil, 6, all[3].Seq},
		{"delete the rest", []uint64{all[3].Seq, all[5].Seq, all[6].Seq, all[7].Seq, all[8].Seq, all[9].Seq}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.DeleteEvents(tt.del); err != nil {
				t.Fatal(err)
			}
			n, err := db.OutboxLen()
			if err != nil || n != tt.wantLen {
				t.Errorf("OutboxLen = %d, %v; want %d", n, err, tt.wantLen)
			}
			p, err := db.PendingEvents(100)
			if err != nil || len(p) != tt.wantLen {
				t.Fatalf("PendingEvents = %d, %v; want %d", len(p), err, tt.wantLen)
			}
			if tt.wantLen > 0 && p[0].Seq != tt.first {
				t.Errorf("oldest pending seq = %d, want %d", p[0].Seq, tt.first)
			}
		})
	}
	// Seqs are not reused once the outbox is empty.
	mustCreate(t, db, newReferral(orgKela, orgHelsin))
	p, _ := db.PendingEvents(1)
	if len(p) != 1 || p[0].Seq <= all[9].Seq {
		t.Errorf("new event after emptying has %+v, want seq > %d", p, all[9].Seq)
	}
}

func TestPendingEventsAfter(t *testing.T) {
	db := MustOpen(t)
	var rs []*domain.Referral
	for range 6 {
		rs = append(rs, newReferral(orgKela, orgHelsin))
	}
	mustCreate(t, db, rs...)
	all, err := db.PendingEvents(100)
	if err != nil || len(all) != 6 {
		t.Fatalf("PendingEvents = %d, %v; want 6", len(all), err)
	}
	// A gap, as when a relay deleted an entry out of order.
	if err := db.DeleteEvents([]uint64{all[3].Seq}); err != nil {
		t.Fatal(err)
	}
	seqs := func(es []domain.OutboxEntry) []uint64 {
		var out []uint64
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	tests := []struct {
		name  string
		after uint64
		limit int
		want  []uint64
	}{
		{"after 0 reads from the oldest", 0, 100, []uint64{all[0].Seq, all[1].Seq, all[2].Seq, all[4].Seq, all[5].Seq}},
		{"after an entry skips it and those before", all[1].Seq, 100, []uint64{all[2].Seq, all[4].Seq, all[5].Seq}},
		{"after a deleted entry reads on from the next", all[3].Seq, 100, []uint64{all[4].Seq, all[5].Seq}},
		{"limit counts from after", all[0].Seq, 2, []uint64{all[1].Seq, all[2].Seq}},
		{"after the newest reads nothing", all[5].Seq, 100, nil},
		{"after the largest seq reads nothing", ^uint64(0), 100, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.PendingEventsAfter(tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(got), tt.want) {
				t.Errorf("PendingEventsAfter(%d, %d) = %v, want %v", tt.after, tt.limit, seqs(got), tt.want)
			}
		})
	}
	// An entry committed after a read is found after the last seq read.
	mustCreate(t, db, newReferral(orgKela, orgHelsin))
	got, err := db.PendingEventsAfter(all[5].Seq, 100)
	if err != nil || len(got) != 1 || got[0].Seq <= all[5].Seq {
		t.Errorf("new entry after the last read: %v, %v", seqs(got), err)
	}
}

func TestPendingEventsDefaultLimit(t *testing.T) {
	db := MustOpen(t)
	var rs []*domain.Referral
	for range DefaultPendingMax + 5 {
		rs = append(rs, newReferral(orgKela, orgHelsin))
	}
	mustCreate(t, db, rs...)
	p, err := db.PendingEvents(0)
	if err != nil || len(p) != DefaultPendingMax {
		t.Errorf("PendingEvents(0) = %d, %v; want %d", len(p), err, DefaultPendingMax)
	}
}

func TestCommitted(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	signalled := func() bool {
		select {
		case <-db.Committed():
			return true
		default:
			return false
		}
	}
	r := newReferral(orgKela, orgHelsin)
	tests := []struct {
		name string
		do   func() error
		want bool
	}{
		{"commit with events signals", func() error { mustCreate(t, db, r); return nil }, true},
		{"commit without events does not", func() error {
			upd := *r
			upd.Version = 2
			return db.Update(ctx, func(domain.Tx) (*domain.Change, error) {
				return &domain.Change{Referrals: []*domain.Referral{&upd}}, nil
			})
		}, false},
		{"deleting events does not", func() error { return db.DeleteEvents([]uint64{1}) }, false},
		{"many commits leave one signal, never block", func() error {
			for range 5 {
				mustCreate(t, db, newReferral(orgKela, orgHelsin))
			}
			return nil
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); err != nil {
				t.Fatal(err)
			}
			if got := signalled(); got != tt.want {
				t.Errorf("signalled = %v, want %v", got, tt.want)
			}
			if signalled() {
				t.Error("a second signal was buffered")
			}
		})
	}
}

func TestCommittedWakesAWaitingRelay(t *testing.T) {
	db := MustOpen(t)
	got := make(chan int, 1)
	go func() {
		<-db.Committed()
		p, _ := db.PendingEvents(10)
		got <- len(p)
	}()
	mustCreate(t, db, newReferral(orgKela, orgHelsin))
	select {
	case n := <-got:
		if n != 1 {
			t.Errorf("relay woke to %d events, want 1 (the commit was visible)", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay not woken")
	}
}
