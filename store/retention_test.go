package store

import (
	"bytes"
	"context"
	"github.com/google/uuid"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

const day = 24 * time.Hour

// rawPlaintext returns the decrypted stored values of a referral's record and messages.
func rawPlaintext(t *testing.T, db *DB, id string) []byte {
	t.Helper()
	uid, _ := parseID(id)
	var out []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		p, err := openValue(tx, bucketReferrals, uid[:], tx.Bucket(bucketReferrals).Get(uid[:]))
		if err != nil {
			return err
		}
		out = append(out, p...)
		c := tx.Bucket(bucketMessages).Cursor()
		for k, v := c.Seek(uid[:]); k != nil && bytes.HasPrefix(k, uid[:]); k, v = c.Next() {
			p, err := openValue(tx, bucketMessages, k, v)
			if err != nil {
				return err
			}
			out = append(out, p...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRetentionErasesOnlyWhatClosedLongAgo: a referral closed 800 days ago is erased and the
// erasure logged; one closed 400 days ago and an open one are untouched.
func TestRetentionErasesOnlyWhatClosedLongAgo(t *testing.T) {
	db := mustOpenPath(t, t.TempDir()+"/referrals.db", Options{MaxBatchDelay: time.Millisecond, Keys: mustKeyring(t, "k1", "k1")})
	svc, clock := serviceOn(db)
	ctx := context.Background()
	old := writeThroughService(t, svc) // completed now, with two messages
	closedAt := mustReferral(t, db, old).Times.ClosedAt
	clock.Advance(400 * day)
	recent, _, err := svc.Create(ctx, kelaHandler, needRequest(secretPID, secretName), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Act(ctx, kelaHandler, recent.ID, domain.Command{Action: domain.ActionWithdraw, Reason: "sent_in_error", Text: secretOutcome}); err != nil {
		t.Fatal(err)
	}
	open, _, err := svc.Create(ctx, kelaHandler, needRequest(secretPID, secretName), "")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(400 * day)
	now := clock.Now()
	cutoff := now.Add(-DefaultRetention)
	timeline, _ := db.Timeline(ctx, old)
	outbox, _ := db.OutboxLen()

	dry, err := db.EraseClosedBefore(ctx, cutoff, now, true)
	if err != nil || dry.Candidates != 1 || dry.Erased != 0 {
		t.Fatalf("dry run = %+v, %v; want 1 candidate, nothing erased", dry, err)
	}
	if r := mustReferral(t, db, old); r.Client.Name != secretName {
		t.Fatalf("the dry run erased: %+v", r.Client)
	}

	// Kela's list pages cache the decoded records, the old one's name included.
	if p, err := db.List(ctx, domain.ListFilter{Org: domain.Kela, Direction: domain.Outgoing}); err != nil || len(p.Items) != 3 {
		t.Fatalf("Kela's list: %v, %v", p.Items, err)
	}
	oldID := uuid.MustParse(old)
	if _, ok := db.records.entries[oldID]; !ok {
		t.Fatal("the list did not cache the old referral: the check below proves nothing")
	}

	res, err := db.EraseClosedBefore(ctx, cutoff, now, false)
	if _, ok := db.records.entries[oldID]; ok {
		t.Error("the erased referral's decoded record is still cached")
	}
	if err != nil || res.Erased != 1 || res.Messages != 2 {
		t.Fatalf("run = %+v, %v; want 1 referral and 2 messages erased", res, err)
	}
	r := mustReferral(t, db, old)
	if r.Client != (domain.Client{Name: domain.ErasedText}) || r.KelaCaseRef != "" ||
		r.SocialWorkNeed.Description != domain.ErasedText || len(r.SocialWorkNeed.NeedFlags) != 0 ||
		r.Outcome.Text != domain.ErasedText {
		t.Errorf("erased referral = client %+v ref %q need %+v outcome %+v", r.Client, r.KelaCaseRef, r.SocialWorkNeed, r.Outcome)
	}
	// What the figures need stays.
	if r.Status != domain.StatusCompleted || r.Outcome.Outcome != "assessment_started" || !r.Times.ClosedAt.Equal(*closedAt) ||
		r.Deadlines.RespondBy == nil || r.Times.AcknowledgedAt == nil {
		t.Errorf("erasure touched the figures: %+v %+v", r.Times, r.Deadlines)
	}
	ms, err := db.Messages(ctx, old)
	if err != nil || len(ms) != 2 || ms[0].Text != domain.ErasedText || ms[1].Text != domain.ErasedText || ms[0].AuthorID != hkiWorker.UserID {
		t.Errorf("messages = %+v, %v", ms, err)
	}
	// The record and messages no longer decrypt to any of the client data.
	plain := rawPlaintext(t, db, old)
	for _, s := range append(secrets, "TO-2026-0012345", "housing_risk") {
		if bytes.Contains(plain, []byte(s)) {
			t.Errorf("erased record still holds %q", s)
		}
	}
	// The client index no longer leads to it; the others are still found.
	found, err := svc.SearchClient(ctx, kelaHandler, secretPID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range found {
		ids = append(ids, f.ID)
	}
	if got := strings.Join(ids, ","); got != open.ID+","+recent.ID {
		t.Errorf("search finds %s, want %s,%s", got, open.ID, recent.ID)
	}
	for _, id := range []string{recent.ID, open.ID} {
		if r := mustReferral(t, db, id); r.Client.Name != secretName || r.Client.PersonalID != secretPID {
			t.Errorf("%s was touched: %+v", id, r.Client)
		}
	}
	if got := mustReferral(t, db, recent.ID); got.Closure.Text != secretOutcome {
		t.Errorf("recent closure text = %q", got.Closure.Text)
	}
	// The erased referral stays in both organisations' lists (the figures' history), as
	// erased, under its status.
	if p, err := db.List(ctx, domain.ListFilter{Org: domain.Kela, Direction: domain.Outgoing}); err != nil || len(p.Items) != 3 {
		t.Errorf("Kela's list after the erasure: %d items, %v; want the 3", len(p.Items), err)
	}
	p, err := db.List(ctx, domain.ListFilter{Org: "hva-90", Direction: domain.Incoming, Status: domain.StatusCompleted})
	if err != nil || len(p.Items) != 1 || p.Items[0].ID != old || p.Items[0].Client.Name != domain.ErasedText {
		t.Errorf("Helsinki's completed list after the erasure: %+v, %v; want the erased referral", p.Items, err)
	}
	// Timeline and events stay as they were.
	if tl, _ := db.Timeline(ctx, old); len(tl) != len(timeline) {
		t.Errorf("timeline %d entries, was %d", len(tl), len(timeline))
	}
	if n, _ := db.OutboxLen(); n != outbox {
		t.Errorf("outbox %d, was %d", n, outbox)
	}
	// The erasure is in the access log, and the log still verifies.
	log, err := db.Audit(ctx, domain.AuditFilter{Org: "hva-90", ReferralID: old})
	if err != nil {
		t.Fatal(err)
	}
	last := log.Items[len(log.Items)-1]
	if last.Action != domain.AuditErase || last.UserID != domain.RetentionUser || last.Purpose != domain.PurposeRetention || !last.At.Equal(now) {
		t.Errorf("last entry = %+v, want the erasure", last)
	}
	if _, err := db.VerifyAudit(ctx, nil); err != nil {
		t.Error(err)
	}
	// A second run finds nothing.
	if res, err := db.EraseClosedBefore(ctx, cutoff, now, false); err != nil || res.Erased != 0 || res.Candidates != 0 {
		t.Errorf("second run = %+v, %v", res, err)
	}
}

// TestRetentionIndexesAnOlderFileOnce: a file whose closed referrals predate the closure
// index is scanned once, then served from the index.
func TestRetentionIndexesAnOlderFileOnce(t *testing.T) {
	db := mustOpenPath(t, t.TempDir()+"/referrals.db", Options{MaxBatchDelay: time.Millisecond})
	svc, clock := serviceOn(db)
	old := writeThroughService(t, svc)
	// As if written by a version without the index.
	tamper(t, db, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketClosed); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketClosed); err != nil {
			return err
		}
		return tx.Bucket(bucketPrivacyMeta).Delete(metaClosedComplete)
	})
	// Opening the file again must not take the missing index for a complete one.
	path := db.bolt.Path()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpenPath(t, path, Options{MaxBatchDelay: time.Millisecond})
	clock.Advance(800 * day)
	now := clock.Now()
	ctx := context.Background()
	if dry, err := db.EraseClosedBefore(ctx, now.Add(-DefaultRetention), now, true); err != nil || dry.Candidates != 1 {
		t.Fatalf("dry run on the unindexed file = %+v, %v", dry, err)
	}
	res, err := db.EraseClosedBefore(ctx, now.Add(-DefaultRetention), now, false)
	if err != nil || res.Backfilled != 1 || res.Erased != 1 {
		t.Fatalf("run = %+v, %v; want 1 backfilled and erased", res, err)
	}
	if r := mustReferral(t, db, old); r.Client.Name != domain.ErasedText {
		t.Errorf("not erased: %+v", r.Client)
	}
	if res, err := db.EraseClosedBefore(ctx, now.Add(-DefaultRetention), now, false); err != nil || res.Backfilled != 0 || res.Erased != 0 {
		t.Errorf("second run = %+v, %v", res, err)
	}
}

// TestRetentionErasesEveryBatchAndNothingAtTheCutoff: more expired referrals than one
// transaction takes are all erased in one run; one closed exactly at the cutoff is not (the
// period has not passed), nor counted by the dry run.
func TestRetentionErasesEveryBatchAndNothingAtTheCutoff(t *testing.T) {
	db := mustOpenPath(t, t.TempDir()+"/referrals.db", Options{})
	svc, clock := serviceOn(db)
	ctx := context.Background()
	n := RetentionBatch + 20
	for i := range n {
		r, _, err := svc.Create(ctx, kelaHandler, needRequest(secretPID, secretName), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Act(ctx, kelaHandler, r.ID, domain.Command{Action: domain.ActionWithdraw, Reason: "sent_in_error"}); err != nil {
			t.Fatal(err)
		}
		if i < n-1 {
			clock.Advance(time.Second)
		}
	}
	last, err := db.List(ctx, domain.ListFilter{Org: domain.Kela, Direction: domain.Outgoing, Limit: 1})
	if err != nil || len(last.Items) != 1 {
		t.Fatal(last, err)
	}
	cutoff := *mustReferral(t, db, last.Items[0].ID).Times.ClosedAt // the newest closure
	now := cutoff.Add(DefaultRetention)
	if dry, err := db.EraseClosedBefore(ctx, cutoff, now, true); err != nil || dry.Candidates != n-1 {
		t.Errorf("dry run = %+v, %v; want %d candidates", dry, err, n-1)
	}
	res, err := db.EraseClosedBefore(ctx, cutoff, now, false)
	if err != nil || res.Erased != n-1 || res.Candidates != n-1 {
		t.Fatalf("run = %+v, %v; want %d erased in one run (batches of %d)", res, err, n-1, RetentionBatch)
	}
	if r := mustReferral(t, db, last.Items[0].ID); r.Client.Name != secretName {
		t.Errorf("the referral closed at the cutoff was erased: %+v", r.Client)
	}
	res, err = db.EraseClosedBefore(ctx, cutoff.Add(time.Nanosecond), now, false)
	if err != nil || res.Erased != 1 {
		t.Errorf("run a nanosecond later = %+v, %v; want the last one erased", res, err)
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"730d": 730 * day, "17520h": 730 * day, "1d": day} {
		if got, err := ParseRetention(in); err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "-5d", "two years", "d", "-1h"} {
		if _, err := ParseRetention(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// TestRetentionForgetsTheClientsBounceCounter: once a client's last referral is erased, no
// keyed hash of their identity code is left in the bounce counters either.
func TestRetentionForgetsTheClientsBounceCounter(t *testing.T) {
	db := mustOpenPath(t, t.TempDir()+"/referrals.db", Options{MaxBatchDelay: time.Millisecond, Keys: mustKeyring(t, "k1", "k1")})
	svc, clock := serviceOn(db)
	ctx := context.Background()
	r, _, err := svc.Create(ctx, kelaHandler, needRequest(secretPID, secretName), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Act(ctx, hkiWorker, r.ID, domain.Command{Action: domain.ActionReturn, Reason: "not_our_client", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	counters := func() int {
		n := 0
		_ = db.bolt.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketStatsClients).Stats().KeyN; return nil })
		return n
	}
	if counters() != 1 {
		t.Fatalf("%d bounce counters after a return, want 1", counters())
	}
	clock.Advance(800 * day)
	now := clock.Now()
	if res, err := db.EraseClosedBefore(ctx, now.Add(-DefaultRetention), now, false); err != nil || res.Erased != 1 {
		t.Fatalf("erase = %+v, %v", res, err)
	}
	if counters() != 0 {
		t.Errorf("%d bounce counters left after the client's only referral was erased", counters())
	}
}
